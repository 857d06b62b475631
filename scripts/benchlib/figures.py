"""The figures of the main table: their keys, titles and units, which have
latencies and CPU per request, and what each is measured against."""


FIGURES = [
    # key, title, unit, higher is better
    ("bulk", "bulk download, 1 connection", "Gbit/s", True),
    ("tls", "TLS download, 1 connection", "Gbit/s", True),
    ("tls_sni", "TLS download, port routed by SNI", "Gbit/s", True),
    ("connect", "TLS download through a CONNECT tunnel", "Gbit/s", True),
    ("term_new", "TLS terminated: new connection per request, 50 clients", "req/s", True),
    ("term_aes", "TLS terminated: 128 MiB download, AES-128-GCM", "Gbit/s", True),
    ("term_chacha", "TLS terminated: 128 MiB download, ChaCha20-Poly1305", "Gbit/s", True),
    ("term_any", "TLS terminated: 128 MiB download, the client's default suites", "Gbit/s", True),
    ("tunnels", "CONNECT tunnels one after another, 1 client", "req/s", True),
    ("fwd_ka50", "plain HTTP through the forward proxy, keep-alive, 50 clients", "req/s", True),
    ("socks", "TLS download through a SOCKS5 tunnel", "Gbit/s", True),
    ("socks_tunnels", "SOCKS5 tunnels one after another, 1 client", "req/s", True),
    ("chained", "CONNECT tunnels through a parent squid, 1 client", "req/s", True),
    ("transparent", "TLS download through a transparent listener (by SNI)", "Gbit/s", True),
    ("tp_new", "transparent listener: a request per connection, 50 clients", "req/s", True),
    ("fwd_new", "forward proxy: a request per connection, 50 clients", "req/s", True),
    ("ka1", "HTTP keep-alive, 1 client", "req/s", True),
    ("ka50", "HTTP keep-alive, 50 clients", "req/s", True),
    ("tiny1", "split answers: 6-byte file, 1 client", "req/s", True),
    ("tiny50", "split answers: 6-byte file, 50 clients", "req/s", True),
    ("whole1", "one-piece answers (sendfile off), 1 client", "req/s", True),
    ("whole50", "one-piece answers (sendfile off), 50 clients", "req/s", True),
    ("req2", "requests in two pieces (redis SET), 1 client", "req/s", True),
    ("new", "new connection per request, 50 clients", "req/s", True),
    ("redis", "redis pipelined -P 16 -c 50", "ops/s", True),
    ("ka50_idle", "ka50 with idle connections held open", "req/s", True),
    ("rss_idle", "RSS with idle connections", "MiB", False),
    ("quiet_wake", "with them held, the longest of 8 of them waited to be heard while 50 clients kept the proxy busy", "ms", False),
    ("idle_light", "CPU with idle connections held and 1 client pausing 10 ms between requests", "% of a core", False),
    ("rss_base", "RSS before them (after the other figures)", "MiB", False),
    ("sys_new", "system calls per new connection (new load)", "calls", False),
    ("sys_ka", "system calls per request (ka50 load)", "calls", False),
]


LATENCY = ["fwd_ka50", "socks_tunnels", "chained", "ka1", "ka50", "tiny1", "tiny50", "whole1", "whole50", "req2", "ka50_idle", "ka50_idle_2nd_client", "tunnels"]


# Proxy CPU time per request (microseconds): the fairer figure on 2 shared cores.
CPU = ["ka1", "ka50", "ka50_idle", "whole50", "new", "tunnels", "chained", "socks_tunnels", "fwd_ka50", "tp_new", "fwd_new", "term_new"]


# Figures measured against squid (forward proxies), not HAProxy; and the
# SOCKS5 ones against the better of Dante and microsocks in the same run.
SQUID_FIGURES = ("connect", "tunnels", "fwd_ka50", "chained", "fwd_new")


SOCKS_FIGURES = ("socks", "socks_tunnels")


REFERENCES = ("direct", "haproxy", "squid", "dante", "microsocks")
