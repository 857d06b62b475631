"""The lineup of a run (every contender, --only, --baseline,
--wasmedge-patched; the references always) and its interleaved rounds."""

import os
import time

from .common import say
from .contenders import (PATCHED_WASMEDGE, Contender, available, build_baseline, dante, haproxy, microsocks, nginx_stream,
                         routes_by_name, socat, squid, wasiter)
from .figures import REFERENCES


def lineup(args):
    """The contenders of a run (--only, --baseline, --wasmedge-patched), and
    those skipped ({name: why}): the references always, whatever --only says."""
    all_contenders = [
        Contender("direct", None),
        Contender("haproxy", haproxy, terminate=True),
        Contender("socat", socat),
        Contender("nginx-stream", nginx_stream),
        Contender("squid", squid, forward=True, only_forward=True),
        Contender("dante", dante, forward=True, only_forward=True, http_proxy=False, socks=True),
        Contender("microsocks", microsocks, forward=True, only_forward=True, http_proxy=False, socks=True),
        Contender("wasiter-wasmedge-aot", wasiter("wasmedge-aot"), forward=True, terminate=True, socks=True, transparent=True),
    ] + [
        Contender(name, wasiter(name.removeprefix("wasiter-")), forward=True, terminate=True, socks=True, transparent=True)
        for name in PATCHED_WASMEDGE or ["wasiter-wasmedge-aot-patched"]
    ] + [
        Contender("wasiter-wasmedge", wasiter("wasmedge"), forward=True, terminate=True, socks=True, transparent=True),
        Contender("wasiter-wasmtime", wasiter("wasmtime"), forward=True, terminate=True, socks=True, transparent=True),
        Contender("wasiter-native", wasiter("native"), forward=True, terminate=True, socks=True, transparent=True),
    ]
    ours = [c for c in all_contenders if c.name.startswith("wasiter-")]
    for rev in [r for r in args.baseline.split(",") if r]:
        base = build_baseline(rev)
        sni = routes_by_name(base)
        # route.rs, or the route/ folder it became.
        route_files = [os.path.join(base, "src", "route.rs")] + [os.path.join(base, "src", "route", f) for f in ("mod.rs", "spec.rs")]
        route_text = "".join(open(f).read() for f in route_files if os.path.exists(f))
        # What that code can do, so that it is measured on the same figures
        # (forward routes since issue 12, SOCKS5 since 27, transparent since 26).
        can = dict(terminate="cert=" in route_text, forward="forward" in route_text,
                   socks=os.path.exists(os.path.join(base, "src", "front", "socks.rs")),
                   transparent="transparent" in route_text)
        all_contenders += [Contender(f"{c.name}@{rev[:12]}", wasiter(c.name.removeprefix("wasiter-"), base), sni, **can) for c in ours]
    return pick(all_contenders, args.only, REFERENCES)


def pick(all_contenders, only, references):
    """Those of `all_contenders` that --only names (and the references), and
    installed; the others that --only names, with why they are skipped."""
    only = [o for o in only.split(",") if o]
    contenders, skipped = [], {}
    for c in all_contenders:
        if only and c.name.split("@")[0] not in only and c.name not in references:
            continue
        missing = available(c.name.split("@")[0])
        if missing:
            skipped[c.name] = "not installed: " + ", ".join(missing)
            say(f"SKIPPED {c.name}: {skipped[c.name]}")
        else:
            contenders.append(c)
    return contenders, skipped


def run_rounds(contenders, rounds, measure_one, peers, tmp):
    """Interleaved rounds: every contender started, measured by
    measure_one(c) and stopped, in an order rotated each round so that no
    contender always runs first. {name: [figures of each round]}."""
    results = {c.name: [] for c in contenders}
    for rnd in range(rounds):
        order = contenders[rnd % len(contenders):] + contenders[:rnd % len(contenders)]
        for c in order:
            say(f"round {rnd + 1}/{rounds}: {c.name}")
            if not c.start(peers, tmp):
                say(f"  {c.name} did not start")
                c.stop()
                continue
            try:
                results[c.name].append(measure_one(c))
            finally:
                c.stop()
                time.sleep(0.5)
    return results
