#!/usr/bin/env python3
"""The origin behind the keys tests (issue 45): GitHub and a registry as a
sandbox's tools reach them, on 127.x over TLS (and, to catch a leak, in clear
text too), recording every request it receives.

    keys_origin.py --listen IP:PORT --cert PEM --key PEM --token REAL
                   [--plain PORT] [--git-root DIR]

Prints `ready` once listening, then one JSON line per request received:
{"tls": bool, "method", "path", "headers": [[name, value], ...], "body"}.
Answers JSON. `/echo` sends the request's headers back, in response headers
(`X-Echo-<Name>`) and in its body, as an origin that echoes a token would
(`/echo?chunk=N`: the body chunked, N bytes a chunk, one write each).
`/<owner>/<repo>.git/...` is `git http-backend` (CGI) for the bare
repositories under --git-root, behind HTTP Basic auth whose password must be
--token (any user name). Only the Python standard library.
"""
import argparse
import base64
import http.server
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import threading

OUT = threading.Lock()
GIT = re.compile(r"^/([A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+\.git)(/.*)$")
BACKEND = "/usr/lib/git-core/git-http-backend"


def say(line):
    with OUT:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def http_backend(handler, root, path_info, body, user):
    """`git http-backend` (CGI) for the bare repositories under `root`,
    answering `handler`'s request for `path_info` (/OWNER/REPO.git/...);
    returns the status sent."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "GIT_PROJECT_ROOT": root,
        "GIT_HTTP_EXPORT_ALL": "1",
        "PATH_INFO": path_info,
        "QUERY_STRING": handler.path.partition("?")[2],
        "REQUEST_METHOD": handler.command,
        "CONTENT_TYPE": handler.headers.get("Content-Type", ""),
        "CONTENT_LENGTH": str(len(body)),
        "REMOTE_USER": user,
        "REMOTE_ADDR": handler.client_address[0],
        "GIT_PROTOCOL": handler.headers.get("Git-Protocol", ""),
        "HTTP_CONTENT_ENCODING": handler.headers.get("Content-Encoding", ""),
    }
    done = subprocess.run([BACKEND], input=body, env=env, capture_output=True, check=False)
    head, _, out = done.stdout.partition(b"\r\n\r\n")
    if not _:
        head, _, out = done.stdout.partition(b"\n\n")
    status, extra, kind = 200, [], "text/plain"
    for line in head.decode("latin-1").splitlines():
        name, _, value = line.partition(":")
        if name.lower() == "status":
            status = int(value.strip().split()[0])
        elif name.lower() == "content-type":
            kind = value.strip()
        elif name:
            extra.append((name, value.strip()))
    handler.answer(status, out, extra, kind)
    return status


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: every answer has a length

    def log_message(self, *args):
        pass

    def body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            data = b""
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                chunk = self.rfile.read(size + 2)
                if size == 0:
                    # Trailers end with an empty line.
                    while chunk not in (b"\r\n", b"\n", b""):
                        chunk = self.rfile.readline()
                    return data
                data += chunk[:size]
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def handle_one(self):
        body = self.body()
        headers = [[k, v] for k, v in self.headers.items()]
        say(json.dumps({"tls": self.server.tls, "method": self.command, "path": self.path, "headers": headers,
                        "body": body.decode("latin-1")}))
        path = self.path.split("?", 1)[0]
        git = GIT.match(path)
        if path == "/echo":
            out = json.dumps({"headers": headers}).encode()
            chunk = re.search(r"(?:^|&)chunk=(\d+)", self.path.partition("?")[2])
            if chunk:
                self.chunked(out, int(chunk.group(1)), [("X-Echo-" + k, v) for k, v in headers])
            else:
                self.answer(200, out, [("X-Echo-" + k, v) for k, v in headers])
        elif git:
            self.git(git, body)
        else:
            out = json.dumps({"ok": True, "method": self.command, "path": self.path}).encode()
            self.answer(200, out, [])

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = handle_one

    def answer(self, status, body, extra, kind="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", kind)
        for k, v in extra:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def chunked(self, body, size, extra):
        """The body in chunks of `size` bytes, each its own write (and TLS
        record): an echoed value is cut across chunks and records."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        for k, v in extra:
            self.send_header(k, v)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for at in range(0, len(body), size):
            piece = body[at:at + size]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def git(self, match, body):
        auth = self.headers.get("Authorization", "")
        user = None
        if auth.lower().startswith("basic "):
            try:
                name, _, password = base64.b64decode(auth[6:].strip()).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                name, password = "", ""
            if password == self.server.token:
                user = name or "git"
        if user is None:
            self.answer(401, b'{"message":"Requires authentication"}', [("WWW-Authenticate", 'Basic realm="git"')])
            return
        http_backend(self, self.server.git_root, "/" + match.group(1) + match.group(2), body, user)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, addr, tls, token, git_root, handler=Handler):
        self.context, self.tls, self.token, self.git_root = tls, tls is not None, token, git_root
        super().__init__(addr, handler)

    def finish_request(self, request, client_address):
        # The handshake in the connection's own thread: a client that
        # fails it (a proxy refusing the certificate) ends only itself.
        if self.context is not None:
            try:
                request = self.context.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):
                return
        super().finish_request(request, client_address)

    def handle_error(self, request, client_address):
        pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--plain", type=int)
    ap.add_argument("--git-root", default="/nonexistent")
    a = ap.parse_args()
    ip, port = a.listen.rsplit(":", 1)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.cert, a.key)
    servers = [Server((ip, int(port)), ctx, a.token, a.git_root)]
    if a.plain:
        servers.append(Server((ip, a.plain), None, a.token, a.git_root))
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    say("ready")
    try:
        sys.stdin.read()  # until the test closes our stdin (or dies)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    socket.setdefaulttimeout(30)
    main()
