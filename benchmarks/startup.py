"""Container start-up: pycontainer against runc, crun, unshare and fork+exec, in one run.

Each row runs ``/bin/true`` N times and reports the median and 90th percentile
of one whole create -> start -> exit -> delete round, and its ratio to
pycontainer's median.

* pycontainer: in-process, a full container (pid, mount, uts, ipc and net
  namespaces, pivot_root, /proc, /dev with its nodes, pts, shm and mqueue,
  read-only /sys, runc's masked and read-only paths, /etc/hosts, hostname and
  resolv.conf), with and without the pre-made network namespace pool.
* runc run / crun run: the same rootfs, in a bundle from ``runc spec`` with the
  same namespaces (crun refuses hybrid cgroups, so it runs in a private mount
  namespace where /sys/fs/cgroup/unified is unmounted, as on such hosts).
* unshare: ``unshare --fork --pid --mount --uts --ipc --net /bin/true``.
* fork+exec: ``subprocess.run(["/bin/true"])``.

Usage (as root):  python3 benchmarks/startup.py [-n 300] [--json]
The state root is a directory on /dev/shm (tmpfs), as /run is on real hosts.
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

from pycontainer import Container, ContainerConfig, Process, _netpool, default_rootfs

NAMESPACES = ("pid", "network", "ipc", "uts", "mount")


def timings(fn, n: int, warmup: int = 20) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def bench_pycontainer(rootfs: str, state: str, n: int, pool: bool) -> list[float]:
    _netpool.POOL.size = 4 if pool else 0
    cfg = ContainerConfig(process=Process(args=["/bin/true"]), rootfs=rootfs)
    counter = iter(range(10**9))

    def one() -> None:
        c = Container.run(state, f"bench{next(counter)}", cfg)
        status = c.wait()
        c.delete()
        if status.code != 0:
            raise RuntimeError(f"container exited with {status}")

    return timings(one, n)


def make_bundle(rootfs: str, where: str) -> str:
    bundle = os.path.join(where, "bundle")
    os.mkdir(bundle)
    subprocess.run(["runc", "spec", "--bundle", bundle], check=True)
    with open(os.path.join(bundle, "config.json")) as f:
        spec = json.load(f)
    spec["root"] = {"path": rootfs, "readonly": False}
    spec["process"]["args"] = ["/bin/true"]
    spec["process"]["terminal"] = False
    spec["linux"]["namespaces"] = [{"type": t} for t in NAMESPACES]
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(spec, f)
    return bundle


def bench_runtime(runtime: str, bundle: str, state: str, n: int) -> list[float]:
    counter = iter(range(10**9))

    def one() -> None:
        cid = f"bench{next(counter)}"
        subprocess.run([runtime, "--root", state, "run", "--bundle", bundle, cid], check=True, stdin=subprocess.DEVNULL)

    return timings(one, n, warmup=5)


_CRUN_LOOP = """
import json, subprocess, sys, time
runtime, bundle, state, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
subprocess.run(["umount", "/sys/fs/cgroup/unified"], check=False)
out = []
for i in range(n + 5):
    t = time.perf_counter()
    subprocess.run([runtime, "--root", state, "run", "--bundle", bundle, f"bench{i}"], check=True, stdin=subprocess.DEVNULL)
    if i >= 5:
        out.append(time.perf_counter() - t)
print(json.dumps(out))
"""


def bench_crun(bundle: str, state: str, n: int) -> list[float]:
    """crun refuses hybrid cgroups: run it where the cgroup2 mount is gone (a private mount ns)."""
    r = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", sys.executable, "-c", _CRUN_LOOP, "crun", bundle, state, str(n)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return json.loads(r.stdout)


def bench_cmd(cmd: list[str], n: int) -> list[float]:
    return timings(lambda: subprocess.run(cmd, check=True), n)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=300, help="runs per row (default 300)")
    ap.add_argument("--json", action="store_true", help="print the medians as JSON too")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("startup.py needs root", file=sys.stderr)
        return 2

    tmp = tempfile.mkdtemp(prefix="pyc-bench-", dir="/dev/shm")
    try:
        rootfs = default_rootfs(os.path.join(tmp, "data"))
        rows: list[tuple[str, list[float]]] = []
        state = os.path.join(tmp, "state-pyc")
        rows.append(("pycontainer (netns pool)", bench_pycontainer(rootfs, state, args.n, pool=True)))
        rows.append(("pycontainer (no pool)", bench_pycontainer(rootfs, state, args.n, pool=False)))
        bundle = make_bundle(rootfs, tmp) if shutil.which("runc") else None
        if bundle:
            rows.append(("runc run", bench_runtime("runc", bundle, os.path.join(tmp, "state-runc"), args.n)))
        else:
            print("runc not found: row skipped", file=sys.stderr)
        if bundle and shutil.which("crun"):
            rows.append(("crun run", bench_crun(bundle, os.path.join(tmp, "state-crun"), args.n)))
        else:
            print("crun not found: row skipped", file=sys.stderr)
        rows.append(
            (
                "unshare (5 ns) /bin/true",
                bench_cmd(
                    ["unshare", "--fork", *(f"--{n if n != 'network' else 'net'}" for n in NAMESPACES), "/bin/true"],
                    args.n,
                ),
            )
        )
        rows.append(("fork+exec /bin/true", bench_cmd(["/bin/true"], args.n)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    base = statistics.median(rows[0][1])
    print(f"{'what':28} {'median ms':>10} {'p90 ms':>8} {'x pycontainer':>14}")
    medians = {}
    for name, ts in rows:
        med = statistics.median(ts)
        p90 = sorted(ts)[int(len(ts) * 0.9)]
        medians[name] = med * 1000
        print(f"{name:28} {med * 1000:10.3f} {p90 * 1000:8.3f} {med / base:14.2f}")
    if args.json:
        print(json.dumps(medians))
    return 0


if __name__ == "__main__":
    sys.exit(main())
