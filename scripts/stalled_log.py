"""A log pipe that nobody reads, for `scripts/reliability`: the figure.

Each contender (wasiter native, on wasmtime, on WasmEdge and WasmEdge AOT;
HAProxy 2.6 with one thread, `log stderr`, `option tcplog`) runs with
stdout and stderr pipes that this script holds and never reads, as a stuck
log shipper's would be. One client after another then connects through it
to an echo server, sends a byte and waits for it (2 s at most), for
SECONDS. Printed per contender: the clients served, and whether one was
not (the proxy stalled); for wasiter also the lines its metric counted as
dropped (a scrape at the end, from the same loop).

  python3 scripts/stalled_log.py [SECONDS]     (default 10)
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLIENT_WAIT = 2.0


def echo_server():
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(1024)

    def one(c):
        with c:
            try:
                while (d := c.recv(65536)):
                    c.sendall(d)
            except OSError:
                pass

    def serve():
        while True:
            c, _ = srv.accept()
            threading.Thread(target=one, args=(c,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    return srv.getsockname()[1]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wasiter(runtime, port, up, metrics):
    args = ["--local", f"127.0.0.1:{port}", "--remote", f"127.0.0.1:{up}", "--metrics", f"127.0.0.1:{metrics}"]
    wasm1 = f"{ROOT}/target/wasm32-wasip1/release/wasiter.wasm"
    return {
        "native": [f"{ROOT}/target/release/wasiter"],
        "wasmtime": ["wasmtime", "run", "-S", "inherit-network", f"{ROOT}/target/wasm32-wasip2/release/wasiter.wasm"],
        "wasmedge": ["wasmedge", wasm1],
        "wasmedge-aot": ["wasmedge", "--run-mode=aot", f"{ROOT}/target/wasm32-wasip1/release/wasiter.aot.wasm"],
    }[runtime] + args


def haproxy(tmp, port, up):
    conf = os.path.join(tmp, "haproxy.cfg")
    with open(conf, "w") as f:
        f.write(f"""global
  nbthread 1
  log stderr format raw local0
defaults
  mode tcp
  log global
  option tcplog
  timeout connect 5s
  timeout client 1m
  timeout server 1m
listen l
  bind 127.0.0.1:{port}
  server s 127.0.0.1:{up}
""")
    return ["haproxy", "-db", "-f", conf]


def clients(port, seconds):
    """Clients served one after another for `seconds`; the error of the first not served."""
    served, until = 0, time.monotonic() + seconds
    while time.monotonic() < until:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=CLIENT_WAIT) as s:
                s.settimeout(CLIENT_WAIT)
                s.sendall(b"x")
                if s.recv(1) != b"x":
                    return served, "no echo"
            served += 1
        except OSError as e:
            return served, f"client {served + 1} not served: {e}"
    return served, None


def wait_port(port, proc):
    for _ in range(300):
        if proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def dropped(metrics):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics", timeout=CLIENT_WAIT) as r:
            for line in r.read().decode().splitlines():
                if line.startswith("wasiter_log_lines_dropped_total "):
                    return int(float(line.split()[1]))
    except OSError as e:
        return f"(no scrape: {e})"
    return "?"


def run(name, cmd, port, seconds, metrics=None):
    # Pipes held open, never read: the probe connection's own log line
    # (and the start lines) are the first to fill them.
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out_w, stderr=err_w)
    os.close(out_w)
    os.close(err_w)
    try:
        if not wait_port(port, proc):
            return f"{name:20} did not start"
        served, why = clients(port, seconds)
        line = f"{name:20} {served:7} clients served in {seconds} s while nobody reads its log"
        line += f"; stalled: {why}" if why else "; never stalled"
        if metrics is not None:
            line += f"; metric: {dropped(metrics)} lines dropped"
        return line
    finally:
        proc.kill()
        proc.wait()
        os.close(out_r)
        os.close(err_r)


def main():
    seconds = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    up = echo_server()
    rows = []
    runtimes = ["native", "wasmtime"]
    if shutil.which("wasmedge"):
        runtimes += ["wasmedge", "wasmedge-aot"]
    else:
        rows.append("SKIPPED: wasmedge not found: no WasmEdge rows")
    for rt in runtimes:
        port, metrics = free_port(), free_port()
        rows.append(run(f"wasiter {rt}", wasiter(rt, port, up, metrics), port, seconds, metrics))
    if shutil.which("haproxy"):
        with tempfile.TemporaryDirectory() as tmp:
            port = free_port()
            rows.append(run("haproxy 2.6", haproxy(tmp, port, up), port, seconds))
    else:
        rows.append("SKIPPED: haproxy not found: no HAProxy row")
    print("stalled log pipe (stdout and stderr never read):")
    for r in rows:
        print("  " + r)


if __name__ == "__main__":
    main()
