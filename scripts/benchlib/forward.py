"""The forward proxy's figures (wasiter `forward` routes, squid): the TLS
download through a CONNECT tunnel, tunnels one after another (CONNECT, or
SOCKS5: socks.py; through a parent: chained), and plain HTTP requests in
absolute form, kept alive or one per connection."""

import os
import re
import socket
import subprocess
import tempfile
import time

from .common import recv_exactly, say
from .load import wrk_run


def connect_bulk(proxy, tls_port):
    """The 1 GiB TLS download through a CONNECT tunnel, Gbit/s."""
    out = subprocess.run(["curl", "-s", "-k", "-x", f"http://127.0.0.1:{proxy}", "-o", "/dev/null",
                          "-w", "%{speed_download} %{size_download}", f"https://127.0.0.1:{tls_port}/big"],
                         capture_output=True, text=True, timeout=300).stdout.split()
    if len(out) != 2 or int(out[1]) != 1 << 30:
        return None
    return float(out[0]) * 8 / 1e9


def forward_new(c, clients, seconds):
    """A request per connection (Connection: close) through the forward
    proxy in absolute form, as forward_requests: req/s, latency, CPU."""
    script = os.path.join(tempfile.gettempdir(), f"wasiter-bench-fwd-new-{os.getpid()}.lua")
    with open(script, "w") as f:
        f.write(f'wrk.path = "http://127.0.0.1:{c.peer_http}/small"\nwrk.headers["Host"] = "127.0.0.1:{c.peer_http}"\n')
    try:
        return wrk_run(["wrk", "-t1", f"-c{clients}", f"-d{seconds}s", "--latency", "-H", "Connection: close", "-s", script,
                        f"http://127.0.0.1:{c.proxy_port}/"], c, seconds)
    finally:
        os.unlink(script)


def forward_requests(c, clients, seconds):
    """wrk through the forward proxy: each request in absolute form
    (GET http://127.0.0.1:PORT/small) on kept-alive connections, which the
    proxy checks and sends on one by one: requests/s, p50/p99 (ms) and the
    proxy's CPU microseconds per request."""
    script = os.path.join(tempfile.gettempdir(), f"wasiter-bench-forward-{os.getpid()}.lua")
    with open(script, "w") as f:
        f.write(f'wrk.path = "http://127.0.0.1:{c.peer_http}/small"\nwrk.headers["Host"] = "127.0.0.1:{c.peer_http}"\n')
    cmd = ["wrk", "-t1", f"-c{clients}", f"-d{seconds}s", "--latency", "-s", script, f"http://127.0.0.1:{c.proxy_port}/"]
    before = c.cpu_seconds()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60).stdout
    after = c.cpu_seconds()
    os.unlink(script)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    done = re.search(r"^\s+(\d+) requests in", out, re.M)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if bad:
        say(f"  forward requests through {c.name}: {bad.group(0)}")
        return None, {}
    lat = {}
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if m:
            lat[pct] = float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]
    if done and int(done.group(1)) > 0:
        lat["cpu"] = (after - before) * 1e6 / int(done.group(1))
    return (float(rps.group(1)) if rps else None), lat


def open_tunnel(s, c, socks):
    """Ask the proxy on `s` for a tunnel to redis, as an HTTP CONNECT or as
    SOCKS5 (greeting, then CONNECT to the address, as a socks5 client
    sends them: each after the answer to the one before). What came after
    the answer (nothing, normally), or None if refused."""
    if socks:
        s.sendall(b"\x05\x01\x00")
        if recv_exactly(s, 2) != b"\x05\x00":
            return None
        s.sendall(b"\x05\x01\x00\x01\x7f\x00\x00\x01" + c.peer_redis.to_bytes(2, "big"))
        reply = recv_exactly(s, 10)
        return b"" if reply and reply[:2] == b"\x05\x00" else None
    target = f"127.0.0.1:{c.peer_redis}".encode()
    s.sendall(b"CONNECT " + target + b" HTTP/1.1\r\nHost: " + target + b"\r\n\r\n")
    got = b""
    while b"\r\n\r\n" not in got:
        chunk = s.recv(4096)
        if not chunk:
            return None
        got += chunk
    if b" 200 " not in got.split(b"\r\n", 1)[0]:
        return None
    return got.split(b"\r\n\r\n", 1)[1]


def tunnels(c, seconds, socks=False, port=None):
    """One client: a tunnel to redis (CONNECT, or SOCKS5), PING, +PONG,
    close, again: tunnels/s, p50/p99 (ms) and the proxy's CPU microseconds
    per tunnel."""
    lat, before, end = [], c.cpu_seconds(), time.perf_counter() + seconds
    try:
        while time.perf_counter() < end:
            t = time.perf_counter()
            s = socket.create_connection(("127.0.0.1", port or c.proxy_port))
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            got = open_tunnel(s, c, socks)
            if got is None:
                return None, {}
            s.sendall(b"PING\r\n")
            while not got.endswith(b"\r\n"):
                chunk = s.recv(64)
                if not chunk:
                    return None, {}
                got += chunk
            s.close()
            lat.append(time.perf_counter() - t)
    except OSError:
        return None, {}
    after = c.cpu_seconds()
    lat.sort()
    r = {"50": lat[len(lat) // 2] * 1000, "99": lat[int(len(lat) * 0.99)] * 1000} if lat else {}
    if before is not None and after is not None and lat:
        r["cpu"] = (after - before) * 1e6 / len(lat)
    return len(lat) / seconds, r
