"""A container's configuration: frozen attrs classes with no behaviour.

Every field is checked when the object is built; a bad value raises
:class:`~pycontainer.errors.ConfigError` naming the field.  Use
``attrs.evolve(config, field=...)`` to derive a changed copy.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from . import validate as v
from .errors import ConfigError

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_ENV = (f"PATH={DEFAULT_PATH}",)

# runc's defaults (libcontainer/specconv: Example()).
DEFAULT_MASKED_PATHS = (
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
)
DEFAULT_READONLY_PATHS = (
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
)


class NamespaceType(enum.Enum):
    """Namespace kinds, named as in the OCI runtime spec."""

    PID = "pid"
    NETWORK = "network"
    MOUNT = "mount"
    IPC = "ipc"
    UTS = "uts"
    USER = "user"
    CGROUP = "cgroup"
    TIME = "time"


def _ns_type(value: object) -> NamespaceType:
    if isinstance(value, NamespaceType):
        return value
    try:
        return NamespaceType(value)
    except ValueError:
        raise ConfigError(
            "namespaces", f"{value!r} is not a namespace type ({', '.join(t.value for t in NamespaceType)})"
        ) from None


@attrs.frozen
class Namespace:
    """A namespace the container gets: a new one, or an existing one by path."""

    type: NamespaceType = attrs.field(converter=_ns_type)
    path: str | None = attrs.field(default=None, validator=v.optional_string)

    def __attrs_post_init__(self) -> None:
        if self.path is not None and not self.path.startswith("/"):
            raise ConfigError("namespaces", f"{self.type.value} namespace path {self.path!r} is not absolute")


DEFAULT_NAMESPACES = tuple(
    Namespace(t)
    for t in (NamespaceType.PID, NamespaceType.MOUNT, NamespaceType.UTS, NamespaceType.IPC, NamespaceType.NETWORK)
)


@attrs.frozen
class IDMap:
    """One line of a uid_map/gid_map: ``size`` ids from ``container_id`` map to ``host_id``."""

    container_id: int = attrs.field(validator=v.id_value)
    host_id: int = attrs.field(validator=v.id_value)
    size: int = attrs.field(validator=v.positive_size)


@attrs.frozen
class User:
    """Numeric credentials of the container's process."""

    uid: int = attrs.field(default=0, validator=v.id_value)
    gid: int = attrs.field(default=0, validator=v.id_value)
    additional_gids: tuple[int, ...] = attrs.field(default=(), converter=tuple, validator=v.ids)


# Mount options that are flags (the rest of a filesystem mount's options go to
# the filesystem as data).  Values are (set, clear) pairs of MS_* names.
MOUNT_FLAG_OPTIONS = frozenset(
    {
        "ro", "rw", "bind", "rbind", "nosuid", "suid", "nodev", "dev", "noexec", "exec",
        "noatime", "atime", "nodiratime", "diratime", "relatime", "norelatime", "strictatime",
        "nostrictatime", "sync", "async", "dirsync", "mand", "nomand", "remount", "rro",
        *v.PROPAGATIONS,
    }
)  # fmt: skip
_OPTION_RE_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.=:/,+@%")


def _mount_options(_inst: object, attribute: Any, value: tuple[str, ...]) -> None:
    v.strings(_inst, attribute, value)
    for i, opt in enumerate(value):
        if not opt or not set(opt) <= _OPTION_RE_CHARS or "," in opt:
            raise ConfigError(f"mounts.options[{i}]", f"{opt!r} is not a mount option")


@attrs.frozen
class Mount:
    """A mount in the container, with OCI-style options (``ro``, ``rbind``, ``nosuid``, ``rslave``...)."""

    destination: str = attrs.field(validator=v.absolute_path)
    source: str | None = attrs.field(default=None, validator=v.optional_string)
    type: str = attrs.field(default="bind", validator=v.string)
    options: tuple[str, ...] = attrs.field(default=(), converter=tuple, validator=_mount_options)

    def __attrs_post_init__(self) -> None:
        if not self.type or not self.type.replace("_", "").replace(".", "").isalnum():
            raise ConfigError("mounts.type", f"{self.type!r} is not a filesystem type")
        if self.type == "bind" or "bind" in self.options or "rbind" in self.options:
            if not self.source or not self.source.startswith("/"):
                raise ConfigError("mounts.source", f"a bind mount needs an absolute source, not {self.source!r}")


def _env(value: Iterable[str] | Mapping[str, str]) -> tuple[str, ...]:
    if isinstance(value, Mapping):
        return tuple(f"{k}={val}" for k, val in value.items())
    if isinstance(value, str):
        raise ConfigError("env", "must be a sequence of 'KEY=VALUE' strings or a mapping, not a string")
    return tuple(value)


def _args(value: Iterable[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        raise ConfigError("args", "must be a sequence of strings, not a string")
    out = tuple(value)
    if out and out[0] == "":
        raise ConfigError("args[0]", "the program name is empty")
    return out


def _user(value: User | str | int) -> User | str:
    if isinstance(value, bool):
        raise ConfigError("user", f"must be a User, a 'user[:group]' string or a uid, not {value!r}")
    if isinstance(value, int):
        return User(uid=value, gid=value)
    if isinstance(value, (User, str)):
        if isinstance(value, str) and (not value or "\x00" in value):
            raise ConfigError("user", f"{value!r} is not a user")
        return value
    raise ConfigError("user", f"must be a User, a 'user[:group]' string or a uid, not {type(value).__name__}")


@attrs.frozen
class Process:
    """What runs in the container.

    ``user`` is a :class:`User`, a uid, or a Docker-style ``"name[:group]"`` /
    ``"uid[:gid]"`` string looked up in the rootfs's /etc/passwd and /etc/group.
    """

    args: tuple[str, ...] = attrs.field(converter=_args, validator=[v.non_empty, v.strings])
    env: tuple[str, ...] = attrs.field(default=DEFAULT_ENV, converter=_env, validator=v.env)
    cwd: str = attrs.field(default="/", validator=v.absolute_path)
    user: User | str = attrs.field(default=User(), converter=_user)
    umask: int = attrs.field(default=0o022, validator=v.umask)
    terminal: bool = attrs.field(default=False, converter=bool)


def _namespaces(value: Iterable[Namespace | NamespaceType | str]) -> tuple[Namespace, ...]:
    out = []
    for item in value:
        out.append(item if isinstance(item, Namespace) else Namespace(_ns_type(item)))
    return tuple(out)


def _id_maps(value: Iterable[IDMap]) -> tuple[IDMap, ...]:
    out = tuple(value)
    for m in out:
        if not isinstance(m, IDMap):
            raise ConfigError("id_mappings", f"{m!r} is not an IDMap")
    return out


def _mounts(value: Iterable[Mount]) -> tuple[Mount, ...]:
    out = tuple(value)
    for m in out:
        if not isinstance(m, Mount):
            raise ConfigError("mounts", f"{m!r} is not a Mount")
    return out


def _paths(value: Iterable[str]) -> tuple[str, ...]:
    out = tuple(value)
    for i, p in enumerate(out):
        v.absolute_path(None, f"paths[{i}]", p)
    return out


def _process(value: Process) -> Process:
    if not isinstance(value, Process):
        raise ConfigError("process", f"must be a Process, not {type(value).__name__}")
    return value


@attrs.frozen
class ContainerConfig:
    """Everything needed to create a container.

    ``rootfs=None`` means the built-in busybox rootfs (see
    :func:`pycontainer.default_rootfs`).  ``hostname=None`` means the first 12
    characters of the container id, as Docker does.
    """

    process: Process = attrs.field(converter=_process)
    rootfs: str | None = attrs.field(default=None, validator=v.optional_string)
    hostname: str | None = attrs.field(default=None, validator=v.hostname)
    domainname: str | None = attrs.field(default=None, validator=v.hostname)
    namespaces: tuple[Namespace, ...] = attrs.field(default=DEFAULT_NAMESPACES, converter=_namespaces)
    uid_mappings: tuple[IDMap, ...] = attrs.field(default=(), converter=_id_maps)
    gid_mappings: tuple[IDMap, ...] = attrs.field(default=(), converter=_id_maps)
    mounts: tuple[Mount, ...] = attrs.field(default=(), converter=_mounts)
    readonly_rootfs: bool = attrs.field(default=False, converter=bool)
    rootfs_propagation: str = attrs.field(default="rprivate", validator=v.one_of(v.PROPAGATIONS))
    masked_paths: tuple[str, ...] = attrs.field(default=DEFAULT_MASKED_PATHS, converter=_paths)
    readonly_paths: tuple[str, ...] = attrs.field(default=DEFAULT_READONLY_PATHS, converter=_paths)
    init: bool = attrs.field(default=False, converter=bool)
    dns: tuple[str, ...] = attrs.field(default=(), converter=tuple, validator=v.strings)

    def __attrs_post_init__(self) -> None:
        if self.rootfs is not None and not self.rootfs.startswith("/"):
            raise ConfigError("rootfs", f"{self.rootfs!r} is not an absolute path")

    def has_namespace(self, kind: NamespaceType) -> bool:
        return any(n.type is kind for n in self.namespaces)

    def new_namespace(self, kind: NamespaceType) -> bool:
        return any(n.type is kind and n.path is None for n in self.namespaces)


__all__ = [
    "DEFAULT_ENV",
    "DEFAULT_MASKED_PATHS",
    "DEFAULT_NAMESPACES",
    "DEFAULT_READONLY_PATHS",
    "ContainerConfig",
    "IDMap",
    "Mount",
    "Namespace",
    "NamespaceType",
    "Process",
    "User",
]
