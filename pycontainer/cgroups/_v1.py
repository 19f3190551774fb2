"""cgroup v1, and hybrid (v1 controllers plus the cgroup2 ``unified`` tree).

Every mounted v1 hierarchy gets a directory for the container, as runc does
(a process is in exactly one cgroup of each hierarchy).  On hybrid hosts the
container also gets a directory in the unified tree, which it is cloned into
(CLONE_INTO_CGROUP); a controller mounted only there (hugetlb on some hosts)
is set through its v2 files.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

from ..config import DeviceRule, Resources
from ..errors import CgroupError
from . import _devices, _v2
from ._base import (
    CPUStats,
    IOStats,
    Manager,
    MemoryStats,
    OOMWatcher,
    PidsStats,
    Stats,
    kill_pids,
    read,
    read_int,
    read_keyed,
    read_pids,
    wait_for,
    write,
)

_UNLIMITED = 0x7FFFFFFFFFFFF000  # what v1 reports for "no limit" (PAGE_COUNTER_MAX pages, rounded)
_TICK_NS = 10**9 // os.sysconf("SC_CLK_TCK")


class V1Manager(Manager):
    """Cgroup v1 (and hybrid: v1 controllers plus the unified tree): a directory per hierarchy."""

    @property
    def mode(self) -> str:
        """``hybrid`` when the container also has a directory in the cgroup2 tree."""
        return "hybrid" if "unified" in self._paths else "v1"

    @property
    def _unified(self) -> str | None:
        return self._paths.get("unified")

    def _dir(self, controller: str) -> str | None:
        return self._paths.get(controller)

    def _need(self, controller: str, field: str) -> str:
        d = self._dir(controller)
        if d is None:
            raise CgroupError(f"{field} needs the {controller} controller, which this host has not mounted")
        return d

    # ---- create / join -----------------------------------------------------

    def _create_dirs(self) -> None:
        """The container's directory in every hierarchy, the unified one last."""
        done: set[str] = set()
        for name, (top, rel) in sorted(self._plan.items(), key=lambda item: item[0] == "unified"):
            path = f"{top}/{rel}"
            if path in done:
                continue
            done.add(path)
            self._mkdirs(top, rel, init=self._cpuset_init if name == "cpuset" else None)
            if name == "unified":  # hand its controllers (hugetlb, on some hosts) down our parents
                for parent in self._our_ancestors(top, rel):
                    _v2.enable_controllers(parent)

    def join_files(self) -> list[str]:
        # Writing "0" to a v1 "tasks" file moves the writing thread without
        # taking the global cgroup_threadgroup_rwsem (the kernel skips it for
        # a single thread moving itself): ~10 us per hierarchy here, against
        # ~1.3 ms for writing a pid to cgroup.procs from the parent.
        return [f"{d}/tasks" for d in self._v1_dirs()]

    def _cpuset_init(self, path: str) -> None:
        _cpuset_init(path, lambda p: p in self._shared or p in self._parents)

    def _v1_dirs(self) -> list[str]:
        out: list[str] = []
        for name, d in self._paths.items():
            if name != "unified" and d not in out:
                out.append(d)
        return out

    def clone_dir(self) -> str | None:
        return self._unified

    def apply(self, pid: int) -> None:
        for d in self._v1_dirs() + ([self._unified] if self._unified else []):
            write(f"{d}/cgroup.procs", str(pid))

    # ---- resources ------------------------------------------------------------

    def set(self, r: Resources, old: Resources | None = None) -> None:
        self._memory(r)
        self._cpu(r)
        if r.cpuset_cpus is not None:
            write(f"{self._need('cpuset', 'cpuset_cpus')}/cpuset.cpus", r.cpuset_cpus)
        if r.cpuset_mems is not None:
            write(f"{self._need('cpuset', 'cpuset_mems')}/cpuset.mems", r.cpuset_mems)
        if r.pids_limit is not None:
            write(f"{self._need('pids', 'pids_limit')}/pids.max", "max" if r.pids_limit <= 0 else str(r.pids_limit))
        self._blkio(r)
        self._hugetlb(r)
        if old is None or old.device_rules() != r.device_rules():
            self._devices(r.device_rules(), None if old is None else old.device_rules())

    def _memory(self, r: Resources) -> None:
        wanted = (r.memory, r.memory_reservation, r.memory_swap, r.memory_swappiness)
        if all(x is None for x in wanted) and not r.oom_kill_disable:
            return
        d = self._need("memory", "memory")
        if r.memory_reservation is not None:
            write(f"{d}/memory.soft_limit_in_bytes", str(r.memory_reservation))
        memsw = f"{d}/memory.memsw.limit_in_bytes"
        if r.memory_swap is not None and not os.path.exists(memsw):
            warnings.warn("memory_swap ignored: this kernel does not account swap (swapaccount=0)", stacklevel=3)
        if r.memory is not None:
            if r.memory_swap is not None and os.path.exists(memsw):
                # The kernel keeps memory <= memsw at every step: raise memsw
                # first when growing, lower memory first when shrinking.
                current = read_int(memsw) or 0
                order = [(memsw, r.memory_swap), (f"{d}/memory.limit_in_bytes", r.memory)]
                if r.memory_swap != -1 and r.memory_swap < current:
                    order.reverse()
                for path, value in order:
                    write(path, str(value))
            else:
                write(f"{d}/memory.limit_in_bytes", str(r.memory))
        if r.memory_swappiness is not None:
            if os.path.exists(f"{d}/memory.swappiness"):
                write(f"{d}/memory.swappiness", str(r.memory_swappiness))
            else:
                warnings.warn("memory_swappiness ignored: not supported here", stacklevel=3)
        if r.oom_kill_disable:
            write(f"{d}/memory.oom_control", "1")

    def _cpu(self, r: Resources) -> None:
        quota, period = r.quota_period()
        if r.cpu_shares is not None:
            write(f"{self._need('cpu', 'cpu_shares')}/cpu.shares", str(r.cpu_shares))
        if period is not None:
            write(f"{self._need('cpu', 'cpu_period')}/cpu.cfs_period_us", str(period))
        if quota is not None:
            write(f"{self._need('cpu', 'cpu_quota')}/cpu.cfs_quota_us", str(quota))
        if r.cpu_rt_period is not None:
            write(f"{self._need('cpu', 'cpu_rt_period')}/cpu.rt_period_us", str(r.cpu_rt_period))
        if r.cpu_rt_runtime is not None:
            write(f"{self._need('cpu', 'cpu_rt_runtime')}/cpu.rt_runtime_us", str(r.cpu_rt_runtime))

    def _blkio(self, r: Resources) -> None:
        throttles = (
            ("blkio.throttle.read_bps_device", r.blkio_read_bps),
            ("blkio.throttle.write_bps_device", r.blkio_write_bps),
            ("blkio.throttle.read_iops_device", r.blkio_read_iops),
            ("blkio.throttle.write_iops_device", r.blkio_write_iops),
        )
        if r.blkio_weight is None and not r.blkio_weight_device and not any(t for _, t in throttles):
            return
        d = self._need("blkio", "blkio")
        # blkio.weight is CFQ's; with blk-mq the BFQ scheduler's file is blkio.bfq.weight.
        weight_file = next((f for f in ("blkio.weight", "blkio.bfq.weight") if os.path.exists(f"{d}/{f}")), None)
        if r.blkio_weight is not None or r.blkio_weight_device:
            if weight_file is None:
                raise CgroupError(
                    "blkio_weight: no I/O scheduler here supports weights (blkio.weight, blkio.bfq.weight)"
                )
            if r.blkio_weight is not None:
                write(f"{d}/{weight_file}", str(r.blkio_weight))
            for w in r.blkio_weight_device:
                write(f"{d}/{weight_file}_device", f"{w.major}:{w.minor} {w.weight}")
        for name, devices in throttles:
            for t in devices:
                write(f"{d}/{name}", f"{t.major}:{t.minor} {t.rate}")

    def _hugetlb(self, r: Resources) -> None:
        for h in r.hugepage_limits:
            d = self._dir("hugetlb")
            if d is not None:
                write(f"{d}/hugetlb.{h.page_size}.limit_in_bytes", str(h.limit))
            elif self._unified and "hugetlb" in self.layout.controllers:
                if not os.path.exists(f"{self._unified}/hugetlb.{h.page_size}.max"):
                    raise CgroupError(
                        f"hugepage_limits: hugetlb is on the cgroup2 tree here, but {self._unified} does not have it: "
                        f"{self.layout.unified} must delegate it (+hugetlb in its cgroup.subtree_control)"
                    )
                write(f"{self._unified}/hugetlb.{h.page_size}.max", str(h.limit))
            else:
                raise CgroupError("hugepage_limits need the hugetlb controller, which this host has not mounted")

    def _devices(self, rules: tuple[DeviceRule, ...], old: tuple[DeviceRule, ...] | None = None) -> None:
        d = self._dir("devices")
        if not rules and old is None and os.geteuid() != 0:
            return  # a rootless container asks for none (and may write none): the parent's stand
        if d is None:
            if rules:
                warnings.warn("device rules not enforced: no devices controller is mounted", stacklevel=3)
            return
        _devices.check_v1_expressible(tuple(rules))
        # One open fd per file, one write per rule (each write is one rule to the kernel).
        fds: dict[str, int] = {}
        try:
            writes = _devices.v1_writes(rules) if old is None else _devices.v1_update_writes(tuple(old), tuple(rules))
            for file, line in writes:
                if file not in fds:
                    try:
                        fds[file] = os.open(f"{d}/{file}", os.O_WRONLY | os.O_CLOEXEC)
                    except OSError as e:
                        raise CgroupError(f"cannot open {d}/{file}: {os.strerror(e.errno or 0)}") from None
                try:
                    os.write(fds[file], line.encode())
                except OSError as e:
                    raise CgroupError(f"writing {line!r} to {d}/{file}: {os.strerror(e.errno or 0)}") from None
        finally:
            for fd in fds.values():
                os.close(fd)

    # ---- live operations -----------------------------------------------------

    def freeze(self) -> None:
        d = self._need("freezer", "pause")
        write(f"{d}/freezer.state", "FROZEN")
        wait_for(self.frozen, f"cgroup {d} to freeze")

    def thaw(self) -> None:
        d = self._need("freezer", "resume")
        write(f"{d}/freezer.state", "THAWED")
        wait_for(lambda: read(f"{d}/freezer.state").strip() == "THAWED", f"cgroup {d} to thaw")

    def frozen(self) -> bool:
        d = self._dir("freezer")
        if d is None:
            return False
        try:
            return read(f"{d}/freezer.state").strip() == "FROZEN"
        except CgroupError:
            return False

    def _procs_dir(self) -> str:
        for name in ("pids", "freezer", "memory", "cpu", "devices"):
            if name in self._paths:
                return self._paths[name]
        return self._v1_dirs()[0]

    def pids(self) -> list[int]:
        return read_pids(f"{self._procs_dir()}/cgroup.procs")

    def stats(self) -> Stats:
        mem = self._dir("memory")
        memory = MemoryStats()
        if mem:
            limit = read_int(f"{mem}/memory.limit_in_bytes")
            usage = read_int(f"{mem}/memory.usage_in_bytes")
            memsw = read_int(f"{mem}/memory.memsw.usage_in_bytes")
            memory = MemoryStats(
                usage=usage,
                peak=read_int(f"{mem}/memory.max_usage_in_bytes"),
                limit=None if limit is None or limit >= _UNLIMITED else limit,
                failcnt=read_int(f"{mem}/memory.failcnt"),
                swap_usage=None if memsw is None or usage is None else max(0, memsw - usage),
            )
        cpu = CPUStats()
        acct = self._dir("cpuacct")
        throttle = read_keyed(f"{self._dir('cpu')}/cpu.stat") if self._dir("cpu") else {}
        if acct:
            ticks = read_keyed(f"{acct}/cpuacct.stat")
            cpu = CPUStats(
                total_ns=read_int(f"{acct}/cpuacct.usage"),
                user_ns=ticks["user"] * _TICK_NS if "user" in ticks else None,
                system_ns=ticks["system"] * _TICK_NS if "system" in ticks else None,
            )
        if throttle:
            cpu = CPUStats(
                total_ns=cpu.total_ns,
                user_ns=cpu.user_ns,
                system_ns=cpu.system_ns,
                periods=throttle.get("nr_periods"),
                throttled_periods=throttle.get("nr_throttled"),
                throttled_ns=throttle.get("throttled_time"),
            )
        pids = PidsStats()
        if self._dir("pids"):
            p = self._dir("pids")
            pids = PidsStats(current=read_int(f"{p}/pids.current"), limit=read_int(f"{p}/pids.max"))
        io = IOStats()
        if self._dir("blkio"):
            rd = wr = 0
            try:
                text = read(f"{self._dir('blkio')}/blkio.throttle.io_service_bytes")
            except CgroupError:
                text = ""
            for line in text.splitlines():
                parts = line.split()
                if len(parts) == 3 and parts[1] == "Read":
                    rd += int(parts[2])
                elif len(parts) == 3 and parts[1] == "Write":
                    wr += int(parts[2])
            io = IOStats(read_bytes=rd, write_bytes=wr)
        return Stats(memory=memory, cpu=cpu, pids=pids, io=io, oom_kills=self.oom_kills())

    def oom_kills(self) -> int:
        mem = self._dir("memory")
        return read_keyed(f"{mem}/memory.oom_control").get("oom_kill", 0) if mem else 0

    def oom_watcher(self) -> OOMWatcher:
        return OOMWatcher(self, self._need("memory", "an OOM watcher"), v2=False)

    def kill_all(self) -> None:
        """SIGKILL everything inside: frozen first so nothing forks past the
        kill, then thawed so the signals land; returns once the cgroup is empty."""
        if not self.pids():
            return
        freezer = self._dir("freezer")
        if freezer and os.path.isdir(freezer):
            try:
                self.freeze()
            except CgroupError:
                pass  # kill anyway; the loop below mops up
            kill_pids(self.pids())
            write(f"{freezer}/freezer.state", "THAWED")

        def empty() -> bool:
            left = self.pids()
            kill_pids(left)
            return not left

        wait_for(empty, f"the processes in {self._procs_dir()} to die")


# cpuset directories known to pass their CPUs and nodes on to new children
# (cgroup.clone_children=1): their children need no copying.
_cpuset_ready: set[str] = set()


def _cpuset_init(path: str, ours: Any = lambda p: False) -> None:
    """A new v1 cpuset is empty and takes no tasks: copy the parent's CPUs and
    nodes, and set clone_children so that what we make below it inherits
    them from the kernel at mkdir.  A parent that is ours but still empty
    (its maker, perhaps another process, has not got to it yet) is waited
    for, then initialised; one that is not ours is never written to."""
    _cpuset_ready.discard(path)  # made anew: what we knew of an earlier one is void
    parent = os.path.dirname(path)
    if parent in _cpuset_ready:
        try:
            if read(f"{path}/cpuset.cpus").strip():
                return  # inherited, as expected
        except CgroupError:
            return
        _cpuset_ready.discard(parent)  # re-made by someone without clone_children
    for name in ("cpuset.cpus", "cpuset.mems"):
        try:
            if read(f"{path}/{name}").strip():
                continue
        except CgroupError:
            continue
        value = read(f"{parent}/{name}").strip()
        if not value and ours(parent):
            try:
                wait_for(lambda f=f"{parent}/{name}": bool(read(f).strip()), f"{parent}/{name}", timeout=0.5)
            except CgroupError:
                _cpuset_init(parent, ours)
            value = read(f"{parent}/{name}").strip()
        if not value:
            raise CgroupError(f"cannot place a cpuset under {parent}: its {name} is empty")
        write(f"{path}/{name}", value)
    try:
        write(f"{path}/cgroup.clone_children", "1")
        if read(f"{parent}/cgroup.clone_children").strip() == "1":
            _cpuset_ready.add(parent)
    except CgroupError:
        pass  # an old kernel, or a fake tree: copying does the job
