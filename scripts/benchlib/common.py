"""What every part of the bench shares: where the project is, messages,
ports, the names the routes use, and the proxy's CPU and memory from /proc."""

import os
import re
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def say(*a):
    print("bench:", *a, file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def version(cmd):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        text = (out.stdout + out.stderr).strip().splitlines()
        return text[0] if text else "?"
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"


SNI = "bench.test"


FORWARD = "forward"  # in a pair's third place: a forward proxy port, its upstream the allowed ports


CHAINED = "chained"  # in a pair's third place: a forward proxy port that goes out by the parent squid (its upstream)


TRANSPARENT = "transparent"  # in a pair's third place: a transparent listener standing for its upstream's port


TERMINATE = "terminate"  # in a pair's third place: the proxy terminates TLS there (the bench certificate)


OPENED = "opened"  # in a pair's third place: a forward proxy port that opens TLS to SNI (open=), its upstream the origin's port
TERM_SIZE = 128 << 20  # the terminated downloads: software AES on wasm is slow, 1 GiB would take minutes


def proc_cpu_seconds(pids):
    """user+system CPU time of these processes so far, with the children
    each has reaped, from /proc."""
    return sum(proc_cpu_split(pids))


def proc_cpu_split(pids):
    """(user, system) CPU seconds of these processes so far, with the
    children each has reaped, from /proc."""
    user, system, tick = 0, 0, os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = [int(x) for x in f.read().rsplit(")", 1)[1].split()[11:15]]
            user += fields[0] + fields[2]  # utime, cutime
            system += fields[1] + fields[3]  # stime, cstime
        except (OSError, IndexError, ValueError):
            pass
    return user / tick, system / tick


def proc_rss_kib(pids):
    """Resident memory of these processes, KiB, from /proc."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                m = re.search(r"VmRSS:\s+(\d+) kB", f.read())
                total += int(m.group(1)) if m else 0
        except OSError:
            pass
    return total


def children(pid):
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout.split()
    found = [int(p) for p in out]
    for c in list(found):
        found += children(c)
    return found


def recv_exactly(s, n):
    got = b""
    while len(got) < n:
        chunk = s.recv(n - len(got))
        if not chunk:
            return None
        got += chunk
    return got
