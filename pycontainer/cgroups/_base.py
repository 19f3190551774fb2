"""What the v1 and v2 managers share: file access with errors that name the
file, the layout of the hierarchies, stats records and value conversions."""

from __future__ import annotations

import errno
import os
import signal
import time
from typing import Any

import attrs

from ..config import Resources
from ..errors import CgroupError

# ---- files -------------------------------------------------------------------


def write(path: str, text: str) -> None:
    """Write one value to a cgroup file (no O_CREAT: a missing file is an
    error; O_TRUNC, which cgroupfs ignores, for fake trees made of plain files)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    except OSError as e:
        raise CgroupError(f"cannot open {path}: {os.strerror(e.errno or 0)}") from None
    try:
        os.write(fd, text.encode())
    except OSError as e:
        raise CgroupError(f"writing {text!r} to {path}: {os.strerror(e.errno or 0)}") from None
    finally:
        os.close(fd)


def read(path: str) -> str:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read()
    except OSError as e:
        raise CgroupError(f"cannot read {path}: {os.strerror(e.errno or 0)}") from None


def read_int(path: str) -> int | None:
    """An integer file; None for "max" or a missing file."""
    try:
        text = read(path).strip()
    except CgroupError:
        return None
    if text == "max":
        return None
    try:
        return int(text)
    except ValueError:
        return None


def read_keyed(path: str) -> dict[str, int]:
    """A flat keyed file ("key value" per line), such as memory.events or cpu.stat."""
    out: dict[str, int] = {}
    try:
        text = read(path)
    except CgroupError:
        return out
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        try:
            out[key] = int(value)
        except ValueError:
            continue
    return out


def read_pids(path: str) -> list[int]:
    try:
        return [int(x) for x in read(path).split()]
    except CgroupError:
        return []


def rmdir(path: str, timeout: float = 5.0) -> None:
    """rmdir a cgroup, waiting out EBUSY while its last processes finish exiting."""
    deadline = time.monotonic() + timeout
    delay = 0.0005
    while True:
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno != errno.EBUSY or time.monotonic() > deadline:
                raise CgroupError(f"cannot remove cgroup {path}: {os.strerror(e.errno or 0)}") from None
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def wait_for(check: Any, what: str, timeout: float = 5.0) -> None:
    """Poll ``check()`` until it is true (fast at first, then backing off)."""
    deadline = time.monotonic() + timeout
    delay = 0.0002
    while not check():
        if time.monotonic() > deadline:
            raise CgroupError(f"timed out waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.02)


def kill_pids(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# ---- layout ------------------------------------------------------------------

V1_CONTROLLERS = frozenset(
    {
        "cpuset", "cpu", "cpuacct", "blkio", "memory", "devices", "freezer", "net_cls",
        "perf_event", "net_prio", "hugetlb", "pids", "rdma", "misc",
    }
)  # fmt: skip


@attrs.frozen
class Layout:
    """The host's cgroup hierarchies.

    ``mode`` is ``v1``, ``hybrid`` (v1 controllers plus a controller-less or
    nearly so cgroup2 at ``unified``) or ``v2``.  ``v1`` maps each v1
    controller (and ``name=...`` hierarchy) to its mount directory; several
    names share a directory when co-mounted (``cpu,cpuacct``).
    ``controllers`` are the cgroup2 controllers available at the v2 root."""

    mode: str
    root: str
    v1: dict[str, str] = attrs.field(factory=dict)
    unified: str | None = None
    controllers: frozenset[str] = frozenset()

    def hierarchies(self) -> dict[str, str]:
        """Each v1 mount directory once, keyed by its first name."""
        seen: dict[str, str] = {}
        for name, mount in sorted(self.v1.items()):
            if mount not in seen.values():
                seen[name] = mount
        return seen


# ---- stats -------------------------------------------------------------------


@attrs.frozen
class MemoryStats:
    usage: int | None = None  # bytes in use now
    peak: int | None = None  # the most ever used
    limit: int | None = None  # None: unlimited
    failcnt: int | None = None  # times the limit was hit
    swap_usage: int | None = None


@attrs.frozen
class CPUStats:
    total_ns: int | None = None
    user_ns: int | None = None
    system_ns: int | None = None
    periods: int | None = None
    throttled_periods: int | None = None
    throttled_ns: int | None = None


@attrs.frozen
class PidsStats:
    current: int | None = None
    limit: int | None = None  # None: unlimited


@attrs.frozen
class IOStats:
    read_bytes: int | None = None
    write_bytes: int | None = None


@attrs.frozen
class Stats:
    """A container's resource use; a field is None where the host does not count it."""

    memory: MemoryStats = MemoryStats()
    cpu: CPUStats = CPUStats()
    pids: PidsStats = PidsStats()
    io: IOStats = IOStats()
    oom_kills: int = 0


# ---- conversions (as runc and crun do them) ------------------------------------


def shares_to_weight(shares: int) -> int:
    """cgroup v1 cpu.shares (2..262144) -> v2 cpu.weight (1..10000), runc's formula."""
    return 1 + ((shares - 2) * 9999) // 262142


def weight_to_shares(weight: int) -> int:
    """The inverse: v2 cpu.weight -> v1 cpu.shares."""
    return 2 + ((weight - 1) * 262142) // 9999


def blkio_to_io_weight(weight: int) -> int:
    """v1 blkio.weight (10..1000) -> v2 io.weight (1..10000), runc's formula."""
    return 1 + (weight - 10) * 9999 // 990


def swap_to_v2(memory: int | None, memory_swap: int | None) -> str | None:
    """OCI's memory+swap total -> v2 memory.swap.max (swap alone), as runc does."""
    if memory_swap is None:
        return None
    if memory_swap == -1:
        return "max"
    if memory is None or memory == -1:
        raise CgroupError("memory_swap needs a memory limit to be turned into cgroup v2's memory.swap.max")
    return str(memory_swap - memory)


def limit_text(value: int) -> str:
    """-1 (and 0 for pids) -> "max"."""
    return "max" if value in (-1,) else str(value)


class Manager:
    """One container's cgroup, in every hierarchy the host has.

    ``create`` makes the directories and applies the resources; the child
    then joins them itself before anything else (see ``join_files`` and
    ``clone_dir``), or ``apply(pid)`` moves a process in from outside.
    ``destroy`` kills whatever is left inside and removes every directory
    the manager made."""

    mode = ""

    def __init__(
        self,
        layout: Layout,
        paths: dict[str, str],
        made: list[str] | None = None,
        parents: list[str] | None = None,
        plan: dict[str, tuple[str, str]] | None = None,
    ) -> None:
        self.layout = layout
        self._paths = dict(paths)
        # name -> (an existing directory, the path below it to make): what create_dirs makes
        self._plan = dict(plan or {})
        self._made: list[str] = list(made or [])  # the container's directories we created
        self._parents: list[str] = list(parents or [])  # directories above them we created

    # -- identity
    def paths(self) -> dict[str, str]:
        """Hierarchy name -> the container's directory in it."""
        return dict(self._paths)

    def made(self) -> list[str]:
        return list(self._made)

    def dirs(self) -> list[str]:
        out: list[str] = []
        for d in self._paths.values():
            if d not in out:
                out.append(d)
        return out

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "paths": self._paths, "made": self._made, "parents": self._parents}

    # -- the interface
    def create_dirs(self) -> None:
        """Make the container's directories; on failure remove what was made."""
        try:
            self._create_dirs()
        except BaseException:
            self.destroy()
            raise

    def _create_dirs(self) -> None:
        raise NotImplementedError

    def create(self, resources: Resources) -> None:
        """Apply the resources to the new directories."""
        self.set(resources)

    def join_files(self) -> list[str]:
        """Files the child writes "0" to, first thing, to join the cgroup."""
        raise NotImplementedError

    def clone_dir(self) -> str | None:
        """The cgroup2 directory to clone straight into (CLONE_INTO_CGROUP), if any."""
        raise NotImplementedError

    def apply(self, pid: int) -> None:
        raise NotImplementedError

    def set(self, resources: Resources, old: Resources | None = None) -> None:
        raise NotImplementedError

    def update(self, resources: Resources, old: Resources | None = None) -> None:
        """Change the limits of a running container; device rules are
        rewritten only when they differ from ``old``."""
        self.set(resources, old=old if old is not None else resources)

    def freeze(self) -> None:
        raise NotImplementedError

    def thaw(self) -> None:
        raise NotImplementedError

    def frozen(self) -> bool:
        raise NotImplementedError

    def pids(self) -> list[int]:
        raise NotImplementedError

    def stats(self) -> Stats:
        raise NotImplementedError

    def oom_kills(self) -> int:
        raise NotImplementedError

    def kill_all(self) -> None:
        raise NotImplementedError

    def destroy(self) -> None:
        """Kill what is left, then remove every directory this manager made
        (deepest first).  Idempotent."""
        if any(os.path.isdir(d) for d in self.dirs()):
            self.kill_all()
        errors = []
        for d in sorted(self._made, key=lambda p: -p.count("/")):
            try:
                rmdir(d)
            except CgroupError as e:
                errors.append(str(e))
        self._made = []
        # Parents made for us (pycontainer/) go too, unless another container
        # uses them (rmdir fails with EBUSY then, and that is fine).
        for d in sorted(self._parents, key=lambda p: -p.count("/")):
            try:
                os.rmdir(d)
            except OSError:
                pass
        if errors:
            raise CgroupError("; ".join(errors))

    def _mkdirs(self, top: str, rel: str, init: Any = None) -> str:
        """Make ``top/rel`` one component at a time, recording what we made;
        ``init(path)`` runs on each new directory before the next one is made.
        The last component must not exist yet: a manager never adopts (and so
        never removes) a cgroup someone else made."""
        parts = [p for p in rel.split("/") if p]
        for attempt in range(5):
            path = top
            try:
                for i, part in enumerate(parts):
                    path = f"{path}/{part}"
                    last = i == len(parts) - 1
                    try:
                        self._mkdir(path)
                    except FileExistsError:
                        if last:
                            raise CgroupError(f"cgroup {path} already exists") from None
                        if init is not None:
                            init(path)  # its maker may not have initialised it yet
                        continue
                    if last:
                        self._made.append(path)
                    elif path not in self._parents:
                        self._parents.append(path)
                    if init is not None:
                        init(path)
                return path
            except FileNotFoundError:
                # Another container's delete removed a shared parent (pycontainer/)
                # between our steps: go again.
                if attempt == 4 or not os.path.isdir(top):
                    raise CgroupError(f"cannot create cgroup {path}: its parent vanished") from None
            except OSError as e:
                raise CgroupError(f"cannot create cgroup {path}: {os.strerror(e.errno or 0)}") from None
        raise AssertionError("unreachable")

    @staticmethod
    def _mkdir(path: str) -> None:
        os.mkdir(path, 0o755)

    def exists(self) -> bool:
        return any(os.path.isdir(d) for d in self.dirs())
