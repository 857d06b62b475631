"""Idle connections held open: ka50 while they are (by wrk and by a second
client), how long one of them waits to be heard when it speaks while others
keep the proxy busy, the CPU they cost a nearly idle proxy, and the proxy's
resident memory with them (and just before them)."""

import socket
import subprocess
import time

from .load import latency_client, second_client, wrk

# Quiet connections that speak, one after another, while 50 clients keep the proxy busy.
WAKES = 8


def hold_idle(port, n):
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.setblocking(True)
        s.connect(("127.0.0.1", port))
        socks.append(s)
    return socks


def idle_figures(c, seconds, idle, r):
    """ka50 with `idle` connections held open, and the RSS before and with
    them, into `r`."""
    if c.name == "socat":
        r["ka50_idle"], r["rss_idle"], r["rss_base"], r["idle_light"], r["quiet_wake"] = None, None, None, None, None  # a process per connection: 5,000 forks measure fork, not relaying
        return r
    r["rss_base"] = c.rss_mib()
    held = hold_idle(c.http, idle)
    time.sleep(2)  # let every proxy finish its upstream connects
    r["ka50_idle"], r["ka50_idle_lat"] = wrk(c.http, 50, seconds, cpu=c)
    r["rss_idle"] = c.rss_mib()
    # The same load from a second client (latency_client.c says why), and
    # one client that pauses 10 ms between requests: what the idle ones
    # cost a proxy that is nearly idle itself.
    r["ka50_idle_2nd_client_lat"] = second_client(c.http, 50, seconds)
    r["idle_light"] = second_client(c.http, 1, seconds, pause_us=10_000, cpu=c).get("core_share")
    r["quiet_wake"] = quiet_wake(c.http, held)
    for s in held:
        s.close()
    time.sleep(1)
    return r


def quiet_wake(port, held):
    """The longest wait (ms) of `WAKES` held connections, spread over them,
    each sending a request in turn while 50 kept-alive clients keep the proxy
    busy: from the request to its answer's first bytes. A proxy that watches
    quiet connections less often while others are busy (wasiter on a runtime
    whose poller lists afresh on every call) answers them later; this is how
    much later."""
    client = latency_client()
    if client is None or not held:
        return None
    busy = subprocess.Popen([client, str(port), "50", "10"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.5)  # the held ones have been quiet for seconds; the 50 are busy
        request = f"GET /small HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
        waits = []
        for s in held[:: max(1, len(held) // WAKES)][:WAKES]:
            s.settimeout(5)
            start = time.monotonic()
            try:
                s.sendall(request)
                if not s.recv(65536):
                    return None
            except OSError:
                return None
            waits.append((time.monotonic() - start) * 1e3)
            time.sleep(0.05)
        return max(waits)
    finally:
        busy.kill()
        busy.wait()
