#!/usr/bin/env python3
"""The host's limits, wasiter on every runtime here beside HAProxy 2.6 (one
thread), for `scripts/reliability` (run it alone from the repository's root
after scripts/build: `python3 scripts/reliability_limits.py [ROUNDS]`).

Two cases, each against a fresh proxy in front of one echo server:
  fd limit   the proxy under `prlimit --nofile=256:256`; 300 clients connect
             at once, each sends a line, waits up to 30 s for it back, holds
             its connection 1 s, closes. Figures: clients served, clients
             closed empty (the connection ended, or was reset, before a
             byte came back: accepted and then dropped).
  burst      the proxy with its hard limit; 3,000 non-blocking connects at
             once, each sending a byte as soon as it is connected. Figures:
             connects that took more than 1 s (a SYN the kernel dropped from a
             full listen queue is sent again after 1 s) and echoes that took
             more than 1 s; the slowest.
wasiter runs with its defaults (its backlog: somaxconn natively, 4096 on
wasm, both capped by the kernel) and, for the burst, also with
`--backlog 1024`, the fixed value it had before. HAProxy with `nbthread 1`,
no maxconn under the fd limit (it derives one from the limit, as wasiter
does), `maxconn 9000` for the burst (its backlog follows maxconn).
Prints one line per contender and case.
"""

import errno
import os
import resource
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLIENTS_AT_LIMIT = 300
BURST = 3000

ECHO = r"""
import asyncio, sys
async def serve(r, w):
    try:
        while data := await r.read(65536):
            w.write(data)
            await w.drain()
    except Exception:
        pass
    w.close()
async def main():
    s = await asyncio.start_server(serve, "127.0.0.1", int(sys.argv[1]), backlog=8192)
    await s.serve_forever()
asyncio.run(main())
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, what):
    deadline = time.time() + 30
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"reliability_limits: {what} exited at start ({proc.returncode})")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"reliability_limits: {what} did not listen on {port}")


def wasiter(runtime):
    def make(port, upstream, extra, tmp):
        route = ["--local", f"127.0.0.1:{port}", "--remote", f"127.0.0.1:{upstream}", "--quiet"] + [e for e in extra if e != "limited"]
        return {
            "native": [f"{ROOT}/target/release/wasiter"],
            "wasmtime": ["wasmtime", "run", "-S", "inherit-network", f"{ROOT}/target/wasm32-wasip2/release/wasiter.wasm"],
            "wasmedge": ["wasmedge", f"{ROOT}/target/wasm32-wasip1/release/wasiter.wasm"],
            "wasmedge-aot": ["wasmedge", "--run-mode=aot", f"{ROOT}/target/wasm32-wasip1/release/wasiter.aot.wasm"],
        }[runtime] + route
    return make


def haproxy(port, upstream, extra, tmp):
    conf = os.path.join(tmp, f"haproxy-{port}.cfg")
    maxconn = "" if "limited" in extra else "  maxconn 9000\n"
    with open(conf, "w") as f:
        f.write(f"""global
  nbthread 1
{maxconn}defaults
  mode tcp
  timeout connect 5s
  timeout client 1m
  timeout server 1m
listen l
  bind 127.0.0.1:{port}
  server s 127.0.0.1:{upstream}
""")
    return ["haproxy", "-db", "-f", conf]


def start(make, upstream, extra, tmp, nofile):
    port = free_port()
    cmd = make(port, upstream, extra, tmp)
    if nofile:
        cmd = ["prlimit", f"--nofile={nofile}:{nofile}"] + cmd
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, proc, " ".join(cmd[:3]))
    time.sleep(0.3)
    return proc, port


def stop(proc):
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def at_the_fd_limit(port):
    served, empty = [0], [0]
    lock = threading.Lock()

    def client(i):
        msg = f"client {i:04}\n".encode()
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=30)
            s.settimeout(30)
            s.sendall(msg)
            got = b""
            while len(got) < len(msg):
                chunk = s.recv(len(msg) - len(got))
                if not chunk:
                    break
                got += chunk
        except OSError:
            got = b""
        with lock:
            if got == msg:
                served[0] += 1
            else:
                empty[0] += 1
        if got == msg:
            time.sleep(1)
        try:
            s.close()
        except (OSError, UnboundLocalError):
            pass

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS_AT_LIMIT)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"served": served[0], "closed_empty": empty[0]}


def run_burst(port):
    sel_states = {}  # per client: [started, connect time, echo time]
    sel = selectors.DefaultSelector()
    socks = []
    t0 = time.monotonic()
    for i in range(BURST):
        s = socket.socket()  # all 3,000 SYNs within a few milliseconds
        s.setblocking(False)
        r = s.connect_ex(("127.0.0.1", port))
        if r not in (0, errno.EINPROGRESS):
            raise SystemExit(f"reliability_limits: connect: {os.strerror(r)}")
        socks.append(s)
        sel_states[i] = [time.monotonic(), None, None]
        sel.register(s, selectors.EVENT_WRITE, i)
    pending, deadline = BURST, time.monotonic() + 15
    while pending and time.monotonic() < deadline:
        for key, _ in sel.select(0.5):
            s, st = key.fileobj, sel_states[key.data]
            now = time.monotonic()
            if st[1] is None:
                if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                    st[1] = st[2] = float("inf")
                    sel.unregister(s)
                    pending -= 1
                    continue
                st[1] = now - st[0]
                s.send(b"x")
                sel.modify(s, selectors.EVENT_READ, key.data)
            else:
                try:
                    got = s.recv(16)
                except OSError:
                    got = b""
                st[2] = (now - st[0]) if got else float("inf")
                sel.unregister(s)
                pending -= 1
    for s in socks:
        s.close()
    connects = [st[1] if st[1] is not None else float("inf") for st in sel_states.values()]
    echoes = [st[2] if st[2] is not None else float("inf") for st in sel_states.values()]
    return {
        "connects_over_1s": sum(1 for c in connects if c > 1.0),
        "echoes_over_1s": sum(1 for e in echoes if e > 1.0),
        "unanswered": sum(1 for e in echoes if e == float("inf")),
        "slowest_echo_s": round(max(e for e in echoes if e != float("inf")) if any(e != float("inf") for e in echoes) else 0, 2),
        "took_s": round(time.monotonic() - t0, 2),
    }


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the burst's clients, and the proxies started from here
    contenders = [("wasiter-native", wasiter("native"), None)]
    if shutil.which("wasmtime"):
        contenders.append(("wasiter-wasmtime", wasiter("wasmtime"), None))
    else:
        print("SKIPPED: wasmtime not found")
    if shutil.which("wasmedge"):
        contenders += [("wasiter-wasmedge", wasiter("wasmedge"), None), ("wasiter-wasmedge-aot", wasiter("wasmedge-aot"), None)]
    else:
        print("SKIPPED: wasmedge not found: the WasmEdge builds were NOT measured")
    if shutil.which("haproxy"):
        contenders.append(("haproxy", haproxy, None))
    else:
        print("SKIPPED: haproxy not found: no reference figures")
    with tempfile.TemporaryDirectory() as tmp:
        echo_port = free_port()
        echo = subprocess.Popen([sys.executable, "-c", ECHO, str(echo_port)])
        wait_port(echo_port, echo, "the echo server")
        try:
            for r in range(rounds):
                for name, make, _ in contenders:
                    proc, port = start(make, echo_port, ["limited"], tmp, 256)
                    try:
                        fig = at_the_fd_limit(port)
                    finally:
                        stop(proc)
                    print(f"round {r + 1} fd-limit {name}: 256 descriptors, {CLIENTS_AT_LIMIT} clients: "
                          f"{fig['served']} served, {fig['closed_empty']} closed empty", flush=True)
                for name, make, _ in contenders:
                    variants = [("", [])] + ([(" --backlog 1024", ["--backlog", "1024"])] if name.startswith("wasiter") else [])
                    for label, extra in variants:
                        proc, port = start(make, echo_port, extra, tmp, None)
                        try:
                            fig = run_burst(port)
                        finally:
                            stop(proc)
                        print(f"round {r + 1} burst {name}{label}: {BURST} connects: {fig['connects_over_1s']} connects and "
                              f"{fig['echoes_over_1s']} echoes over 1 s, {fig['unanswered']} unanswered, slowest echo "
                              f"{fig['slowest_echo_s']} s (all in {fig['took_s']} s)", flush=True)
                        time.sleep(1)
        finally:
            echo.terminate()
            echo.wait()


if __name__ == "__main__":
    main()
