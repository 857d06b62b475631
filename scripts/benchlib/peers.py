"""The peers every contender relays to: nginx (HTTP, and over TLS) and
redis-server, and the parent squid of the chained figure."""

import os
import shutil
import subprocess

from .common import FORWARD, SNI, TERM_SIZE, free_port, wait_port

CERT_ARGS = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
from .contenders import OPENED_SECRET, PLACEHOLDER, squid


class Peers:
    """nginx (HTTP: /small 1 KiB, /tiny 6 bytes, /big 1 GiB from tmpfs; a second
    server with sendfile off for one-piece answers; a third over TLS, with a
    certificate for SNI made here; a fourth over TLS, the opened figures'
    origin, whose certificate a test CA signed, as a public origin's is, and
    which answers /auth with what the Authorization header it got was: real,
    placeholder, none or other; not the value, which wasiter would redact)
    and
    redis-server."""

    def __init__(self, tmp):
        self.tmp = tmp
        www = os.path.join(tmp, "www")
        os.makedirs(www)
        with open(os.path.join(www, "small"), "wb") as f:
            f.write(b"x" * 1024)
        with open(os.path.join(www, "tiny"), "wb") as f:
            f.write(b"hello\n")
        big = os.path.join(www, "big")
        with open(big, "wb") as f:
            f.truncate(1 << 30)  # sparse on tmpfs: reads as zeros, costs no memory
        with open(os.path.join(www, "big128"), "wb") as f:
            f.truncate(TERM_SIZE)
        self.http = free_port()
        self.whole = free_port()
        self.tls = free_port()
        cert, key = os.path.join(tmp, "bench.pem"), os.path.join(tmp, "bench.key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                        "-days", "2", "-subj", f"/CN={SNI}", "-addext", f"subjectAltName=DNS:{SNI}", "-keyout", key, "-out", cert],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # The same certificate for the proxies that terminate TLS (HAProxy wants it and its key in one file).
        self.cert, self.key, self.combined = cert, key, os.path.join(tmp, "bench-combined.pem")
        with open(self.combined, "w") as out, open(cert) as c, open(key) as k:
            out.write(c.read() + k.read())
        self.origin, self.origin_ca = free_port(), os.path.join(tmp, "origin-ca.pem")
        origin_cert, origin_key = origin_certificate(tmp, self.origin_ca)
        # The name the proxies resolve (wasiter --hosts-file, squid hosts_file).
        self.hosts = os.path.join(tmp, "bench.hosts")
        with open(self.hosts, "w") as f:
            f.write(f"127.0.0.1 {SNI}\n")
        conf = os.path.join(tmp, "nginx-http.conf")
        with open(conf, "w") as f:
            f.write(f"""
worker_processes 1; worker_rlimit_nofile 19000; pid {tmp}/nginx-http.pid; error_log {tmp}/nginx-http.err;
events {{ worker_connections 18000; }}
http {{ access_log off; sendfile on; keepalive_requests 1000000; keepalive_timeout 600s;
       client_header_timeout 600s; client_body_temp_path {tmp}; proxy_temp_path {tmp};
       fastcgi_temp_path {tmp}; uwsgi_temp_path {tmp}; scgi_temp_path {tmp};
       server {{ listen 127.0.0.1:{self.http} backlog=4096; root {www}; }}
       server {{ listen 127.0.0.1:{self.whole} backlog=4096; root {www}; sendfile off; }}
       server {{ listen 127.0.0.1:{self.tls} ssl backlog=4096; root {www}; ssl_certificate {cert}; ssl_certificate_key {key}; ssl_protocols TLSv1.2 TLSv1.3; }}
       server {{ listen 127.0.0.1:{self.origin} ssl backlog=4096; root {www}; ssl_certificate {origin_cert}; ssl_certificate_key {origin_key};
                location = /auth {{ default_type text/plain; return 200 "$bench_auth"; }} }}
       map $http_authorization $bench_auth {{ "Bearer {OPENED_SECRET}" real; "Bearer {PLACEHOLDER}" placeholder; "" none; default other; }} }}
""")
        self.nginx = subprocess.Popen(["nginx", "-c", conf, "-p", tmp, "-g", "daemon off;"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.redis_port = free_port()
        self.redis = subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port", str(self.redis_port),
                                       "--save", "", "--appendonly", "no", "--dir", tmp, "--maxclients", "10000"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # The parent proxy of the chained figure: squid, the same for every
        # contender (when squid is installed).
        self.parent, self.parent_proc = None, None
        if shutil.which("squid"):
            self.parent = free_port()
            self.parent_proc = subprocess.Popen(squid(tmp, [(self.parent, f"{self.tls},{self.redis_port},{self.http}", FORWARD)]),
                                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        waits = (self.http, self.whole, self.tls, self.origin, self.redis_port) + ((self.parent,) if self.parent else ())
        if not all(wait_port(p) for p in waits):
            raise SystemExit("bench: nginx, redis-server or the parent squid did not start")

    def stop(self):
        for p in (self.nginx, self.redis, self.parent_proc):
            if p:
                p.terminate()
                p.wait()


def origin_certificate(tmp, ca_pem):
    """A test CA (written to `ca_pem`, what the proxies verify the origin
    against) and the origin's certificate for SNI signed by it: (cert, key)."""
    ca_key, cert, key, csr = (os.path.join(tmp, f) for f in ("origin-ca.key", "origin.pem", "origin.key", "origin.csr"))
    ext = os.path.join(tmp, "origin.ext")
    with open(ext, "w") as f:
        f.write(f"subjectAltName=DNS:{SNI}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
    quiet = dict(check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run(["openssl", "req", "-x509"] + CERT_ARGS + ["-days", "2", "-subj", "/CN=wasiter bench origin CA",
                    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign",
                    "-keyout", ca_key, "-out", ca_pem], **quiet)
    subprocess.run(["openssl", "req"] + CERT_ARGS + ["-subj", f"/CN={SNI}", "-keyout", key, "-out", csr], **quiet)
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", ca_pem, "-CAkey", ca_key, "-CAcreateserial", "-days", "2",
                    "-extfile", ext, "-out", cert], **quiet)
    return cert, key
