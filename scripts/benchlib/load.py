"""wrk, the load of most figures, and what its output says: requests/s,
p50/p99, and the proxy's CPU per request over the run."""

import os
import re
import shutil
import subprocess
import tempfile

from .common import ROOT, say


def wrk(port, clients, seconds, close=False, path="small", cpu=None, scheme="http"):
    """requests/s and {"50": ms, "99": ms}; with `cpu` (the contender), also
    the proxy's CPU microseconds per request under "cpu"."""
    cmd = ["wrk", "-t1", f"-c{clients}", f"-d{seconds}s", "--latency", f"{scheme}://127.0.0.1:{port}/{path}"]
    if close:
        cmd[1:1] = ["-H", "Connection: close"]
    before = cpu.cpu_split() if cpu else None
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60).stdout
    after = cpu.cpu_split() if cpu else None
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    done = re.search(r"^\s+(\d+) requests in", out, re.M)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out)
    lat = {}
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if m:
            lat[pct] = float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]
    if errors and "Socket errors" in errors.group(0):
        say(f"  wrk on {port}: {errors.group(0).strip()}")
    if before is not None and after is not None and done and int(done.group(1)) > 0:
        lat["cpu"] = (sum(after) - sum(before)) * 1e6 / int(done.group(1))
        lat["user"] = (after[0] - before[0]) * 1e6 / int(done.group(1))  # the proxy's own code (and its runtime's)
    if done:
        lat["n"] = int(done.group(1))
    return (float(rps.group(1)) if rps else None), lat


def wrk_run(cmd, c, seconds):
    """Run wrk: requests/s, and p50/p99 (ms) with the proxy's CPU
    microseconds per request under "cpu"."""
    before = c.cpu_seconds()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60).stdout
    after = c.cpu_seconds()
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    done = re.search(r"^\s+(\d+) requests in", out, re.M)
    if re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        say(f"  {c.name}: non-2xx answers")
        return None, {}
    lat = {}
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if m:
            lat[pct] = float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]
    if done and int(done.group(1)) > 0 and before is not None and after is not None:
        lat["cpu"] = (after - before) * 1e6 / int(done.group(1))
    return (float(rps.group(1)) if rps else None), lat


_client = []


def latency_client():
    """latency_client.c, built once per run (None without a C compiler)."""
    if not _client:
        path = None
        if shutil.which("cc"):
            path = os.path.join(tempfile.mkdtemp(prefix="wasiter-bench-"), "latency_client")
            built = subprocess.run(["cc", "-O2", "-o", path, os.path.join(ROOT, "scripts/benchlib/latency_client.c"), "-lm"], capture_output=True, text=True)
            if built.returncode != 0:
                say(f"latency_client.c did not build, so it is not measured: {built.stderr.strip()[:300]}")
                path = None
        else:
            say("no cc: the second latency client (latency_client.c) is not measured")
        _client.append(path)
    return _client[0]


def second_client(port, clients, seconds, pause_us=0, cpu=None):
    """latency_client.c's p50/p99 (ms) under `clients` kept-alive clients,
    each pausing `pause_us` between an answer and its next request; with
    `cpu`, also the proxy's CPU over the run as a share of one core (%)."""
    client = latency_client()
    if client is None:
        return {}
    before = cpu.cpu_split() if cpu else None
    try:
        run = subprocess.run([client, str(port), str(clients), str(seconds), str(pause_us)], capture_output=True, text=True, timeout=seconds + 60)
    except subprocess.TimeoutExpired:
        say(f"  latency_client on {port}: no end after {seconds + 60} s")
        return {}
    after = cpu.cpu_split() if cpu else None
    got = dict(re.findall(r"(\w+)=([\d.]+)", run.stdout))
    if run.returncode != 0 or "p99" not in got:
        say(f"  latency_client on {port}: {run.stderr.strip() or run.stdout.strip()}")
        return {}
    lat = {"50": float(got["p50"]), "99": float(got["p99"]), "n": int(got["n"])}
    if before is not None and after is not None:
        lat["core_share"] = (sum(after) - sum(before)) * 100 / seconds
    return lat
