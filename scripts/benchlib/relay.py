"""The plain relay's figures: a 1 GiB download (in clear and over TLS, and
through a port routed by SNI), and pipelined redis. The keep-alive and new
connection loads are wrk's (load.py)."""

import re
import statistics
import subprocess

from .common import SNI


def bulk(port):
    out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{speed_download} %{size_download}",
                          f"http://127.0.0.1:{port}/big"], capture_output=True, text=True, timeout=300).stdout.split()
    if len(out) != 2 or int(out[1]) != 1 << 30:
        return None  # truncated: not a figure
    return float(out[0]) * 8 / 1e9


def bulk_tls(port):
    """The 1 GiB download over TLS, with SNI (curl verifies nothing: the
    certificate is the bench's own), Gbit/s."""
    out = subprocess.run(["curl", "-s", "-k", "-o", "/dev/null", "-w", "%{speed_download} %{size_download}",
                          "--resolve", f"{SNI}:{port}:127.0.0.1", f"https://{SNI}:{port}/big"],
                         capture_output=True, text=True, timeout=300).stdout.split()
    if len(out) != 2 or int(out[1]) != 1 << 30:
        return None
    return float(out[0]) * 8 / 1e9


def redis_bench(port):
    out = subprocess.run(["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-P", "16", "-c", "50",
                          "-n", "400000", "-t", "set,get", "--csv"], capture_output=True, text=True, timeout=300).stdout
    rates = [float(m) for m in re.findall(r'^"(?:SET|GET)","([\d.]+)"', out, re.M)]
    return statistics.mean(rates) if len(rates) == 2 else None
