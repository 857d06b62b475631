"""SOCKS5 (wasiter's forward port, Dante, microsocks): the TLS download
through a SOCKS5 tunnel. Its tunnels figure is forward.tunnels(socks=True)."""

import subprocess


def socks_bulk(proxy, tls_port):
    """The 1 GiB TLS download through a SOCKS5 tunnel, Gbit/s."""
    out = subprocess.run(["curl", "-s", "-k", "--socks5", f"127.0.0.1:{proxy}", "-o", "/dev/null",
                          "-w", "%{speed_download} %{size_download}", f"https://127.0.0.1:{tls_port}/big"],
                         capture_output=True, text=True, timeout=300).stdout.split()
    if len(out) != 2 or int(out[1]) != 1 << 30:
        return None
    return float(out[0]) * 8 / 1e9
