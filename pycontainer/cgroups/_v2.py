"""cgroup v2: one tree, controllers enabled down through cgroup.subtree_control,
the child cloned straight into its cgroup (CLONE_INTO_CGROUP), devices
guarded by an eBPF program."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable

from ..config import Resources
from ..errors import CgroupError
from . import _devices
from ._base import (
    CPUStats,
    IOStats,
    Manager,
    MemoryStats,
    OOMWatcher,
    PidsStats,
    Stats,
    blkio_to_io_weight,
    kill_pids,
    read,
    read_int,
    read_keyed,
    read_pids,
    shares_to_weight,
    swap_to_v2,
    wait_for,
    write,
)


def enable_controllers(path: str) -> None:
    """Enable, in ``path``'s cgroup.subtree_control, every controller ``path`` has."""
    try:
        available = read(f"{path}/cgroup.controllers").split()
        enabled = set(read(f"{path}/cgroup.subtree_control").split())
    except CgroupError:
        return
    missing = [c for c in available if c not in enabled]
    if missing:
        write(f"{path}/cgroup.subtree_control", " ".join(f"+{c}" for c in missing))


class V2Manager(Manager):
    """Cgroup v2: one directory in the unified tree, devices by an eBPF program."""

    mode = "v2"

    @property
    def dir(self) -> str:
        return self._paths["unified"]

    def _f(self, name: str) -> str:
        return f"{self.dir}/{name}"

    # ---- create / join -----------------------------------------------------

    def _create_dirs(self) -> None:
        """Make the container's cgroup, handing every available controller
        down through the directories above it that are ours (a v2 cgroup
        only has the controllers its parent enables).  Directories we did
        not make (the creator's own cgroup's parent, the root) are never
        written to: what they do not delegate, the container cannot limit."""
        top, rel = self._plan["unified"]
        self._mkdirs(top, rel)
        for path in self._our_ancestors(top, rel):
            enable_controllers(path)

    def join_files(self) -> list[str]:
        return [self._f("cgroup.procs")]

    def clone_dir(self) -> str | None:
        return self.dir

    def apply(self, pid: int) -> None:
        write(self._f("cgroup.procs"), str(pid))

    # ---- resources ------------------------------------------------------------

    def _has(self, controller: str, field: str) -> None:
        try:
            ok = controller in read(self._f("cgroup.controllers")).split()
        except CgroupError:
            ok = False
        if not ok:
            raise CgroupError(
                f"{field} needs the {controller} controller, which {self.dir} does not have: the cgroup above "
                f"pycontainer's must delegate it (+{controller} in its cgroup.subtree_control, as systemd's Delegate=)"
            )

    def set(self, r: Resources, old: Resources | None = None) -> None:
        if r.cpu_rt_runtime is not None or r.cpu_rt_period is not None:
            raise CgroupError("cpu_rt_runtime/cpu_rt_period: cgroup v2 has no realtime CPU limits")
        self._memory(r)
        self._cpu(r)
        for field, value, name in (
            ("cpuset_cpus", r.cpuset_cpus, "cpuset.cpus"),
            ("cpuset_mems", r.cpuset_mems, "cpuset.mems"),
        ):
            if value is not None:
                self._has("cpuset", field)
                write(self._f(name), value)
        if r.pids_limit is not None:
            self._has("pids", "pids_limit")
            write(self._f("pids.max"), "max" if r.pids_limit <= 0 else str(r.pids_limit))
        self._io(r)
        for h in r.hugepage_limits:
            self._has("hugetlb", "hugepage_limits")
            write(self._f(f"hugetlb.{h.page_size}.max"), str(h.limit))
        if old is None and r.device_rules():
            _devices.attach(self.dir, r.device_rules(), fresh=True)
        elif old is not None and old.device_rules() != r.device_rules():
            _devices.attach(self.dir, r.device_rules())

    def _memory(self, r: Resources) -> None:
        if r.memory is None and r.memory_reservation is None and r.memory_swap is None:
            if r.memory_swappiness is not None or r.oom_kill_disable:
                warnings.warn("memory_swappiness and oom_kill_disable have no cgroup v2 equivalent", stacklevel=3)
            return
        self._has("memory", "memory")
        swap = swap_to_v2(r.memory, r.memory_swap)
        if r.memory is not None:
            write(self._f("memory.max"), "max" if r.memory == -1 else str(r.memory))
        if r.memory_reservation is not None:
            write(self._f("memory.low"), "max" if r.memory_reservation == -1 else str(r.memory_reservation))
        if swap is not None:
            if os.path.exists(self._f("memory.swap.max")):
                write(self._f("memory.swap.max"), swap)
            else:
                warnings.warn("memory_swap ignored: this kernel does not account swap", stacklevel=3)
        if r.memory_swappiness is not None or r.oom_kill_disable:
            warnings.warn("memory_swappiness and oom_kill_disable have no cgroup v2 equivalent", stacklevel=3)

    def _cpu(self, r: Resources) -> None:
        quota, period = r.quota_period()
        if r.cpu_shares is not None:
            self._has("cpu", "cpu_shares")
            write(self._f("cpu.weight"), str(shares_to_weight(r.cpu_shares)))
        if quota is not None or period is not None:
            self._has("cpu", "cpu_quota")
            cur_quota, _, cur_period = read(self._f("cpu.max")).strip().partition(" ")
            q = cur_quota if quota is None else ("max" if quota == -1 else str(quota))
            p = (cur_period or "100000") if period is None else str(period)
            write(self._f("cpu.max"), f"{q} {p}")

    def _io(self, r: Resources) -> None:
        limits: dict[tuple[int, int], list[str]] = {}
        for key, devices in (
            ("rbps", r.blkio_read_bps),
            ("wbps", r.blkio_write_bps),
            ("riops", r.blkio_read_iops),
            ("wiops", r.blkio_write_iops),
        ):
            for t in devices:
                limits.setdefault((t.major, t.minor), []).append(f"{key}={t.rate}")
        if r.blkio_weight is None and not r.blkio_weight_device and not limits:
            return
        self._has("io", "blkio")
        # io.weight (1..10000) takes runc's conversion; BFQ's io.bfq.weight
        # (1..1000) takes the blkio weight as it is, as runc writes it.
        conv: Callable[[int], int]
        if os.path.exists(self._f("io.weight")):
            weight, conv = "io.weight", blkio_to_io_weight
        else:
            weight, conv = "io.bfq.weight", int
        if r.blkio_weight is not None:
            write(self._f(weight), f"default {conv(r.blkio_weight)}")
        for w in r.blkio_weight_device:
            write(self._f(weight), f"{w.major}:{w.minor} {conv(w.weight)}")
        for (major, minor), parts in limits.items():
            write(self._f("io.max"), f"{major}:{minor} {' '.join(parts)}")

    # ---- live operations -----------------------------------------------------

    def _events(self) -> dict[str, int]:
        return read_keyed(self._f("cgroup.events"))

    def freeze(self) -> None:
        write(self._f("cgroup.freeze"), "1")
        wait_for(self.frozen, f"cgroup {self.dir} to freeze")

    def thaw(self) -> None:
        write(self._f("cgroup.freeze"), "0")
        wait_for(lambda: self._events().get("frozen") == 0, f"cgroup {self.dir} to thaw")

    def frozen(self) -> bool:
        return self._events().get("frozen") == 1

    def pids(self) -> list[int]:
        return read_pids(self._f("cgroup.procs"))

    def stats(self) -> Stats:
        d = self.dir
        events = read_keyed(f"{d}/memory.events")
        memory = MemoryStats(
            usage=read_int(f"{d}/memory.current"),
            peak=read_int(f"{d}/memory.peak"),
            limit=read_int(f"{d}/memory.max"),
            failcnt=events.get("max"),
            swap_usage=read_int(f"{d}/memory.swap.current"),
        )
        c = read_keyed(f"{d}/cpu.stat")
        cpu = CPUStats(
            total_ns=c["usage_usec"] * 1000 if "usage_usec" in c else None,
            user_ns=c["user_usec"] * 1000 if "user_usec" in c else None,
            system_ns=c["system_usec"] * 1000 if "system_usec" in c else None,
            periods=c.get("nr_periods"),
            throttled_periods=c.get("nr_throttled"),
            throttled_ns=c["throttled_usec"] * 1000 if "throttled_usec" in c else None,
        )
        pids = PidsStats(current=read_int(f"{d}/pids.current"), limit=read_int(f"{d}/pids.max"))
        io = IOStats()
        if os.path.exists(f"{d}/io.stat"):
            rd = wr = 0
            for line in read(f"{d}/io.stat").splitlines():
                for field in line.split()[1:]:
                    key, _, value = field.partition("=")
                    if key == "rbytes":
                        rd += int(value)
                    elif key == "wbytes":
                        wr += int(value)
            io = IOStats(read_bytes=rd, write_bytes=wr)
        return Stats(memory=memory, cpu=cpu, pids=pids, io=io, oom_kills=events.get("oom_kill", 0))

    def oom_kills(self) -> int:
        return read_keyed(self._f("memory.events")).get("oom_kill", 0)

    def oom_watcher(self) -> OOMWatcher:
        self._has("memory", "an OOM watcher")
        return OOMWatcher(self, self.dir, v2=True)

    def kill_all(self) -> None:
        """cgroup.kill where the kernel has it (5.14+: atomic, no fork race);
        else freeze, kill, thaw.  Returns once the cgroup is empty."""
        if not self.pids():
            return
        if os.path.exists(self._f("cgroup.kill")):
            write(self._f("cgroup.kill"), "1")
        else:
            try:
                self.freeze()
            except CgroupError:
                pass
            kill_pids(self.pids())
            write(self._f("cgroup.freeze"), "0")

        def empty() -> bool:
            if self._events().get("populated") == 0:
                return True
            left = self.pids()
            kill_pids(left)
            return not left

        wait_for(empty, f"the processes in {self.dir} to die")
