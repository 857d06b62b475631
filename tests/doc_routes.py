#!/usr/bin/env python3
"""Start every route rule of the guide for real, one after another.

tests/docs.rs runs this inside a network and mount namespace of its own
(`unshare -n -m`), so that the guide's addresses (0.0.0.0:80, :443, 3128...)
are free, the guide's names (web1, db-primary, proxy.corp.example...) can
resolve without a nameserver, and nothing leaves the machine: the only
interface is loopback, and /etc/hosts, /etc/resolv.conf and /run are this
namespace's own copies.

Input on stdin: one `PAGE<TAB>RULE` per line. For each rule the native build
is started with `--route RULE` (cert.pem and key.pem, as the TLS page names
them, are made in its working directory); it must log its `start` line,
accept a connection on each TCP listen port (a Unix socket: connect to it),
and still be running afterwards.

A line `refusal<TAB>TEXT` is an egress refusal the guide quotes
(`wasiter: HOST:PORT refused (rule ...): ... (allowed: LIST); ...`): a
forward route with to=LIST is started and asked to CONNECT to HOST:PORT,
and its 403 must say TEXT word for word.

One line per rule or quote; exit 1 if any failed.
"""
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

BIN = os.path.abspath(sys.argv[1])
lines = [line.rstrip("\n").split("\t", 1) for line in sys.stdin if "\t" in line]
rules = [(page, rule) for page, rule in lines if page != "refusal"]
refusals = [text for page, text in lines if page == "refusal"]

subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
work = tempfile.mkdtemp(prefix="wasiter-doc-routes-")

# Every word of a rule that could be a host name resolves to loopback:
# words that are not names (policy, forward, ...) make harmless entries.
names = set()
for _, rule in rules:
    for word in re.split(r"[=,;:/ ]", rule):
        if re.fullmatch(r"[a-z][a-z0-9-]*(\.[a-z0-9-]+)*", word):
            names.add(word)
with open(os.path.join(work, "hosts"), "w") as f:
    f.write("127.0.0.1 localhost " + " ".join(sorted(names)) + "\n::1 localhost\n")
with open(os.path.join(work, "resolv.conf"), "w") as f:
    f.write("nameserver 127.0.0.1\n")  # nothing listens: only the hosts file answers
for mine, theirs in (("hosts", "/etc/hosts"), ("resolv.conf", "/etc/resolv.conf")):
    subprocess.run(["mount", "--bind", os.path.join(work, mine), theirs], check=True)
subprocess.run(["mount", "-t", "tmpfs", "none", "/run"], check=True)  # unix:/run/... paths
subprocess.run(
    ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
     "-days", "1", "-subj", "/CN=localhost", "-keyout", "key.pem", "-out", "cert.pem"],
    cwd=work, check=True, capture_output=True)


def listen_ends(rule):
    """What to try for the rule's listen side: ('tcp', port), ('unix', path) or ('udp', port)."""
    listen = rule.split("=", 1)[0]
    if listen.startswith("unix:"):
        return [("unix", listen[5:])]
    kind = "udp" if listen.startswith("udp:") else "tcp"
    ports = listen.rsplit(":", 1)[1]
    first, _, last = ports.partition("-")
    return [(kind, int(p)) for p in {first, last or first}]


def accepts(kind, where, deadline):
    while time.monotonic() < deadline:
        try:
            if kind == "unix":
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(where)
            else:
                s = socket.create_connection(("127.0.0.1", where), timeout=1)
            s.close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


failed = 0
for page, rule in rules:
    # A route that opens TLS (open=) starts with the CA its page gives it
    # (--ca DIR, made in the work folder at first start).
    extra = ["--ca", os.path.join(work, "ca")] if ";open=" in rule else []
    proc = subprocess.Popen([BIN, "--route", rule, *extra], cwd=work, stderr=subprocess.PIPE, text=True)
    log, problem = [], None
    deadline = time.monotonic() + 5
    for line in proc.stderr:  # until its start line, or its exit
        log.append(line.rstrip())
        if " start " in line:
            break
    else:
        problem = "exited before it started"
    if problem is None:
        for kind, where in listen_ends(rule):
            if kind != "udp" and not accepts(kind, where, deadline):
                problem = f"no {kind} connection accepted on {where}"
                break
    if problem is None and proc.poll() is not None:
        problem = f"exited ({proc.returncode}) after it started"
    proc.kill()
    proc.wait()
    if problem:
        failed += 1
        print(f"FAIL {page}: --route '{rule}': {problem}; its log: {' | '.join(log[-3:])}")
    else:
        print(f"ok {page}: --route '{rule}'")

for text in refusals:
    target = text.split(" ", 2)[1]
    allowed = text.split("(allowed: ", 1)[1].split(")", 1)[0]
    proc = subprocess.Popen([BIN, "--route", f"127.0.0.1:3128=forward;to={allowed}"], cwd=work,
                            stderr=subprocess.DEVNULL)
    answer = b""
    if accepts("tcp", 3128, time.monotonic() + 5):
        with socket.create_connection(("127.0.0.1", 3128), timeout=5) as s:
            s.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
            while chunk := s.recv(4096):
                answer += chunk
    proc.kill()
    proc.wait()
    said = answer.decode(errors="replace")
    if said.startswith("HTTP/1.1 403") and said.rstrip().endswith(text):
        print(f"ok refusal: CONNECT {target} through to={allowed}")
    else:
        failed += 1
        print(f"FAIL refusal: CONNECT {target} through to={allowed}: the guide quotes {text!r}; wasiter said {said!r}")
sys.exit(1 if failed else 0)
