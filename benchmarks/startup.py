"""Container start-up: pycontainer against runc, crun, unshare and fork+exec, in one run.

Each row runs ``/bin/true`` N times and reports the median and 90th percentile
of one whole create -> start -> exit -> delete round, and its ratio to
pycontainer's median.  The rows are interleaved (each round runs every row in a
block, in a shuffled order): within a block a row runs warm as in any tight
loop, and across blocks a shared VM's drifting load falls on all rows alike.
The order is shuffled, not rotated: rotated, each row always came right after
the same other row and took over its asynchronous teardown (the pool row, the
base of every cost below, always followed ``unshare``'s 25 network namespaces
being freed by the kernel).

* pycontainer: in-process, a full container (pid, mount, uts, ipc and net
  namespaces, pivot_root, /proc, /dev with its nodes, pts, shm and mqueue,
  read-only /sys, runc's masked and read-only paths, /etc/hosts, hostname and
  resolv.conf; since issue 6 with Docker's default capability set and
  seccomp profile), with and without the pre-made network namespace pool,
  unconfined (every capability the runtime holds, no seccomp filter: the
  default confinement's cost is the pool row minus this one), and
  (issue 3) with a cgroup in every hierarchy limiting memory, pids and CPU,
  as runc's and crun's containers have, and on a hybrid host with a cgroup
  in the cgroup2 tree alone (the v2 code path; no limits, as that tree has
  no such controllers here).  A cgroup's cost is its row minus the pool row;
  the rows without a cgroup pass ``cgroups=False``.  Bridge rows (issue 5):
  the container on a bridge network (a veth pair, an address, a default
  route, a name in /etc/hosts), and with a published port (an nftables map
  element); the bridge lives in a throwaway network namespace made for the
  run.  Their cost is their row minus the pool row.
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
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial

from pycontainer import Capabilities, Container, ContainerConfig, Process, Resources, _netpool, cgroups, default_rootfs
from pycontainer.config import held_capabilities
from pycontainer.network import NetworkStore

NAMESPACES = ("pid", "network", "ipc", "uts", "mount")


LIMITS = Resources(memory=256 << 20, pids_limit=100, cpus=1)


def pycontainer_round(
    rootfs: str,
    state: str,
    pool: bool,
    cgroup: bool = False,
    limits: bool = True,
    cgroup_root: str | None = None,
    network: str | None = None,
    ports: tuple[str, ...] = (),
    unconfined: bool = False,
) -> Callable[[], None]:
    proc = Process(args=["/bin/true"])
    if unconfined:
        # every capability the runtime holds, no seccomp filter: the cost of
        # the default confinement is the pool row minus this one
        proc = Process(args=["/bin/true"], capabilities=Capabilities.of(held_capabilities()))
    seccomp = "unconfined" if unconfined else "default"
    if cgroup:
        res = LIMITS if limits else Resources()
        cfg = ContainerConfig(process=proc, rootfs=rootfs, resources=res, seccomp=seccomp)
    else:
        cfg = ContainerConfig(process=proc, rootfs=rootfs, cgroups=False, seccomp=seccomp)
    counter = iter(range(10**9))

    def one() -> None:
        _netpool.POOL.size = 4 if pool else 0
        c = Container.run(state, f"bench{next(counter)}", cfg, cgroup_root=cgroup_root, network=network, ports=ports)
        status = c.wait()
        c.delete()
        if status.code != 0:
            raise RuntimeError(f"container exited with {status}")

    return one


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


def runtime_round(runtime: str, bundle: str, state: str) -> Callable[[], None]:
    counter = iter(range(10**9))

    def one() -> None:
        cid = f"bench{next(counter)}"
        subprocess.run([runtime, "--root", state, "run", "--bundle", bundle, cid], check=True, stdin=subprocess.DEVNULL)

    return one


# crun refuses hybrid cgroups: it runs in a private mount namespace where the
# cgroup2 mount is gone, driven by this small server so that each round times
# only `crun run` itself.
_CRUN_SERVER = """
import subprocess, sys, time
subprocess.run(["umount", "/sys/fs/cgroup/unified"], check=False)
runtime, bundle, state = sys.argv[1:4]
for line in sys.stdin:
    t = time.perf_counter()
    subprocess.run([runtime, "--root", state, "run", "--bundle", bundle, line.strip()], check=True,
                   stdin=subprocess.DEVNULL)
    print(time.perf_counter() - t, flush=True)
"""


class CrunServer:
    def __init__(self, bundle: str, state: str) -> None:
        self.proc = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", sys.executable, "-c", _CRUN_SERVER, "crun", bundle, state],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.counter = iter(range(10**9))

    def one(self) -> float:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(f"bench{next(self.counter)}\n")
        self.proc.stdin.flush()
        return float(self.proc.stdout.readline())

    def close(self) -> None:
        assert self.proc.stdin
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def cmd_round(cmd: list[str]) -> Callable[[], None]:
    return lambda: subprocess.run(cmd, check=True)


def timed(fn: Callable[[], None]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=300, help="runs per row (default 300)")
    ap.add_argument("--json", action="store_true", help="print the medians as JSON too")
    ap.add_argument("--block", type=int, default=25, help="consecutive runs of a row per block (default 25)")
    ap.add_argument("--seed", type=int, default=1, help="seed of the rows' shuffled order (default 1)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("startup.py needs root", file=sys.stderr)
        return 2

    tmp = tempfile.mkdtemp(prefix="pyc-bench-", dir="/dev/shm")
    crun = None
    hostns_fd = -1
    try:
        rootfs = default_rootfs(os.path.join(tmp, "data"))
        state = os.path.join(tmp, "state-pyc")
        rounds: list[tuple[str, Callable[[], float]]] = [
            ("pycontainer (netns pool)", partial(timed, pycontainer_round(rootfs, state, pool=True))),
            ("pycontainer (no pool)", partial(timed, pycontainer_round(rootfs, state, pool=False))),
            ("pycontainer unconfined", partial(timed, pycontainer_round(rootfs, state, pool=True, unconfined=True))),
            ("pycontainer + cgroup", partial(timed, pycontainer_round(rootfs, state, pool=True, cgroup=True))),
        ]
        # Bridge networks, in a throwaway network namespace playing the host
        # (the bridge, the veths and the nftables table live there).
        hostns_fd = _netpool.new_netns()
        hostns = f"/proc/{os.getpid()}/fd/{hostns_fd}"
        NetworkStore(state).create("bench", subnet="10.211.0.0/16", host_netns=hostns)
        rounds.append(("pycontainer + bridge", partial(timed, pycontainer_round(rootfs, state, True, network="bench"))))
        bridge_ports = pycontainer_round(rootfs, state, True, network="bench", ports=("8080:80",))
        rounds.append(("pycontainer + bridge + port", partial(timed, bridge_ports)))
        layout = cgroups.detect()
        if layout.mode == "hybrid" and layout.unified:
            # This host's cgroup2 tree has no memory/cpu/pids controllers: a
            # cgroup there (devices program, CLONE_INTO_CGROUP) shows the v2
            # path's own cost, without limits.
            v2 = pycontainer_round(rootfs, state, pool=True, cgroup=True, limits=False, cgroup_root=layout.unified)
            rounds.append(("pycontainer + cgroup2 tree", partial(timed, v2)))
        bundle = make_bundle(rootfs, tmp) if shutil.which("runc") else None
        if bundle:
            rounds.append(("runc run", partial(timed, runtime_round("runc", bundle, os.path.join(tmp, "state-runc")))))
        else:
            print("runc not found: row skipped", file=sys.stderr)
        if bundle and shutil.which("crun"):
            crun = CrunServer(bundle, os.path.join(tmp, "state-crun"))
            rounds.append(("crun run", crun.one))
        else:
            print("crun not found: row skipped", file=sys.stderr)
        ns_flags = [f"--{n if n != 'network' else 'net'}" for n in NAMESPACES]
        rounds.append(
            ("unshare (5 ns) /bin/true", partial(timed, cmd_round(["unshare", "--fork", *ns_flags, "/bin/true"])))
        )
        rounds.append(("fork+exec /bin/true", partial(timed, cmd_round(["/bin/true"]))))

        # Interleaved in blocks: each round runs a block of consecutive runs of
        # every row, rows in a shuffled order (the same for a seed).  Within a
        # block a row runs warm, as in any tight loop; across blocks the VM's
        # drifting background load falls on all rows alike, and each row
        # follows a different one each time.  The first run of each block is
        # not counted (it pays for the previous row's cache and teardown).
        results: dict[str, list[float]] = {name: [] for name, _ in rounds}
        blocks = max(1, -(-args.n // args.block))
        rng = random.Random(args.seed)
        for _, fn in rounds:  # warm-up
            for _ in range(5):
                fn()
        for _ in range(blocks):
            for name, fn in rng.sample(rounds, len(rounds)):
                for j in range(args.block + 1):
                    t = fn()
                    if j:
                        results[name].append(t)
        rows = [(name, results[name]) for name, _ in rounds]
    finally:
        if crun is not None:
            crun.close()
        if hostns_fd >= 0:
            os.close(hostns_fd)  # the bridge, what is left of the veths and the table go with it
        shutil.rmtree(tmp, ignore_errors=True)

    base = statistics.median(rows[0][1])
    print(f"{'what':28} {'median ms':>10} {'p90 ms':>8} {'x pycontainer':>14}")
    medians = {}
    for name, ts in rows:
        med = statistics.median(ts)
        p90 = sorted(ts)[int(len(ts) * 0.9)]
        medians[name] = med * 1000
        print(f"{name:28} {med * 1000:10.3f} {p90 * 1000:8.3f} {med / base:14.2f}")
    cost = medians["pycontainer (netns pool)"] - medians["pycontainer unconfined"]
    print(f"the default confinement (Docker's seccomp profile, capability drop) adds {cost:.3f} ms")
    cost = medians["pycontainer + cgroup"] - medians["pycontainer (netns pool)"]
    print(f"a cgroup in every hierarchy ({layout.mode}) with memory, pids and cpu limits adds {cost:.3f} ms")
    for row in ("pycontainer + bridge", "pycontainer + bridge + port"):
        cost = medians[row] - medians["pycontainer (netns pool)"]
        print(f"{row[len('pycontainer + ') :]}: set-up and teardown add {cost:.3f} ms")
    if "pycontainer + cgroup2 tree" in medians:
        cost2 = medians["pycontainer + cgroup2 tree"] - medians["pycontainer (netns pool)"]
        print(f"a cgroup2 cgroup (device program, CLONE_INTO_CGROUP, no limits) adds {cost2:.3f} ms")
    if args.json:
        print(json.dumps(medians))
    return 0


if __name__ == "__main__":
    sys.exit(main())
