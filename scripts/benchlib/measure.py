"""What is measured for one contender in one round, in this order: the
forward proxy's figures (CONNECT, SOCKS5, chained, transparent), then,
after a warm-up, the relay's (bulk, TLS, terminated TLS, keep-alive, split
answers, new connections, redis, system calls), then the idle ones. Each
figure's function lives in the module named for what it measures."""

from .forward import connect_bulk, forward_new, forward_requests, tunnels
from .idle import idle_figures
from .load import wrk
from .relay import bulk, bulk_tls, redis_bench
from .socks import socks_bulk
from .split import split_requests, warm_up
from .syscalls import syscalls_per_request
from .tls import term_bulk
from .transparent import transparent_bulk, transparent_new


def measure(c, seconds, idle, figures):
    """Every figure (or those named in `figures`) for contender `c`."""
    want = lambda k: not figures or k in figures
    r = {}
    forward_jobs = [
        ("connect", c.http_proxy, lambda: (connect_bulk(c.proxy_port, c.peer_tls), None)),
        ("tunnels", c.http_proxy, lambda: tunnels(c, seconds)),
        ("fwd_ka50", c.http_proxy, lambda: forward_requests(c, 50, seconds)),
        ("socks", c.socks, lambda: (socks_bulk(c.proxy_port, c.peer_tls), None)),
        ("socks_tunnels", c.socks, lambda: tunnels(c, seconds, socks=True)),
        ("chained", c.chain_port, lambda: tunnels(c, seconds, port=c.chain_port)),
        ("transparent", c.tp_tls, lambda: (transparent_bulk(c), None)),
        ("tp_new", c.tp_http, lambda: transparent_new(c, seconds)),
        ("fwd_new", c.proxy_port and c.http_proxy, lambda: forward_new(c, 50, seconds)),
    ]
    for key, speaks, job in forward_jobs:
        if want(key) and c.proxy_port and speaks:
            r[key], r[f"{key}_lat"] = job()
    if c.only_forward:
        return r
    warm_up(c)
    jobs = [
        ("bulk", lambda: (bulk(c.http), None)),
        ("tls", lambda: (bulk_tls(c.tls), None)),
        ("tls_sni", lambda: (None if c.name == "socat" or c.tls_sni is None else bulk_tls(c.tls_sni), None)),
        ("term_new", lambda: (None, None) if c.term is None else wrk(c.term, 50, seconds, close=True, cpu=c, scheme="https")),
        ("term_aes", lambda: (None if c.term is None else term_bulk(c.term, "TLS_AES_128_GCM_SHA256"), None)),
        ("term_chacha", lambda: (None if c.term is None else term_bulk(c.term, "TLS_CHACHA20_POLY1305_SHA256"), None)),
        ("term_any", lambda: (None if c.term is None else term_bulk(c.term, None), None)),
        ("ka1", lambda: wrk(c.http, 1, seconds, cpu=c)),
        ("ka50", lambda: wrk(c.http, 50, seconds, cpu=c)),
        ("tiny1", lambda: wrk(c.http, 1, seconds, path="tiny")),
        ("tiny50", lambda: wrk(c.http, 50, seconds, path="tiny")),
        ("whole1", lambda: wrk(c.whole, 1, seconds)),
        ("whole50", lambda: wrk(c.whole, 50, seconds, cpu=c)),
        ("req2", lambda: split_requests(c.redis, seconds)),
        ("new", lambda: wrk(c.http, 50, seconds, close=True, cpu=c)),
        ("redis", lambda: (redis_bench(c.redis), None)),
        ("sys_new", lambda: syscalls_per_request(c, lambda: wrk(c.http, 50, seconds, close=True))),
        ("sys_ka", lambda: syscalls_per_request(c, lambda: wrk(c.http, 50, seconds))),
    ]
    for key, job in jobs:
        if want(key):
            r[key], r[f"{key}_lat"] = job()
    if not want("ka50_idle"):
        return r
    return idle_figures(c, seconds, idle, r)
