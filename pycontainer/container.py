"""The Container object: create, start, run, exec, wait, kill, delete, state.

State lives in ``<root>/<id>/state.json``, written atomically.  It records the
init's pid *and its start time*, so a recycled pid is never mistaken for the
container; the status is derived from the live system each time it is asked
for.  Operations that change a container hold an exclusive ``flock`` on
``<root>/<id>/lock``, so several threads and processes may share one root.
"""

from __future__ import annotations

import builtins
import contextlib
import datetime
import errno
import enum
import fcntl
import functools
import json
import os
import shutil
import signal as _signal
import stat
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import IO, TYPE_CHECKING, Any

import attrs

from . import (
    _hooks,
    logs as _logs,
    _netpool,
    _plan,
    _spawn,
    _sys,
    cgroups as _cgroups,
    rootfs as _rootfs,
    security as _security,
)
from ._shim import lib as _shim_lib
from ._process import ExecProcess, ExitStatus, ProcessHandle, StdioArg, prepare_stdio
from .config import (
    DEFAULT_PATH,
    Capabilities,
    ContainerConfig,
    Device,
    DeviceRule,
    Hook,
    Hooks,
    HugepageLimit,
    IDMap,
    Mount,
    Namespace,
    NamespaceType,
    Process,
    Resources,
    Rlimit,
    SeccompProfile,
    SyscallArg,
    SyscallRule,
    ThrottleDevice,
    User,
    WeightDevice,
)
from .errors import (
    CgroupError,
    ConfigError,
    ImageError,
    NetworkError,
    ContainerExists,
    ContainerNotFound,
    HookError,
    InvalidStateTransition,
    MountError,
    PyContainerError,
)

if TYPE_CHECKING:
    from . import images as _images
    from .network import PortMapping
else:

    class _Lazy:
        """A module imported on first use: the image store (tarfile, hashes,
        an HTTP client) is not needed by a container made from a rootfs,
        and every command of pycontainer-runc pays for what it imports."""

        def __init__(self, name: str) -> None:
            self._name = name

        def __getattr__(self, attr: str) -> Any:
            import importlib

            return getattr(importlib.import_module(self._name, __package__), attr)

    _images = _Lazy(".images")
from .logs import LogConfig
from .validate import check_config, check_process, check_resources, container_id

DEFAULT_ROOT = "/run/pycontainer"
OCI_VERSION = "1.2.0"


def state_root(root: str | None = None) -> str:
    """The state root: ``root``, else $PYCONTAINER_ROOT, else /run/pycontainer
    (for a non-root user $XDG_RUNTIME_DIR/pycontainer or /tmp/pycontainer-<uid>)."""
    root = root or os.environ.get("PYCONTAINER_ROOT")
    if root:
        return root
    if os.geteuid() != 0:
        from .rootless import default_state_root

        return default_state_root()
    return DEFAULT_ROOT


class Status(str, enum.Enum):
    """A container's status, as the OCI runtime spec names them."""

    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"


# action -> the statuses it is allowed from, and the status it leads to.
TRANSITIONS: dict[str, tuple[frozenset[Status], Status]] = {
    "start": (frozenset({Status.CREATED}), Status.RUNNING),
    "kill": (frozenset({Status.CREATED, Status.RUNNING, Status.PAUSED}), Status.STOPPED),
    "exec": (frozenset({Status.CREATED, Status.RUNNING}), Status.RUNNING),
    "pause": (frozenset({Status.CREATED, Status.RUNNING}), Status.PAUSED),
    "resume": (frozenset({Status.PAUSED}), Status.RUNNING),
    "update": (frozenset({Status.CREATED, Status.RUNNING, Status.PAUSED}), Status.RUNNING),
    "delete": (frozenset({Status.CREATED, Status.STOPPED}), Status.STOPPED),
    "force-delete": (frozenset({Status.CREATED, Status.RUNNING, Status.PAUSED, Status.STOPPED}), Status.STOPPED),
}


@attrs.frozen
class State:
    """A snapshot of a container, as the OCI runtime spec's ``state`` describes it."""

    id: str
    status: Status
    pid: int | None
    rootfs: str
    created: str
    exit_status: ExitStatus | None = None
    oci_version: str = OCI_VERSION
    bundle: str | None = None  # the OCI bundle it was created from, if any

    def to_oci(self) -> dict[str, Any]:
        """The state the OCI runtime spec defines (``runc state``)."""
        return {
            "ociVersion": self.oci_version,
            "id": self.id,
            "status": self.status.value,
            "pid": self.pid if self.status is not Status.STOPPED and self.pid else 0,
            "bundle": self.bundle or self.rootfs,
            "created": self.created,
        }


# ---- config <-> JSON (state.json keeps a snapshot) ---------------------------


def _enum_value(_inst: object, _field: object, value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


@functools.lru_cache(maxsize=64)
def _config_to_json(cfg: ContainerConfig) -> dict[str, Any]:
    """The config as JSON data (cached: configs are frozen; callers must not mutate it)."""
    return attrs.asdict(cfg, value_serializer=_enum_value)


@functools.lru_cache(maxsize=64)
def _config_json_text(cfg: ContainerConfig) -> str:
    return json.dumps(_config_to_json(cfg), separators=(",", ":"))


def _merge_resources(current: Resources, change: Resources) -> Resources:
    """``current`` with every field of ``change`` that is not at its default."""
    default = Resources()
    fields = {
        f.name: getattr(change, f.name)
        for f in attrs.fields(Resources)
        if getattr(change, f.name) != getattr(default, f.name)
    }
    if "cpus" in fields:
        fields["cpu_quota"] = None
    if "cpu_quota" in fields and fields["cpu_quota"] is not None:
        fields["cpus"] = None
    return attrs.evolve(current, **fields)


# Where an update set a limit that was unset before, a rollback writes these.
_UNLIMITED = {"memory": -1, "memory_swap": -1, "memory_reservation": -1, "pids_limit": -1, "cpu_quota": -1}


def _rollback_resources(current: Resources, tried: Resources) -> Resources:
    back: dict[str, Any] = {  # (keyword arguments of evolve: fields of several types)
        name: value
        for name, value in _UNLIMITED.items()
        if getattr(current, name) is None and (getattr(tried, name) is not None or (name == "cpu_quota" and tried.cpus))
    }
    if "cpu_quota" in back and current.cpus is not None:
        del back["cpu_quota"]
    return attrs.evolve(current, **back)


def _resources_from_json(data: dict[str, Any]) -> Resources:
    kinds = {
        "blkio_weight_device": WeightDevice,
        "blkio_read_bps": ThrottleDevice,
        "blkio_write_bps": ThrottleDevice,
        "blkio_read_iops": ThrottleDevice,
        "blkio_write_iops": ThrottleDevice,
        "hugepage_limits": HugepageLimit,
        "devices": DeviceRule,
    }
    out: dict[str, Any] = {
        k: [kinds[k](**item) for item in v] if k in kinds and v is not None else v for k, v in data.items()
    }
    return Resources(**out)


def _seccomp_from_json(value: Any) -> SeccompProfile | str:
    if not isinstance(value, dict):
        return str(value)
    rules = [
        SyscallRule(**{**r, "args": [SyscallArg(**a) for a in r.get("args") or ()]})
        for r in value.get("syscalls") or ()
    ]
    return SeccompProfile(**{**value, "syscalls": rules})


def _config_from_json(data: dict[str, Any]) -> ContainerConfig:
    p = dict(data["process"])
    if isinstance(p["user"], dict):
        p["user"] = User(**p["user"])
    if isinstance(p.get("capabilities"), dict):
        p["capabilities"] = Capabilities(**p["capabilities"])
    p["rlimits"] = [Rlimit(**r) for r in p.get("rlimits") or ()]
    return ContainerConfig(
        **{
            **data,
            "seccomp": _seccomp_from_json(data.get("seccomp", "default")),
            "process": Process(**p),
            "namespaces": [Namespace(**n) for n in data["namespaces"]],
            "devices": [Device(**d) for d in data.get("devices") or ()],
            "uid_mappings": [IDMap(**m) for m in data["uid_mappings"]],
            "gid_mappings": [IDMap(**m) for m in data["gid_mappings"]],
            "mounts": [
                Mount(
                    **{
                        **m,
                        "uid_mappings": [IDMap(**x) for x in m.get("uid_mappings") or ()],
                        "gid_mappings": [IDMap(**x) for x in m.get("gid_mappings") or ()],
                    }
                )
                for m in data["mounts"]
            ],  # fmt: skip
            "resources": _resources_from_json(data.get("resources") or {}),
            "hooks": Hooks(**{k: [Hook(**h) for h in v] for k, v in (data.get("hooks") or {}).items()}),
        }
    )


def _name_anonymous_volumes(config: ContainerConfig) -> tuple[ContainerConfig, list[str]]:
    """A volume mount without a source (``docker run -v /path``) gets a
    volume of a random name of its own, as Docker's anonymous volumes
    (named here, before the config is recorded: a restart finds it again)."""
    names: list[str] = []
    mounts = []
    for m in config.mounts:
        if m.type == "volume" and not m.source:
            names.append(os.urandom(32).hex())
            m = attrs.evolve(m, source=names[-1])
        mounts.append(m)
    return (attrs.evolve(config, mounts=mounts), names) if names else (config, names)


def _use_volumes(
    config: ContainerConfig,
    data_root: str | None,
    container_dir: str,
    undo: contextlib.ExitStack,
    extra: dict[str, Any],
    empty: list[tuple[str, str]],
    replacing: bool = False,
) -> ContainerConfig:
    """Named volumes (``Mount(type="volume", source=NAME)``) as binds of
    their directories, each made if missing (as ``docker run -v``) and held
    for the container until it is deleted.  Appends to ``empty`` (its
    destination, its directory) each that is empty and may be filled from
    the image (no ``nocopy`` option, as Docker's)."""
    from .volumes import VolumeStore

    store = VolumeStore(data_root)
    mounts, holders = [], []
    for m in config.mounts:
        if m.type != "volume":
            mounts.append(m)
            continue
        name = m.source or ""
        existed = os.path.isdir(os.path.join(store.root, name))
        path, holder = store.hold(name, container_dir)
        if not existed:  # (made for this container: gone again should it fail)
            undo.callback(_remove_volume, store, name)
        if not replacing:  # (a restart's hold is the replaced instance's too: named by the same path)
            undo.callback(store.release, holder)
        holders.append(holder)
        if "nocopy" not in m.options and not os.listdir(path):
            empty.append((m.destination, path))
        options = (o for o in m.options if o not in ("bind", "rbind", "nocopy"))
        mounts.append(Mount(m.destination, path, "bind", ["rbind", *options]))
    extra["volume_holders"] = holders
    return attrs.evolve(config, mounts=mounts)


def _remove_volume(store: Any, name: str) -> None:
    from .volumes import VolumeError

    with contextlib.suppress(VolumeError, OSError):
        store.remove(name)


def _fill_from_layers(dest: str, path: str, layers: Sequence[str], config: ContainerConfig) -> None:
    """Copy what the image holds at ``path`` (its ``layers``, top first)
    into the directory ``dest``: a volume's first contents, as Docker's."""
    parts = [p for p in os.path.normpath(path).split("/") if p]
    # the layers' content there, bottom first, each walked without following
    # symlinks (a layer's "a -> /etc" must not copy the host's /etc in)
    fds = [fd for fd in (_rootfs.walk_in_layer(layer, parts) for layer in reversed(layers)) if fd is not None]
    if not fds:
        return
    try:
        _images.copy_layers([f"/proc/self/fd/{fd}" for fd in fds], dest)
    finally:
        for fd in fds:
            os.close(fd)
    if config.new_namespace(NamespaceType.USER):
        _images.shift_ownership(dest, lambda u: _host_id(config.uid_mappings, u),
                                lambda g: _host_id(config.gid_mappings, g))  # fmt: skip


def _idmap_fds(config: ContainerConfig, min_fd: int) -> list[int]:
    """Per config mount: a detached, idmapped copy of its source, or -1 for
    a mount that is not idmapped.  Made here, not in the child: idmapping
    a host filesystem takes CAP_SYS_ADMIN in the initial user namespace,
    which a container's root has not; the child only attaches it."""
    out: list[int] = []
    userns: dict[tuple[Any, Any], int] = {}

    def write_maps(pid: int, uid_maps: Any, gid_maps: Any) -> None:
        if os.geteuid() != 0:
            from .rootless import write_id_maps_setuid

            write_id_maps_setuid(pid, uid_maps, gid_maps)
        else:
            _spawn.write_id_maps(pid, uid_maps, gid_maps)

    try:
        for i, m in enumerate(config.mounts):
            if not m.idmapped():
                out.append(-1)
                continue
            key = (m.uid_mappings, m.gid_mappings) if m.uid_mappings else (config.uid_mappings, config.gid_mappings)
            if key not in userns:
                userns[key] = _spawn.userns_fd(key[0], key[1], _helper_fd(), write_maps)
            p = _plan.idmap_params(m, i)
            fd = _shim_lib.pc_idmapped_tree(os.fsencode(m.source or ""), userns[key], p.clone_recursive,
                                            p.idmap_recursive, p.attrs, p.attrs_recursive)  # fmt: skip
            if fd < 0:
                raise MountError("idmap", m.source or "", m.destination, -fd)
            # above every fd number the child's stdio steps dup onto
            high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, min_fd)
            os.close(fd)
            out.append(high)
    except BaseException:
        _close_fds([fd for fd in out if fd >= 0])
        raise
    finally:
        _close_fds(list(userns.values()))
    return out


# The container's side of a copy, run chroot'ed into its root (/proc/<init>/root,
# which walks the container's own mounts): a symlink in the container resolves
# inside it.  argv: mode (in|out), path, name, uid, gid.  "in": extract the tar
# on stdin at path (into it when it is a directory, else as it); "out": write
# path as a tar named name to stdout.
_COPY_SIDE = """
import os, sys, tarfile
# No user or group name lookups once chroot'ed: glibc would load the
# container's NSS modules (its nsswitch.conf, its libnss_*.so) into this
# process, which runs as the host's root (CVE-2019-14271 in Docker's cp).
tarfile.pwd = tarfile.grp = None
mode, path, name, uid, gid = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
if len(sys.argv) > 7:
    # A stopped container: its overlay (lowerdir relative to argv[7], then
    # upper, work), mounted on its rootfs dir in a mount namespace of ours.
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    def check(r, what):
        if r != 0:
            e = ctypes.get_errno()
            sys.exit(f"{what}: {os.strerror(e)}")
    check(libc.unshare(0x00020000), "unshare(CLONE_NEWNS)")
    check(libc.mount(None, b"/", None, 0x4000 | 0x40000, None), "making / private")  # MS_REC | MS_PRIVATE
    os.chdir(sys.argv[7])
    data = f"lowerdir={sys.argv[8]},upperdir={sys.argv[9]},workdir={sys.argv[10]}".encode()
    check(libc.mount(b"overlay", sys.argv[6].encode(), b"overlay", 0, data), "mounting its overlay")
os.chroot(sys.argv[6])
os.chdir("/")
if mode == "out":
    with tarfile.open(fileobj=sys.stdout.buffer, mode="w|") as t:
        t.add(path, arcname=name)
else:
    dest = path if os.path.isdir(path) else os.path.dirname(path) or "/"
    rename = None if os.path.isdir(path) else os.path.basename(path)

    def renamed(n):
        first, _, rest = n.partition("/")
        return rename + ("/" + rest if rest else "")

    def place(member, where):
        # What goes in is ours (made from host files we were given), and
        # lands in the container's tree (we are chroot'ed there): modes
        # and links as they are, absolute ones too (they point into it), as
        # Docker's cp and COPY keep them; only no device nodes.
        if member.isdev():
            raise tarfile.SpecialFileError(member)  # ("'NAME' is a special file")
        if rename is not None:
            member = member.replace(name=renamed(member.name), deep=False)
            if member.islnk():  # a hard link's target is renamed with it
                member = member.replace(linkname=renamed(member.linkname), deep=False)
        return member.replace(uid=uid, gid=gid, uname="", gname="", deep=False)

    with tarfile.open(fileobj=sys.stdin.buffer, mode="r|") as t:
        t.extractall(dest, filter=place)
"""


def _copy(c: Container, src: str, dest: str, *, into: bool) -> None:
    if c.status in (Status.CREATED, Status.RUNNING, Status.PAUSED):
        _copy_with(c, src, dest, into, f"/proc/{c.pid}/root", [])
        return
    # Stopped: its files as its rootfs showed them, as docker cp's; under its
    # lock (a restart mounts the same upper directory).
    inner = os.path.normpath(dest if into else src)
    for m in c.config.mounts:
        if m.type == "bind" or "bind" in m.options or "rbind" in m.options:
            d = os.path.normpath(m.destination)
            if inner == d or inner.startswith(d.rstrip("/") + "/"):
                raise PyContainerError(
                    f"copy {'into' if into else 'from'} {c.id}:{inner}: it is on a volume or bind mount of the "
                    f"container ({d}), which a stopped container does not have: copy while it runs, or from its source"
                )
    if into and c.config.readonly_rootfs:
        raise PyContainerError(f"copy into {c.id}:{inner}: its root filesystem is read-only")
    with _locked(c.dir, c._data.get("instance", "")):
        if c.status is not Status.STOPPED:  # (restarted meanwhile)
            raise InvalidStateTransition(c.id, c.status.value, c.status.value, "copy files of")
        root, overlay = c._stopped_root()
        _copy_with(c, src, dest, into, root, overlay)


def _copy_with(c: Container, src: str, dest: str, into: bool, root: str, overlay: list[str]) -> None:
    import subprocess
    import tarfile

    if not hasattr(tarfile, "data_filter"):
        raise PyContainerError("copying needs Python's tarfile extraction filters (3.10.12, 3.11.4 or later)")
    uid, gid = _root_ids(c.config)
    inner = dest if into else src
    if not inner.startswith("/"):
        raise ConfigError("path", f"{inner!r}: a path in the container is absolute")
    name = os.path.basename(os.path.normpath(src)) or "."
    side = [sys.executable, "-c", _COPY_SIDE, "in" if into else "out", inner, name, str(uid), str(gid), root,
            *overlay]  # fmt: skip
    if into:
        if not os.path.lexists(src):
            raise ConfigError("source", f"{src!r} does not exist")
        _tar_in(side, lambda t: t.add(src, arcname=name), f"copy into {c.id}:{dest}")
        return
    target_dir = dest if os.path.isdir(dest) else os.path.dirname(os.path.abspath(dest))
    rename = None if os.path.isdir(dest) else os.path.basename(dest)

    def renamed(n: str) -> str:
        _first, _, rest = n.partition("/")
        return (rename or "") + ("/" + rest if rest else "")

    def place(member: tarfile.TarInfo, where: str) -> tarfile.TarInfo:
        # From the container to the host: renamed first, then checked as it
        # will land: nothing outside DEST (a name through a link extracted
        # before is refused), no devices, no hard link out of DEST, no
        # setuid/setgid bits or group/other write (tar_filter), owned by us
        # (not by whatever host uid the container chose, as Docker's cp);
        # symlinks as they are, absolute ones too, as Docker's cp brings them.
        if member.isdev():
            raise tarfile.SpecialFileError(member)
        if rename is not None:
            member = member.replace(name=renamed(member.name), deep=False)
            if member.islnk():  # a hard link's target is renamed with it
                member = member.replace(linkname=renamed(member.linkname), deep=False)
        member = tarfile.tar_filter(member, where)
        if member.islnk():
            real = os.path.realpath(where)
            if os.path.commonpath([os.path.realpath(os.path.join(real, member.linkname)), real]) != real:
                raise tarfile.LinkOutsideDestinationError(member, member.linkname)
        return member.replace(uid=os.getuid(), gid=os.getgid(), uname="", gname="", deep=False)

    with subprocess.Popen(side, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as p:
        assert p.stdout is not None
        try:
            with tarfile.open(fileobj=p.stdout, mode="r|") as t:
                t.extractall(target_dir, filter=place)
        except tarfile.TarError as e:
            p.kill()
            p.wait()
            err = p.stderr.read() if p.stderr else b""
            why = _last_line(err) if err.strip() else f"refused: {e}"
            raise PyContainerError(f"copy from {c.id}:{src}: {why}") from None
        err = p.stderr.read() if p.stderr else b""
    if p.returncode:
        raise PyContainerError(f"copy from {c.id}:{src}: {_last_line(err)}")


def copy_entries_in(c: Container, entries: Sequence[tuple[str, str]], owner: tuple[int, int] | None = None) -> None:
    """Each host path of ``entries`` to its absolute path in the container
    (directories with their contents; missing parents made), as one tar
    extracted at the container's "/" on its side (see ``_COPY_SIDE``):
    for a builder's COPY.  ``owner``: host ids for every file (default:
    the container's root)."""
    copy_entries_into(f"/proc/{c.pid}/root", entries, owner or _root_ids(c.config), f"copy into {c.id}")


def copy_entries_into(
    root: str, entries: Sequence[tuple[str, str]], owner: tuple[int, int], what: str = "copy"
) -> None:
    """:func:`copy_entries_in` for the tree at ``root`` (chroot'ed into on
    the copy's side, as into a container's root): a layer being made."""
    uid, gid = owner
    side = [sys.executable, "-c", _COPY_SIDE, "in", "/", ".", str(uid), str(gid), root]
    for _src, dest in entries:
        if not dest.startswith("/"):
            raise ConfigError("path", f"{dest!r}: a path in the container is absolute")

    def add_all(t: Any) -> None:
        for src, dest in entries:
            t.add(src, arcname=os.path.normpath(dest).lstrip("/") or ".")

    _tar_in(side, add_all, what)


def stop_signal(image_config: dict[str, Any] | None) -> int:
    """The image's StopSignal (a name, ``SIGRTMIN+3``, or a number), else SIGTERM."""
    try:
        return _sys.signal_number(str((image_config or {}).get("stop_signal") or "SIGTERM"))
    except ValueError:
        return int(_signal.SIGTERM)


def _tar_in(side: list[str], add: Callable[[Any], None], what: str) -> None:
    """A tar that ``add`` writes, piped to the container's side of a copy."""
    import subprocess
    import tarfile

    with subprocess.Popen(side, stdin=subprocess.PIPE, stderr=subprocess.PIPE) as p:
        assert p.stdin is not None
        try:
            with tarfile.open(fileobj=p.stdin, mode="w|") as t:
                add(t)
        except BrokenPipeError:
            pass
        finally:
            p.stdin.close()
        err = p.stderr.read() if p.stderr else b""
    if p.returncode:
        raise PyContainerError(f"{what}: {_last_line(err)}")


def _last_line(err: bytes) -> str:
    lines = err.decode(errors="replace").strip().splitlines()
    return lines[-1] if lines else "failed"


# What a logger runs for an auto_remove container once its output ended.
_AUTO_REMOVE = """
import sys
from pycontainer import Container, ContainerNotFound, PyContainerError
root, cid, instance = sys.argv[1:4]
try:
    try:
        c = Container.load(root, cid)
    except PyContainerError:
        c = None
    if c is None or c._data.get("instance") != instance:  # renamed since?
        c = next((x for x in Container.list(root) if x._data.get("instance") == instance), None)
    if c is not None:  # (not another container made under the id since)
        c.wait()  # the output ended; the container may still run (it closed its stdout)
        for _ in range(3):
            try:
                c.delete(force=True, volumes=True)  # (as docker run --rm: its anonymous volumes too)
                break
            except ContainerNotFound:  # renamed while we waited: found again by its instance
                c = next((x for x in Container.list(root) if x._data.get("instance") == instance), None)
                if c is None:
                    break
except PyContainerError:
    pass
"""


def _hook_state(cid: str, pid: int, bundle: str | None, config: ContainerConfig) -> dict[str, Any]:
    """The state a hook reads on stdin (the spec's state, its status added by the caller)."""
    return {"ociVersion": OCI_VERSION, "id": cid, "pid": pid, "bundle": bundle or "",
            "annotations": dict(config.annotations)}  # fmt: skip


def _replace_json(path: str, data: Any) -> None:
    """``path`` (a state file, 0600) replaced whole and atomically by ``data``.
    The temporary file has a fixed name: the caller holds the lock that
    makes it the only writer.  A failed write takes it away."""
    try:
        _write_file(path + ".new", json.dumps(data, separators=(",", ":")), 0o600)
        os.replace(path + ".new", path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path + ".new")
        raise


def _write_file(path: str, text: str, mode: int = 0o644) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.fchmod(fd, mode)  # exact, whatever the caller's umask
        os.write(fd, text.encode())
    finally:
        os.close(fd)


@contextlib.contextmanager
def _locked(directory: str, instance: str) -> Iterator[int]:
    """flock the container's lock file.  Its name carries the instance token
    of state.json: a handle to a container that was deleted (and perhaps made
    anew under the same id) finds no lock file of its own."""
    try:
        fd = os.open(os.path.join(directory, f"lock-{instance}"), os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ContainerNotFound(os.path.basename(directory), os.path.dirname(directory)) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            # A restart may have put a new instance in place meanwhile (see
            # Container.restart): then this lock is the old one's, elsewhere.
            same = os.path.samestat(os.fstat(fd), os.stat(os.path.join(directory, f"lock-{instance}")))
        except FileNotFoundError:
            same = False
        if not same:
            raise ContainerNotFound(os.path.basename(directory), os.path.dirname(directory))
        yield fd
    finally:
        os.close(fd)


CREATING_PREFIX = ".creating-"
_TAKEOVER = ".takeover"  # in a restart's .creating dir: what it took from the instance it replaces
_RENAME_NOREPLACE, _RENAME_EXCHANGE = 1, 2  # renameat2(2)


def _sweep_debris(root: str, names: list[str]) -> None:
    """Remove ``.creating-<id>-<pid>-<rand>`` dirs whose creator has died,
    killing the init it may have left waiting for start (it can die between
    the init's READY and the rename that publishes the container)."""
    for name in names:
        if not name.startswith(CREATING_PREFIX):
            continue
        try:
            pid = int(name.rsplit("-", 2)[-2])
        except (ValueError, IndexError):
            continue
        if os.path.exists(f"/proc/{pid}"):
            continue
        directory = os.path.join(root, name)
        try:
            with open(os.path.join(directory, "state.json"), encoding="utf-8") as f:
                data = json.load(f)
            pidfd = _sys.open_pidfd(int(data["pid"]), int(data["pid_start"]))
        except (OSError, ValueError, KeyError, TypeError):
            pidfd = None  # no init yet, or its state half-written: nothing to kill
        if pidfd is not None:
            with contextlib.suppress(ProcessLookupError):
                _sys.pidfd_signal(pidfd, _signal.SIGKILL)
            os.close(pidfd)
        _give_back(root, name, directory)
        try:
            with open(os.path.join(directory, "cgroup.json"), encoding="utf-8") as f:
                cg = json.load(f)
        except (OSError, ValueError):
            cg = None  # no cgroup made yet (or none at all)
        if cg is not None:
            try:
                _cgroups.load_manager(cg["cgroup"], cg["cgroup_root"]).destroy()
            except (KeyError, TypeError, ValueError):
                pass  # not ours to read: leave the cgroup, drop the debris
            except PyContainerError:
                continue  # still busy: the next sweep tries again
        _rmtree(directory)


def _sweep_own_debris(root: str, cid: str) -> None:
    """The debris sweep for ``cid``'s .creating dirs only (those of dead
    creators): before a restart or rename acts on it."""
    prefix = f"{CREATING_PREFIX}{cid}-"
    with contextlib.suppress(FileNotFoundError):
        _sweep_debris(root, [n for n in os.listdir(root) if n.startswith(prefix) and n.count("-") - cid.count("-") == 3])


def _give_back(root: str, name: str, directory: str) -> None:
    """A restart that died before its new instance was in place took the
    writable layer, volumes and log of the instance it was to replace: they
    go back to it (still at ``root/<id>``, stopped) before the debris goes."""
    try:
        with open(os.path.join(directory, _TAKEOVER), encoding="utf-8") as f:
            taken = [line.strip() for line in f if line.strip()]
    except FileNotFoundError:
        return
    owner = os.path.join(root, name[len(CREATING_PREFIX) :].rsplit("-", 2)[0])
    for item in taken:
        if "/" in item or item in (".", ".."):
            continue
        src, dest = os.path.join(directory, item), os.path.join(owner, item)
        if os.path.lexists(src) and os.path.isdir(owner) and not os.path.lexists(dest):
            with contextlib.suppress(OSError):
                os.rename(src, dest)


def _rmtree(path: str, maps: tuple[Sequence[IDMap], Sequence[IDMap]] | None = None) -> None:
    """Remove a state directory: shutil's rmtree, fast for the usual few
    files; coreutils' rm where that fails (a copied rootfs can be deeper
    than Python's recursion goes).  A non-root user may meet what its
    containers made (``maps``: their id mappings): see _rmtree_rootless."""
    try:
        if not _rmdir_flat(path):
            shutil.rmtree(path)
    except FileNotFoundError:
        pass
    except (OSError, RecursionError):
        if os.geteuid() != 0:
            _rmtree_rootless(path, maps)
            return
        with contextlib.suppress(PyContainerError):
            _images.remove_tree(path)


def _rmdir_flat(path: str) -> bool:
    """Remove ``path`` if it holds only files (a container's state dir without
    a rootfs of its own: the usual case, and a hot path); False where it
    holds a directory (or gained an entry meanwhile), for rmtree to do."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        for name in os.listdir(fd):
            try:
                os.unlink(name, dir_fd=fd)  # (a symlink itself, never what it points to)
            except (IsADirectoryError, PermissionError):  # (EISDIR; EPERM from some filesystems)
                return False
            except FileNotFoundError:
                pass
    finally:
        os.close(fd)
    try:
        os.rmdir(path)
    except OSError as e:
        if e.errno == errno.ENOTEMPTY:
            return False
        raise
    return True


def _rmtree_rootless(path: str, maps: tuple[Sequence[IDMap], Sequence[IDMap]] | None) -> None:
    """What a rootless container leaves: files of its other ids, owned by the
    user's subordinate ids, and directories overlay made 000.  Removed by
    ``rm -rf`` in a user namespace with the container's own mappings (root
    there has every right over the ids it maps): util-linux unshare, through
    newuidmap, which takes the user plus one range.  Where that cannot be
    (no unshare, more ranges), the user's own directories are opened up
    and what is left stays, with a warning."""
    if maps is None:
        from .rootless import rootless_mappings

        maps = rootless_mappings()
    uids, gids = maps
    me = (os.geteuid(), os.getegid())
    shape_ok = all(
        len(m) <= 2
        and m
        and (m[0].container_id, m[0].host_id, m[0].size) == (0, own, 1)
        and all(x.container_id == 1 for x in m[1:])
        for m, own in ((uids, me[0]), (gids, me[1]))
    )
    if shape_ok and shutil.which("unshare"):
        import subprocess

        cmd = ["unshare", "--map-root-user"]
        if len(uids) == 2:
            cmd.append(f"--map-users={uids[1].host_id},1,{uids[1].size}")
        if len(gids) == 2:
            cmd.append(f"--map-groups={gids[1].host_id},1,{gids[1].size}")
        subprocess.run([*cmd, "rm", "-rf", "--", os.path.abspath(path)], capture_output=True, check=False)
    if os.path.lexists(path):
        _open_up(path)
        with contextlib.suppress(OSError):
            shutil.rmtree(path)
    if os.path.lexists(path):
        warnings.warn(f"{path} could not be removed whole (files of a user namespace's ids?)", stacklevel=3)


def _open_up(top: str) -> None:
    """Give the user's own directories under ``top`` u+rwx (overlay makes its
    work dir 000), never through a symlink: each is opened O_PATH|O_NOFOLLOW
    and changed through that fd."""
    stack = [top]
    while stack:
        d = stack.pop()
        try:
            fd = os.open(d, os.O_PATH | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            st = os.fstat(fd)
            if st.st_uid != os.geteuid():
                continue
            if st.st_mode & 0o700 != 0o700:
                os.chmod(f"/proc/self/fd/{fd}", stat.S_IMODE(st.st_mode) | 0o700)
            stack += [os.path.join(d, n) for n in os.listdir(f"/proc/self/fd/{fd}")]
        except OSError:
            continue
        finally:
            os.close(fd)


# Sealed memfds of the two static programs, one each per process, made on
# first use: the --init pid 1 and the plan helper PC_OP_HANDOFF execs.
_memfd_lock = threading.Lock()
_memfds: dict[str, int] = {}


def _program_fd(name: str) -> int:
    with _memfd_lock:
        fd = _memfds.get(name)
        if fd is None:
            path = os.path.join(os.path.dirname(__file__), name)
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except FileNotFoundError:
                raise PyContainerError(f"the program {path} is missing; reinstall pycontainer") from None
            label = {"_pcinit": "pycontainer-init", "_pchelper": "pycontainer-helper"}[name]
            fd = os.memfd_create(label, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
            os.write(fd, data)
            seals = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
            _memfds[name] = fd
        return fd


_layouts: dict[str, _cgroups.Layout] = {}


def _layout(root: str) -> _cgroups.Layout:
    """The cgroup layout under ``root``, detected once per process (mounts of
    /sys/fs/cgroup do not change under a running host)."""
    layout = _layouts.get(root)
    if layout is None:
        layout = _layouts[root] = _cgroups.detect(root)
    return layout


@functools.lru_cache(maxsize=1)
def _can_clone_into_cgroup() -> bool:
    """clone3's CLONE_INTO_CGROUP: built into the shim (x86-64) and in the
    running kernel (5.7 and later; older ones refuse the larger clone_args)."""
    if not _shim_lib.pc_can_clone_into_cgroup():
        return False
    try:
        major, minor = (int(x) for x in os.uname().release.split(".")[:2])
    except ValueError:
        return False
    return (major, minor) >= (5, 7)


def _cgroup_join(manager: _cgroups.Manager | None, clone: bool) -> tuple[list[str], int]:
    """(files the child writes "0" to, a cgroup2 dir fd to clone into or -1).

    ``clone``: the cgroup2 part may be joined by CLONE_INTO_CGROUP.  Only for
    a fresh container: a child cloned with CLONE_VM into a running
    container's cgroup, whose memory may be full, could draw the OOM killer
    onto the memory it shares with us (see compile_create)."""
    if manager is None:
        return [], -1
    files = manager.join_files()
    clone_dir = manager.clone_dir()
    if clone and clone_dir is not None and _can_clone_into_cgroup():
        try:
            fd = os.open(clone_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as e:
            raise CgroupError(f"cannot open the container's cgroup {clone_dir}: {os.strerror(e.errno or 0)}") from None
        return [f for f in files if not f.startswith(clone_dir + "/")], fd
    if clone_dir is not None:
        files = files + [f"{clone_dir}/cgroup.procs"]
    return list(dict.fromkeys(files)), -1


def _close_fds(fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


def _init_fd() -> int:
    return _program_fd("_pcinit")


def _helper_fd() -> int:
    return _program_fd("_pchelper")


def _drop_memfds_after_fork() -> None:
    for fd in _memfds.values():
        os.close(fd)
    _memfds.clear()


os.register_at_fork(after_in_child=_drop_memfds_after_fork)


def _process_env(process: Process, hostname: str, home: str) -> tuple[str, ...]:
    """The env the process gets: the config's, plus HOSTNAME, HOME and TERM
    where absent, as Docker sets them."""
    env = list(process.env)
    keys = {e.partition("=")[0] for e in env}
    if "PATH" not in keys:
        env.insert(0, f"PATH={DEFAULT_PATH}")
    if "HOSTNAME" not in keys and hostname:
        env.append(f"HOSTNAME={hostname}")
    if "HOME" not in keys:
        env.append(f"HOME={home}")
    if process.terminal and "TERM" not in keys:
        env.append("TERM=xterm")
    return tuple(env)


def _cgroup_resources(config: ContainerConfig, resources: Resources) -> Resources:
    """``resources`` as the cgroup gets them: the config's devices allowed
    after its rules (as runc adds them)."""
    extra = [r for r in (d.rule() for d in config.devices) if r is not None]
    if not extra or (resources.devices == () and os.geteuid() != 0):
        return resources  # (rootless: no device rules at all, see rootless_config)
    return attrs.evolve(resources, devices=(*resources.device_rules(), *extra))


def _bundle_env(env: Sequence[str], home: str) -> tuple[str, ...]:
    """An OCI bundle's environment as runc gives it: as written, and HOME
    from the user's passwd entry if it is missing."""
    if any(e.startswith("HOME=") for e in env):
        return tuple(env)
    return (*env, f"HOME={home}")


def _attach_bridge(
    name: str, root: str, cid: str, hostname: str, directory: str, netns: int, ports: Any, undo: contextlib.ExitStack
) -> dict[str, Any]:
    """Membership of the network ``name`` (an address, the published ports,
    the names in /etc/hosts) and a veth pair into the namespace ``netns``;
    undone (in ``undo``) should the creation fail."""
    from . import _bridge
    from .network import NetworkStore

    store = NetworkStore(root)
    network, member = store.join(name, cid, hostname, os.path.join(directory, "hosts"), ports)
    undo.callback(store.leave, network.name, cid, member.veth)
    veth = str(member.veth)
    _bridge.attach(network, veth, member.address, member.address6, netns)
    undo.callback(_bridge.detach, veth, network.host_netns)
    return {
        "name": network.name,
        "address": member.address,
        "address6": member.address6,
        "gateway": network.gateway,
        "veth": veth,
        "host_netns": network.host_netns,
        "ports": [str(p) for p in member.ports],
    }


# What the runtime mounts over in every container (docker_defaults): where
# an image lacks one, the mount would make it in the container's writable
# layer, and a commit would take it into the image.
_MOUNTPOINTS = (("proc", True), ("sys", True), ("dev", True), ("etc", True),
                ("etc/hostname", False), ("etc/hosts", False), ("etc/resolv.conf", False))  # fmt: skip


@functools.lru_cache(maxsize=64)
def _missing_mountpoints(layers: tuple[str, ...]) -> tuple[tuple[str, bool], ...]:
    """The mountpoints ``layers`` (top first; immutable, so cached) lack;
    not those under something else than a directory there (an image whose
    /etc is a link has its own way: a directory in the init layer would
    hide it; the mount makes what it needs at the link's target)."""
    out = []
    for path, is_dir in _MOUNTPOINTS:
        if _rootfs.layer_lookup(layers, path) is not None:
            continue
        parent = os.path.dirname(path)
        found = _rootfs.layer_lookup(layers, parent) if parent else None
        if found is not None and not stat.S_ISDIR(found[1].st_mode):
            continue  # (the mountpoints are at most one level down: the parent's entry says it)
        out.append((path, is_dir))
    return tuple(out)


def _init_layer(directory: str, missing: tuple[tuple[str, bool], ...]) -> str:
    """Docker's init layer: the missing mountpoints in a layer of the
    container's own between its image and its writable layer, so the
    writable layer (what diff and commit see) holds only what the
    container itself changed.  Returns its path."""
    init = os.path.join(directory, "layer", "init")
    if not os.path.isdir(init):  # (a restart's taken-over layer/ has it)
        os.mkdir(init, 0o755)
        for path, is_dir in missing:
            target = os.path.join(init, path)
            if is_dir:
                os.makedirs(target, 0o755, exist_ok=True)
            else:
                os.makedirs(os.path.dirname(target), 0o755, exist_ok=True)
                os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))
    return init


def _take_over(old_dir: str | None, new_dir: str, name: str, undo: contextlib.ExitStack) -> bool:
    """Move ``name`` from a replaced instance's directory into the new one
    (what a restart keeps: the writable layer, anonymous volumes, the log);
    moved back should the new one fail.  False if there is none."""
    if old_dir is None:
        return False
    src, dest = os.path.join(old_dir, name), os.path.join(new_dir, name)
    if not os.path.lexists(src):
        return False
    # Journaled first: should this process die before the new instance is
    # in place, the debris sweep moves it back (see _sweep_debris).
    with open(os.path.join(new_dir, _TAKEOVER), "a", encoding="utf-8") as f:
        f.write(name + "\n")
    try:
        os.rename(src, dest)
    except FileNotFoundError:
        return False
    undo.callback(os.rename, dest, src)
    return True


def _image_rootfs(
    config: ContainerConfig,
    root: str,
    cid: str,
    directory: str,
    data_root: str | None,
    snapshotter: str,
    undo: contextlib.ExitStack,
    extra: dict[str, Any],
    reuse: str | None = None,
) -> tuple[ContainerConfig, tuple[str | None, str | None, str, tuple[str, ...]]]:
    """An image's rootfs for a new container: the config with the image's
    defaults, and (overlay lowerdir or None, its base dir, rootfs, layers top
    first).  Records in ``extra`` what state.json keeps of it."""
    if os.geteuid() != 0:
        # Unpacking layers keeps their owners, which a non-root user can only
        # do from a user namespace of its own: not built yet.
        raise ImageError(
            "rootless containers run from a rootfs directory (rootfs=...) or the built-in busybox "
            "(neither rootfs nor image); images need root for now"
        )
    store = _images.ImageStore(data_root)
    image = store.get(config.image) if config.image is not None else _builtin_image(store)
    config = _images.apply_image(config, image)
    check_process(config)
    layers = tuple(reversed(store.unpack(image)))  # top first, as overlay's lowerdir
    userns = config.new_namespace(NamespaceType.USER)
    if snapshotter == "auto":
        # A user namespace's root mounts the overlay with its own credentials,
        # which cannot reach the store (root's alone): copy.
        snapshotter = "overlay" if _overlay_ok() and not userns else "copy"
    elif snapshotter == "overlay" and userns:
        raise ConfigError("snapshotter", "overlay cannot reach the image store from a user namespace: use copy")
    lower = lower_base = None
    if snapshotter == "overlay":
        lower = ":".join(store.short_link(d) for d in layers)
        lower_base = store.root
        rootfs = os.path.join(directory, "rootfs")  # the mount point (made by the caller)
    elif snapshotter == "copy":
        # rootfs/ (0700, the container's root its owner) holds the copy in fs/:
        # a copy keeps the image's setuid files and device nodes, which no
        # other host user may reach.
        fence = os.path.join(directory, "rootfs")
        rootfs = os.path.join(fence, "fs")
        kept = _take_over(reuse, directory, "rootfs", undo)  # a restart: the copy as the container left it
        if not kept:
            os.mkdir(fence, 0o700)
            os.mkdir(rootfs, 0o755)
            _images.copy_layers(list(reversed(layers)), rootfs)
        if userns and not kept:  # the image's owners, as the user namespace maps them
            _images.shift_ownership(rootfs, lambda u: _host_id(config.uid_mappings, u),
                                    lambda g: _host_id(config.gid_mappings, g))  # fmt: skip
            os.chown(fence, _host_id(config.uid_mappings, 0), _host_id(config.gid_mappings, 0))
    else:
        raise ConfigError("snapshotter", f"{snapshotter!r} is not auto, overlay or copy")
    if config.image_volumes:
        config = _anonymous_volumes(config, image, layers, directory, reuse, undo)
    ic = image.config
    extra.update(
        snapshotter=snapshotter,
        image=image.digest,
        data_root=store.root,
        image_config={
            "stop_signal": ic.stop_signal,
            "exposed_ports": list(ic.exposed_ports),
            "volumes": list(ic.volumes),
        },
    )
    # The final dir is where the container will live; the hold goes with delete.
    extra["image_holder"] = store.hold(image.digest, os.path.join(root, cid))
    if reuse is None:  # (a restart's hold is the replaced instance's too: named by the same path)
        undo.callback(store.release, extra["image_holder"])
    return config, (lower, lower_base, rootfs, layers)


def _anonymous_volumes(
    config: ContainerConfig,
    image: _images.Image,
    layers: tuple[str, ...],
    directory: str,
    reuse: str | None = None,
    undo: contextlib.ExitStack | None = None,
) -> ContainerConfig:
    """The image's Volumes the config does not mount itself become anonymous
    volumes, as Docker makes them: a directory of the container's own (gone
    with it), filled with what the image holds there, bound over the path.
    A restart (``reuse``: the replaced instance's directory) keeps them."""
    taken = {os.path.normpath(m.destination) for m in config.mounts}
    wanted = [v for v in image.config.volumes if v.startswith("/") and os.path.normpath(v) not in taken]
    if not wanted:
        return config
    if undo is not None and _take_over(reuse, directory, "volumes", undo):
        mounts = list(config.mounts)
        for i, path in enumerate(wanted):
            mounts.append(Mount(destination=path, source=os.path.join(directory, "volumes", str(i)), options=["rbind"]))
        return attrs.evolve(config, mounts=mounts)
    # 0700: a volume is filled from the image (setuid files, devices); the
    # container's root owns it (in a user namespace, as mapped)
    vdir = os.path.join(directory, "volumes")
    os.mkdir(vdir, 0o700)
    userns = config.new_namespace(NamespaceType.USER)
    if userns:
        os.chown(vdir, _host_id(config.uid_mappings, 0), _host_id(config.gid_mappings, 0))
    mounts = list(config.mounts)
    for i, path in enumerate(wanted):
        src = os.path.join(directory, "volumes", str(i))
        os.mkdir(src, 0o755)
        _fill_from_layers(src, path, layers, config)
        # (a path in the .creating dir: the child mounts it before the rename)
        mounts.append(Mount(destination=path, source=src, options=["rbind"]))
    return attrs.evolve(config, mounts=mounts)


@functools.lru_cache(maxsize=1)
def _overlay_ok() -> bool:
    return _images.overlay_supported()


_builtin_cache: dict[str, _images.Image] = {}


def _builtin_image(store: _images.ImageStore) -> _images.Image:
    """The built-in image of ``store``, made on first use (hashing the host's
    busybox each time would cost a create ~2 ms: once per process)."""
    image = _builtin_cache.get(store.root)
    if image is None or not all(os.path.isdir(store.layer_dir(d)) for d in image.diff_ids):
        image = _builtin_cache[store.root] = _images.builtin_image(store)
    return image


class Container(ProcessHandle):
    """A container under a state root.  Make one with :meth:`create`, :meth:`run`
    or :meth:`load`; it is also a context manager that deletes it (forcibly) on exit."""

    def __init__(
        self,
        root: str,
        cid: str,
        data: dict[str, Any],
        config: ContainerConfig | None = None,
        pidfd: int | None = None,
        manager: _cgroups.Manager | None = None,
    ) -> None:
        self.root = root
        self.id = cid
        self.dir = os.path.join(root, cid)
        self._data = data
        self.config = config if config is not None else _config_from_json(data["config"])
        if pidfd is None and data.get("pid"):
            pidfd = _sys.open_pidfd(data["pid"], data["pid_start"])
        ours = data.get("creator_pid") == os.getpid()
        self._init_handle(data.get("pid") or 0, pidfd, None, None, ours=ours)
        self.cgroup: _cgroups.Manager | None = None
        if manager is not None:
            self.cgroup = manager
        elif data.get("cgroup"):
            self.cgroup = _cgroups.load_manager(data["cgroup"], data.get("cgroup_root") or _cgroups.DEFAULT_ROOT)
        if data.get("exit"):
            self._exit = ExitStatus(**data["exit"])
        elif config is None:
            # loaded, not just created: its init or creator may have recorded
            # it (also while the init is an unreaped zombie: a pidfd opens then)
            self._exit = _read_exit(self.dir)

    def __repr__(self) -> str:
        return f"<Container {self.id!r} pid={self.pid} root={self.root!r}>"

    # ---- construction -------------------------------------------------------

    @classmethod
    def create(
        cls,
        root: str | None,
        id: str,
        config: ContainerConfig,
        *,
        stdin: StdioArg = None,
        stdout: StdioArg = None,
        stderr: StdioArg = None,
        pass_fds: Sequence[int | IO[Any]] = (),
        data_root: str | None = None,
        cgroup_root: str | None = None,
        snapshotter: str = "auto",
        image: str | None = None,
        network: str | None = None,
        ports: Sequence[str | PortMapping] = (),
        bundle: str | None = None,
        log: LogConfig | None = None,
        auto_remove: bool = False,
        _replaces: Container | None = None,
        _start: bool = False,
    ) -> Container:
        """Set up a container and leave its init blocked until :meth:`start`.

        Stdio arguments work as subprocess's (None inherits ours, ``PIPE``,
        ``DEVNULL``, an fd or a file); ``pass_fds`` become fds 3, 4, ... inside.
        ``cgroup_root`` is where the cgroup hierarchies are mounted
        (/sys/fs/cgroup).  ``snapshotter`` makes an image's rootfs:
        ``overlay``, ``copy`` (a plain copy of the layers, where overlayfs is
        missing), or ``auto`` (overlay if the kernel has it).  ``image``
        is ``config.image`` given here instead (it replaces a ``rootfs``).
        ``network`` is a mode (``none``, ``host``, ``container:<id>``) or the
        name of a bridge network (``bridge`` is the default one, made on
        first use), see :mod:`pycontainer.network`; ``ports`` are published
        ports on a bridge network (``"8080:80"``, ``"127.0.0.1:53:53/udp"``
        or :class:`~pycontainer.network.PortMapping`).
        ``bundle`` is the OCI bundle the config came from, kept for
        :meth:`state` (``State.bundle``).  ``log`` keeps the container's
        stdout and stderr (or its terminal) in a json-file log of its own
        (see :mod:`pycontainer.logs` and :meth:`logs`); stdout and stderr
        are then not to be given.  ``auto_remove`` (with ``log``): the
        logger removes the container once its output ends (``docker run
        --rm -d``), from a process of its own.
        On any failure every step done so far is undone."""
        root = state_root(root)
        container_id(id)
        if not isinstance(config, ContainerConfig):
            raise TypeError(f"config must be a ContainerConfig, not {type(config).__name__}")
        if image is not None:
            config = attrs.evolve(config, image=image, rootfs=None)
        # What restart() needs to make the container anew: the config as
        # given (before the image's defaults, the network mode and anonymous
        # volumes are applied) and the arguments that are not stdio.
        spec = {
            "network": network,
            "ports": [str(p) for p in ports],
            "data_root": _rootfs.data_root(data_root),  # (resolved: not the environment of a later process)
            "cgroup_root": cgroup_root or _cgroups.DEFAULT_ROOT,
            "snapshotter": snapshotter,
            "bundle": bundle,
            "log": None if log is None else attrs.asdict(log),
            "auto_remove": auto_remove,
        }
        config, anonymous = _name_anonymous_volumes(config)
        if _replaces is not None:  # (named when it was first made)
            anonymous = [*(_replaces._data.get("spec") or {}).get("anonymous_volumes", ()), *anonymous]
        if anonymous:
            spec["anonymous_volumes"] = anonymous
        given = config
        if os.geteuid() != 0:
            from .rootless import rootless_config

            config = rootless_config(config)
        net_guard = None
        bridge = None  # the name of a bridge network to join
        if network is not None:
            from .network import DEFAULT_NETWORK, NetworkStore, _network_exists, apply_network_mode, is_bridge_mode

            config, net_guard = apply_network_mode(config, network, root)  # (NetworkError for an unknown one)
            if is_bridge_mode(network):
                if config.new_namespace(NamespaceType.USER):
                    raise NetworkError(f"network {network!r}: bridge networks and user namespaces do not mix yet")
                if network == DEFAULT_NETWORK and not _network_exists(root, network):
                    NetworkStore(root).get(network)  # (the default one is made on first use)
                bridge = network
        if ports and bridge is None:
            if net_guard is not None:
                os.close(net_guard)
            raise NetworkError("published ports need a bridge network (network='bridge' or another)")
        try:
            if log is not None and (stdout is not None or stderr is not None):
                raise ConfigError("log", "a logged container's stdout and stderr go to its log: give neither")
            if auto_remove and log is None:
                raise ConfigError(
                    "auto_remove", "needs log=LogConfig(...): the logger is what outlives us to remove it"
                )
            return cls._create(root, id, config, stdin, stdout, stderr, pass_fds, data_root, cgroup_root, snapshotter,
                               net_guard, bridge, ports, bundle, log, auto_remove, (given, spec),
                               _replaces, _start)  # fmt: skip
        finally:
            if net_guard is not None:
                os.close(net_guard)

    @classmethod
    def _create(
        cls,
        root: str,
        id: str,
        config: ContainerConfig,
        stdin: StdioArg,
        stdout: StdioArg,
        stderr: StdioArg,
        pass_fds: Sequence[int | IO[Any]],
        data_root: str | None,
        cgroup_root: str | None,
        snapshotter: str,
        net_guard: int | None,
        bridge: str | None,
        ports: Any,
        bundle: str | None = None,
        log: LogConfig | None = None,
        auto_remove: bool = False,
        spec: tuple[ContainerConfig, dict[str, Any]] | None = None,
        replaces: Container | None = None,
        start: bool = False,
    ) -> Container:
        """``start`` (run): the init execs once the id is claimed, without
        the exec fifo (see _plan.CreateInputs.start_now); a step failing
        after READY, or the exec, deletes the container."""
        check_config(config)
        # Compiled before anything is made: a bad profile or capability set
        # leaves nothing behind.
        confinement = _security.confinement(config.process, config)
        if not os.path.isdir(root):
            os.makedirs(root, mode=0o711, exist_ok=True)
            os.chmod(root, 0o711)  # exact, whatever the umask: a user namespace's root traverses it
        final = os.path.join(root, id)
        if replaces is None and os.path.lexists(final):
            raise ContainerExists(id, root)
        # Everything is made in a private directory that is renamed into place
        # once the init is READY: the rename is what claims the id, so two
        # creators of one id never see each other's half-made state, and a
        # creator that dies leaves only a .creating-* dir (swept by list()).
        directory = os.path.join(root, f"{CREATING_PREFIX}{id}-{os.getpid()}-{os.urandom(4).hex()}")
        keep_debris: list[str] = []  # why the .creating dir must stay for the sweep, if it must

        def remove_debris() -> None:
            if not keep_debris:
                _rmtree(directory, (config.uid_mappings, config.gid_mappings))

        with contextlib.ExitStack() as undo:
            if config.hooks.poststop:
                # A create that fails past this point ends as a delete does
                # (OCI lifecycle step 12); but not one that lost the id to
                # another creator: the hooks would act on that container.
                def poststop(kind: type[BaseException] | None, *_: object) -> None:
                    if kind is not None and not issubclass(kind, ContainerExists):
                        _hooks.run_warn(
                            "poststop", config.hooks.poststop, _hook_state(id, 0, bundle, config), "stopped"
                        )

                undo.push(poststop)
            os.mkdir(directory, 0o711)
            undo.callback(remove_debris)
            os.chmod(directory, 0o711)
            container, child, io = cls._setup(
                root,
                id,
                directory,
                config,
                undo,
                stdin,
                stdout,
                stderr,
                pass_fds,
                data_root,
                cgroup_root,
                keep_debris,
                snapshotter,
                bridge,
                ports,
                confinement,
                bundle,
                log,
                auto_remove,
                spec,
                replaces,
                start,
            )
            if net_guard is not None and _sys.pidfd_exited(net_guard):
                # the container whose network namespace we joined (by its pid) is gone
                raise NetworkError(f"container {id!r}: the container whose network it joins stopped meanwhile")
            if replaces is not None:
                # The new instance takes the old one's place in one step: the
                # id is never free, and the old one's lock (named by its
                # instance token) is gone from the path for anyone who waits
                # on it (_locked sees that).  The old one's remains are now
                # at `directory`, for the caller to remove.
                r = _shim_lib.pc_rename2(directory.encode(), final.encode(), _RENAME_EXCHANGE)
                if r < 0:
                    if r == -errno.ENOENT:
                        raise ContainerNotFound(id, root)
                    raise OSError(-r, f"container {id!r}: replacing its state directory: {os.strerror(-r)}")
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(final, _TAKEOVER))
            else:
                try:
                    os.rename(directory, final)
                except OSError as e:
                    if e.errno in (errno.EEXIST, errno.ENOTEMPTY):
                        raise ContainerExists(id, root) from None
                    raise
            undo.pop_all()
        io.close_child_ends()  # (a logger waits for our copies of its pipes' write ends)
        if start:
            # The id is ours: let the init exec (it waits right before its
            # execve, every other step done), then wait for that.
            try:
                child.go_and_wait_exec()
            except BaseException:
                child.close()
                try:
                    with contextlib.suppress(ContainerNotFound):  # (deleted meanwhile: what stopped it)
                        container.delete(force=True, volumes=True)
                finally:
                    container._close_handle()  # pidfd, pipes, pty; reaps the init if it is gone
                raise
        child.close()
        if replaces is not None:
            replaces._dispose(directory)
        return container

    @classmethod
    def _setup(
        cls,
        root: str,
        cid: str,
        directory: str,
        config: ContainerConfig,
        undo: contextlib.ExitStack,
        stdin: StdioArg,
        stdout: StdioArg,
        stderr: StdioArg,
        pass_fds: Sequence[int | IO[Any]],
        data_root: str | None,
        cgroup_root: str | None,
        keep_debris: list[str],
        snapshotter: str,
        bridge: str | None = None,
        ports: Any = (),
        confinement: Any = None,
        bundle: str | None = None,
        log: LogConfig | None = None,
        auto_remove: bool = False,
        spec: tuple[ContainerConfig, dict[str, Any]] | None = None,
        replaces: Container | None = None,
        start: bool = False,
    ) -> tuple[Container, _spawn.Child, Any]:
        instance = os.urandom(8).hex()  # names this container's lock file (state.json has it)
        reuse = replaces.dir if replaces is not None else None
        then: list[str] = []
        if auto_remove:
            # run by the logger when the output ends; acts only on this very instance
            then = [sys.executable, "-c", _AUTO_REMOVE, root, cid, instance]
        hostname = config.hostname or (cid[:12] if config.docker_defaults else "")
        if replaces is not None and not config.hostname and replaces._data.get("hostname") is not None:
            hostname = replaces._data["hostname"]  # (a renamed container's stays, as Docker's)
        lower = lower_base = None
        extra: dict[str, Any] = {"bundle": bundle} if bundle is not None else {}
        extra["hostname"] = hostname  # (the name other members of a network it joins later know it by)
        if spec is not None:
            extra["spec"] = spec[1]
        if replaces is not None and replaces._data.get("created"):
            extra["created"] = replaces._data["created"]  # (as Docker's: a restart keeps it)
        empty_volumes: list[tuple[str, str]] = []
        if any(m.type == "volume" for m in config.mounts):
            config = _use_volumes(config, data_root, os.path.join(root, cid), undo, extra, empty_volumes,
                                  replacing=replaces is not None)  # fmt: skip
        etc_base: str | tuple[str, ...]  # where _etc_files looks: a directory, or image layers (top first)
        if config.image is None and config.rootfs is None and os.geteuid() != 0:
            # Rootless, no rootfs: the built-in busybox rootfs (a directory the
            # user built and owns, i.e. the container's root does) under an
            # overlay upper layer of the container's own.
            lower = _rootfs.default_rootfs(data_root)
            rootfs = os.path.join(directory, "rootfs")
            etc_base = lower
            user, home = _rootfs.lookup_user(lower, config.process.user)
        elif config.image is not None or config.rootfs is None:
            config, image_fs = _image_rootfs(config, root, cid, directory, data_root, snapshotter, undo, extra, reuse)
            lower, lower_base, rootfs, layers = image_fs
            for volume_dest, volume_dir in empty_volumes if replaces is None else ():
                _fill_from_layers(volume_dir, volume_dest, layers, config)
            user, home = _rootfs.lookup_user(layers, config.process.user)
            etc_base = layers
        else:
            rootfs = etc_base = config.rootfs
            user, home = _rootfs.lookup_user(rootfs, config.process.user)
        if lower is not None:
            # layer/upper gets copies of what the container changes, setuid
            # files too: layer/ (0700) keeps other host users out; upper/ itself
            # is the container's "/" and keeps the usual 0755.
            os.mkdir(os.path.join(directory, "rootfs"), 0o755)
            os.chmod(os.path.join(directory, "rootfs"), 0o755)
            if not _take_over(reuse, directory, "layer", undo):  # (a restart keeps the container's changes)
                for d, mode in (("layer", 0o700), ("layer/upper", 0o755), ("layer/work", 0o755)):
                    os.mkdir(os.path.join(directory, d), mode)
                    os.chmod(os.path.join(directory, d), mode)
            if lower_base is not None and config.docker_defaults:
                missing = _missing_mountpoints(layers)
                if missing:
                    lower = f"{_init_layer(directory, missing)}:{lower}"
        env = (
            _process_env(config.process, hostname, home)
            if config.docker_defaults
            else _bundle_env(config.process.env, home)
        )
        # the rootfs as it will be named once the directory is renamed into place
        state_rootfs = rootfs.replace(directory, os.path.join(root, cid), 1) if rootfs.startswith(directory) else rootfs
        own_net = config.new_namespace(NamespaceType.NETWORK)
        _write_file(os.path.join(directory, "hostname"), hostname + "\n")
        _write_file(os.path.join(directory, "hosts"), _rootfs.hosts_file(hostname))
        _write_file(os.path.join(directory, "resolv.conf"), _rootfs.resolv_conf(own_netns=own_net, servers=config.dns))
        fifo = os.path.join(directory, "exec.fifo")
        if not start:  # (run's init waits for a GO on the sync socket instead)
            os.mkfifo(fifo, 0o622)
            os.chmod(fifo, 0o622)
        userns = config.new_namespace(NamespaceType.USER)
        if userns:
            host_root, host_root_gid = _root_ids(config)
            if not start:
                os.chown(fifo, host_root, host_root_gid)
            if lower is not None:
                for d in ("layer", "layer/upper", "layer/work", "rootfs"):
                    os.chown(os.path.join(directory, d), host_root, host_root_gid)

        manager = None
        cg_root = cgroup_root or _cgroups.DEFAULT_ROOT
        if config.cgroups:
            manager = _cgroups.new_manager(_layout(cg_root), config.cgroups_path, cid)
            try:
                manager.create_dirs()
            except CgroupError as e:
                # Rootless: cgroups are used where delegated to the user; where
                # they are not, a container that asks for no limits goes on
                # without one (as rootless podman on cgroup v1 does).
                asks = attrs.evolve(config.resources, devices=None) != Resources() or config.resources.devices
                if os.geteuid() == 0 or asks or config.cgroups_path is not None:
                    raise
                warnings.warn(
                    f"container {cid!r}: no cgroup (this user cannot make one: {e}); no limits, stats or pause for it",
                    stacklevel=4,
                )
                manager = None
        if manager is not None:
            mgr = manager

            def undo_cgroup() -> None:
                try:
                    mgr.destroy()
                except PyContainerError as e:
                    # Keep the .creating dir (cgroup.json names the cgroup): the
                    # sweep of a later list() retries.  The original error goes on.
                    keep_debris.append(str(e))
                    warnings.warn(f"container {cid!r}: its cgroup stays for now: {e}", stacklevel=2)

            undo.callback(undo_cgroup)
            # For the debris sweep, should this process die before the rename.
            cg_json = os.path.join(directory, "cgroup.json")
            _write_file(cg_json + ".new", json.dumps({"cgroup": manager.to_json(), "cgroup_root": cg_root}), 0o600)
            os.replace(cg_json + ".new", cg_json)
            manager.create(_cgroup_resources(config, config.resources))
        if log is not None and reuse is not None:
            # a restart appends to the log of the instance it replaces
            for name in sorted(os.listdir(reuse)):
                if name == _logs.LOG_NAME or (name.startswith(_logs.LOG_NAME + ".") and name[len(_logs.LOG_NAME) + 1 :].isdigit()):
                    _take_over(reuse, directory, name, undo)
        if log is not None and not config.process.terminal:
            # the logger reads the other ends; ours go when create is done (or undone)
            out_r, out_w = os.pipe2(os.O_CLOEXEC)
            err_r, err_w = os.pipe2(os.O_CLOEXEC)
            try:
                _logs.start(directory, log, out_r, err_r, then=then)
            except BaseException:
                _close_fds([out_w, err_w])
                raise
            finally:
                _close_fds([out_r, err_r])
            stdout, stderr = out_w, err_w
            log_fds = [out_w, err_w]
        io = prepare_stdio(stdin, stdout, stderr, pass_fds)
        if log is not None and not config.process.terminal:
            io.child_fds += log_fds  # ours close once the child has them (or on undo)
        undo.callback(io.close_all)

        netns = _netpool.POOL.take() if _plan.pool_allowed(config) else None
        if bridge is not None:
            # The container's network namespace is made here, wired to the
            # bridge from outside, then joined by the child.
            if netns is None:
                try:
                    netns = _netpool.new_netns()
                except OSError as e:
                    raise NetworkError(f"container {cid!r}: cannot make a network namespace: {e.strerror}") from None
            try:
                extra["network"] = _attach_bridge(bridge, root, cid, hostname, directory, netns, ports, undo)
            except BaseException:
                os.close(netns)
                raise
        clone_fd = exit_src = -1
        idmap_fds: list[int] = []
        try:
            idmap_fds = _idmap_fds(config, 4 + len(pass_fds))
            if config.init:
                # The --init records the exit status here itself (csrc/init.c),
                # so it stays known when this process is gone before the container.
                exit_src = os.open(os.path.join(directory, "exit.json"), os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
            join_files, clone_fd = _cgroup_join(manager, clone=True)
            exit_fd = 3 + len(pass_fds) if exit_src >= 0 else 0
            inputs = _plan.CreateInputs(
                rootfs=rootfs,
                state_dir=directory,
                hostname=hostname,
                user=user,
                env=env,
                stdio=tuple(io.pairs) + (((exit_src, exit_fd),) if exit_fd else ()),
                exit_fd=exit_fd,
                preserve_fds=len(pass_fds),
                init_fd=_init_fd() if config.init else -1,
                helper_fd=_helper_fd(),
                lower_rootfs=lower,
                lower_base=lower_base,
                etc_files=_etc_files(etc_base, config.readonly_rootfs) if config.docker_defaults else (),
                netns_fd=-1 if netns is None else netns,
                cgroup_files=tuple(join_files),
                in_cgroup=manager is not None,
                confinement=confinement,
                container_id=cid,
                idmap_fds=tuple(idmap_fds),
                source_dirs=tuple(os.path.isdir(m.source or "") for m in config.mounts),
                stop_signal=stop_signal(extra.get("image_config")),
                start_now=start,
            )
            plan = _plan.plan_create(config, inputs)
            ops = plan.ops
            keep = [src for src, _ in inputs.stdio] + [inputs.helper_fd] + ([inputs.init_fd] if config.init else [])
            keep += [fd for fd in idmap_fds if fd >= 0]
            keep += [netns] if netns is not None else []
            flags = _plan.spawn_flags(config, pooled_netns=netns is not None, in_cgroup=manager is not None)
            try:
                child = _spawn.spawn(
                    ops,
                    flags,
                    packed=plan,
                    keep_fds=keep,
                    max_target_fd=2 + len(pass_fds) + (1 if exit_fd else 0),
                    cgroup_fd=clone_fd,
                )
            except OSError as e:
                if clone_fd >= 0 and e.errno == errno.EACCES:
                    err: PyContainerError = CgroupError(
                        f"container {cid!r}: cannot clone into its cgroup2 cgroup: {e.strerror} (a delegated "
                        "subtree only takes processes from inside it: run the creator in the subtree)"
                    )
                else:
                    err = PyContainerError(f"container {cid!r}: {e}")
                err.errno = e.errno  # type: ignore[attr-defined]
                raise err from e
        finally:
            if netns is not None:
                os.close(netns)  # the child has its own copy now (or never will)
            _close_fds([fd for fd in {clone_fd, exit_src, *idmap_fds} if fd >= 0])
        undo.callback(child.abandon)
        # The child sets up its mounts now; write the state meanwhile.  The
        # directory is private until renamed into place, so nobody reads a
        # half-written state.json (the debris sweep tolerates one).
        forks = _plan.Op.FORK in plan.kinds
        cg_state = {"cgroup": manager.to_json(), "cgroup_root": cg_root} if manager is not None else {}
        cg_state.update(extra)
        given = spec[0] if spec is not None else None
        if not forks:
            data = cls._prepare_state(directory, cid, child.pid, state_rootfs, config, cg_state, instance, given)

        def write_maps(pid: int) -> None:
            if os.geteuid() != 0:
                from .rootless import write_id_maps_setuid

                write_id_maps_setuid(pid, config.uid_mappings, config.gid_mappings)
            else:
                _spawn.write_id_maps(pid, config.uid_mappings, config.gid_mappings)

        def run_create_hooks(pid: int) -> None:
            st = _hook_state(cid, pid, bundle or state_rootfs, config)
            _hooks.run("prestart", config.hooks.prestart, st, "creating")
            _hooks.run("create_runtime", config.hooks.create_runtime, st, "creating")
            _hooks.run("create_container", config.hooks.create_container, st, "creating", enter_pid=pid)

        child.wait_for(_spawn.MSG_READY, on_maps=write_maps, on_hooks=run_create_hooks)
        if netns is not None:
            # The pool makes the next namespace while this container's
            # process runs, not while it is set up: for run, once the GO is
            # sent (while the child execs); for create, now.  Kicked at
            # READY, run's refill took the CPU from the rename and the GO
            # (A/B of 1500 containers each: 0.2 ms a container).
            if start:
                child.after_go = _netpool.POOL.kick
            else:
                _netpool.POOL.kick()
        if forks:
            data = cls._prepare_state(directory, cid, child.pid, state_rootfs, config, cg_state, instance, given)
        # Our own child: its pid cannot be recycled while we have not reaped it.
        container = cls(root, cid, data, config, pidfd=os.pidfd_open(child.pid), manager=manager)
        undo.callback(container._close_handle)  # if the rename below fails
        container._ours = True
        container.stdin, container.stdout, container.stderr = io.stdin, io.stdout, io.stderr
        container.pty = child.pty_master
        child.pty_master = None
        if log is not None and container.pty is not None:
            _logs.start(directory, log, container.pty, then=then)  # the terminal's output, as stream stdout
            os.close(container.pty)
            container.pty = None
        return container, child, io

    @staticmethod
    def _prepare_state(
        directory: str,
        cid: str,
        pid: int,
        rootfs: str,
        config: ContainerConfig,
        extra: dict[str, Any],
        instance: str,
        given: ContainerConfig | None = None,
    ) -> dict[str, Any]:
        os.close(os.open(os.path.join(directory, f"lock-{instance}"), os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600))
        start = _sys.pid_start_time(pid)
        if start is None:
            raise PyContainerError(f"container init (pid {pid}) died during setup")
        data = {
            "ociVersion": OCI_VERSION,
            "id": cid,
            "pid": pid,
            "pid_start": start,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "rootfs": rootfs,
            "creator_pid": os.getpid(),
            "instance": instance,
            "exit": None,
            **extra,
        }
        # The config parts are serialised once per config (they are frozen).
        text = json.dumps(data, separators=(",", ":"))[:-1] + ',"config":' + _config_json_text(config)
        if given is not None:
            text += ',"given_config":' + _config_json_text(given)
        _write_file(os.path.join(directory, "state.json"), text + "}", 0o600)
        data["config"] = _config_to_json(config)
        if given is not None:
            data["given_config"] = _config_to_json(given)
        return data

    @classmethod
    def run(
        cls,
        root: str | None,
        id: str,
        config: ContainerConfig,
        **kwargs: Any,
    ) -> Container:
        """:meth:`create` + :meth:`start` in one step, with :meth:`create`'s
        arguments.  The container keeps running; :meth:`wait` for it.

        Without the exec fifo: the init execs as soon as the container's
        state is in place (the id claimed), and ``run`` returns once it has
        exec'd; it is never seen ``created``.  ``InitError`` when a step or
        the exec fails; nothing is left then.  A config with
        ``start_container`` hooks (they run in the created container) is
        created and started in two steps.  ``poststart`` hooks run once the
        process started; their failures are warnings."""
        in_one = not (isinstance(config, ContainerConfig) and config.hooks.start_container)
        container = cls.create(root, id, config, _start=in_one, **kwargs)
        try:
            if in_one:
                container._poststart()
            else:
                container.start()
        except BaseException:
            container.delete(force=True, volumes=True)
            raise
        return container

    @classmethod
    def load(cls, root: str | None, id: str) -> Container:
        """The container ``id`` under ``root``, as another process created it."""
        root = state_root(root)
        container_id(id)
        path = os.path.join(root, id, "state.json")
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except FileNotFoundError:
            raise ContainerNotFound(id, root) from None
        return cls(root, id, data)

    # (from here on in the class, ``list`` names this method: annotations say builtins.list)
    @classmethod
    def list(cls, root: str | None = None) -> list[Container]:
        """Every container under ``root``, sorted by id."""
        root = state_root(root)
        try:
            names = sorted(os.listdir(root))
        except FileNotFoundError:
            return []
        _sweep_debris(root, names)
        out = []
        for name in names:
            if name.startswith("."):
                continue
            try:
                out.append(cls.load(root, name))
            except (ContainerNotFound, PyContainerError, ValueError, KeyError):
                continue
        return out

    # ---- status ---------------------------------------------------------------

    @property
    def status(self) -> Status:
        if self._exit is not None:
            return Status.STOPPED
        if self._pidfd is not None:  # pins the very process: no /proc read needed
            if _sys.pidfd_exited(self._pidfd):
                return Status.STOPPED
        else:
            start = self._data.get("pid_start")
            if not self.pid or start is None or not _sys.is_alive(self.pid, start):
                return Status.STOPPED
        if self.cgroup is not None and os.path.exists(os.path.join(self.dir, "paused")) and self.cgroup.frozen():
            return Status.PAUSED
        if os.path.exists(os.path.join(self.dir, "exec.fifo")):
            return Status.CREATED
        return Status.RUNNING

    def state(self) -> State:
        if not os.path.exists(os.path.join(self.dir, "state.json")):
            raise ContainerNotFound(self.id, self.root)
        return State(
            id=self.id,
            status=self.status,
            pid=self.pid or None,
            rootfs=self._data["rootfs"],
            created=self._data["created"],
            exit_status=self._exit,
            bundle=self._data.get("bundle"),
        )

    def _require(self, action: str) -> Status:
        # The same id may have been deleted and made anew since this object
        # was loaded: act only on the container it stands for.
        if not os.path.exists(os.path.join(self.dir, f"lock-{self._data.get('instance')}")):
            raise ContainerNotFound(self.id, self.root)
        allowed, to = TRANSITIONS[action]
        status = self.status
        if status not in allowed:
            raise InvalidStateTransition(self.id, status.value, to.value, action.replace("force-", ""))
        return status

    # ---- lifecycle ------------------------------------------------------------

    def start(self) -> None:
        """Release the init to exec the process.  Raises InitError when the exec fails.

        The config's ``start_container`` hooks run first, in the container; if
        one fails the init is killed and HookError raised (delete comes next).
        ``poststart`` hooks run once the process started; their failures are
        warnings."""
        hooks = self.config.hooks
        if hooks.start_container:
            # Outside the lock: a slow hook must not hold up kill or delete.
            self._require("start")
            try:
                _hooks.run_in_container("start_container", hooks.start_container, self._hook_state(), "created", self)
            except HookError:
                with contextlib.suppress(PyContainerError):
                    self.kill(_signal.SIGKILL)
                raise
        with _locked(self.dir, self._data.get("instance", "")):
            self._require("start")
            fifo = os.path.join(self.dir, "exec.fifo")
            fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            try:
                data = self._drain_fifo(fd)
            finally:
                os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(fifo)
        if len(data) > 1:
            raise _spawn.Message.unpack(data[1:].ljust(_spawn.MSG_SIZE, b"\0")).error()
        if not data:
            raise PyContainerError(f"container {self.id!r} died before it could start")
        self._poststart()

    def _poststart(self) -> None:
        """The poststart hooks, once the process started; failures are warnings."""
        if self.config.hooks.poststart:
            _hooks.run_warn("poststart", self.config.hooks.poststart, self._hook_state(), "running")

    def _hook_state(self) -> dict[str, Any]:
        return _hook_state(self.id, self.pid or 0, self._data.get("bundle") or self._data["rootfs"], self.config)

    def _drain_fifo(self, fd: int) -> bytes:
        """Read the exec fifo to EOF (the init exec'd or died), watching the init."""
        chunks: list[bytes] = []
        watch = [fd] + ([self._pidfd] if self._pidfd is not None else [])
        while True:
            r = _sys.readable(watch, 30.0)
            if fd in r:
                try:
                    chunk = os.read(fd, 4096)
                except BlockingIOError:
                    continue
                if not chunk:
                    return b"".join(chunks)
                chunks.append(chunk)
            elif r:  # the init is gone without opening the fifo
                return b"".join(chunks)
            else:
                raise PyContainerError(f"container {self.id!r}: init did not respond to start")

    def wait(self, timeout: float | None = None) -> ExitStatus:
        """Wait for the init to exit.  Only the creating process learns the exit
        status; others get ``ExitStatus()`` with both fields None."""
        if self._exit is not None:
            return self._exit
        status = self._reap(timeout)
        if status is None:
            raise TimeoutError(f"container {self.id!r} did not exit within {timeout} s")
        if status.code is None and status.signal is None:
            # Not our child, or reaped by another object: its reaper may have recorded it.
            status = _read_exit(self.dir) or status
            self._exit = status
        return status

    def _on_exit(self, status: ExitStatus) -> ExitStatus:
        """Our init was reaped (by wait, communicate or delete): note OOM, record it."""
        if status.signal == _signal.SIGKILL and self.cgroup is not None:
            # As Docker's OOMKilled: the init died of SIGKILL and the kernel's
            # OOM killer acted in the container's cgroup.
            with contextlib.suppress(PyContainerError):
                if self.cgroup.oom_kills() > 0:
                    status = attrs.evolve(status, oom_killed=True)
        self._record_exit(status)
        return status

    def _record_exit(self, status: ExitStatus) -> None:
        """Keep the exit status beside state.json, for other processes' load()."""
        self._data["exit"] = attrs.asdict(status)
        if not os.path.exists(os.path.join(self.dir, f"lock-{self._data.get('instance', '')}")):
            return  # restarted, renamed or deleted since: the directory is another instance's (or none)
        # (only an init with a restart policy counts restarts: no read of exit.json otherwise)
        n = self.restart_count if self.config.init and self.config.restart != "no" else 0
        record = {**self._data["exit"], **({"restarts": n} if n else {})}
        path = os.path.join(self.dir, "exit.json")
        with contextlib.suppress(FileNotFoundError):
            if self.config.init:
                # The --init wrote a whole record before it died, which other
                # processes woken by that death may be reading: replaced whole.
                _replace_json(path, record)
            else:
                # No record yet: written in place (a reader takes a half
                # written file for none yet, see _exit_json); a rename cost
                # the create loop 40 us a container.
                _write_file(path, json.dumps(record, separators=(",", ":")), 0o600)

    def kill(self, sig: int = _signal.SIGTERM) -> None:
        """Send ``sig`` to the init (through its pidfd: never to a recycled pid).

        A paused container gets other signals when it is resumed; SIGKILL
        thaws it (as runc does), since a frozen v1 task dies only when thawed."""
        status = self._require("kill")
        assert self._pidfd is not None
        try:
            _sys.pidfd_signal(self._pidfd, sig)
        except ProcessLookupError:
            raise InvalidStateTransition(self.id, Status.STOPPED.value, Status.STOPPED.value, "kill") from None
        if status is Status.PAUSED and sig == _signal.SIGKILL and self.cgroup is not None:
            # The signal has landed: a concurrent delete may have done the rest.
            with contextlib.suppress(ContainerNotFound, CgroupError), _locked(self.dir, self._data.get("instance", "")):
                self.cgroup.thaw()
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(self.dir, "paused"))

    def stop(self, timeout: float = 10.0, sig: int | None = None) -> ExitStatus:
        """``docker stop``: ``sig`` (default: the image's StopSignal, else
        SIGTERM), then SIGKILL if the container still runs after ``timeout``
        seconds; returns its exit status.  When SIGKILL ended an init that
        records its own status (``init=True``, which the signal gives no
        chance to), the status is recorded here."""
        if self.status is Status.STOPPED:
            return self.wait()
        if sig is None:
            sig = stop_signal(self.image_config)
        try:
            self.kill(sig)
            return self.wait(timeout)
        except InvalidStateTransition:  # it stopped meanwhile
            return self.wait()
        except TimeoutError:
            pass
        with contextlib.suppress(InvalidStateTransition):
            self.kill(_signal.SIGKILL)
        status = self.wait(30)
        if status.code is None and status.signal is None:
            status = ExitStatus(signal=_signal.SIGKILL)
            self._exit = status
            self._record_exit(status)
        return status

    def delete(self, force: bool = False, *, volumes: bool = False) -> None:
        """Remove the container.  A created one is killed first; a running one
        only with ``force=True`` (SIGKILL, then wait).  ``volumes``: its
        anonymous volumes go too (``docker rm -v``; named ones stay), unless
        another container uses one."""
        with _locked(self.dir, self._data.get("instance", "")):
            status = self._require("force-delete" if force else "delete")
            own_pidns = self.config.new_namespace(NamespaceType.PID)
            if self.cgroup is not None and (
                status is Status.PAUSED or (status is not Status.STOPPED and not own_pidns)
            ):
                self.cgroup.kill_all()  # frozen, or not all in one pid namespace: kill each
            if status is not Status.STOPPED and self._pidfd is not None:
                with contextlib.suppress(ProcessLookupError):
                    _sys.pidfd_signal(self._pidfd, _signal.SIGKILL)
                self._reap(None)
            elif self._ours:
                self._reap(None)
            self._close_handle()
            if self.cgroup is not None:
                # Processes left behind by an init without a pid namespace die
                # here too; then every cgroup directory the container made goes.
                # With a pid namespace of its own, the init's death took them all.
                self.cgroup.destroy(empty=own_pidns)
            # (connect() needs a bridge network, and a live join makes hosts.d:
            # without either there is no other network to read back from
            # state.json, whose read is a tenth of a millisecond)
            joined = []
            if self._data.get("network"):
                from .network import HOSTS_PARTS

                if os.path.isdir(os.path.join(self.dir, HOSTS_PARTS)):
                    joined = self._fresh_networks()
            for net in [self._data.get("network"), *joined]:
                if not net or not net.get("veth"):
                    continue
                from . import _bridge
                from .network import NetworkStore

                try:
                    NetworkStore(self.root).leave(net["name"], self.id, net["veth"])
                except (OSError, PyContainerError) as e:
                    # (the next user of the network reclaims the lease)
                    warnings.warn(f"container {self.id!r}: leaving network {net['name']!r}: {e}", stacklevel=2)
                if not own_pidns:
                    # Processes may live on in the namespace: take the veth
                    # out now.  Otherwise the init's death freed the namespace,
                    # and the kernel removes the pair with it, without making
                    # us wait for the RCU grace period a delete costs.
                    _bridge.detach(net["veth"], net.get("host_netns"))
            hook_state = self._hook_state() if self.config.hooks.poststop else {}
            _rmtree(self.dir, (self.config.uid_mappings, self.config.gid_mappings))
            if self._data.get("image_holder"):
                _images.ImageStore.release(self._data["image_holder"])
            for holder in self._data.get("volume_holders") or ():
                from .volumes import VolumeStore

                VolumeStore.release(holder)
            spec = self._data.get("spec") or {}
            if volumes and spec.get("anonymous_volumes"):
                from .volumes import VolumeError, VolumeStore

                vstore = VolumeStore(spec.get("data_root"))
                for name in spec["anonymous_volumes"]:
                    try:
                        vstore.remove(name)
                    except (VolumeError, OSError) as e:
                        warnings.warn(f"container {self.id!r}: its volume {name!r} stays: {e}", stacklevel=2)
            if hook_state:
                _hooks.run_warn("poststop", self.config.hooks.poststop, hook_state, "stopped")

    def restart(
        self,
        timeout: float = 10.0,
        *,
        stdin: StdioArg = None,
        stdout: StdioArg = None,
        stderr: StdioArg = None,
        init: bool | None = None,
    ) -> None:
        """``docker restart``, and ``docker start`` of a stopped container:
        stop it if it runs (:meth:`stop`, ``timeout`` seconds before
        SIGKILL), then make it anew under the same id from the config and
        arguments it was created with, and start it.  What a Docker
        container keeps across a restart is kept: its writable layer (the
        files it changed), its anonymous and named volumes, its network,
        address-independent name and published ports, and its log (the new
        output is appended).  Its pid, cgroup and namespaces are new; this
        object stands for the new instance from then on.  A created
        container is just started; a paused one is an error (as Docker's:
        resume it first).  Stdio arguments are :meth:`create`'s, for a
        container without a log.  ``init=True`` gives the new instance the
        minimal init (``ContainerConfig.init``) if it had none: a caller
        that will not wait for it (a command line that returns) needs it to
        have the exit status recorded.

        The new instance takes the old one's place atomically: the id is
        never free, and a process waiting on the old one (say, a delete)
        finds it gone, not the new one.  Should the new one fail to come up,
        the stopped container stays as it was, except that it has left its
        network (its address and ports were needed by the new one)."""
        spec, given = self._data.get("spec"), self._data.get("given_config")
        if spec is None or given is None:
            raise PyContainerError(
                f"container {self.id!r} cannot be restarted: its state has no record of how it was created "
                "(an older pycontainer made it)"
            )
        if self.status is Status.CREATED:
            self.start()
            return
        # Held throughout: a delete (an auto-remove too) waits for us, then
        # finds the old instance gone.
        with _locked(self.dir, self._data.get("instance", "")):
            _sweep_own_debris(self.root, self.id)  # (what a restart that died took goes back first)
            status = self.status
            if status is Status.PAUSED:
                raise InvalidStateTransition(self.id, status.value, Status.RUNNING.value, "restart")
            if status is Status.RUNNING:
                self.stop(timeout)
            elif self._ours:
                self._reap(None)
            if self.cgroup is not None:
                # Without a pid namespace of its own its other processes
                # outlived the init (as delete, they die); the cgroup goes
                # before the new one is made (a fixed cgroupsPath is the same).
                try:
                    if not self.config.new_namespace(NamespaceType.PID):
                        self.cgroup.kill_all()
                    self.cgroup.destroy(empty=self.config.new_namespace(NamespaceType.PID))
                    # (the sweep must not destroy it again: with a fixed
                    # cgroupsPath it would be the new instance's)
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(os.path.join(self.dir, "cgroup.json"))
                except PyContainerError as e:
                    raise PyContainerError(f"container {self.id!r} cannot restart: its cgroup stays: {e}") from e
            if spec.get("log"):
                # Its logger writes what the old instance left in the pipe, then
                # lets go of the log: the new instance's logger appends to it.
                deadline = time.monotonic() + 10.0
                while _logs.writing(self.dir):
                    if time.monotonic() > deadline:
                        raise PyContainerError(f"container {self.id!r}: its logger did not finish within 10 s")
                    time.sleep(0.005)
            joined = [n["name"] for n in self._fresh_networks()]
            for net in [self._data.get("network"), *(self._data.get("networks") or ())]:
                if net and net.get("veth"):
                    from . import _bridge
                    from .network import NetworkStore

                    # The new instance takes the same name, ports and address
                    # (as Docker's usually does): the old veth goes now, not
                    # at the kernel's pace, so the address is free at once.
                    _bridge.detach(net["veth"], net.get("host_netns"))
                    NetworkStore(self.root).leave(net["name"], self.id, net["veth"], removed=True)
            log = spec.get("log")
            config = _config_from_json(given)
            if self._data.get("image"):
                # the image it ran, not what its tag names now (as Docker's)
                config = attrs.evolve(config, image=self._data["image"], rootfs=None)
            if init and not config.init:
                config = attrs.evolve(config, init=True)
            new = type(self).create(
                self.root,
                self.id,
                config,
                stdin=stdin,
                stdout=stdout,
                stderr=stderr,
                data_root=spec.get("data_root"),
                cgroup_root=spec.get("cgroup_root"),
                snapshotter=spec.get("snapshotter") or "auto",
                network=spec.get("network"),
                ports=spec.get("ports") or (),
                bundle=spec.get("bundle"),
                log=None if log is None else LogConfig(**log),
                auto_remove=bool(spec.get("auto_remove")),
                _replaces=self,
            )
        self._close_handle()
        self.__dict__.update(new.__dict__)
        if joined:
            from .network import _network_exists

            # The networks connect() joined it to: recorded first (pending),
            # then joined again; one that cannot be joined now stays pending
            # for the next start (one removed meanwhile is dropped).
            with _locked(self.dir, self._data.get("instance", "")):
                self._data["networks"] = [{"name": name} for name in joined]
                self._save_networks()
            for name in joined:
                try:
                    self.connect(name)
                except NetworkError as e:
                    warnings.warn(f"container {self.id!r}: not on network {name!r} this run: {e}", stacklevel=2)
                    if not _network_exists(self.root, name):
                        with _locked(self.dir, self._data.get("instance", "")):
                            self._data["networks"] = [n for n in self._fresh_networks() if n["name"] != name]
                            self._save_networks()
        self.start()

    def rename(self, new_id: str) -> None:
        """``docker rename``: the container is ``new_id`` from now on,
        running or not.  Its state directory moves (atomically, and only onto
        a free id: ContainerExists otherwise); its holds on the image and
        volumes, its network membership and its state follow.  Its hostname
        stays (as Docker's).  Other handles to it find it gone
        (ContainerNotFound): load it again by the new id."""
        container_id(new_id)
        if new_id == self.id:
            return
        new_dir = os.path.join(self.root, new_id)
        with _locked(self.dir, self._data.get("instance", "")):
            _sweep_own_debris(self.root, self.id)  # (what a restart that died took goes back first)
            if os.path.lexists(new_dir):
                raise ContainerExists(new_id, self.root)  # (before holds named by its path are touched)

            def move() -> None:
                r = _shim_lib.pc_rename2(self.dir.encode(), new_dir.encode(), _RENAME_NOREPLACE)
                if r < 0:
                    if r == -errno.EEXIST:
                        raise ContainerExists(new_id, self.root)
                    raise PyContainerError(f"container {self.id!r}: renaming it to {new_id!r}: {os.strerror(-r)}")

            # The holds for the new path first: nothing has moved should one fail.
            data = self._data
            spec = data.get("spec") or {}
            new_image_holder = None
            new_volume_holders: builtins.list[str] = []
            try:
                if data.get("image_holder"):
                    new_image_holder = _images.ImageStore(data.get("data_root")).hold(data["image"], new_dir)
                if data.get("volume_holders"):
                    from .volumes import VolumeStore

                    vstore = VolumeStore(spec.get("data_root") or data.get("data_root"))
                    for old in data["volume_holders"]:
                        name = os.path.basename(os.path.dirname(os.path.dirname(old)))
                        new_volume_holders.append(vstore.hold(name, new_dir, create=False)[1])
                if data.get("network"):
                    from .network import NetworkStore

                    # (under the networks' lock: their users look for members by their directories)
                    NetworkStore(self.root).rename_member(self.id, new_id, os.path.join(new_dir, "hosts"), move)
                else:
                    move()
            except BaseException as e:
                if not isinstance(e, ContainerExists):  # (else the holds are the other container's now)
                    for holder in [new_image_holder, *new_volume_holders]:
                        if holder:
                            _images.ImageStore.release(holder)
                raise
            old_dir = self.dir
            self.id, self.dir = new_id, new_dir
            data["id"] = new_id
            if data.get("rootfs", "").startswith(old_dir + "/"):
                data["rootfs"] = new_dir + data["rootfs"][len(old_dir) :]
            if new_image_holder:
                _images.ImageStore.release(data["image_holder"])
                data["image_holder"] = new_image_holder
            if new_volume_holders:
                for old in data["volume_holders"]:
                    _images.ImageStore.release(old)
                data["volume_holders"] = new_volume_holders
            self._save_state()

    def _fresh_networks(self) -> builtins.list[dict[str, Any]]:
        """The networks connect() joined it to, as state.json has them now
        (another process may have connected it since this object was
        loaded); the caller holds the lock."""
        try:
            with open(os.path.join(self.dir, "state.json"), encoding="utf-8") as f:
                nets = json.load(f).get("networks") or []
        except (OSError, ValueError):
            nets = self._data.get("networks") or []
        self._data["networks"] = nets
        return nets

    def _save_networks(self) -> None:
        """state.json with our ``networks``, the rest as it is on disk (an
        update() by another process stays); the caller holds the lock."""
        path = os.path.join(self.dir, "state.json")
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        data["networks"] = self._data.get("networks") or []
        _replace_json(path, data)

    def _save_state(self) -> None:
        """state.json anew from ``_data`` (the caller holds the lock)."""
        _replace_json(os.path.join(self.dir, "state.json"), self._data)

    @property
    def networks(self) -> builtins.list[str]:
        """The bridge networks it is on: the one it was created on first,
        then those :meth:`connect` joined it to."""
        first = self._data.get("network")
        return ([first["name"]] if first else []) + [n["name"] for n in self._data.get("networks") or ()]

    def connect(self, network: str) -> None:
        """``docker network connect``: join the container to the bridge
        network ``network`` too.  A running (or created, or paused) one gets
        a veth ``ethN`` there at once, with an address and no default route
        (its first network keeps that); its name goes into the members'
        /etc/hosts and theirs into its.  A stopped one joins when it is
        started again (:meth:`restart`).  Only a container created on a
        bridge network can (one with ``none``, ``host`` or another's
        network namespace cannot, as Docker's).  Joins made this way are
        kept across a restart and end with :meth:`disconnect` or delete."""
        from .network import NetworkStore, _network_exists

        with _locked(self.dir, self._data.get("instance", "")):
            if not self._data.get("network"):
                raise NetworkError(
                    f"container {self.id!r} is not on a bridge network: only such a container can join another"
                )
            extras = self._fresh_networks()
            pending = next((n for n in extras if n["name"] == network and not n.get("veth")), None)
            if network in self.networks and (pending is None or self.status is Status.STOPPED):
                raise NetworkError(f"container {self.id!r} is on network {network!r} already")
            store = NetworkStore(self.root)
            if not _network_exists(self.root, network):
                raise NetworkError(f"no network {network!r}")
            if self.status is Status.STOPPED:
                extras.append({"name": network})  # (joined at the next start)
                self._save_networks()
                return
            joined = self._join_network(store, network)
            if pending is not None:  # (a join restart or an earlier connect left to do)
                extras[extras.index(pending)] = joined
            else:
                extras.append(joined)
            self._save_networks()

    def _join_network(self, store: Any, name: str) -> dict[str, Any]:
        """A veth on network ``name`` into the (live) container's network
        namespace; what state.json keeps of it."""
        from . import _bridge
        from .network import HOSTS_PARTS

        taken = {"eth0", *(n.get("ifname") for n in self._data.get("networks") or ())}
        ifname = next(f"eth{i}" for i in range(1, 1000) if f"eth{i}" not in taken)
        parts = os.path.join(self.dir, HOSTS_PARTS)
        if not os.path.isdir(parts):
            os.mkdir(parts, 0o755)  # /etc/hosts from each network's part from now on
            _write_file(os.path.join(parts, ".order"), self._data["network"]["name"] + "\n")
            store.refresh_hosts(self._data["network"]["name"])
        with open(os.path.join(parts, ".order"), "a", encoding="utf-8") as f:
            f.write(name + "\n")  # (its own addresses in /etc/hosts in the order it joined: the first first)
        hostname = self._data.get("hostname") or self.id[:12]
        _, member = store.join(name, self.id, hostname, os.path.join(self.dir, "hosts"))
        veth = str(member.veth)
        try:
            network = store.get(name)
            assert self._pidfd is not None
            fd = os.open(f"/proc/{self.pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _sys.pidfd_exited(self._pidfd):  # (the pid could be another's now)
                    raise InvalidStateTransition(self.id, Status.STOPPED.value, Status.RUNNING.value, "connect")
                _bridge.attach(network, veth, member.address, member.address6, fd, ifname=ifname, default_route=False)
            finally:
                os.close(fd)
        except BaseException:
            store.leave(name, self.id, veth, removed=True)  # (attach left nothing)
            raise
        return {"name": name, "address": member.address, "address6": member.address6, "gateway": network.gateway,
                "veth": veth, "host_netns": network.host_netns, "ifname": ifname}  # fmt: skip

    def disconnect(self, network: str) -> None:
        """``docker network disconnect``: leave a network :meth:`connect`
        joined it to (its veth goes, its name from the members' /etc/hosts).
        Its first network cannot be left (NetworkError)."""
        from . import _bridge
        from .network import NetworkStore

        with _locked(self.dir, self._data.get("instance", "")):
            extras = self._fresh_networks()
            entry = next((n for n in extras if n["name"] == network), None)
            if entry is None:
                first = self._data.get("network")
                why = "it was created on it" if first and first["name"] == network else "it is not on it"
                raise NetworkError(f"container {self.id!r} cannot leave network {network!r}: {why}")
            if entry.get("veth"):
                _bridge.detach(entry["veth"], entry.get("host_netns"))
                NetworkStore(self.root).leave(network, self.id, entry["veth"], removed=True)
            extras.remove(entry)
            self._save_networks()

    def _dispose(self, path: str) -> None:
        """The remains of this (stopped) instance, replaced by a restart and
        moved to ``path``: the directory.  Its cgroup went before the new
        instance was made; its holds on the image and volumes are the new
        instance's too (hold files are named by the container's path).  The
        new instance is in place: what fails here is a warning."""
        self._close_handle()
        try:
            _rmtree(path, (self.config.uid_mappings, self.config.gid_mappings))
        except Exception as e:  # (a new instance that works must not be lost for the old one's debris)
            warnings.warn(f"container {self.id!r}: the replaced instance's remains at {path}: {e}", stacklevel=3)

    # ---- cgroups ----------------------------------------------------------------

    def _manager(self, action: str) -> _cgroups.Manager:
        if self.cgroup is None:
            raise CgroupError(f"cannot {action} container {self.id!r}: it was created with cgroups=False")
        return self.cgroup

    def pause(self) -> None:
        """Freeze every process of the container; returns once they are frozen."""
        with _locked(self.dir, self._data.get("instance", "")):
            mgr = self._manager("pause")
            self._require("pause")
            _write_file(os.path.join(self.dir, "paused"), "")  # status reads the freezer only then
            try:
                mgr.freeze()
            except BaseException:
                with contextlib.suppress(PyContainerError):
                    mgr.thaw()
                os.unlink(os.path.join(self.dir, "paused"))
                raise

    def resume(self) -> None:
        """Thaw a paused container; returns once it runs again."""
        with _locked(self.dir, self._data.get("instance", "")):
            mgr = self._manager("resume")
            self._require("resume")
            mgr.thaw()
            os.unlink(os.path.join(self.dir, "paused"))

    def update(self, resources: Resources) -> None:
        """Change the limits of a live container.  Fields of ``resources`` left
        at their defaults keep their current values (as ``docker update``);
        the others replace them.  If a write fails, what was in force is put
        back (limits that were unset go back to unlimited)."""
        if not isinstance(resources, Resources):
            raise TypeError(f"resources must be a Resources, not {type(resources).__name__}")
        with _locked(self.dir, self._data.get("instance", "")):
            mgr = self._manager("update")
            self._require("update")
            # What is in force now, as the last updater (perhaps another
            # process) recorded it: our own copy may be stale.
            path = os.path.join(self.dir, "state.json")
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
            current = _config_from_json(data["config"])
            merged = _merge_resources(current.resources, resources)
            check_resources(attrs.evolve(current, resources=merged))
            try:
                mgr.update(_cgroup_resources(current, merged), old=_cgroup_resources(current, current.resources))
            except BaseException:
                with contextlib.suppress(PyContainerError):
                    mgr.update(
                        _cgroup_resources(current, _rollback_resources(current.resources, merged)),
                        old=_cgroup_resources(current, merged),
                    )
                raise
            new = attrs.evolve(current, resources=merged)
            data["config"] = _config_to_json(new)
            _replace_json(path, data)
            self.config = new
            self._data = data

    @property
    def restart_count(self) -> int:
        """How many times its restart policy (``ContainerConfig.restart``)
        has started the process again, as Docker's RestartCount."""
        n = _exit_json(self.dir).get("restarts", 0)
        return n if isinstance(n, int) else 0

    @property
    def log_config(self) -> LogConfig | None:
        """How its output is logged (``create(log=...)``), None if it is not."""
        log = (self._data.get("spec") or {}).get("log")
        if log is None:
            return LogConfig() if os.path.exists(os.path.join(self.dir, _logs.LOG_NAME)) else None
        return LogConfig(**log)

    def logs(self, *, follow: bool = False, tail: int | None = None) -> Iterator[_logs.LogEntry]:
        """The container's log (created with ``log=LogConfig(...)``), oldest
        entry first; ``tail``: the last ones only; ``follow``: wait for more
        until its output ends (the container and what it started exited)."""
        return _logs.read(self.dir, follow=follow, tail=tail)

    def stats(self) -> _cgroups.Stats:
        """Resource use: memory, CPU, pids, I/O and OOM kills (see cgroups.Stats)."""
        return self._manager("read the stats of").stats()

    # ---- images -----------------------------------------------------------------

    def _stopped_root(self) -> tuple[str, builtins.list[str]]:
        """Where a stopped container's files are: (a directory, []) for a
        plain or copied rootfs; for an overlay, (its mount point, [lower
        base, lowerdir, upperdir, workdir]) to mount it there anew."""
        rootfs = self._data["rootfs"]
        if not self._data.get("image") or self._data.get("snapshotter") == "copy":
            return rootfs, []
        store = _images.ImageStore(self._data.get("data_root"))
        layers = tuple(reversed(store.unpack(store.get(self._data["image"]))))
        lower = ":".join(store.short_link(d) for d in layers)
        init = os.path.join(self.dir, "layer", "init")
        if os.path.isdir(init):
            lower = f"{init}:{lower}"
        layer = os.path.join(self.dir, "layer")
        return rootfs, [store.root, lower, os.path.join(layer, "upper"), os.path.join(layer, "work")]

    def _image_parts(self) -> tuple[_images.ImageStore, _images.Image, str]:
        if not self._data.get("image"):
            raise PyContainerError(f"container {self.id!r} runs on a plain rootfs: it has no image layers")
        if self._data.get("snapshotter") == "copy":
            raise PyContainerError(f"container {self.id!r} runs on a copied rootfs: its changes are not kept apart")
        store = _images.ImageStore(self._data.get("data_root"))
        return store, store.get(self._data["image"]), os.path.join(self.dir, "layer", "upper")

    @property
    def image_config(self) -> dict[str, Any] | None:
        """What the image said that the runtime does not apply itself:
        ``stop_signal``, ``exposed_ports``, ``volumes`` (None without an image)."""
        data: dict[str, Any] | None = self._data.get("image_config")
        return data

    def changes(self) -> builtins.list[tuple[str, str]]:
        """What the container changed in its image, as ``docker diff``:
        ``[("A" | "C" | "D", "/path"), ...]``."""
        store, image, upper = self._image_parts()
        return _images.changes(upper, list(reversed(store.unpack(image))))

    def commit(
        self,
        ref: str | None = None,
        *,
        comment: str = "",
        config: dict[str, Any] | None = None,
        pause: bool = True,
        created_by: str = "pycontainer commit",
    ) -> _images.Image:
        """A new image: the container's image plus its changes as one layer
        (deletions as whiteouts), tagged ``ref``.  ``config`` updates the
        image's config (Cmd, Env, ...).  A running container is paused
        meanwhile, as ``docker commit`` does, for a consistent layer."""
        store, image, upper = self._image_parts()
        paused = False
        if pause and self.cgroup is not None and self.status is Status.RUNNING:
            self.pause()
            paused = True
        try:
            return _images.commit(store, image, upper, ref, comment=comment, config=config, created_by=created_by)
        finally:
            if paused:
                self.resume()

    def copy_to(self, src: str, dest: str) -> None:
        """``docker cp SRC CONTAINER:DEST``: the host file or directory
        ``src`` into the container, in any state: a stopped one gets it in
        its writable layer (its overlay mounted for the copy in a mount
        namespace of the copy's own).  An existing directory ``dest`` gets
        it inside, under its own name; otherwise it is made as ``dest``.
        Written as the container's root (its host id in a user namespace)."""
        _copy(self, src, dest, into=True)

    def copy_from(self, src: str, dest: str) -> None:
        """``docker cp CONTAINER:SRC DEST``: the container's ``src`` to the
        host (same placing rules as :meth:`copy_to`)."""
        _copy(self, src, dest, into=False)

    def oom_watcher(self) -> _cgroups.OOMWatcher:
        """Watch the container's cgroup for OOM kills (close it when done).
        ``wait()`` needs none: it reads the cgroup's OOM-kill count."""
        return self._manager("watch").oom_watcher()

    def processes(self) -> builtins.list[int]:
        """Host pids of every process in the container's cgroup."""
        return self._manager("list the processes of").pids()

    def close(self) -> None:
        """Release this object's fds (pidfd, pipes, pty) without touching the container."""
        self._close_handle()

    def __enter__(self) -> Container:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if os.path.exists(os.path.join(self.dir, "state.json")):
                self.delete(force=True)
                return
        except ContainerNotFound:
            pass  # restarted, renamed or deleted by another process meanwhile: not ours to delete
        self._close_handle()

    # ---- exec -----------------------------------------------------------------

    def exec(
        self,
        process: Process | Sequence[str],
        *,
        stdin: StdioArg = None,
        stdout: StdioArg = None,
        stderr: StdioArg = None,
        pass_fds: Sequence[int | IO[Any]] = (),
    ) -> ExecProcess:
        """Start another process in the container: it joins the init's cgroup,
        every namespace of the init, and its root.  Returns a handle to wait on."""
        if not isinstance(process, Process):
            process = Process(args=tuple(process), env=self.config.process.env)
        self._require("exec")
        fds: list[tuple[NamespaceType, int]] = []
        io = None
        try:
            confinement = _security.confinement(process, self.config, base=self.config.process)
            join_files, _ = _cgroup_join(self.cgroup, clone=False)
            for ns in self.config.namespaces:
                fd = os.open(f"/proc/{self.pid}/ns/{_plan.PROC_NS_NAMES[ns.type]}", os.O_RDONLY | os.O_CLOEXEC)
                fds.append((ns.type, fd))
            # The ns files were opened through the pid: check it is still our init.
            if not _sys.is_alive(self.pid, self._data["pid_start"]):
                raise InvalidStateTransition(self.id, Status.STOPPED.value, Status.RUNNING.value, "exec")
            hostname = self.config.hostname or (self.id[:12] if self.config.docker_defaults else "")
            user, home = _rootfs.lookup_user(f"/proc/{self.pid}/root", process.user)
            env = (
                _process_env(process, hostname, home) if self.config.docker_defaults else _bundle_env(process.env, home)
            )
            io = prepare_stdio(stdin, stdout, stderr, pass_fds)
            ops = _plan.compile_exec(
                fds,
                args=process.args,
                env=env,
                cwd=process.cwd,
                user=user,
                umask=process.umask,
                terminal=process.terminal,
                stdio=io.pairs,
                preserve_fds=len(pass_fds),
                helper_fd=_helper_fd(),
                cgroup_files=join_files,
                confinement=confinement,
                keyring=_plan.keyring_name(self.id) if self.config.new_keyring else "",
            )
            keep = [src for src, _ in io.pairs] + [fd for _, fd in fds] + [_helper_fd()]
            child = _spawn.spawn(ops, 0, keep_fds=keep, max_target_fd=2 + len(pass_fds))
            try:
                child.wait_for(0)
            except BaseException:
                child.abandon()
                raise
            pidfd = os.pidfd_open(child.pid)
            pty = child.pty_master
            child.pty_master = None
            child.close()
            io.close_child_ends()
            proc = ExecProcess(child.pid, pidfd, io, pty)
            io = None
            return proc
        finally:
            for _, fd in fds:
                os.close(fd)
            if io is not None:
                io.close_all()


def _exit_json(directory: str) -> dict[str, Any]:
    """exit.json: the exit status (``code``...) once recorded, and how many
    times a restart policy started the process again (``restarts``, also
    while it runs); {} while there is nothing, or a write is half done."""
    try:
        with open(os.path.join(directory, "exit.json"), encoding="utf-8") as f:
            data = json.load(f)
    except (FileNotFoundError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _read_exit(directory: str) -> ExitStatus | None:
    data = _exit_json(directory)
    if "code" not in data:
        return None
    data.pop("restarts", None)
    try:
        return ExitStatus(**data)
    except TypeError:
        return None


def _root_ids(config: ContainerConfig) -> tuple[int, int]:
    """The host uid and gid of the container's root (0, 0 without a user namespace's maps)."""
    return (
        _host_id(config.uid_mappings, 0) if config.uid_mappings else 0,
        _host_id(config.gid_mappings, 0) if config.gid_mappings else 0,
    )


def _host_id(maps: Sequence[IDMap], ident: int) -> int:
    for m in maps:
        if m.container_id <= ident < m.container_id + m.size:
            return m.host_id + ident - m.container_id
    return 65534


def _etc_files(rootfs: str | tuple[str, ...], readonly: bool) -> tuple[str, ...]:
    """The /etc files to bind: all three (made in the rootfs where missing); on
    a read-only rootfs only those that already exist (nothing can be made).
    ``rootfs`` may be image layers, top first."""
    names = ("hostname", "hosts", "resolv.conf")
    if not readonly:
        return names
    if isinstance(rootfs, tuple):
        return tuple(n for n in names if _rootfs.is_file_in_layers(rootfs, f"/etc/{n}"))
    return tuple(n for n in names if _rootfs.is_file_in_root(rootfs, f"/etc/{n}"))


def list_containers(root: str | None = None) -> list[Container]:
    """Every container under ``root``: :meth:`Container.list`."""

    return Container.list(root)


__all__ = ["Container", "State", "Status", "list_containers", "state_root"]
