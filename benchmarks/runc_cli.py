"""`pycontainer-runc run` against `runc run`, same bundle, whole process (issue 7).

One bundle from `runc spec` with the built-in busybox rootfs and
`/bin/true` (terminal off); each round runs `pycontainer-runc run` and
`runc run` once each, as separate processes, alternating, and times the
whole process (Python's start-up included: that is the budget to beat).
Prints medians, p90 and the ratio.

Usage (as root):  python3 benchmarks/runc_cli.py [-n 30]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from pycontainer import default_rootfs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=30)
    args = ap.parse_args()
    if os.geteuid() != 0 or not shutil.which("runc"):
        print("runc_cli.py needs root and runc", file=sys.stderr)
        return 2
    tmp = tempfile.mkdtemp(prefix="pyc-runcbench-", dir="/dev/shm")
    try:
        bundle = os.path.join(tmp, "bundle")
        os.mkdir(bundle)
        subprocess.run(["runc", "spec"], cwd=bundle, check=True)
        shutil.copytree(default_rootfs(os.path.join(tmp, "data")), os.path.join(bundle, "rootfs"), symlinks=True)
        with open(os.path.join(bundle, "config.json")) as f:
            spec = json.load(f)
        spec["process"].update(terminal=False, args=["/bin/true"])
        with open(os.path.join(bundle, "config.json"), "w") as f:
            json.dump(spec, f)
        rows = {
            "pycontainer-runc run": [sys.executable, "-m", "pycontainer.oci.runc", "--root", os.path.join(tmp, "pyc")],
            "runc run": ["runc", "--root", os.path.join(tmp, "runc")],
        }
        # As an installed package runs: with its bytecode cached (this
        # workplace sets PYTHONDONTWRITEBYTECODE; the warm-up rounds write it).
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        times: dict[str, list[float]] = {k: [] for k in rows}
        for i in range(args.n + 2):
            for name, cmd in rows.items():
                t = time.perf_counter()
                subprocess.run([*cmd, "run", "--bundle", bundle, f"b{i}"], check=True, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
                if i >= 2:  # two warm-up rounds
                    times[name].append(time.perf_counter() - t)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    base = statistics.median(times["runc run"])
    print(f"{'what':24} {'median ms':>10} {'p90 ms':>8} {'x runc':>8}")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:24} {med * 1000:10.2f} {sorted(ts)[int(len(ts) * 0.9)] * 1000:8.2f} {med / base:8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
