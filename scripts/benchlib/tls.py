"""TLS terminated by the proxy (wasiter `cert=`, HAProxy `ssl crt`): the
128 MiB download with each cipher suite. The handshake figure (term-new) is
wrk's over https (load.py)."""

import subprocess

from .common import TERM_SIZE


def term_bulk(port, suite):
    """The 128 MiB download over TLS 1.3 with one cipher suite (None: curl's
    default list), from a port where the proxy terminates TLS, Gbit/s."""
    pick = ["--tls13-ciphers", suite] if suite else []
    out = subprocess.run(["curl", "-s", "-k", "--tlsv1.3"] + pick + ["-o", "/dev/null",
                          "-w", "%{speed_download} %{size_download}", f"https://127.0.0.1:{port}/big128"],
                         capture_output=True, text=True, timeout=300).stdout.split()
    if len(out) != 2 or int(out[1]) != TERM_SIZE:
        return None
    return float(out[0]) * 8 / 1e9
