#!/usr/bin/env python3
"""Python as the sandbox's client in the keys tests (issue 45), through the
forward proxy, trusting only the proxy's CA.

    keys_client.py urllib PROXY CAFILE URL NAME:VALUE...
    keys_client.py requests PROXY CAFILE URL NAME:VALUE...
        One GET with these headers, by urllib.request (a ProxyHandler) or by
        requests when installed (else the line `SKIPPED: requests`).
    keys_client.py session PROXY CAFILE HOST
        One kept-alive connection (http.client, CONNECT then TLS) to HOST:443;
        each stdin line is a request {"method", "path", "headers": {..}},
        each answer one stdout line. The connection is never re-opened: a
        request that finds it closed fails.

Every answer is printed as JSON: {"status", "headers": [[k, v], ...], "body"}.
"""
import http.client
import json
import ssl
import sys
import urllib.request


def show(status, headers, body):
    print(json.dumps({"status": status, "headers": [[k, v] for k, v in headers], "body": body.decode("latin-1")}), flush=True)


def headers_of(args):
    return {k.strip(): v.strip() for k, v in (a.split(":", 1) for a in args)}


def by_urllib(proxy, ca, url, headers):
    ctx = ssl.create_default_context(cafile=ca)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({"https": proxy, "http": proxy}), urllib.request.HTTPSHandler(context=ctx))
    req = urllib.request.Request(url, headers=headers)
    try:
        with opener.open(req, timeout=15) as r:
            show(r.status, r.getheaders(), r.read())
    except urllib.error.HTTPError as e:
        show(e.code, e.headers.items(), e.read())


def by_requests(proxy, ca, url, headers):
    try:
        import requests
    except ImportError:
        print("SKIPPED: requests is not installed", flush=True)
        return
    r = requests.get(url, headers=headers, proxies={"https": proxy, "http": proxy}, verify=ca, timeout=15)
    show(r.status_code, r.raw.headers.items(), r.content)


def session(proxy, ca, host):
    ctx = ssl.create_default_context(cafile=ca)
    p_host, p_port = proxy.rsplit("/", 1)[-1].rsplit(":", 1)
    conn = http.client.HTTPSConnection(p_host, int(p_port), context=ctx, timeout=15)
    conn.set_tunnel(host, 443)
    conn.auto_open = 0  # one connection: never dialled again behind the test's back
    conn.connect()
    for line in sys.stdin:
        ask = json.loads(line)
        conn.request(ask.get("method", "GET"), ask["path"], body=ask.get("body"), headers=ask.get("headers", {}))
        r = conn.getresponse()
        show(r.status, r.getheaders(), r.read())


def main():
    mode, proxy, ca = sys.argv[1:4]
    if mode == "session":
        session(proxy, ca, sys.argv[4])
    elif mode == "urllib":
        by_urllib(proxy, ca, sys.argv[4], headers_of(sys.argv[5:]))
    elif mode == "requests":
        by_requests(proxy, ca, sys.argv[4], headers_of(sys.argv[5:]))
    else:
        sys.exit(f"unknown mode {mode}: urllib, requests or session expected")


if __name__ == "__main__":
    main()
