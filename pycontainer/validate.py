"""Small checks that turn a bad configuration into a ConfigError naming the field.

Field checks run when a config object is built (attrs validators); the
whole-config checks in :func:`check_config` run at ``Container.create``,
because some look at the host (does the rootfs exist?).  Each check is a small
function; ``PURE_CHECKS`` lists those of the config alone (run once per
config), ``HOST_CHECKS`` those against the host (run at every create).
"""

from __future__ import annotations

import functools
import os
import re
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from .errors import ConfigError

if TYPE_CHECKING:
    from attrs import Attribute

    from .config import ContainerConfig

    # What a validator is told of the field it checks: attrs' Attribute, or a
    # name when one item of a sequence is checked (ids, config._paths).
    FieldRef = Attribute[Any] | str
    # An attrs field validator: (instance, field, value), raising ConfigError.
    Validator = Callable[[object, FieldRef, object], None]

# Linux limits: HOST_NAME_MAX, the id range, what a mount option may look like.
_HOSTNAME_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,62})$")
_ENV_KEY_RE = re.compile(r"^[^=\x00]+$")
ID_MAX = 2**32 - 2  # (uid_t)-1 means "no change" to the kernel
CONTAINER_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")

HUGEPAGE_SIZE_RE = re.compile(r"^[0-9]+(KB|MB|GB)$")
KERNEL_VERSION_RE = re.compile(r"^[0-9]+(\.[0-9]+){0,2}$")
_CPUSET_RE = re.compile(r"^[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*$")

PROPAGATIONS = ("private", "rprivate", "slave", "rslave", "shared", "rshared", "unbindable", "runbindable")


def _name(attribute: FieldRef) -> str:
    return getattr(attribute, "name", str(attribute))


def no_nul(field: str, value: str) -> None:
    if "\x00" in value:
        raise ConfigError(field, "must not contain a NUL byte")


def string(_inst: object, attribute: FieldRef, value: object) -> None:
    if not isinstance(value, str):
        raise ConfigError(_name(attribute), f"must be a string, not {type(value).__name__}")
    no_nul(_name(attribute), value)


def optional_string(inst: object, attribute: FieldRef, value: object) -> None:
    if value is not None:
        string(inst, attribute, value)


def strings(_inst: object, attribute: FieldRef, value: Iterable[object]) -> None:
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise ConfigError(f"{_name(attribute)}[{i}]", f"must be a string, not {type(item).__name__}")
        no_nul(f"{_name(attribute)}[{i}]", item)


def non_empty(_inst: object, attribute: FieldRef, value: tuple[object, ...]) -> None:
    if not value:
        raise ConfigError(_name(attribute), "must not be empty")


def absolute_path(_inst: object, attribute: FieldRef, value: object) -> None:
    if not isinstance(value, str):
        raise ConfigError(_name(attribute), f"must be a path string, not {type(value).__name__}")
    no_nul(_name(attribute), value)
    if not value.startswith("/"):
        raise ConfigError(_name(attribute), f"{value!r} is not an absolute path")
    if len(value.encode()) >= 4096:
        raise ConfigError(_name(attribute), "path is longer than PATH_MAX")


def id_value(_inst: object, attribute: FieldRef, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(_name(attribute), f"must be an integer id, not {type(value).__name__}")
    if not 0 <= value <= ID_MAX:
        raise ConfigError(_name(attribute), f"{value} is outside 0..{ID_MAX}")


def ids(inst: object, attribute: FieldRef, value: Iterable[object]) -> None:
    for i, item in enumerate(value):
        id_value(inst, f"{_name(attribute)}[{i}]", item)


def positive_size(_inst: object, attribute: FieldRef, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(_name(attribute), f"must be a positive integer, not {value!r}")
    if value > 2**32 - 1:
        raise ConfigError(_name(attribute), f"{value} is larger than the id space")


def umask(_inst: object, attribute: FieldRef, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 0o777:
        raise ConfigError(_name(attribute), f"must be an integer in 0..0o777, not {value!r}")


def hostname(_inst: object, attribute: FieldRef, value: object) -> None:
    if value is None:
        return
    if not isinstance(value, str) or not _HOSTNAME_RE.fullmatch(value):
        raise ConfigError(
            _name(attribute), f"{value!r} is not a valid host name (letters, digits, '.', '-'; at most 64)"
        )


def env(_inst: object, attribute: FieldRef, value: Iterable[object]) -> None:
    for i, item in enumerate(value):
        field = f"{_name(attribute)}[{i}]"
        if not isinstance(item, str):
            raise ConfigError(field, f"must be a 'KEY=VALUE' string, not {type(item).__name__}")
        no_nul(field, item)
        key, sep, _ = item.partition("=")
        if not sep or not _ENV_KEY_RE.fullmatch(key):
            raise ConfigError(field, f"{item!r} is not of the form KEY=VALUE")


def parse_cpuset(text: str) -> set[int]:
    """'0-2,5' -> {0, 1, 2, 5}."""
    out: set[int] = set()
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


def optional_cpuset(_inst: object, attribute: FieldRef, value: object) -> None:
    if value is None:
        return
    name = _name(attribute)
    if not isinstance(value, str) or not _CPUSET_RE.fullmatch(value):
        raise ConfigError(name, f"{value!r} is not a CPU/node list such as '0-2,4'")
    for part in value.split(","):
        lo, _, hi = part.partition("-")
        if hi and int(hi) < int(lo):
            raise ConfigError(name, f"range {part!r} runs backwards")


def cgroups_path(_inst: object, attribute: FieldRef, value: object) -> None:
    if value is None:
        return
    string(_inst, attribute, value)
    assert isinstance(value, str)
    parts = [p for p in value.split("/") if p]
    if not parts:
        raise ConfigError("cgroups_path", f"{value!r} names no cgroup")
    if any(p in (".", "..") for p in parts):
        raise ConfigError("cgroups_path", f"{value!r} may not hold '.' or '..': it would escape the cgroup root")
    if value.startswith("/") is False and ":" in parts[0]:
        raise ConfigError("cgroups_path", f"{value!r} looks like a systemd slice:prefix:name, which is not supported")


def one_of(choices: Iterable[str]) -> Validator:
    allowed = tuple(choices)

    def check(_inst: object, attribute: FieldRef, value: object) -> None:
        if value not in allowed:
            raise ConfigError(_name(attribute), f"{value!r} is not one of {', '.join(allowed)}")

    return check


def container_id(value: object) -> str:
    if not isinstance(value, str) or not CONTAINER_ID_RE.fullmatch(value):
        raise ConfigError(
            "id",
            f"{value!r} is not a valid container id (letters, digits, '_', '.', '-'; at most 128; no leading punctuation)",
        )
    return value


# ---- whole-config checks, run by Container.create ---------------------------


def check_rootfs(cfg: ContainerConfig) -> None:
    if cfg.rootfs is None:
        return
    if not os.path.isdir(cfg.rootfs):
        raise ConfigError("rootfs", f"{cfg.rootfs!r} does not exist or is not a directory")


def check_namespaces(cfg: ContainerConfig) -> None:
    seen: set[object] = set()
    for ns in cfg.namespaces:
        if ns.type in seen:
            raise ConfigError("namespaces", f"{ns.type.value} namespace is listed twice")
        seen.add(ns.type)
    from .config import NamespaceType

    own_user = any(n.type is NamespaceType.USER and n.path is None for n in cfg.namespaces)
    if (cfg.uid_mappings or cfg.gid_mappings) and not own_user:
        raise ConfigError("uid_mappings", "id mappings need a new user namespace")
    if own_user and not (cfg.uid_mappings and cfg.gid_mappings):
        raise ConfigError("uid_mappings", "a new user namespace needs uid_mappings and gid_mappings")
    if not any(n.type is NamespaceType.MOUNT and n.path is None for n in cfg.namespaces):
        raise ConfigError("namespaces", "a container needs its own mount namespace")


def check_namespace_paths(cfg: ContainerConfig) -> None:
    """What the host must have: time namespaces, the namespaces to join."""
    for n in cfg.namespaces:
        if n.path is not None:
            if not os.path.exists(n.path):
                raise ConfigError("namespaces", f"{n.type.value} namespace path {n.path!r} does not exist")
        elif n.type.value == "time" and not _has_time_namespaces():
            raise ConfigError("namespaces", "this kernel has no time namespaces")


@functools.cache
def _has_time_namespaces() -> bool:
    return os.path.exists("/proc/self/ns/time")  # (a kernel's feature: read once)


def check_id_mappings(cfg: ContainerConfig) -> None:
    for field in ("uid_mappings", "gid_mappings"):
        maps = sorted(getattr(cfg, field), key=lambda m: m.container_id)
        if len(maps) > 340:
            raise ConfigError(field, "the kernel takes at most 340 ranges")
        for a, b in zip(maps, maps[1:], strict=False):
            if a.container_id + a.size > b.container_id:
                raise ConfigError(field, f"container ranges starting at {a.container_id} and {b.container_id} overlap")
        hosts = sorted(getattr(cfg, field), key=lambda m: m.host_id)
        for a, b in zip(hosts, hosts[1:], strict=False):
            if a.host_id + a.size > b.host_id:
                raise ConfigError(field, f"host ranges starting at {a.host_id} and {b.host_id} overlap")
        for m in maps:
            if m.container_id + m.size - 1 > ID_MAX or m.host_id + m.size - 1 > ID_MAX:
                raise ConfigError(field, f"range {m.container_id}+{m.size} -> {m.host_id} leaves the id space")


# Kernel filesystems the runtime mounts itself: nothing may be made or mounted in them.
KERNEL_DIRS = ("/proc", "/sys", "/dev/pts", "/dev/mqueue")


def _inside(path: str, top: str) -> bool:
    return path == top or path.startswith(top + "/")


def check_process(cfg: ContainerConfig) -> None:
    cwd = os.path.normpath(cfg.process.cwd)
    for top in KERNEL_DIRS:
        if _inside(cwd, top) and cwd != top:
            raise ConfigError("process.cwd", f"{cfg.process.cwd!r} is inside {top}, a kernel filesystem")


def check_mounts(cfg: ContainerConfig) -> None:
    seen: set[str] = set()
    for i, m in enumerate(cfg.mounts):
        dest = os.path.normpath(m.destination)
        if dest == "/":
            raise ConfigError(f"mounts[{i}].destination", "cannot mount over the container's root")
        for top in KERNEL_DIRS if cfg.docker_defaults else ():
            if _inside(dest, top):
                raise ConfigError(f"mounts[{i}].destination", f"{dest!r} is inside {top}, which the runtime mounts")
        if dest in seen:
            raise ConfigError(f"mounts[{i}].destination", f"{dest!r} is mounted twice")
        for j, before in enumerate(cfg.mounts[:i]):
            # an empty tmpfs mounted read-only: no mountpoint can be made in it
            if before.type == "tmpfs" and "ro" in before.options and _inside(dest, os.path.normpath(before.destination)):
                raise ConfigError(
                    f"mounts[{i}].destination",
                    f"{dest!r} is inside the read-only tmpfs of mounts[{j}] ({before.destination}): its mountpoint "
                    "cannot be made there (mount it before the tmpfs, or make the tmpfs writable)",
                )
        seen.add(dest)


def check_bind_sources(cfg: ContainerConfig) -> None:
    for i, m in enumerate(cfg.mounts):
        if m.type == "bind" and not os.path.exists(m.source or ""):
            raise ConfigError(f"mounts[{i}].source", f"bind source {m.source!r} does not exist")


_online_cache: dict[str, tuple[float, set[int] | None]] = {}


def _read_list(path: str) -> set[int] | None:
    """A CPU/node list file such as /sys/devices/system/cpu/online, re-read at
    most once a second (CPUs come and go rarely; create is a hot path)."""
    now = time.monotonic()
    hit = _online_cache.get(path)
    if hit is not None and now - hit[0] < 1.0:
        return hit[1]
    try:
        with open(path, encoding="ascii") as f:
            text = f.read().strip()
    except OSError:
        value = None
    else:
        value = parse_cpuset(text) if text else set()
    _online_cache[path] = (now, value)
    return value


SYS = "/sys"


def check_resources(cfg: ContainerConfig) -> None:
    """Limits that only the host can judge: CPUs and memory nodes that are
    online, block devices and huge page sizes that exist."""
    r = cfg.resources
    for field, value, online in (
        ("resources.cpuset_cpus", r.cpuset_cpus, f"{SYS}/devices/system/cpu/online"),
        ("resources.cpuset_mems", r.cpuset_mems, f"{SYS}/devices/system/node/online"),
    ):
        if value is None:
            continue
        have = _read_list(online)
        if have is None and field.endswith("mems"):
            have = {0}  # no NUMA: node 0 only
        missing = parse_cpuset(value) - (have or set())
        if missing:
            raise ConfigError(field, f"{sorted(missing)} not online on this host (online: {sorted(have or ())})")
    if r.cpus is not None:
        n = len(_read_list(f"{SYS}/devices/system/cpu/online") or ()) or (os.cpu_count() or 1)
        if r.cpus > n:
            raise ConfigError("resources.cpus", f"{r.cpus} is more than the {n} CPUs of this host")
    for field in ("blkio_weight_device", "blkio_read_bps", "blkio_write_bps", "blkio_read_iops", "blkio_write_iops"):
        for i, d in enumerate(getattr(r, field)):
            if not os.path.exists(f"{SYS}/dev/block/{d.major}:{d.minor}"):
                raise ConfigError(f"resources.{field}[{i}]", f"no block device {d.major}:{d.minor} on this host")
    for i, h in enumerate(r.hugepage_limits):
        kb = int(h.page_size[:-2]) * {"KB": 1, "MB": 1024, "GB": 1024 * 1024}[h.page_size[-2:]]
        if not os.path.isdir(f"{SYS}/kernel/mm/hugepages/hugepages-{kb}kB"):
            raise ConfigError(f"resources.hugepage_limits[{i}]", f"this host has no {h.page_size} huge pages")


# Namespaced kernel parameters, and the namespace each needs new (runc's,
# Docker's rules): anything else would change the host.
_IPC_SYSCTLS = {"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall", "kernel.shmmax",
                "kernel.shmmni", "kernel.shm_rmid_forced"}  # fmt: skip


def check_devices(cfg: ContainerConfig) -> None:
    from ._plan import dev_is_ours

    if cfg.devices and not dev_is_ours(cfg):
        raise ConfigError(
            "devices",
            "need a /dev the runtime mounts (a tmpfs): nodes made in a bound /dev would land on its filesystem",
        )


def check_sysctl(cfg: ContainerConfig) -> None:
    from .config import NamespaceType

    for key, _ in cfg.sysctl:
        if key in _IPC_SYSCTLS or key.startswith("fs.mqueue."):
            need, kind = NamespaceType.IPC, "ipc"
        elif key.startswith("net."):
            need, kind = NamespaceType.NETWORK, "network"
        elif key == "kernel.domainname":
            need, kind = NamespaceType.UTS, "uts"
        else:
            raise ConfigError(f"sysctl.{key}", "is not a namespaced parameter: setting it would change the host")
        if not cfg.new_namespace(need):
            raise ConfigError(f"sysctl.{key}", f"needs a new {kind} namespace (setting it would change another's)")


# Checks of the config alone (run once per config: configs are frozen) ...
PURE_CHECKS: tuple[Callable[[ContainerConfig], None], ...] = (
    check_namespaces,
    check_id_mappings,
    check_process,
    check_mounts,
    check_sysctl,
    check_devices,
)
# ... and of the config against the host, which may change: run every time.
HOST_CHECKS: tuple[Callable[[ContainerConfig], None], ...] = (
    check_namespace_paths,
    check_bind_sources,
    check_resources,
)


@functools.lru_cache(maxsize=64)
def _pure_checks(cfg: ContainerConfig) -> None:
    for check in PURE_CHECKS:
        check(cfg)  # (a ConfigError is not cached: a bad config is checked again, and fails again)


def check_config(cfg: ContainerConfig) -> None:
    """Run every whole-config check; raise ConfigError at the first failure."""
    check_rootfs(cfg)
    _pure_checks(cfg)
    for check in HOST_CHECKS:
        check(cfg)


_RESTART = re.compile(r"no|always|unless-stopped|on-failure(:[0-9]{1,6})?")


def restart_policy(_inst: object, attribute: FieldRef, value: object) -> None:
    if not isinstance(value, str) or not _RESTART.fullmatch(value):
        raise ConfigError(
            _name(attribute), f"{value!r} is not a restart policy (no, always, unless-stopped, on-failure[:MAX])"
        )


# The checks run by the config classes and Container.create: not an API.
__all__: list[str] = []
