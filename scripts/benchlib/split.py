"""Split answers and requests: a redis SET written in two pieces, and the
warm-up that lets wasiter learn a route's split answers before anything is
measured."""

import socket
import time

from .load import wrk


def split_requests(port, seconds, gap=200e-6):
    """One client sends redis SETs in two pieces, the value `gap` after the
    header (spun, not slept), and waits for +OK: requests/s, p50/p99 (ms)."""
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # our pieces leave as written
    head, value = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n", b"$5\r\nhello\r\n"
    lat, end = [], time.perf_counter() + seconds
    try:
        while time.perf_counter() < end:
            t = time.perf_counter()
            s.sendall(head)
            while time.perf_counter() - t < gap:
                pass
            s.sendall(value)
            got = b""
            while not got.endswith(b"\r\n"):
                chunk = s.recv(64)
                if not chunk:
                    return None, {}
                got += chunk
            lat.append(time.perf_counter() - t)
    except OSError:
        return None, {}
    finally:
        s.close()
    lat.sort()
    ms = {"50": lat[len(lat) // 2] * 1000, "99": lat[int(len(lat) * 0.99)] * 1000} if lat else {}
    return len(lat) / seconds, ms


def warm_up(c):
    """A few exchanges of each kind before anything is measured, on every
    contender alike: wasiter learns on the first split answer of a route that
    its answers come in pieces (that one answer waits for Nagle, once; see the
    README), and a figure should show the steady state, not that moment."""
    for path in ("small", "tiny"):
        wrk(c.http, 1, 1, path=path)
    split_requests(c.redis, 0.2)
