#!/usr/bin/env python3
"""Stand-ins for the services behind four presets (issue 47), answering
under the real names on one TLS port (a certificate with every name, from
a test CA), for the real clients to install from through the proxy:

    pypi.org                the simple index of one package
    files.pythonhosted.org  its wheel
    index.crates.io         cargo's sparse index: config.json and one crate
    static.crates.io        the .crate
    github.com              a bare repository, by `git http-backend`
    registry.npmjs.org      one package's document and tarball

    preset_origins.py --listen IP:PORT --cert PEM --key PEM --dir DIR

The packages are made at start: the wheel, the .crate and the npm tarball
in memory, the repository under DIR/git. Each is named NAME (below), the
repository OWNER/REPO. Prints `ready` once listening, then one JSON line
per request: {"host", "method", "path", "status"}. Only the Python
standard library (and keys_origin.py beside it).
"""
import argparse
import base64
import gzip
import hashlib
import io
import json
import os
import socket
import ssl
import subprocess
import sys
import tarfile
import threading
import zipfile

import keys_origin

NAME = "wasiter-probe"
REPO = "wasiter/probe"
WHEEL = "wasiter_probe-0.1.0-py3-none-any.whl"
WHEEL_PATH = "/packages/5e/1c/" + WHEEL


def wheel():
    """A pure-Python wheel: a zip with the module and its dist-info."""
    info = "wasiter_probe-0.1.0.dist-info/"
    files = {
        "wasiter_probe/__init__.py": b"PROBE = 'from the stand-in'\n",
        info + "METADATA": b"Metadata-Version: 2.1\nName: wasiter-probe\nVersion: 0.1.0\n",
        info + "WHEEL": b"Wheel-Version: 1.0\nGenerator: preset_origins\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = ""
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record += f"{path},sha256={digest},{len(data)}\n"
    files[info + "RECORD"] = (record + info + "RECORD,,\n").encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for path, data in files.items():
            z.writestr(path, data)
    return out.getvalue()


def tarball(files):
    """A .tar.gz of `files` (path: bytes), fixed times: the same bytes each run."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as t:
        for path, data in files.items():
            entry = tarfile.TarInfo(path)
            entry.size, entry.mode, entry.mtime = len(data), 0o644, 1700000000
            t.addfile(entry, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


def crate():
    top = NAME + "-0.1.0/"
    return tarball({
        top + "Cargo.toml": f'[package]\nname = "{NAME}"\nversion = "0.1.0"\nedition = "2021"\n'.encode(),
        top + "src/lib.rs": b"pub const PROBE: &str = \"from the stand-in\";\n",
    })


def npm_package():
    return tarball({
        "package/package.json": json.dumps({"name": NAME, "version": "1.0.0", "main": "index.js"}).encode(),
        "package/index.js": b"module.exports = 'from the stand-in';\n",
    })


def repository(root):
    """A bare repository with one commit on main, made without a work tree."""
    bare = os.path.join(root, REPO + ".git")
    env = dict(os.environ, GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL="/dev/null", GIT_AUTHOR_NAME="t",
               GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")

    def git(*args, given=None):
        done = subprocess.run(["git", *args], input=given, env=env, cwd=bare, capture_output=True, check=True)
        return done.stdout.decode().strip()

    os.makedirs(bare)
    git("init", "-q", "--bare", "-b", "main", ".")
    blob = git("hash-object", "-w", "--stdin", given=b"probe\n")
    tree = git("mktree", given=f"100644 blob {blob}\tREADME\n".encode())
    commit = git("commit-tree", tree, "-m", "probe")
    git("update-ref", "refs/heads/main", commit)


def files():
    """(host, path) -> (content type, body)."""
    whl, cr, tgz = wheel(), crate(), npm_package()
    page = f'<!DOCTYPE html><html><body><a href="https://files.pythonhosted.org{WHEEL_PATH}#sha256=' \
           f'{hashlib.sha256(whl).hexdigest()}">{WHEEL}</a></body></html>\n'
    line = {"name": NAME, "vers": "0.1.0", "deps": [], "cksum": hashlib.sha256(cr).hexdigest(), "features": {}, "yanked": False}
    tgz_url = f"https://registry.npmjs.org/{NAME}/-/{NAME}-1.0.0.tgz"
    dist = {"tarball": tgz_url, "shasum": hashlib.sha1(tgz).hexdigest(),
            "integrity": "sha512-" + base64.b64encode(hashlib.sha512(tgz).digest()).decode()}
    doc = {"name": NAME, "dist-tags": {"latest": "1.0.0"},
           "versions": {"1.0.0": {"name": NAME, "version": "1.0.0", "main": "index.js", "dist": dist}}}
    js = "application/json"
    return {
        ("pypi.org", f"/simple/{NAME}/"): ("text/html", page.encode()),
        ("files.pythonhosted.org", WHEEL_PATH): ("application/octet-stream", whl),
        ("index.crates.io", "/config.json"): (js, json.dumps({"dl": "https://static.crates.io/crates", "api": "https://crates.io"}).encode()),
        ("index.crates.io", f"/{NAME[:2]}/{NAME[2:4]}/{NAME}"): ("text/plain", (json.dumps(line) + "\n").encode()),
        # cargo appends /{crate}/{version}/download to a dl with no markers.
        ("static.crates.io", f"/crates/{NAME}/0.1.0/download"): ("application/gzip", cr),
        ("registry.npmjs.org", f"/{NAME}"): (js, json.dumps(doc).encode()),
        ("registry.npmjs.org", f"/{NAME}/-/{NAME}-1.0.0.tgz"): ("application/octet-stream", tgz),
    }


class Handler(keys_origin.Handler):
    def handle_one(self):
        body = self.body()
        host = self.headers.get("Host", "").split(":")[0]  # no IPv6 literal here
        path = self.path.split("?", 1)[0]
        if host == "github.com" and path.startswith(f"/{REPO}.git/"):
            status = keys_origin.http_backend(self, self.server.git_root, path, body, "git")
        elif (host, path) in self.server.files:
            kind, data = self.server.files[(host, path)]
            status = 200
            self.answer(status, data, [], kind)
        else:
            status = 404
            self.answer(404, b'{"error":"not here"}', [])
        keys_origin.say(json.dumps({"host": host, "method": self.command, "path": self.path, "status": status}))

    do_GET = do_HEAD = do_POST = handle_one


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--dir", required=True)
    a = ap.parse_args()
    root = os.path.join(a.dir, "git")
    repository(root)
    ip, port = a.listen.rsplit(":", 1)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.cert, a.key)
    server = keys_origin.Server((ip, int(port)), ctx, None, root, Handler)
    server.files = files()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    keys_origin.say("ready")
    try:
        sys.stdin.read()  # until the test closes our stdin (or dies)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    socket.setdefaulttimeout(30)
    main()
