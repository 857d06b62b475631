"""wasiter's transparent listeners (`transparent=PORT`), reached as a
redirected client reaches them: the TLS download named by its SNI, and one
plain request per connection named by its Host."""

import subprocess

from .common import SNI
from .load import wrk_run


def transparent_bulk(c):
    """The 1 GiB TLS download from a transparent listener, as a client the
    kernel redirected reaches it: it asks for the SNI name, Gbit/s."""
    out = subprocess.run(["curl", "-s", "-k", "-o", "/dev/null", "-w", "%{speed_download} %{size_download}",
                          "--connect-to", f"{SNI}:{c.peer_tls}:127.0.0.1:{c.tp_tls}", f"https://{SNI}:{c.peer_tls}/big"],
                         capture_output=True, text=True, timeout=300).stdout.split()
    if len(out) != 2 or int(out[1]) != 1 << 30:
        return None
    return float(out[0]) * 8 / 1e9


def transparent_new(c, seconds):
    """A plain request per connection, 50 clients, straight at the
    transparent listener (named by its Host): req/s, latency, CPU."""
    return wrk_run(["wrk", "-t1", "-c50", f"-d{seconds}s", "--latency", "-H", "Connection: close",
                    f"http://127.0.0.1:{c.tp_http}/small"], c, seconds)
