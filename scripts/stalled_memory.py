"""Memory per connection that follows the traffic (issue 49 item 3): the figures.

Each contender relays one port to a server of this script's, and N clients
connect through it:
  - stalled: the server sends as fast as it can and the clients never read,
    so every connection's bytes back up to the proxy: what the proxy holds
    per connection once the kernel's socket buffers are full;
  - idle: the server sends nothing: what an open, quiet connection costs.
Printed per contender: resident memory (KiB) per connection for each, the
difference from the proxy's memory just before the clients came, the median
of --rounds rounds (a fresh proxy each). wasiter on a wasm runtime never
gives linear memory back to the system, so its figure is what the module's
allocator took at the peak, which is what a stalled connection costs there.

  python3 scripts/stalled_memory.py [--n 500] [--rounds 3] [--only a,b] [--baseline REV]
      contenders: wasiter-native, wasiter-wasmedge-aot, haproxy (and
      wasiter-native@REV, wasiter-wasmedge-aot@REV with --baseline: the same
      builds of an older revision, made in a worktree); scripts/build first.
"""

import argparse
import os
import selectors
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib.common import ROOT, free_port, proc_rss_kib, wait_port  # noqa: E402
from benchlib.contenders import build_baseline, haproxy, wasiter  # noqa: E402

CHUNK = b"x" * 65536


def serve(port, flood, stop):
    """Accept on `port`; with `flood`, write to every client until its socket
    is full, and again whenever it drains (never, here)."""
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", port))
    lsock.listen(4096)
    lsock.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(lsock, selectors.EVENT_READ, None)
    conns = []
    while not stop.is_set():
        for key, events in sel.select(0.2):
            if key.data is None:
                try:
                    c, _ = lsock.accept()
                except BlockingIOError:
                    continue
                c.setblocking(False)
                conns.append(c)
                sel.register(c, selectors.EVENT_WRITE if flood else selectors.EVENT_READ, "c")
                continue
            if events & selectors.EVENT_WRITE:
                try:
                    while key.fileobj.send(CHUNK) > 0:
                        pass
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    sel.unregister(key.fileobj)
            elif events & selectors.EVENT_READ:
                try:
                    if not key.fileobj.recv(65536):
                        sel.unregister(key.fileobj)
                except OSError:
                    sel.unregister(key.fileobj)
    for c in conns:
        c.close()
    lsock.close()


def one_round(name, argv_for, n, flood):
    server_port, listen = free_port(), free_port()
    stop = threading.Event()
    t = threading.Thread(target=serve, args=(server_port, flood, stop), daemon=True)
    t.start()
    tmp = tempfile.mkdtemp(prefix="wasiter-stalled-")
    proc = subprocess.Popen(argv_for(tmp, [(listen, server_port, None)]), cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        if not wait_port(listen):
            raise SystemExit(f"stalled_memory: {name} did not listen")
        time.sleep(0.5)
        base = proc_rss_kib([proc.pid])
        clients = []
        for _ in range(n):
            s = socket.socket()
            s.connect(("127.0.0.1", listen))
            clients.append(s)
        time.sleep(3)  # every upstream connected, every buffer filled
        held = proc_rss_kib([proc.pid])
        for s in clients:
            s.close()
        return (held - base) / n
    finally:
        os.killpg(proc.pid, 15)
        proc.wait()
        stop.set()
        t.join()
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", default="")
    ap.add_argument("--baseline", default="")
    args = ap.parse_args()
    contenders = [("wasiter-native", wasiter("native", ROOT)), ("wasiter-wasmedge-aot", wasiter("wasmedge-aot", ROOT))]
    if args.baseline:
        path = build_baseline(args.baseline)
        contenders += [(f"wasiter-native@{args.baseline}", wasiter("native", path)),
                       (f"wasiter-wasmedge-aot@{args.baseline}", wasiter("wasmedge-aot", path))]
    if shutil.which("haproxy"):
        contenders.append(("haproxy", haproxy))
    else:
        print("SKIPPED: haproxy not found")
    if args.only:
        contenders = [c for c in contenders if c[0] in args.only.split(",")]
    print(f"KiB of resident memory per connection, {args.n} connections, median of {args.rounds} rounds")
    print("| contender | stalled (server floods, client never reads) | idle |")
    print("|---|---|---|")
    for name, make in contenders:
        stalled = statistics.median(one_round(name, make, args.n, True) for _ in range(args.rounds))
        idle = statistics.median(one_round(name, make, args.n, False) for _ in range(args.rounds))
        print(f"| {name} | {stalled:.1f} | {idle:.1f} |", flush=True)


if __name__ == "__main__":
    main()
