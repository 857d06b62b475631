"""The report: medians of the rounds, the table with ratios, the machine
and versions, written into BENCHMARKS.md between its markers, and the
chart (docs/bench.png)."""

import os
import platform
import re
import shutil
import statistics
import time

from .common import ROOT, say, version
from .figures import CPU, FIGURES, LATENCY, SOCKS_FIGURES, SQUID_FIGURES
from .syscalls import perf_counts_syscalls

BEGIN, END = "<!-- scripts/bench writes from here -->", "<!-- to here; the rest is written by hand -->"


def write_between_markers(path, text):
    """Replace the generated part of BENCHMARKS.md; keep the notes around it."""
    before, after = "# Benchmarks\n\n", "\n"
    if os.path.exists(path):
        with open(path) as f:
            old = f.read()
        if BEGIN in old and END in old:
            before = old[:old.index(BEGIN)]
            after = old[old.index(END) + len(END):]
    with open(path, "w") as f:
        f.write(before + BEGIN + "\n" + text + END + after)


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarize(results, contenders):
    table = {}
    for c in contenders:
        runs = results[c.name]
        row = {k: median([r.get(k) for r in runs]) for k, *_ in FIGURES}
        for k in LATENCY:
            for pct in ("50", "99"):
                row[f"{k}_p{pct}"] = median([(r.get(f"{k}_lat") or {}).get(pct) for r in runs])
        for k in CPU:
            row[f"{k}_cpu"] = median([(r.get(f"{k}_lat") or {}).get("cpu") for r in runs])
            row[f"{k}_user"] = median([(r.get(f"{k}_lat") or {}).get("user") for r in runs])
        for key in ("sys_new", "sys_ka"):
            by_call = [r.get(f"{key}_lat") for r in runs if r.get(f"{key}_lat")]
            if by_call:
                row[f"{key}_by_call"] = {k: median([r.get(k, 0) for r in by_call]) for k in {k for r in by_call for k in r}}
        row["rounds"] = len(runs)
        table[c.name] = row
    return table


def fmt(v, unit):
    if v is None:
        return "n/a"
    if unit == "Gbit/s":
        return f"{v:.2f}"
    if unit == "MiB":
        return f"{v:.0f}"
    if unit in ("calls", "% of a core", "ms"):
        return f"{v:.1f}"
    return f"{v/1000:.1f}k"


def ratio(v, base):
    """v / base, in brackets; for memory a ratio below 1 is the better one."""
    if v is None or not base:
        return ""
    return f" ({v / base:.2f}x)"


def report(table, contenders, skipped, args):
    hap = table.get("haproxy", {})
    squid_row = table.get("squid", {})
    def reference(key, cpu=False):
        if key in SOCKS_FIGURES:
            # The better of the two SOCKS servers for this figure.
            rows = [(n, table[n]) for n in ("dante", "microsocks") if table.get(n, {}).get(f"{key}_cpu" if cpu else key)]
            if not rows:
                return "dante", {}
            pick = min if cpu else max
            return pick(rows, key=lambda nr: nr[1][f"{key}_cpu" if cpu else key])
        return ("squid", squid_row) if key in SQUID_FIGURES else ("haproxy", hap)
    names = [c.name for c in contenders]
    lines = [f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `scripts/bench --rounds {args.rounds} --seconds {args.seconds} --idle {args.idle}`"
             f"{' --only ' + args.only if args.only else ''}{' --figures ' + args.figures if args.figures else ''}"
             f"{' --baseline ' + args.baseline if args.baseline else ''}"
             f"{' --wasmedge-patched ' + args.wasmedge_patched if args.wasmedge_patched else ''}: medians of {args.rounds} interleaved rounds; "
             "in brackets, the ratio to HAProxy (nbthread 1) in the same run (to squid for the forward-proxy figures, to the better of Dante and microsocks for the SOCKS5 ones). Higher is better, except memory and CPU.", ""]
    lines += ["| figure | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for key, title, unit, _higher in FIGURES:
        cells = []
        for n in names:
            v = table[n].get(key)
            ref_name, ref = reference(key)
            cells.append(fmt(v, unit) + (ratio(v, ref.get(key)) if n != ref_name else ""))
        lines.append(f"| {title} ({unit}) | " + " | ".join(cells) + " |")
    for key in LATENCY:
        for pct in ("50", "99"):
            cells = []
            for n in names:
                v = table[n].get(f"{key}_p{pct}")
                cells.append("n/a" if v is None else f"{v:.2f}")
            lines.append(f"| {key} latency p{pct} (ms) | " + " | ".join(cells) + " |")
    for key in CPU:
        cells = []
        for n in names:
            v = table[n].get(f"{key}_cpu")
            ref_name, ref = reference(key, cpu=True)
            base = ref.get(f"{key}_cpu")
            cells.append("n/a" if v is None else f"{v:.1f}" + (ratio(v, base) if n != ref_name else ""))
        lines.append(f"| {key} proxy CPU per request (us) | " + " | ".join(cells) + " |")
        users = [table[n].get(f"{key}_user") for n in names]
        if any(u is not None for u in users):  # only the wrk loads split it
            lines.append(f"| {key} of which in user space (us) | " + " | ".join("n/a" if u is None else f"{u:.1f}" for u in users) + " |")
    # The idle figure against each contender's own ka50.
    cells = []
    for n in names:
        a, b = table[n].get("ka50_idle"), table[n].get("ka50")
        cells.append(f"{a / b:.2f}x" if a and b else "n/a")
    lines.append(f"| ka50 with {args.idle} idle / its own ka50 | " + " | ".join(cells) + " |")
    # ...and what the idle ones cost each request (issue 49: at most 1.2x).
    cells = []
    for n in names:
        a, b = table[n].get("ka50_idle_cpu"), table[n].get("ka50_cpu")
        cells.append(f"{a / b:.2f}x" if a and b else "n/a")
    lines.append(f"| ka50 CPU per request with {args.idle} idle / without | " + " | ".join(cells) + " |")
    # ...and their p99 against HAProxy's (issue 49: within 2x), by each client.
    for key, by in (("ka50_idle", "wrk"), ("ka50_idle_2nd_client", "latency_client.c")):
        base = hap.get(f"{key}_p99")
        cells = []
        for n in names:
            v = table[n].get(f"{key}_p99")
            cells.append(f"{v / base:.2f}x" if v is not None and base and n != "haproxy" else "n/a")
        lines.append(f"| ka50 with {args.idle} idle: p99 / HAProxy's, by {by} | " + " | ".join(cells) + " |")
    how = "perf's syscall tracepoints, at the proxy's normal speed" if perf_counts_syscalls() else "strace -c -f (it slows the proxy)"
    for key, what in (("sys_new", "per new connection (the `new` load)"), ("sys_ka", "per request (the ka50 load)")):
        rows = [(n, table[n][f"{key}_by_call"]) for n in names if table[n].get(f"{key}_by_call")]
        if rows:
            lines += ["", f"System calls {what}, by call, counted by {how} (medians):", ""]
            for n, calls in rows:
                top = sorted(calls.items(), key=lambda kv: -kv[1])
                lines.append(f"- {n}: " + ", ".join(f"{k} {v:.1f}" for k, v in top if v >= 0.05))
    lines += ["", "Contenders: " + ", ".join(names) + "."]
    for n, why in skipped.items():
        lines.append(f"- SKIPPED {n}: {why}")
    lines.append("- socat forks a process per connection: its idle figures are not measured (n/a).")
    lines.append("- socat cannot route by TLS server name: its tls-sni figure is n/a.")
    lines.append("- The forward-proxy figures (connect, tunnels) are measured for squid and wasiter only; squid serves nothing else (n/a).")
    lines.append("- The SOCKS5 figures are measured for Dante, microsocks and wasiter (whose forward port takes both HTTP and SOCKS5); Dante and microsocks serve nothing else (n/a).")
    lines += ["", "### Machine and versions", ""]
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"model name\s*:\s*(.*)", f.read())
            cpu = m.group(1) if m else "?"
    except OSError:
        pass
    lines += [f"- {os.cpu_count()} CPUs: {cpu}; Linux {platform.release()}",
              f"- {version(['haproxy', '-v'])}",
              f"- socat: {version(['socat', '-V'])[:60] if shutil.which('socat') else 'not installed'}",
              f"- {version(['nginx', '-v'])}",
              f"- wasmedge: {version(['wasmedge', '--version'])}",
              f"- {version(['wasmtime', '--version'])}",
              f"- {version(['rustc', '--version'])}",
              f"- {version(['wrk', '--version'])}; {version(['redis-server', '--version'])}; {version(['curl', '--version'])}",
              "", "Peers: nginx (1 worker, sendfile on) serving a 1 KiB and a 6-byte file for wrk and a 1 GiB file "
              "for curl, the same nginx with sendfile off on a second port (one-piece answers), redis-server; "
              "every contender relays all three, each on its own ports; wrk runs one thread."]
    return "\n".join(lines) + "\n"


def chart(table, contenders):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        say("no matplotlib: chart not drawn (scripts/setup --bench installs it)")
        return
    hap = table.get("haproxy", {})
    figs = [(k, t) for k, t, _, higher in FIGURES if higher]
    names = [c.name for c in contenders if c.name != "haproxy"]
    fig, ax = plt.subplots(figsize=(12, 5))
    width = 0.8 / max(1, len(names))
    for i, n in enumerate(names):
        vals = [(table[n].get(k) or 0) / hap[k] if hap.get(k) else 0 for k, _ in figs]
        ax.bar([x + i * width for x in range(len(figs))], vals, width, label=n)
    ax.axhline(1.0, color="black", linewidth=1, linestyle="--")
    ax.set_xticks([x + width * (len(names) - 1) / 2 for x in range(len(figs))])
    ax.set_xticklabels([t for _, t in figs], fontsize=8, rotation=12)
    ax.set_ylabel("ratio to HAProxy (1 thread), median")
    ax.set_title("What each proxy keeps of the traffic, relative to HAProxy (dashed line); higher is better")
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    os.makedirs(os.path.join(ROOT, "docs"), exist_ok=True)
    fig.savefig(os.path.join(ROOT, "docs", "bench.png"), dpi=110)
    say("chart: docs/bench.png")
