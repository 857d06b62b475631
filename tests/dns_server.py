#!/usr/bin/env python3
"""A real DNS server for the black-box tests (dnslib, over UDP and TCP on
127.0.0.1), that a test can make slow or wrong on purpose.

    dns_server.py PORT NAME=IP[,IP...] ... [--slow NAME=SECONDS] [--truncate NAME]

NAME=IP answers A (and AAAA for IPv6 addresses) with a TTL of 60 s; any
other name is NXDOMAIN. --slow answers NAME only after SECONDS (each query
waits in its own thread: the others are answered at once). --truncate
answers NAME over UDP with the TC bit and no records, and fully over TCP.
Prints "ready" once both sockets listen; logs each query to stderr as
"query NAME TYPE PROTO".
"""

import sys
import threading
import time

from dnslib import AAAA, QTYPE, RCODE, RR, A
from dnslib.server import BaseResolver, DNSLogger, DNSServer


LOG = threading.Lock()  # queries are answered in threads: one line at a time


class Zone(BaseResolver):
    def __init__(self, records, slow, truncate):
        self.records, self.slow, self.truncate = records, slow, truncate

    def resolve(self, request, handler):
        reply = request.reply()
        name = str(request.q.qname).rstrip(".").lower()
        qtype = QTYPE[request.q.qtype]
        with LOG:
            sys.stderr.write(f"query {name} {qtype} {handler.protocol}\n")
            sys.stderr.flush()
        if name in self.slow:
            time.sleep(self.slow[name])
        if name not in self.records:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        if name in self.truncate and handler.protocol == "udp":
            reply.header.tc = 1
            return reply
        for ip in self.records[name]:
            if ":" in ip and qtype == "AAAA":
                reply.add_answer(RR(name, QTYPE.AAAA, rdata=AAAA(ip), ttl=60))
            elif ":" not in ip and qtype == "A":
                reply.add_answer(RR(name, QTYPE.A, rdata=A(ip), ttl=60))
        return reply


def main():
    port = int(sys.argv[1])
    records, slow, truncate = {}, {}, set()
    args = iter(sys.argv[2:])
    for arg in args:
        if arg == "--slow":
            name, secs = next(args).split("=")
            slow[name.lower()] = float(secs)
        elif arg == "--truncate":
            truncate.add(next(args).lower())
        else:
            name, ips = arg.split("=")
            records[name.lower()] = ips.split(",")
    zone = Zone(records, slow, truncate)
    # dnslib logs every request and reply to stdout: keep only its errors.
    quiet = DNSLogger("-request,-reply,-truncated,-recv,-send,-data")
    servers = [DNSServer(zone, port=port, address="127.0.0.1", tcp=tcp, logger=quiet) for tcp in (False, True)]
    for s in servers:
        s.server.daemon_threads = True
        s.start_thread()
    print("ready", flush=True)
    sys.stdout = sys.stderr  # the test stops reading stdout after "ready"
    while all(s.isAlive() for s in servers):
        time.sleep(0.2)


if __name__ == "__main__":
    main()
