"""What the v1 and v2 managers share: file access with errors that name the
file, the layout of the hierarchies, stats records and value conversions."""

from __future__ import annotations

import atexit
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


# ---- the shared parents ----------------------------------------------------------

# Shared parents (pycontainer/) this process made.  They stay while it runs
# (making and removing them with every container doubled the cost of a
# cgroup) and go when it exits, if nothing else uses them then.
_shared_used: set[str] = set()


@atexit.register
def _remove_shared_parents() -> None:
    for path in sorted(_shared_used, key=lambda p: -p.count("/")):
        try:
            os.rmdir(path)
        except OSError:
            pass  # in use by another container, or gone already


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
    """Memory in bytes: ``usage``, ``peak``, ``limit`` (None: unlimited), ``swap_usage``; ``failcnt``: times the limit was hit."""

    usage: int | None = None  # bytes in use now
    peak: int | None = None  # the most ever used
    limit: int | None = None  # None: unlimited
    failcnt: int | None = None  # times the limit was hit
    swap_usage: int | None = None


@attrs.frozen
class CPUStats:
    """CPU time in nanoseconds (total, user, system) and throttling (periods, throttled periods and time)."""

    total_ns: int | None = None
    user_ns: int | None = None
    system_ns: int | None = None
    periods: int | None = None
    throttled_periods: int | None = None
    throttled_ns: int | None = None


@attrs.frozen
class PidsStats:
    """The number of tasks (``current``) and the ``limit`` (None: none)."""

    current: int | None = None
    limit: int | None = None  # None: unlimited


@attrs.frozen
class IOStats:
    """Bytes read and written by the cgroup's block I/O."""

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


class Manager:
    """One container's cgroup, in every hierarchy the host has.

    ``create`` makes the directories and applies the resources; the child
    then joins them itself before anything else (see ``join_files`` and
    ``clone_dir``), or ``apply(pid)`` moves a process in from outside.
    ``destroy`` kills whatever is left inside and removes every directory
    the manager made."""

    @property
    def mode(self) -> str:
        """``v1``, ``hybrid`` or ``v2``, as :class:`Layout`'s (each subclass says)."""
        return ""

    def __init__(
        self,
        layout: Layout,
        paths: dict[str, str],
        made: list[str] | None = None,
        parents: list[str] | None = None,
        plan: dict[str, tuple[str, str]] | None = None,
        shared: list[str] | None = None,
    ) -> None:
        self.layout = layout
        self._paths = dict(paths)
        # name -> (an existing directory, the path below it to make): what create_dirs makes
        self._plan = dict(plan or {})
        self._made: list[str] = list(made or [])  # the container's directories we created
        self._parents: list[str] = list(parents or [])  # directories above them we created
        # Parents every container shares (pycontainer/): made when missing, left
        # while this process runs, tried at its exit (see _remove_shared_parents).
        self._shared = set(shared or ())

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
        return {
            "mode": self.mode,
            "paths": self._paths,
            "made": self._made,
            "parents": self._parents,
            "shared": sorted(self._shared),
        }

    # -- the interface
    def create_dirs(self) -> None:
        """Make the container's directories; on failure remove what was made
        (only that: nothing has joined them yet, and a directory that was
        there already is someone else's)."""
        try:
            self._create_dirs()
        except BaseException:
            self._remove_made(empty=True, kill=False)
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

    def oom_watcher(self) -> OOMWatcher:
        """A watcher of this cgroup's OOM events (see OOMWatcher)."""
        raise NotImplementedError

    def kill_all(self) -> None:
        raise NotImplementedError

    def destroy(self, empty: bool = False) -> None:
        """Kill what is left, then remove every directory this manager made
        (deepest first).  ``empty``: the caller knows nothing is left (the
        init of a pid namespace was reaped), so no scan comes first; should a
        directory still be busy, the processes in it are killed after all.
        A directory that cannot be removed stays on the list (a retry tries
        it again) and the error says which.  Idempotent."""
        if not empty and self.exists():
            self.kill_all()
        self._remove_made(empty=empty, kill=True)

    def _remove_made(self, empty: bool, kill: bool) -> None:
        errors = []
        left = []
        for d in sorted(self._made, key=lambda p: -p.count("/")):
            try:
                rmdir(d, timeout=0.2 if empty and kill else 5.0)
            except CgroupError:
                try:
                    if not (empty and kill):
                        raise
                    self.kill_all()
                    rmdir(d)
                except CgroupError as e:
                    errors.append(str(e))
                    left.append(d)
        self._made = left
        if errors:
            raise CgroupError("; ".join(errors))
        # Parents made for this container alone (a custom cgroups_path) go too,
        # unless another container uses them (rmdir fails with EBUSY then).
        # So do the shared parents, unless this process made them (it keeps
        # them while it runs, see _shared_used): a container that outlived
        # its creator leaves none behind when another process deletes it.
        # (A creator that finds one gone meanwhile makes it again: _mkdirs.)
        gone = [d for d in self._shared if d not in _shared_used]
        for d in sorted([*self._parents, *gone], key=lambda p: -p.count("/")):
            try:
                os.rmdir(d)
            except OSError:
                pass

    def _mkdirs(self, top: str, rel: str, init: Any = None) -> str:
        """Make ``top/rel``, and the directories above it that are missing,
        recording what we made; ``init(path)`` runs on each new directory.
        The last component must not exist yet: a manager never adopts (and so
        never removes) a cgroup someone else made."""
        leaf = f"{top}/{rel.strip('/')}"
        for attempt in range(5):
            try:
                self._mkdir(leaf)  # the common case: the parents are there
            except FileExistsError:
                raise CgroupError(f"cgroup {leaf} already exists") from None
            except FileNotFoundError:
                if attempt == 4 or not os.path.isdir(top):
                    raise CgroupError(f"cannot create cgroup {leaf}: {top} does not exist") from None
                self._mkparents(top, rel, init)
                continue  # (another container's delete may remove a parent we found: go again)
            except OSError as e:
                raise CgroupError(f"cannot create cgroup {leaf}: {os.strerror(e.errno or 0)}") from None
            self._made.append(leaf)
            if init is not None:
                init(leaf)
            return leaf
        raise AssertionError("unreachable")

    def _mkparents(self, top: str, rel: str, init: Any) -> None:
        path = top
        for part in [p for p in rel.split("/") if p][:-1]:
            path = f"{path}/{part}"
            try:
                self._mkdir(path)
            except FileExistsError:
                continue
            except FileNotFoundError:
                return  # a parent vanished under us: the caller goes again
            except OSError as e:
                raise CgroupError(f"cannot create cgroup {path}: {os.strerror(e.errno or 0)}") from None
            if path in self._shared:
                _shared_used.add(path)  # ours to try to remove at exit: we made it
            elif path not in self._parents:
                self._parents.append(path)
            if init is not None:
                init(path)

    def _our_ancestors(self, top: str, rel: str) -> list[str]:
        """The directories between ``top`` and the leaf that are ours to
        configure (the shared parent, parents made for us), outermost first."""
        out = []
        path = top
        for part in [p for p in rel.split("/") if p][:-1]:
            path = f"{path}/{part}"
            if path in self._shared or path in self._parents:
                out.append(path)
        return out

    @staticmethod
    def _mkdir(path: str) -> None:
        os.mkdir(path, 0o755)

    def exists(self) -> bool:
        """Is any directory this manager made still there?"""
        return any(os.path.isdir(d) for d in self._made)


class OOMWatcher:
    """Tells when the kernel's OOM killer acts in a cgroup.

    v1: an eventfd registered on memory.oom_control through
    cgroup.event_control; v2: memory.events, which the kernel marks with
    POLLPRI whenever it changes.  ``fileno()`` fits an event loop; ``wait``
    blocks; ``kills()`` is the cgroup's OOM-kill count."""

    def __init__(self, manager: Manager, memory_dir: str, v2: bool) -> None:
        self._manager = manager
        self._v2 = v2
        self._seen = manager.oom_kills()
        if v2:
            self._fd = os.open(f"{memory_dir}/memory.events", os.O_RDONLY | os.O_CLOEXEC)
            return
        self._fd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        try:
            ctl = os.open(f"{memory_dir}/memory.oom_control", os.O_RDONLY | os.O_CLOEXEC)
            try:
                write(f"{memory_dir}/cgroup.event_control", f"{self._fd} {ctl}")
            finally:
                os.close(ctl)
        except BaseException:
            os.close(self._fd)
            raise

    def fileno(self) -> int:
        return self._fd

    def kills(self) -> int:
        return self._manager.oom_kills()

    def wait(self, timeout: float | None = None) -> bool:
        """True once an OOM kill happened since the last call (or since the
        watcher was made), False on timeout."""
        import select

        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self.kills() > self._seen:
                self._seen = self.kills()
                return True
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            p = select.poll()
            p.register(self._fd, select.POLLPRI | select.POLLERR if self._v2 else select.POLLIN)
            ms = None if left is None else int(left * 1000) + 1
            if not p.poll(ms):
                if self.kills() > self._seen:
                    self._seen = self.kills()
                    return True
                return False
            if not self._v2:
                try:
                    os.eventfd_read(self._fd)
                except BlockingIOError:
                    pass
            else:
                os.lseek(self._fd, 0, os.SEEK_SET)
                os.read(self._fd, 4096)  # re-arms POLLPRI

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> OOMWatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
