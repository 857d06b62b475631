"""--dns and --udp: the figures of scripts/bench_dns.py and
scripts/bench_udp.py (their own contenders); and the section of
BENCHMARKS.md each such run (and --opened) writes between markers of its own."""

import os
import platform
import shutil
import sys
import tempfile
import time

from . import common
from .common import ROOT


def side_figures(args, kind, title):
    """--dns or --udp: the figures of scripts/bench_KIND.py (its own
    contenders), written into BENCHMARKS.md between its markers."""
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    module = __import__(f"bench_{kind}")
    tmp = tempfile.mkdtemp(prefix=f"wasiter-bench-{kind}-", dir="/dev/shm")
    try:
        # The bench's helpers (say, free_port, the /proc readers) serve it too.
        text = module.report(module.run(args.rounds, args.seconds, tmp, common), args.rounds, args.seconds)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    text += f"\n\nCommand: `scripts/bench --{kind} --rounds {args.rounds} --seconds {args.seconds}` on {platform.node() or 'this machine'}, {time.strftime('%Y-%m-%d')}.\n"
    print(text)
    if not args.no_write:
        write_section(kind, title, text)


def write_section(kind, title, text):
    """Replace BENCHMARKS.md's section between `--KIND`'s markers (a new
    section titled `title` at the end when there is none yet)."""
    path = os.path.join(ROOT, "BENCHMARKS.md")
    begin, end = f"<!-- scripts/bench --{kind} writes from here -->", f"<!-- to here ({kind}) -->"
    with open(path) as f:
        old = f.read()
    if begin in old and end in old:
        new = old[:old.index(begin)] + begin + "\n" + text + end + old[old.index(end) + len(end):]
    else:
        new = old + f"\n## {title}\n\n" + begin + "\n" + text + end + "\n"
    with open(path, "w") as f:
        f.write(new)
