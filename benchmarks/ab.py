"""A/B: the startup benchmark's pool row, two checkouts of pycontainer side by side.

Tells a change from the VM's drift, which on this machine is larger than most
changes: fork+exec of /bin/true alone takes 0.49 ms in one hour and 0.75 ms in
the next.  Two worker processes, one per checkout, each keep a warm pool row
(``startup.pycontainer_round``: /bin/true in a full container, the network
namespace pool on) and run it on demand; the driver alternates blocks of 25
containers between them, in a shuffled order, so that the drift falls on both
alike.  It prints both medians and their ratio.  An in-process spin of 0.2 ms
added to create shows as +0.23 ms (1.06) with 60 blocks.

Usage (as root, from the repository):

    git clone -q . /tmp/base && (cd /tmp/base && git checkout -q BASE && python3 setup.py build_ext --inplace)
    python3 benchmarks/ab.py /tmp/base [--new .] [--blocks 60]

Each checkout needs its shim built in place (``python3 setup.py build_ext
--inplace``); the default ``--new`` is the pycontainer that Python imports.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys

_WORKER = r"""
import json, os, shutil, sys, tempfile, time
tree = os.environ.get("AB_TREE")
if tree:
    sys.path.insert(0, tree)
sys.path.insert(0, os.environ["AB_BENCH"])
from startup import pycontainer_round
from pycontainer import _netpool, default_rootfs
import pycontainer
state = tempfile.mkdtemp(dir="/dev/shm")
try:
    one = pycontainer_round(default_rootfs(), state, pool=True)
    for _ in range(10):
        one()
    print(json.dumps(os.path.dirname(os.path.dirname(pycontainer.__file__))), flush=True)
    for line in sys.stdin:
        times = []
        for _ in range(int(line)):
            t = time.perf_counter()
            one()
            times.append(time.perf_counter() - t)
        print(json.dumps(times[1:]), flush=True)  # (the first of a block is not counted)
finally:
    _netpool.POOL.size = 0
    shutil.rmtree(state, ignore_errors=True)
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("base", help="the checkout to compare against (its shim built in place)")
    ap.add_argument("--new", default="", help="the other checkout (default: the pycontainer Python imports)")
    ap.add_argument("--blocks", type=int, default=60, help="blocks of 25 per side (default 60)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    bench = os.path.dirname(os.path.abspath(__file__))
    sides = {"base": os.path.abspath(args.base), "new": os.path.abspath(args.new) if args.new else ""}
    procs: dict[str, subprocess.Popen[str]] = {}
    try:
        for side, tree in sides.items():
            env = dict(os.environ, AB_TREE=tree, AB_BENCH=bench)
            p = subprocess.Popen([sys.executable, "-c", _WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 text=True, env=env)  # fmt: skip
            procs[side] = p
            assert p.stdout is not None
            print(f"{side}: {json.loads(p.stdout.readline())}")
        times: dict[str, list[float]] = {side: [] for side in sides}
        rng = random.Random(args.seed)
        for _ in range(args.blocks):
            order = list(sides)
            rng.shuffle(order)
            for side in order:
                p = procs[side]
                assert p.stdin is not None and p.stdout is not None
                p.stdin.write("26\n")
                p.stdin.flush()
                times[side] += json.loads(p.stdout.readline())
    finally:
        for p in procs.values():
            if p.stdin is not None:
                p.stdin.close()
            p.wait(timeout=60)
    med = {side: statistics.median(t) * 1e3 for side, t in times.items()}
    print(f"base {med['base']:.3f} ms  new {med['new']:.3f} ms  (n={len(times['new'])} each)  "
          f"new/base {med['new'] / med['base']:.3f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
