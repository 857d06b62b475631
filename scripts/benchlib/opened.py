"""--opened: TLS opened by the forward proxy on the way out (issue 45),
beside squid's ssl_bump, in one run. wasiter's forward route with
`open=bench.test` (`--ca`, `--upstream-ca`, `--hosts-file`, and `--secrets`
where the build takes it) and squid with `ssl_bump bump all` both stand
in front of an nginx origin that terminates TLS with a certificate a test CA
signed, for a name both resolve to 127.0.0.1 from a hosts file. The client
(opened_client.c, built here) asks each for CONNECT bench.test:PORT, makes
its TLS handshake through the tunnel, verifying the proxy's leaf against the
proxy's CA, and sends GET /small (1 KiB) with the credential as the proxy
expects it; the proxy sends each request to the origin over TLS of its own.

    opened_ka   50 clients, each on one opened connection, requests one
                after another: requests/s, p50/p99, the proxy's CPU per request
    opened_new  50 clients, a new connection per request (CONNECT, the
                handshake with the proxy, one request, close): the same
"""

import os
import platform
import re
import shutil
import statistics
import subprocess
import tempfile
import time

from .common import ROOT, SNI, say, version
from .contenders import OPENED_SECRET, PATCHED_WASMEDGE, PLACEHOLDER, Contender, squid_bump, wasiter
from .rounds import pick, run_rounds
from .peers import Peers
from .side import write_section

CLIENTS = 50
FIGURES = [("opened_ka", f"opened TLS, keep-alive, {CLIENTS} clients"),
           ("opened_new", f"opened TLS, a new connection per request, {CLIENTS} clients")]
REFERENCE = "squid-bump"


def opened_figures(args):
    """The --opened run: its contenders, rounds, report, and its section of
    BENCHMARKS.md."""
    runtimes = ["wasmedge-aot"] + [n.removeprefix("wasiter-") for n in PATCHED_WASMEDGE] + ["wasmedge", "wasmtime", "native"]
    lineup = [Contender(REFERENCE, squid_bump, opened=True, only_opened=True)] + [
        Contender(f"wasiter-{r}", wasiter(r), opened=True, only_opened=True) for r in runtimes]
    contenders, skipped = pick(lineup, args.only, (REFERENCE,))
    if not shutil.which("cc") or not os.path.exists("/usr/include/openssl/ssl.h"):
        raise SystemExit("bench: --opened builds its client with cc and OpenSSL's headers: apt-get install gcc libssl-dev")
    tmp = tempfile.mkdtemp(prefix="wasiter-bench-opened-", dir="/dev/shm")
    os.chmod(tmp, 0o711)  # squid's certificate helper, run as its own user, reaches its database inside
    figures = [f for f in args.figures.split(",") if f]
    try:
        client = os.path.join(tmp, "opened_client")
        subprocess.run(["cc", "-O2", "-pthread", "-o", client, os.path.join(ROOT, "scripts/benchlib/opened_client.c"),
                        "-lssl", "-lcrypto"], check=True)
        secrets = prepare(tmp)
        peers = Peers(tmp)
        try:
            results = run_rounds(contenders, args.rounds, lambda c: measure(c, client, tmp, secrets, args.seconds, figures), peers, tmp)
        finally:
            peers.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    text = report(summarize(results, contenders), contenders, skipped, secrets, args)
    print(text)
    if not args.no_write:
        write_section("opened", "TLS opened on the way out (issue 45)", text)


def prepare(tmp):
    """The CA every wasiter contender opens TLS with (made once by the native
    build, `--make-ca`), and the secrets file when the build takes
    `--secrets`: True then, else False (the client sends the credential
    itself)."""
    native = os.path.join(ROOT, "target/release/wasiter")
    subprocess.run([native, "--make-ca", f"{tmp}/opened-ca"], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    path = f"{tmp}/opened.secrets"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"BENCH_TOKEN value={OPENED_SECRET} to={SNI} as=bearer placeholder={PLACEHOLDER}\n")
    out = subprocess.run([native, "--secrets", path, "--placeholders"], capture_output=True, text=True)
    if out.returncode == 0 and f"BENCH_TOKEN={PLACEHOLDER}" in out.stdout:
        return True
    say("this build takes no --secrets yet (`wasiter --secrets FILE --placeholders` did not list the entry): "
        "the client sends the credential itself")
    os.unlink(path)
    return False


def credential(c, secrets):
    """The Authorization line the client sends: none to squid (which adds
    it), the placeholder to wasiter (which swaps it), or the real one where
    wasiter has no --secrets."""
    if c.name == REFERENCE:
        return ""
    return f"Authorization: Bearer {PLACEHOLDER if secrets else OPENED_SECRET}"


def measure(c, client, tmp, secrets, seconds, figures):
    """What the origin got as the credential (one request, which also has the
    proxy make its leaf before anything is measured), then opened_ka and
    opened_new."""
    ca = f"{tmp}/squid-bump-ca.pem" if c.name == REFERENCE else f"{tmp}/opened-ca/ca.pem"
    header = credential(c, secrets)
    url = f"https://{SNI}:{c.peer_origin}"
    out = subprocess.run(["curl", "-s", "-x", f"http://127.0.0.1:{c.opened_port}", "--cacert", ca, f"{url}/auth"]
                         + (["-H", header] if header else []), capture_output=True, text=True, timeout=30)
    r = {"auth": out.stdout.strip() == "real"}
    if not r["auth"]:
        say(f"  {c.name}: the origin got {out.stdout.strip()[:60]!r} as the credential (curl exit {out.returncode})")
    for key, mode in (("opened_ka", "ka"), ("opened_new", "new")):
        if not figures or key in figures:
            r[key] = run_client(c, [client, str(c.opened_port), SNI, str(c.peer_origin), ca, "/small", str(seconds),
                                    str(CLIENTS), mode] + ([header] if header else []), seconds)
    return r


def run_client(c, cmd, seconds):
    """One run of the client: {"rps", "50", "99", "cpu", "user"} (ms, and
    the proxy's CPU microseconds per request, from /proc), or None."""
    before = c.cpu_split()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    after = c.cpu_split()
    if out.stderr.strip():
        say(f"  {c.name}: {out.stderr.strip()}")
    m = re.search(r"requests (\d+) errors (\d+) seconds ([\d.]+) p50 ([\d.]+) p99 ([\d.]+)", out.stdout)
    if not m or int(m.group(1)) == 0:
        return None
    n = int(m.group(1))
    return {"rps": n / float(m.group(3)), "50": float(m.group(4)), "99": float(m.group(5)),
            "cpu": (sum(after) - sum(before)) * 1e6 / n, "user": (after[0] - before[0]) * 1e6 / n}


def summarize(results, contenders):
    """Medians over the rounds: {name: {"opened_ka_rps": ..., "auth": ...}}."""
    table = {}
    for c in contenders:
        runs = results[c.name]
        row = {"rounds": len(runs), "auth": all(r.get("auth") for r in runs) if runs else None}
        for key, _ in FIGURES:
            for part in ("rps", "50", "99", "cpu", "user"):
                values = [(r.get(key) or {}).get(part) for r in runs]
                values = [v for v in values if v is not None]
                row[f"{key}_{part}"] = statistics.median(values) if values else None
        table[c.name] = row
    return table


def report(table, contenders, skipped, secrets, args):
    names = [c.name for c in contenders]
    ref = table.get(REFERENCE, {})
    def cells(key, fmt, with_ratio):
        out = []
        for n in names:
            v = table[n].get(key)
            base = ref.get(key)
            out.append("n/a" if v is None else fmt(v) + (f" ({v / base:.2f}x)" if with_ratio and base and n != REFERENCE else ""))
        return out
    command = (f"scripts/bench --opened --rounds {args.rounds} --seconds {args.seconds}"
               f"{' --only ' + args.only if args.only else ''}{' --figures ' + args.figures if args.figures else ''}")
    lines = [f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `{command}`: "
             f"medians of {args.rounds} interleaved rounds; in brackets, the ratio to squid with ssl_bump in the same run. "
             "Higher is better for requests/s; lower for latency and CPU.", ""]
    lines += ["| figure | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for key, title in FIGURES:
        lines.append(f"| {title} (req/s) | " + " | ".join(cells(f"{key}_rps", lambda v: f"{v / 1000:.2f}k", True)) + " |")
        for pct in ("50", "99"):
            lines.append(f"| {key} latency p{pct} (ms) | " + " | ".join(cells(f"{key}_{pct}", lambda v: f"{v:.2f}", False)) + " |")
        lines.append(f"| {key} proxy CPU per request (us) | " + " | ".join(cells(f"{key}_cpu", lambda v: f"{v:.1f}", True)) + " |")
        lines.append(f"| {key} of which in user space (us) | " + " | ".join(cells(f"{key}_user", lambda v: f"{v:.1f}", False)) + " |")
    lines.append("| the origin got the real credential | " + " | ".join(
        "n/a" if table[n].get("auth") is None else ("yes" if table[n]["auth"] else "NO") for n in names) + " |")
    lines += ["", "Targets (issue 45): CPU per request at or below squid's natively, within 1.5x of it on WasmEdge AOT:"]
    for n, limit in (("wasiter-native", 1.0), ("wasiter-wasmedge-aot", 1.5)):
        for key, _ in FIGURES:
            v, base = table.get(n, {}).get(f"{key}_cpu"), ref.get(f"{key}_cpu")
            if v is not None and base:
                lines.append(f"- {n}, {key}: {v / base:.2f}x squid's ({'met' if v / base <= limit else 'not met'}; target {limit}x)")
    how = ("wasiter swaps the client's placeholder for it (`--secrets`, `as=bearer`)" if secrets else
           "this build has no `--secrets` yet: the client sends the real credential to wasiter itself, which passes it on unchanged")
    lines += ["", f"The credential: squid adds it to each request (`request_header_add Authorization`); {how}."]
    for n, why in skipped.items():
        lines.append(f"- SKIPPED {n}: {why}")
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"model name\s*:\s*(.*)", f.read())
            cpu = m.group(1) if m else "?"
    except OSError:
        pass
    lines += ["", f"Machine: {os.cpu_count()} CPUs: {cpu}; Linux {platform.release()}; {version(['squid', '-v'])}; "
              f"{version(['openssl', 'version'])}; wasmedge {version(['wasmedge', '--version'])}; {version(['wasmtime', '--version'])}; "
              f"{version(['nginx', '-v'])}. The client: scripts/benchlib/opened_client.c (C, OpenSSL, a thread per client, "
              "no session resumption)."]
    return "\n".join(lines) + "\n"
