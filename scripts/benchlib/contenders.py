"""The contenders: wasiter on each runtime (and built from an older
revision, --baseline), HAProxy, socat, nginx's stream module, squid, Dante
and microsocks. Each is a Contender: how to start it with one listener per
(listen, upstream, kind) pair, and its CPU and memory from /proc."""

import os
import re
import shutil
import subprocess
import tempfile

from .common import (CHAINED, FORWARD, OPENED, ROOT, SNI, TERMINATE, TRANSPARENT, children, free_port, proc_cpu_split,
                     proc_rss_kib, say, wait_port)

SQUID_CERTGEN = "/usr/lib/squid/security_file_certgen"  # squid-openssl's: squid-bump needs it
# The credential of the opened figures: what the origin must get (squid adds
# it; wasiter swaps it for its placeholder, or the client sends it itself
# where the build has no --secrets yet).
OPENED_SECRET = "bench_real_token_0123456789abcdef"
PLACEHOLDER = "bench_fake_token_" + "x" * (len(OPENED_SECRET) - len("bench_fake_token_"))  # as long as the value
PATCHED_WASMEDGE = {}  # --wasmedge-patched: contender name -> wasmedge binary
WASMEDGE_AOT = "target/wasm32-wasip1/release/wasiter.aot.wasm"


class Contender:
    def __init__(self, name, make, sni=True, forward=False, only_forward=False, terminate=False, http_proxy=True, socks=False, transparent=False,
                 opened=False, only_opened=False):
        # make(tmp, [(listen, upstream, sni), ...]) -> argv: one relay per
        # pair; where `sni` is a name, the port routes by it (TLS SNI).
        # sni=False: it cannot (a --baseline build from before routing by
        # name): it gets no such port, and its tls-sni figure is n/a.
        self.name, self.make, self.sni = name, make, sni
        # forward: it also serves a forward proxy port (to the TLS server
        # and redis); only_forward: that is all it serves (squid).
        self.forward, self.only_forward = forward, only_forward
        # On that port: HTTP proxy requests (squid), SOCKS5 (Dante,
        # microsocks), or both (wasiter).
        self.http_proxy, self.socks = http_proxy, socks
        # transparent: it also serves transparent listeners for the TLS and
        # the plain nginx (wasiter `transparent=`).
        self.transparent = transparent
        # terminate: it also serves a port where it terminates TLS in front
        # of the plain nginx (the term-* figures; n/a for the others).
        self.terminate = terminate
        # opened: it also serves a forward proxy port that opens TLS to the
        # origin (wasiter `open=`, squid `ssl_bump`); only_opened: that is
        # all it serves (the --opened run).
        self.opened, self.only_opened = opened, only_opened
        self.proc = None

    def start(self, peers, tmp):
        self.peer_tls, self.peer_redis, self.peer_http = peers.tls, peers.redis_port, peers.http
        self.peer_origin = peers.origin
        self.proxy_port = self.chain_port = self.tp_tls = self.tp_http = self.opened_port = None
        if self.name == "direct":
            self.http, self.whole, self.redis = peers.http, peers.whole, peers.redis_port
            self.tls = self.tls_sni = self.term = peers.tls  # nginx terminates TLS itself
            return True
        self.term = None
        self.http, self.whole, self.redis, self.tls, self.tls_sni = (free_port() for _ in range(5))
        pairs = [(self.http, peers.http, None), (self.whole, peers.whole, None), (self.redis, peers.redis_port, None),
                 (self.tls, peers.tls, None)]
        if self.sni:
            pairs.append((self.tls_sni, peers.tls, SNI))
        else:
            self.tls_sni = None
        if self.forward:
            self.proxy_port = free_port()
            pairs.append((self.proxy_port, f"{peers.tls},{peers.redis_port},{peers.http}", FORWARD))
            if self.http_proxy and peers.parent:
                self.chain_port = free_port()
                pairs.append((self.chain_port, peers.parent, CHAINED))
        if self.transparent:
            self.tp_tls, self.tp_http = free_port(), free_port()
            pairs += [(self.tp_tls, peers.tls, TRANSPARENT), (self.tp_http, peers.http, TRANSPARENT)]
        if self.terminate:
            self.term = free_port()
            pairs.append((self.term, peers.http, TERMINATE))
        if self.opened:
            self.opened_port = free_port()
            pairs.append((self.opened_port, peers.origin, OPENED))
        if self.only_forward:
            pairs = [p for p in pairs if p[2] in (FORWARD, CHAINED)]
        if self.only_opened:
            pairs = [p for p in pairs if p[2] == OPENED]
        argv = self.make(tmp, pairs)
        self.proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        return all(wait_port(p) for p, _, _ in pairs)

    def cpu_seconds(self):
        """user+system CPU time of the proxy and its children so far, with the
        children it has reaped (socat's forks), from /proc."""
        split = self.cpu_split()
        return sum(split) if split else None

    def cpu_split(self):
        """(user, system) CPU seconds of the proxy and its children so far."""
        return proc_cpu_split([self.proc.pid] + children(self.proc.pid)) if self.proc else None

    def stop(self):
        if self.proc:
            try:
                os.killpg(self.proc.pid, 15)
            except ProcessLookupError:
                pass
            self.proc.wait()
            self.proc = None

    def rss_mib(self):
        """Resident memory of the proxy: the process and its children (nginx's worker, socat's forks)."""
        return proc_rss_kib([self.proc.pid] + children(self.proc.pid)) / 1024 if self.proc else None


def wasiter(runtime, root="."):
    """wasiter on a runtime, built in `root` (the project, or a --baseline worktree)."""
    # Since to-net= stopped letting IP-literal destinations through (main.rs
    # warns `to-net-for-names-only`), the forward routes name loopback in to=
    # as well: the figures ask for 127.0.0.1:PORT. An older build keeps to=*.
    with open(os.path.join(root, "src", "main.rs")) as f:
        to = "*,127.0.0.0/8" if "to-net-for-names-only" in f.read() else "*"
    # Since tunnels carry TLS or HTTP only, except to opaque= ports, the
    # tunnels to redis (the tunnels figures) need its port there.
    route_dir = os.path.join(root, "src", "route")
    opaque = os.path.isdir(route_dir) and any('"opaque"' in open(os.path.join(route_dir, n)).read()
                                              for n in os.listdir(route_dir) if n.endswith(".rs"))

    def make(tmp, pairs):
        args = ["--quiet", "--max-conns", "9000"]
        if any(kind in (TRANSPARENT, OPENED) for _, _, kind in pairs):
            # The transparent TLS listener (and the opened one) resolves the SNI name: from a hosts file.
            with open(os.path.join(tmp, "bench.hosts"), "w") as f:
                f.write(f"127.0.0.1 {SNI}\n")
            args += ["--hosts-file", f"{tmp}/bench.hosts"]
        for listen, up, sni in pairs:
            if sni == FORWARD:
                # up: the TLS nginx, redis, the plain nginx.
                tail = f";opaque={up.split(',')[1]}" if opaque else ""
                args += ["--route", f"127.0.0.1:{listen}=forward;to={to};to-net=127.0.0.0/8;ports={up}{tail}"]
                ports = up
            elif sni == TRANSPARENT:
                args += ["--route", f"127.0.0.1:{listen}=forward;transparent={up};to={to};to-net=127.0.0.0/8;ports={up}"]
            elif sni == CHAINED:
                args += ["--route", f"127.0.0.1:{listen}=forward;to={to};to-net=127.0.0.0/8;ports={ports}{tail};parent=http://127.0.0.1:{up}"]
            elif sni == OPENED:
                # The opened figures' route: TLS opened for SNI with the CA opened.py made,
                # the origin verified against its test CA, and the credential swapped in
                # when this build takes --secrets (opened.py wrote the file then).
                args += ["--route", f"127.0.0.1:{listen}=forward;to={SNI};to-net=127.0.0.0/8;ports={up};open={SNI}",
                         "--ca", f"{tmp}/opened-ca", "--upstream-ca", f"{tmp}/origin-ca.pem"]
                if os.path.exists(f"{tmp}/opened.secrets"):
                    args += ["--secrets", f"{tmp}/opened.secrets"]
            elif sni == TERMINATE:
                args += ["--route", f"127.0.0.1:{listen}=127.0.0.1:{up};cert={tmp}/bench.pem;key={tmp}/bench.key"]
            else:
                args += ["--route", f"127.0.0.1:{listen}=127.0.0.1:{up}" + (f";sni={sni}" if sni else "")]
        aot = lambda wasmedge: [wasmedge, "--run-mode=aot", "--dir", f"{tmp}:{tmp}", f"{root}/{WASMEDGE_AOT}"] + args
        if runtime.startswith("wasmedge-aot-patched"):
            # The same AOT build, run by a --wasmedge-patched binary.
            return aot(PATCHED_WASMEDGE.get(f"wasiter-{runtime}", "wasmedge"))
        return {
            "native": [f"{root}/target/release/wasiter"] + args,
            "wasmtime": ["wasmtime", "run", "-S", "inherit-network", "--dir", tmp, f"{root}/target/wasm32-wasip2/release/wasiter.wasm"] + args,
            "wasmedge-aot": aot("wasmedge"),
            "wasmedge": ["wasmedge", "--dir", f"{tmp}:{tmp}", f"{root}/target/wasm32-wasip1/release/wasiter.wasm"] + args,
        }[runtime]
    return make


def haproxy(tmp, pairs):
    conf = os.path.join(tmp, f"haproxy-{pairs[0][0]}.cfg")
    # By name: wait for a ClientHello, then pick the backend by its SNI (the
    # HAProxy manual's own example of TCP-mode SNI routing).
    by_name = ("  tcp-request inspect-delay 5s\n  tcp-request content accept if {{ req.ssl_hello_type 1 }}\n"
               "  use-server s if {{ req.ssl_sni -i {sni} }}\n")
    # Terminating: HAProxy's OpenSSL does the TLS, the same certificate.
    bind = lambda listen, sni: f"  bind 127.0.0.1:{listen}" + (f" ssl crt {tmp}/bench-combined.pem" if sni == TERMINATE else "") + "\n"
    listens = "".join(f"listen l{listen}\n" + bind(listen, sni) + (by_name.format(sni=sni) if sni and sni != TERMINATE else "")
                      + f"  server s 127.0.0.1:{up}\n" for listen, up, sni in pairs)
    with open(conf, "w") as f:
        f.write(f"""global
  nbthread 1
  maxconn 9000
defaults
  mode tcp
  maxconn 9000
  timeout connect 5s
  timeout client 10m
  timeout server 10m
{listens}""")
    return ["haproxy", "-db", "-f", conf]


def nginx_stream(tmp, pairs):
    first = pairs[0][0]
    conf = os.path.join(tmp, f"nginx-stream-{first}.conf")
    # By name: ssl_preread reads the ClientHello; a map picks the upstream.
    servers = "".join(
        f"  map $ssl_preread_server_name $up{listen} {{ {sni} 127.0.0.1:{up}; default 127.0.0.1:1; }}\n"
        f"  server {{ listen 127.0.0.1:{listen} backlog=4096; ssl_preread on; proxy_pass $up{listen}; }}\n" if sni else
        f"  server {{ listen 127.0.0.1:{listen} backlog=4096; proxy_pass 127.0.0.1:{up}; }}\n"
        for listen, up, sni in pairs)
    with open(conf, "w") as f:
        f.write(f"""load_module /usr/lib/nginx/modules/ngx_stream_module.so;
worker_processes 1; worker_rlimit_nofile 19000; pid {tmp}/stream-{first}.pid; error_log {tmp}/stream-{first}.err;
events {{ worker_connections 18000; }}
stream {{
  proxy_timeout 10m;
{servers}}}
""")
    return ["nginx", "-c", conf, "-p", tmp, "-g", "daemon off;"]


# What every squid here is told besides its ports: only loopback clients, no
# cache and no logs, one worker, a quick stop.
SQUID_COMMON = """http_access deny !allowed_ports
http_access allow localhost
http_access deny all
cache deny all
access_log none
cache_log /dev/null
cache_store_log none
pid_filename none
workers 1
shutdown_lifetime 0 seconds
max_filedescriptors 20000
"""


def squid(tmp, pairs):
    """squid as a forward proxy only (1 worker, no cache, no logs): the
    CONNECT figures' reference, as HAProxy is the TCP figures'."""
    listen, ports, _ = pairs[0]
    chained = [(l, up) for l, up, kind in pairs if kind == CHAINED]
    # A chained port: everything it takes goes to the parent squid.
    chain = "".join(f"http_port 127.0.0.1:{l} name=chained\nacl chained myportname chained\n"
                    f"cache_peer 127.0.0.1 parent {up} 0 no-query default name=parent\n"
                    "cache_peer_access parent allow chained\ncache_peer_access parent deny all\nnever_direct allow chained\n"
                    for l, up in chained)
    conf = os.path.join(tmp, f"squid-{listen}.conf")
    with open(conf, "w") as f:
        f.write(f"""http_port 127.0.0.1:{listen}
{chain}acl allowed_ports port {ports.replace(",", " ")}
{SQUID_COMMON}""")
    return ["squid", "-N", "-f", conf]


def squid_bump(tmp, pairs):
    """squid with ssl_bump (Debian's squid-openssl), its own CA, leaves made
    by its certificate helper and kept in memory, the origin verified against
    its test CA, and the credential added to each request
    (`request_header_add`): the opened figures' reference."""
    (listen, origin, _), = pairs
    ca, key = f"{tmp}/squid-bump-ca.pem", f"{tmp}/squid-bump-ca.key"
    quiet = dict(check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if not os.path.exists(ca):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                        "-days", "2", "-subj", "/CN=squid bench CA", "-addext", "basicConstraints=critical,CA:TRUE",
                        "-addext", "keyUsage=critical,keyCertSign", "-keyout", key, "-out", ca], **quiet)
    # The helper's certificate database, new for each start; run as root,
    # squid's helpers run as its effective user (proxy on Debian), which must own it.
    home = os.path.join(tmp, f"squid-bump-{listen}")
    os.makedirs(home)
    subprocess.run([SQUID_CERTGEN, "-c", "-s", f"{home}/db", "-M", "16MB"], **quiet)
    if os.geteuid() == 0:
        subprocess.run(["chown", "-R", "proxy:proxy", home], **quiet)
    conf = os.path.join(tmp, f"squid-bump-{listen}.conf")
    with open(conf, "w") as f:
        f.write(f"""http_port 127.0.0.1:{listen} ssl-bump tls-cert={ca} tls-key={key} generate-host-certificates=on dynamic_cert_mem_cache_size=16MB
sslcrtd_program {SQUID_CERTGEN} -s {home}/db -M 16MB
sslcrtd_children 5 startup=1 idle=1
ssl_bump bump all
tls_outgoing_options cafile={tmp}/origin-ca.pem
request_header_add Authorization "Bearer {OPENED_SECRET}" all
hosts_file {tmp}/bench.hosts
acl allowed_ports port {origin}
{SQUID_COMMON}""")
    return ["squid", "-N", "-f", conf]


def dante(tmp, pairs):
    """Dante's danted as a SOCKS5 server (no login, CONNECT only, no logs):
    one of the SOCKS figures' references."""
    (listen, _, _), = pairs
    conf = os.path.join(tmp, f"danted-{listen}.conf")
    with open(conf, "w") as f:
        f.write(f"""logoutput: /dev/null
internal: 127.0.0.1 port = {listen}
external: 127.0.0.1
clientmethod: none
socksmethod: none
user.privileged: root
user.unprivileged: nobody
client pass {{ from: 127.0.0.0/8 to: 0.0.0.0/0 }}
socks pass {{ from: 127.0.0.0/8 to: 127.0.0.0/8 command: connect }}
""")
    return ["danted", "-f", conf, "-p", os.path.join(tmp, f"danted-{listen}.pid")]


def microsocks(tmp, pairs):
    """microsocks (a thread per client): the other SOCKS reference."""
    (listen, _, _), = pairs
    return ["microsocks", "-i", "127.0.0.1", "-p", str(listen)]


def socat(tmp, pairs):
    # One listener per pair, one process group (killed together). socat
    # cannot route by name: its port routed by SNI relays everything.
    script = "".join(f"socat TCP-LISTEN:{listen},bind=127.0.0.1,reuseaddr,fork,backlog=4096 TCP:127.0.0.1:{up} & "
                     for listen, up, _ in pairs) + "wait"
    return ["sh", "-c", script]


def available(name):
    need = {
        "haproxy": ["haproxy"], "socat": ["socat"], "nginx-stream": ["nginx"], "squid": ["squid"],
        "dante": ["danted"], "microsocks": ["microsocks"],
        "wasiter-wasmtime": ["wasmtime"], "wasiter-wasmedge-aot": ["wasmedge"], "wasiter-wasmedge": ["wasmedge"],
    }.get(name, [])
    missing = [c for c in need if not shutil.which(c)]
    if name == "squid-bump":
        missing += [what for what, there in ((f"{SQUID_CERTGEN} (squid-openssl)", os.path.exists(SQUID_CERTGEN)),
                                             ("squid", shutil.which("squid"))) if not there]
    if name == "nginx-stream" and not os.path.exists("/usr/lib/nginx/modules/ngx_stream_module.so"):
        missing.append("ngx_stream_module (libnginx-mod-stream)")
    if name.startswith("wasiter-wasmedge-aot") and not os.path.exists(os.path.join(ROOT, WASMEDGE_AOT)):
        missing.append(WASMEDGE_AOT)
    if name.startswith("wasiter-wasmedge-aot-patched") and not os.access(PATCHED_WASMEDGE.get(name, ""), os.X_OK):
        missing.append("--wasmedge-patched PATH")
    return missing


def build_baseline(rev):
    """Build revision `rev` in a git worktree beside the project (every flavour,
    AOT too when wasmedge is there): the same build, the older code."""
    path = os.path.join(tempfile.gettempdir(), "wasiter-baseline-" + re.sub(r"[^\w.-]", "_", rev))
    if not os.path.exists(path):
        subprocess.run(["git", "worktree", "add", "--detach", path, rev], check=True, stdout=subprocess.DEVNULL)
    else:
        subprocess.run(["git", "-C", path, "checkout", "--detach", "-q", rev], check=True)
    say(f"building the baseline {rev} in {path}")
    subprocess.run(["scripts/build"], cwd=path, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return path


def routes_by_name(root):
    """Does the build in `root` take `sni=` routes? Settings are checked
    after the routes: an error about --max-conns means the route passed."""
    out = subprocess.run([f"{root}/target/release/wasiter", "--route", f"127.0.0.1:9=127.0.0.1:1;sni={SNI}", "--max-conns", "0"],
                         capture_output=True, text=True, timeout=10)
    return "--max-conns" in out.stderr

