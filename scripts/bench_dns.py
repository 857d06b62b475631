"""The allowlist DNS server's figures, for `scripts/bench --dns`.

Contenders: wasiter's DNS route (`LISTEN=dns;to=*.allowed.test`) on
WasmEdge AOT, wasmtime and native; dnsmasq, forwarding the allowed zone and
answering every other name itself (`server=/allowed.test/...`,
`address=/#/`: no upstream query either); unbound as an allowlist
resolver (`local-zone: "." refuse`, the allowed zone forwarded). All ask
the same upstream server (tests/dns_server.py), which only the first
question of a name reaches: the figures are of answers each server gives
itself.

Figures (dnsperf, 20 queries in flight, SECONDS each, median of ROUNDS,
interleaved):
  dns-cached   answers/s for one allowed name, cached (A), and the server's
               CPU time per answer (user+system from /proc over the run)
  dns-refused  answers/s for names never asked before (10,000 distinct
               names under evil.test), each refused; CPU per answer
  dns-rss      the server's resident memory after the refused flood, less
               before it, KiB: what a flood of refused names costs
"""

import os
import re
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ALLOWED = "api.allowed.test"


def wait_udp(port, timeout=20):
    """Until a DNS server on 127.0.0.1:port answers a question (any answer)."""
    end = time.time() + timeout
    while time.time() < end:
        out = subprocess.run(["dig", "+time=1", "+tries=1", "@127.0.0.1", "-p", str(port), ALLOWED], capture_output=True, text=True).stdout
        if "status:" in out:
            return True
        time.sleep(0.2)
    return False


def contenders(tmp, upstream):
    wasiter_args = ["--quiet", "--resolver", f"127.0.0.1:{upstream}"]

    def wasiter(run):
        def make(port):
            return run + wasiter_args + ["--route", f"127.0.0.1:{port}=dns;to=*.allowed.test;to-net=127.0.0.0/8"]
        return make

    def dnsmasq(port):
        return ["dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts", f"--port={port}", "--listen-address=127.0.0.1",
                "--bind-interfaces", f"--server=/allowed.test/127.0.0.1#{upstream}", "--address=/#/", "--cache-size=10000",
                "--user=root", f"--pid-file={tmp}/dnsmasq-{port}.pid"]

    def unbound(port):
        conf = os.path.join(tmp, f"unbound-{port}.conf")
        with open(conf, "w") as f:
            f.write(f"""server:
    interface: 127.0.0.1@{port}
    port: {port}
    num-threads: 1
    so-reuseport: no
    do-daemonize: no
    username: ""
    chroot: ""
    pidfile: ""
    directory: "{tmp}"
    logfile: ""
    use-syslog: no
    verbosity: 0
    do-not-query-localhost: no
    access-control: 127.0.0.0/8 allow
    local-zone: "." refuse
    local-zone: "allowed.test." transparent
    domain-insecure: "allowed.test."
    module-config: "iterator"
forward-zone:
    name: "allowed.test."
    forward-addr: 127.0.0.1@{upstream}
""")
        return ["unbound", "-d", "-c", conf]

    return [
        ("wasiter-wasmedge-aot", wasiter(["wasmedge", "--run-mode=aot", "target/wasm32-wasip1/release/wasiter.aot.wasm"]), "wasmedge"),
        ("wasiter-wasmtime", wasiter(["wasmtime", "run", "-S", "inherit-network", "target/wasm32-wasip2/release/wasiter.wasm"]), "wasmtime"),
        ("wasiter-native", wasiter(["target/release/wasiter"]), None),
        ("dnsmasq", dnsmasq, "dnsmasq"),
        ("unbound", unbound, "unbound"),
    ]


def dnsperf(port, queries, seconds):
    """answers per second (dnsperf's 'Queries per second' of completed ones)."""
    out = subprocess.run(["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", queries, "-l", str(seconds), "-c", "1", "-q", "20", "-t", "2"],
                         capture_output=True, text=True).stdout
    m = re.search(r"Queries per second:\s+([\d.]+)", out)
    lost = re.search(r"Queries lost:\s+(\d+)", out)
    return (float(m.group(1)) if m else None), (int(lost.group(1)) if lost else None)


def measure(proc, port, files, seconds, tools):
    pids = [proc.pid]
    got = {}
    dnsperf(port, files["cached"], 1)  # warm: the allowed name cached
    for key in ("cached", "refused"):
        before_cpu, before_rss = tools.proc_cpu_seconds(pids), tools.proc_rss_kib(pids)
        qps, lost = dnsperf(port, files[key], seconds)
        cpu = tools.proc_cpu_seconds(pids) - before_cpu
        got[f"dns_{key}"] = qps
        got[f"dns_{key}_lost"] = lost
        got[f"dns_{key}_cpu_us"] = (cpu / (qps * seconds) * 1e6) if qps else None
        if key == "refused":
            got["dns_rss"] = tools.proc_rss_kib(pids) - before_rss
    return got


def run(rounds, seconds, tmp, tools):
    """`tools`: scripts/benchlib/common.py, the bench's helpers (say, free_port, proc_cpu_seconds, proc_rss_kib)."""
    for tool in ("dnsperf", "dig"):
        if not shutil.which(tool):
            raise SystemExit(f"bench: {tool} is needed for --dns: run scripts/setup --bench")
    files = {"cached": os.path.join(tmp, "cached.txt"), "refused": os.path.join(tmp, "refused.txt")}
    with open(files["cached"], "w") as f:
        f.write(f"{ALLOWED} A\n")
    with open(files["refused"], "w") as f:
        f.writelines(f"chunk{i:05}-c2VjcmV0.evil.test A\n" for i in range(10000))
    upstream = tools.free_port()
    up = subprocess.Popen([sys.executable, os.path.join(ROOT, "tests/dns_server.py"), str(upstream), f"{ALLOWED}=93.184.216.34"],
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    up.stdout.readline()
    entries = []
    for name, make, needs in contenders(tmp, upstream):
        if needs and not shutil.which(needs):
            tools.say(f"SKIPPED {name}: {needs} not installed")
            continue
        entries.append((name, make))
    results = {name: [] for name, _ in entries}
    try:
        for rnd in range(rounds):
            order = entries[rnd % len(entries):] + entries[:rnd % len(entries)]
            for name, make in order:
                port = tools.free_port()
                tools.say(f"dns round {rnd + 1}/{rounds}: {name}")
                proc = subprocess.Popen(make(port), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
                try:
                    if wait_udp(port):
                        results[name].append(measure(proc, port, files, seconds, tools))
                    else:
                        tools.say(f"  {name} did not answer")
                finally:
                    proc.terminate()
                    proc.wait()
                    time.sleep(0.3)
    finally:
        up.terminate()
    return results


def report(results, rounds, seconds):
    def med(name, key):
        vals = [r[key] for r in results.get(name, []) if r.get(key) is not None]
        return statistics.median(vals) if vals else None

    names = [n for n in results if results[n]]
    best_ref = {}
    for key, higher in (("dns_cached", True), ("dns_refused", True), ("dns_cached_cpu_us", False), ("dns_refused_cpu_us", False)):
        refs = [med(n, key) for n in ("dnsmasq", "unbound") if med(n, key) is not None]
        best_ref[key] = (max(refs) if higher else min(refs)) if refs else None
    lines = [
        "| DNS server | cached allowed name, answers/s | CPU/answer | refused names, answers/s | CPU/answer | RSS after 10k refused names |",
        "|---|---|---|---|---|---|",
    ]

    def cell(name, key, fmt, higher):
        v = med(name, key)
        if v is None:
            return "n/a"
        ref = best_ref.get(key)
        text = fmt(v)
        if ref and name.startswith("wasiter"):
            ratio = v / ref if higher else ref / v
            text += f" ({ratio:.2f}x)"
        return text

    for n in names:
        lines.append(
            f"| {n} | {cell(n, 'dns_cached', lambda v: f'{v:,.0f}', True)} | {cell(n, 'dns_cached_cpu_us', lambda v: f'{v:.1f} us', False)} "
            f"| {cell(n, 'dns_refused', lambda v: f'{v:,.0f}', True)} | {cell(n, 'dns_refused_cpu_us', lambda v: f'{v:.1f} us', False)} "
            f"| {med(n, 'dns_rss'):+.0f} KiB |" if med(n, 'dns_rss') is not None else f"| {n} | n/a | n/a | n/a | n/a | n/a |"
        )
    lost = {n: sum((r.get("dns_cached_lost") or 0) + (r.get("dns_refused_lost") or 0) for r in results[n]) for n in names}
    lines.append("")
    lines.append(f"Medians of {rounds} interleaved rounds of {seconds} s each (dnsperf -c 1 -q 20); a wasiter ratio is against the better of "
                 "dnsmasq and unbound (>1 is better for wasiter: more answers, or less CPU per answer). Queries lost over all rounds: "
                 + ", ".join(f"{n} {v}" for n, v in lost.items()) + ".")
    return "\n".join(lines)
