"""What a client held for a person costs (ask mode, docs/egress.md#asking-a-person): the figure.

wasiter (native, on wasmtime, on WasmEdge AOT) runs a forward route with
`ask` and a long ask-timeout. N clients then each send a plain request with
a 4 KiB head for one of 60 unlisted names (60 questions, well under the
64-question bound), and are held. Printed per runtime: the proxy's
resident memory before and after, and the difference per held client.
Memory per held client is bounded by the front's read buffer (32 KiB and a
byte): a held client is not read from beyond it.

  python3 scripts/held_memory.py [N]     (default 1000; scripts/build first)
"""

import os
import shutil
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAMES = 60


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def command(runtime, port):
    args = ["--route", f"127.0.0.1:{port}=forward;to=listed.test;ask;ask-timeout=600s", "--quiet", "--max-conns", "5000"]
    return {
        "native": [f"{ROOT}/target/release/wasiter"],
        "wasmtime": ["wasmtime", "run", "-S", "inherit-network", f"{ROOT}/target/wasm32-wasip2/release/wasiter.wasm"],
        "wasmedge-aot": ["wasmedge", "--run-mode=aot", f"{ROOT}/target/wasm32-wasip1/release/wasiter.aot.wasm"],
    }[runtime] + args


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def wait_port(port, proc):
    for _ in range(200):
        if proc.poll() is not None:
            raise SystemExit(f"held_memory: the proxy exited ({proc.returncode})")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("held_memory: the proxy did not listen")


def measure(runtime, n):
    port = free_port()
    proc = subprocess.Popen(command(runtime, port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, proc)
        time.sleep(0.5)
        before = rss_kib(proc.pid)
        held = []
        for i in range(n):
            s = socket.create_connection(("127.0.0.1", port))
            name = f"h{i % NAMES}.test"
            s.sendall(f"GET http://{name}/ HTTP/1.1\r\nHost: {name}\r\nX-Pad: {'a' * 4000}\r\n\r\n".encode())
            held.append(s)
        time.sleep(2)
        after = rss_kib(proc.pid)
        for s in held:
            s.close()
        return before, after
    finally:
        proc.terminate()
        proc.wait()


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    runtimes = ["native"]
    runtimes += ["wasmtime"] if shutil.which("wasmtime") else []
    if shutil.which("wasmedge"):
        runtimes += ["wasmedge-aot"]
    else:
        print("SKIPPED: wasmedge not found: no WasmEdge row")
    print(f"| runtime | RSS before (KiB) | with {n} held clients (KiB) | per held client (KiB) |")
    print("|---|---|---|---|")
    for runtime in runtimes:
        before, after = measure(runtime, n)
        print(f"| {runtime} | {before} | {after} | {(after - before) / n:.1f} |")


if __name__ == "__main__":
    main()
