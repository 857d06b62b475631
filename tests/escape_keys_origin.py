#!/usr/bin/env python3
"""An origin that echoes a request's credential where no redactor of
content alone would look, for tests/blackbox/escape_keys.rs.

    escape_keys_origin.py PORT CERT KEY

TLS on 127.0.0.1:PORT. Each request's head is printed as one JSON line
({"method", "path", "headers": [[name, value], ...]}) after "ready".
Answers, the echo being the request's Authorization value:
  /ext   chunked, the echo in a chunk extension and in a trailer;
  /echo  the echo as the body, gzip'd when the request accepts gzip;
  else   200 "ok".
"""

import gzip
import json
import socket
import ssl
import sys
import threading

PORT, CERT, KEY = int(sys.argv[1]), sys.argv[2], sys.argv[3]
OUT = threading.Lock()


def answer(conn, method, path, headers):
    echo = next((v for n, v in headers if n.lower() == "authorization"), "").encode()
    accepts = next((v for n, v in headers if n.lower() == "accept-encoding"), "")
    if path.startswith("/ext"):
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Echo\r\n\r\n"
                     b"3;echo=" + echo.replace(b" ", b"_") + b"\r\nabc\r\n0\r\nX-Echo: " + echo + b"\r\n\r\n")
    elif path.startswith("/echo"):
        if "gzip" in accepts:
            body = gzip.compress(echo)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        else:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(echo) + echo)
    else:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")


def serve(conn, ctx):
    try:
        conn = ctx.wrap_socket(conn, server_side=True)
        buf = b""
        while True:
            while b"\r\n\r\n" not in buf:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
            head, buf = buf.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            method, path = lines[0].split(" ")[:2]
            headers = [[p.strip() for p in l.split(":", 1)] for l in lines[1:] if ":" in l]
            length = int(next((v for n, v in headers if n.lower() == "content-length"), "0"))
            while len(buf) < length:
                buf += conn.recv(65536)
            buf = buf[length:]
            with OUT:
                print(json.dumps({"method": method, "path": path, "headers": headers}), flush=True)
            answer(conn, method, path, headers)
    except (OSError, ssl.SSLError, ValueError):
        pass
    finally:
        conn.close()


def main():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(CERT, KEY)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", PORT))
    sock.listen(64)
    print("ready", flush=True)
    while True:
        conn, _ = sock.accept()
        threading.Thread(target=serve, args=(conn, ctx), daemon=True).start()


main()
