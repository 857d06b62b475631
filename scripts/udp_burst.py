"""A burst of 5,000 small UDP datagrams through each relay, for
`scripts/reliability` (issue 44, row 5): how many are lost, how many the
relay's own metric counted, and how many the kernel says it dropped at the
relay's sockets (read from outside, /proc/PID/net/udp's drops column for
the relay's socket inodes: the ground truth the metric should match).

Contenders: wasiter on WasmEdge AOT, wasmtime and native with the default
--udp-buffer (4 MiB), and again with --udp-buffer 208k (the kernel's
default, as before it was sized: the wasm builds lose as many, uncounted), and nginx's stream module (`listen ...
udp`, one process), with the kernel's default buffers and with
`rcvbuf=4m`. HAProxy 2.6 has no UDP relay; nginx is the proxy users would
put there (socat serves one peer at a time).

Two ways to burst, each on a fresh relay:
  burst   the client sends as fast as it can while the relay runs (a
          2-core machine: the client, the relay and the sink share it)
  paused  the relay is stopped (SIGSTOP) during the burst and resumed
          after it: a busy machine, made exact
The upstream is a sink with a 64 MiB buffer that counts what arrives (and
its own drops, which would not be the relay's).

    python3 scripts/udp_burst.py [ROUNDS]
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

BURST = 5000


def free_port(kind=socket.SOCK_DGRAM):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sink:
    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for opt in (33, socket.SO_RCVBUF):  # SO_RCVBUFFORCE (as root), else capped
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, opt, 32 << 20)
                break
            except OSError:
                pass
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.arrived = 0
        threading.Thread(target=self.read, daemon=True).start()

    def read(self):
        while True:
            try:
                self.sock.recv(2048)
            except OSError:
                return
            self.arrived += 1

    def dropped(self):
        info = self.sock.getsockopt(socket.SOL_SOCKET, 55, 36)  # SO_MEMINFO
        return int.from_bytes(info[32:36], "little")


def kernel_drops(pid):
    """Drops the kernel counted at the sockets process `pid` holds."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            m = re.match(r"socket:\[(\d+)\]", os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            continue
        if m:
            inodes.add(m.group(1))
    total = 0
    for table in ("udp", "udp6"):
        with open(f"/proc/{pid}/net/{table}") as f:
            for line in f.readlines()[1:]:
                cols = line.split()
                if cols[9] in inodes:
                    total += int(cols[-1])
    return total


def metric(url, route):
    """wasiter's wasiter_udp_dropped_total for `route`, every reason: (total, kernel or None)."""
    body = urllib.request.urlopen(url, timeout=10).read().decode()
    total, kernel = 0, None
    for line in body.splitlines():
        if line.startswith("wasiter_udp_dropped_total{") and f'route="{route}"' in line:
            n = int(float(line.rsplit(" ", 1)[1]))
            total += n
            if 'reason="kernel"' in line:
                kernel = n
    return total, kernel


def contenders(tmp):
    aot = ["wasmedge", "--run-mode=aot", "target/wasm32-wasip1/release/wasiter.aot.wasm"]
    wasmtime = ["wasmtime", "run", "-S", "inherit-network", "target/wasm32-wasip2/release/wasiter.wasm"]

    def wasiter(run, extra=()):
        def make(port, sink):
            metrics = free_port(socket.SOCK_STREAM)
            cmd = run + ["--quiet", "--route", f"udp:127.0.0.1:{port}=127.0.0.1:{sink}", "--metrics", f"127.0.0.1:{metrics}", *extra]
            return cmd, f"http://127.0.0.1:{metrics}/metrics"
        return make

    # The stream module: built in, or a module to load (Debian's packages differ).
    module = "/usr/lib/nginx/modules/ngx_stream_module.so"
    load = f"load_module {module};\n" if os.path.exists(module) else ""

    def nginx(rcvbuf):
        def make(port, sink):
            conf = f"{tmp}/nginx-{port}.conf"
            with open(conf, "w") as f:
                f.write(f"""{load}daemon off; master_process off; pid {tmp}/nginx-{port}.pid; error_log {tmp}/nginx-{port}.err;
events {{ worker_connections 4096; }}
stream {{ server {{ listen 127.0.0.1:{port} udp{rcvbuf}; proxy_pass 127.0.0.1:{sink}; proxy_timeout 30s; }} }}
""")
            return ["nginx", "-c", conf, "-p", tmp], None
        return make

    out = []
    if shutil.which("wasmedge") and os.path.exists(aot[-1]):
        out.append(("wasiter-wasmedge-aot", wasiter(aot)))
        out.append(("wasiter-wasmedge-aot-208k", wasiter(aot, ["--udp-buffer", "208k"])))
    if shutil.which("wasmtime"):
        out.append(("wasiter-wasmtime", wasiter(wasmtime)))
        out.append(("wasiter-wasmtime-208k", wasiter(wasmtime, ["--udp-buffer", "208k"])))
    out.append(("wasiter-native", wasiter(["target/release/wasiter"])))
    out.append(("wasiter-native-208k", wasiter(["target/release/wasiter"], ["--udp-buffer", "208k"])))
    if shutil.which("nginx"):
        out.append(("nginx-stream", nginx("")))
        out.append(("nginx-stream-4m", nginx(" rcvbuf=4m")))
    return out


def once(make, paused):
    sink = Sink()
    port = free_port()
    cmd, url = make(port, sink.port)
    err = tempfile.TemporaryFile()
    relay = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
    try:
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        # Ready when a first datagram gets through (it opens the flow, too).
        deadline = time.time() + 20
        while sink.arrived == 0:
            if time.time() > deadline:
                err.seek(0)
                raise RuntimeError(f"{' '.join(cmd)}: nothing got through: {err.read().decode()}")
            client.sendto(b"hello", ("127.0.0.1", port))
            time.sleep(0.1)
        time.sleep(0.3)
        base = sink.arrived
        before = kernel_drops(relay.pid)
        counted_before = metric(url, f"udp:127.0.0.1:{port}") if url else (0, None)
        data = [b"datagram %05d" % i for i in range(BURST)]
        if paused:
            relay.send_signal(signal.SIGSTOP)
        for d in data:
            client.sendto(d, ("127.0.0.1", port))
        if paused:
            relay.send_signal(signal.SIGCONT)
        last, still = -1, time.time()
        while time.time() - still < 1.0:
            time.sleep(0.1)
            if sink.arrived != last:
                last, still = sink.arrived, time.time()
        arrived = sink.arrived - base
        kernel = kernel_drops(relay.pid) - before
        if url:
            total, k = metric(url, f"udp:127.0.0.1:{port}")
            counted = total - counted_before[0]
            counted_kernel = None if k is None else k - (counted_before[1] or 0)
        else:
            counted, counted_kernel = None, None
        return {"lost": BURST - arrived, "kernel": kernel, "counted": counted, "counted_kernel": counted_kernel, "sink_dropped": sink.dropped()}
    finally:
        relay.kill()
        relay.wait()
        sink.sock.close()


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    with tempfile.TemporaryDirectory() as tmp:
        results = {}
        for _ in range(rounds):
            for name, make in contenders(tmp):
                for mode in ("burst", "paused"):
                    results.setdefault((name, mode), []).append(once(make, mode == "paused"))
    print(f"UDP bursts: {BURST} datagrams of 14 bytes, {rounds} rounds each (every round shown: lost/kernel-dropped/metric-counted)")
    print(f"{'relay':26} {'mode':7} {'lost (each round)':24} {'kernel dropped (/proc)':24} {'its metric counted':20}")
    for (name, mode), runs in results.items():
        show = lambda key: ",".join("-" if r[key] is None else str(r[key]) for r in runs)
        print(f"{name:26} {mode:7} {show('lost'):24} {show('kernel'):24} {show('counted'):20}")
        if any(r["sink_dropped"] for r in runs):
            print(f"  (the sink itself dropped {show('sink_dropped')}: not the relay's)")
    print("metric counted: wasiter_udp_dropped_total, every reason (- : the relay has none; the wasm builds count no kernel drops)")


if __name__ == "__main__":
    main()
