"""Idle connections held open: ka50 while they are, and the proxy's
resident memory with them (and just before them)."""

import socket
import time

from .load import second_client, wrk


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
        r["ka50_idle"], r["rss_idle"], r["rss_base"], r["idle_light"] = None, None, None, None  # a process per connection: 5,000 forks measure fork, not relaying
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
    for s in held:
        s.close()
    time.sleep(1)
    return r
