#!/usr/bin/env python3
"""What a keep-alive load's latency was on the wire: each request's first
packet to its answer's last, read from a capture of the loopback.

    tcpdump -i lo -s 80 -B 65536 -w /dev/shm/cap.pcap 'tcp port PORT and (tcp[tcpflags] & tcp-syn == 0)' &
    wrk -t1 -c50 -d3s http://127.0.0.1:PORT/small
    python3 scripts/wire_latency.py /dev/shm/cap.pcap PORT

A client's latency can be no more than this plus the time it took to hand
its request to the kernel and to read the answer; the second is bounded by
the gap between an answer's last packet and the next request on the same
connection (printed as "turnaround"), since a client sends its next request
only after reading the answer. BENCHMARKS.md (issue 49) used it to check
wrk's p99 against its own packets.
"""

import collections
import struct
import sys


def packets(path):
    """(time, source port, destination port, payload length) per packet of a
    pcap file written by tcpdump on Linux's loopback (Ethernet framing, IPv4)."""
    with open(path, "rb") as f:
        if len(f.read(24)) < 24:
            raise SystemExit(f"wire_latency: {path}: not a pcap file")
        while True:
            header = f.read(16)
            if len(header) < 16:
                return
            sec, usec, caplen, _ = struct.unpack("<IIII", header)
            frame = f.read(caplen)
            ip = frame[14:]
            if len(ip) < 20 or ip[0] >> 4 != 4:
                continue
            ihl = (ip[0] & 15) * 4
            total = struct.unpack(">H", ip[2:4])[0]
            tcp = ip[ihl:]
            if len(tcp) < 14:
                continue
            sport, dport = struct.unpack(">HH", tcp[:4])
            yield sec + usec / 1e6, sport, dport, total - ihl - (tcp[12] >> 4) * 4


def percentiles(values):
    values = sorted(values)
    n = len(values)
    if n == 0:
        return "none"
    pick = lambda q: values[min(n - 1, int(n * q))] * 1e3
    return f"n={n} p50 {pick(0.5):.2f} p99 {pick(0.99):.2f} p99.9 {pick(0.999):.2f} max {values[-1] * 1e3:.2f} ms"


def main():
    if len(sys.argv) != 3:
        raise SystemExit("usage: wire_latency.py CAPTURE.pcap PROXY_PORT")
    path, port = sys.argv[1], int(sys.argv[2])
    by_client = collections.defaultdict(list)
    for t, sport, dport, length in packets(path):
        if length > 0 and port in (sport, dport):
            by_client[sport if dport == port else dport].append((t, dport == port))
    latency, turnaround = [], []
    for seq in by_client.values():
        asked = answered = None
        for t, request in seq:
            if request:
                if asked is not None and answered is not None:
                    latency.append(answered - asked)
                    turnaround.append(t - answered)
                asked, answered = t, None
            else:
                answered = t
    print(f"{len(by_client)} client connections")
    print(f"request's first packet to answer's last: {percentiles(latency)}")
    print(f"answer's last packet to the next request (turnaround): {percentiles(turnaround)}")


if __name__ == "__main__":
    main()
