"""The UDP relay's figures, for `scripts/bench --udp`.

Contenders: wasiter's UDP relay (`udp:127.0.0.1:P=127.0.0.1:S`, beside a
TCP route on the same port for iperf3's control connection) on WasmEdge
AOT, wasmtime and native; socat (`UDP4-LISTEN` to `UDP4`: one peer, as
one iperf3 client is); nginx's stream module (`listen ... udp`), one
worker. The load is iperf3 -u through each, to one iperf3 server.

Figures (iperf3 -u -t SECONDS at a fixed offered rate, median of ROUNDS,
interleaved), for 64-byte and 1400-byte datagrams:
  udp64 / udp1400 / udp1400_10k
                    datagrams per second that reached the server
  ..._loss          the share lost on the way (iperf3's receiver count)
  ..._cpu_us        the relay's CPU time per datagram passed (user+system
                    from /proc over the run)
The offered rates (RATES) are ones a 2-core machine carries with the
client, the server and the relay on it; a relay that cannot keep up
shows as loss.
"""

import json
import shutil
import statistics
import subprocess
import time

# (figure, datagram size, offered rate for iperf3 -b): 40,000 datagrams/s,
# and 10,000 of the large ones (a rate every relay here carries, or should).
RATES = [("udp64", 64, "20480K"), ("udp1400", 1400, "448M"), ("udp1400_10k", 1400, "112M")]


def contenders(tmp):
    def wasiter(run):
        def make(port, server):
            return [run + ["--quiet", "--route", f"127.0.0.1:{port}=127.0.0.1:{server}", "--route", f"udp:127.0.0.1:{port}=127.0.0.1:{server};idle=30s"]]
        return make

    def socat(port, server):
        return [["socat", f"TCP4-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork", f"TCP4:127.0.0.1:{server}"],
                ["socat", "-b", "65536", f"UDP4-LISTEN:{port},bind=127.0.0.1,reuseaddr", f"UDP4:127.0.0.1:{server}"]]

    def nginx(port, server):
        conf = f"{tmp}/nginx-udp-{port}.conf"
        with open(conf, "w") as f:
            f.write(f"""load_module /usr/lib/nginx/modules/ngx_stream_module.so;
worker_processes 1; pid {tmp}/udp-{port}.pid; error_log {tmp}/udp-{port}.err;
events {{ worker_connections 4096; }}
stream {{
  proxy_timeout 30s;
  server {{ listen 127.0.0.1:{port}; proxy_pass 127.0.0.1:{server}; }}
  server {{ listen 127.0.0.1:{port} udp; proxy_pass 127.0.0.1:{server}; }}
}}
""")
        return [["nginx", "-c", conf, "-p", tmp, "-g", "daemon off;"]]

    return [
        ("wasiter-wasmedge-aot", wasiter(["wasmedge", "--run-mode=aot", "target/wasm32-wasip1/release/wasiter.aot.wasm"]), "wasmedge"),
        ("wasiter-wasmtime", wasiter(["wasmtime", "run", "-S", "inherit-network", "target/wasm32-wasip2/release/wasiter.wasm"]), "wasmtime"),
        ("wasiter-native", wasiter(["target/release/wasiter"]), None),
        ("socat", socat, "socat"),
        ("nginx-stream", nginx, "nginx"),
    ]


def iperf3(port, size, rate, seconds):
    """(datagrams that arrived, lost percent), as the iperf3 server counted them."""
    out = subprocess.run(["iperf3", "-c", "127.0.0.1", "-p", str(port), "-u", "-l", str(size), "-b", rate, "-t", str(seconds), "--json"],
                         capture_output=True, text=True).stdout
    try:
        s = json.loads(out)["end"]["sum"]
        return s["packets"] - s["lost_packets"], s["lost_percent"]
    except (ValueError, KeyError, TypeError):
        return None, None


def measure(make, server_port, size, rate, seconds, tools):
    """One figure on a fresh relay: socat's UDP4-LISTEN serves one peer,
    the first that sends, so every contender starts anew for each run.
    (datagrams/s passed, lost percent, CPU us per datagram), or Nones."""
    port = tools.free_port()
    procs = [subprocess.Popen(cmd, cwd=tools.ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
             for cmd in make(port, server_port)]
    try:
        if not tools.wait_port(port):
            return None, None, None
        time.sleep(0.3)  # the UDP socket beside the TCP one
        pids = [p.pid for p in procs] + [c for p in procs for c in tools.children(p.pid)]
        before = tools.proc_cpu_seconds(pids)
        passed, lost = iperf3(port, size, rate, seconds)
        cpu = tools.proc_cpu_seconds(pids) - before
        if not passed:
            return None, lost, None
        return passed / seconds, lost, cpu / passed * 1e6
    finally:
        for p in procs:
            p.terminate()
            p.wait()
        time.sleep(0.3)


def run(rounds, seconds, tmp, tools):
    """`tools`: scripts/benchlib/common.py, the bench's helpers (say, free_port, wait_port, children, proc_cpu_seconds)."""
    if not shutil.which("iperf3"):
        raise SystemExit("bench: iperf3 is needed for --udp: run scripts/setup --bench")
    server_port = tools.free_port()
    server = subprocess.Popen(["iperf3", "-s", "-p", str(server_port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tools.wait_port(server_port)
    entries = []
    for name, make, needs in contenders(tmp):
        if needs and not shutil.which(needs):
            tools.say(f"SKIPPED {name}: {needs} not installed")
            continue
        entries.append((name, make))
    results = {name: [] for name, _ in entries}
    try:
        for rnd in range(rounds):
            order = entries[rnd % len(entries):] + entries[:rnd % len(entries)]
            for name, make in order:
                tools.say(f"udp round {rnd + 1}/{rounds}: {name}")
                got = {}
                for key, size, rate in RATES:
                    got[key], got[f"{key}_loss"], got[f"{key}_cpu_us"] = measure(make, server_port, size, rate, seconds, tools)
                results[name].append(got)
    finally:
        server.terminate()
        server.wait()
    return results


def report(results, rounds, seconds):
    def med(name, key):
        vals = [r[key] for r in results.get(name, []) if r.get(key) is not None]
        return statistics.median(vals) if vals else None

    names = [n for n in results if results[n]]
    head = "| UDP relay |" + "".join(f" {size} B at {rate}bit/s: datagrams/s | lost | CPU/datagram |" for _, size, rate in RATES)
    lines = [head, "|---|" + "---|---|---|" * len(RATES)]
    for n in names:
        row = f"| {n} |"
        for key, _, _ in RATES:
            rate, loss, cpu, ref = med(n, key), med(n, f"{key}_loss"), med(n, f"{key}_cpu_us"), med("socat", f"{key}_cpu_us")
            ratio = f" ({ref / cpu:.2f}x)" if ref and cpu and n.startswith("wasiter") else ""
            row += f" {rate:,.0f} |" if rate else " n/a |"
            row += f" {loss:.2f}% |" if loss is not None else " n/a |"
            row += f" {cpu:.2f} us{ratio} |" if cpu else " n/a |"
        lines.append(row)
    offered = ", ".join(f"{size} bytes at iperf3 -b {rate}" for _, size, rate in RATES)
    offered += ": about 40,000, 40,000 and 10,000 datagrams/s offered"
    lines.append("")
    lines.append(f"Medians of {rounds} interleaved rounds of {seconds} s each, one iperf3 client and server ({offered}). A wasiter ratio is socat's CPU per datagram over wasiter's (>1: wasiter spends less). "
                 "The client, the server and the relay share the machine's 2 cores.")
    return "\n".join(lines)
