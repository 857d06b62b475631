"""scripts/bench's parts (scripts/bench is the entry point and says what is
measured):

    common.py       ROOT, messages, ports, route kinds, CPU and memory from /proc
    load.py         wrk and what its output says; latency_client.c, a second client for
                    the idle figure's latency (it says why)
    peers.py        nginx (HTTP, TLS, the opened figures' origin), redis, the parent squid
    contenders.py   every contender: wasiter per runtime (and --baseline builds), HAProxy,
                    socat, nginx stream, squid (and squid with ssl_bump), Dante, microsocks
    rounds.py       the lineup of a run (--only, --baseline, ...) and its interleaved rounds
    measure.py      what is measured for a contender, in order
    relay.py        bulk and TLS downloads, pipelined redis
    split.py        split requests, and the warm-up for split answers
    tls.py          TLS terminated by the proxy
    forward.py      CONNECT tunnels and plain HTTP through the forward proxy
    socks.py        SOCKS5 tunnels
    transparent.py  transparent listeners
    idle.py         idle connections held open: ka50 (both clients), one paced client's
                    CPU, and memory
    syscalls.py     system calls per connection and per request
    opened.py       --opened: TLS opened by the forward proxy (open=), beside squid's ssl_bump;
                    its load is opened_client.c (CONNECT, TLS through the tunnel, keep-alive)
    figures.py      the main table's figures and their references
    report.py       medians, the table, BENCHMARKS.md's markers, the chart
    side.py         --dns and --udp (scripts/bench_dns.py, bench_udp.py), sections of their own
"""
