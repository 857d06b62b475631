"""System calls per new connection and per request: perf's syscall
tracepoints when perf can read them, else strace -c -f."""

import os
import re
import shutil
import subprocess
import tempfile
import time

from .common import children


def perf_counts_syscalls():
    """Can perf count system calls here (a tracepoint, so root or a low
    perf_event_paranoid)? Asked once."""
    if not hasattr(perf_counts_syscalls, "answer"):
        ok = False
        if shutil.which("perf"):
            out = subprocess.run(["perf", "stat", "-x", ",", "-e", "raw_syscalls:sys_enter", "true"],
                                 capture_output=True, text=True)
            ok = out.returncode == 0 and re.search(r"^\d+,", out.stderr, re.M) is not None
        perf_counts_syscalls.answer = ok
    return perf_counts_syscalls.answer


# The calls a proxy makes per connection, counted one by one by perf (any
# other call still counts in the total, as "other").
SYSCALLS = ["accept", "accept4", "socket", "connect", "bind", "listen", "close", "shutdown", "read", "write", "readv",
            "writev", "recvfrom", "sendto", "recvmsg", "sendmsg", "splice", "pipe2", "epoll_ctl", "epoll_wait", "epoll_pwait",
            "poll", "ppoll", "ioctl", "fcntl", "getsockopt", "setsockopt", "getpeername", "getsockname",
            "timerfd_settime", "clock_gettime", "futex", "mmap", "munmap", "brk", "madvise", "sched_yield"]


def syscalls_per_request(c, load):
    """System calls of the proxy's processes (all their threads) while `load`
    runs, divided by the requests it reports, in all and by call: perf's
    counters (at the proxy's normal speed), else strace -c -f (slower: more
    events wait for each poll, so fewer poll calls are counted). None for
    socat (a process per connection, born after the count starts)."""
    if not c.proc or c.name == "socat":
        return None, None
    pids = [str(p) for p in [c.proc.pid] + children(c.proc.pid)]
    out = tempfile.mktemp(prefix="wasiter-bench-sys-")
    if perf_counts_syscalls():
        known = set(os.listdir("/sys/kernel/tracing/events/syscalls")) if os.path.isdir("/sys/kernel/tracing/events/syscalls") else set()
        events = ["raw_syscalls:sys_enter"] + [f"syscalls:sys_enter_{n}" for n in SYSCALLS if f"sys_enter_{n}" in known]
        counter = subprocess.Popen(["perf", "stat", "-x", ",", "-o", out, "-p", ",".join(pids)] + [a for e in events for a in ("-e", e)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    elif shutil.which("strace"):
        counter = subprocess.Popen(["strace", "-c", "-f", "-o", out] + [a for p in pids for a in ("-p", p)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    else:
        return None, None
    time.sleep(0.5)  # attached before the load starts
    _, lat = load()
    counter.send_signal(2)
    counter.wait()
    try:
        with open(out) as f:
            text = f.read()
    finally:
        if os.path.exists(out):
            os.unlink(out)
    n = (lat or {}).get("n")
    if not n:
        return None, None
    if perf_counts_syscalls():
        calls = {}
        for m in re.finditer(r"^(\d+),[^,]*,(raw_syscalls:sys_enter|syscalls:sys_enter_(\w+))", text, re.M):
            calls[m.group(3) or "all"] = int(m.group(1))
        total = calls.pop("all", None)
        if total is None:
            return None, None
        calls = {k: v for k, v in calls.items() if v}
        calls["other"] = max(0, total - sum(calls.values()))
        return total / n, {k: v / n for k, v in calls.items()}
    calls = strace_table(text)
    return sum(calls.values()) / n, {k: v / n for k, v in calls.items()}


def strace_table(text):
    """strace -c's table: {call: calls}."""
    calls = {}
    for line in text.splitlines():
        f = line.split()
        if len(f) >= 5 and f[-1] != "total" and f[3].isdigit() and re.match(r"^[\d.]+$", f[0]):
            calls[f[-1]] = int(f[3])
    return calls
