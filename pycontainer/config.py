"""A container's configuration: frozen attrs classes with no behaviour.

Every field is checked when the object is built; a bad value raises
:class:`~pycontainer.errors.ConfigError` naming the field.  Use
``attrs.evolve(config, field=...)`` to derive a changed copy.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import attrs

from . import validate as v
from .errors import ConfigError

_T = TypeVar("_T")

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


# Field converters are named functions (not ``tuple``, nor closures a factory
# makes): mypy's attrs plugin learns what ``__init__`` takes only from those.


def _str_tuple(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


def _int_tuple(value: Iterable[int]) -> tuple[int, ...]:
    return tuple(value)


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
    additional_gids: tuple[int, ...] = attrs.field(default=(), converter=_int_tuple, validator=v.ids)


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


def _mount_options(_inst: object, attribute: v.FieldRef, value: tuple[str, ...]) -> None:
    v.strings(_inst, attribute, value)
    for i, opt in enumerate(value):
        if not opt or not set(opt) <= _OPTION_RE_CHARS or "," in opt:
            raise ConfigError(f"mounts.options[{i}]", f"{opt!r} is not a mount option")


def _mount_id_maps(value: Iterable[IDMap]) -> tuple[IDMap, ...]:
    out = tuple(value)
    for m in out:
        if not isinstance(m, IDMap):
            raise ConfigError("mounts.uid_mappings", f"must hold IDMap values, not {type(m).__name__}")
    return out


@attrs.frozen
class Mount:
    """A mount in the container, with OCI-style options (``ro``, ``rbind``, ``nosuid``, ``rslave``...).

    ``uid_mappings`` and ``gid_mappings`` make a bind mount idmapped (Linux
    5.12+): a file owned by id N on disk shows as the id N maps to, as a
    user namespace maps its ids (``IDMap(container_id=N, host_id=...)``).
    The ``idmap`` option without mappings uses the container's user
    namespace mappings; ``ridmap`` (or ``rbind``) maps the submounts too."""

    destination: str = attrs.field(validator=v.absolute_path)
    source: str | None = attrs.field(default=None, validator=v.optional_string)
    type: str = attrs.field(default="bind", validator=v.string)
    options: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple, validator=_mount_options)
    uid_mappings: tuple[IDMap, ...] = attrs.field(default=(), converter=_mount_id_maps)
    gid_mappings: tuple[IDMap, ...] = attrs.field(default=(), converter=_mount_id_maps)

    def __attrs_post_init__(self) -> None:
        if not self.type or not self.type.replace("_", "").replace(".", "").isalnum():
            raise ConfigError("mounts.type", f"{self.type!r} is not a filesystem type")
        bind = self.type == "bind" or "bind" in self.options or "rbind" in self.options
        if bind:
            if not self.source or not self.source.startswith("/"):
                raise ConfigError("mounts.source", f"a bind mount needs an absolute source, not {self.source!r}")
        if bool(self.uid_mappings) != bool(self.gid_mappings):
            raise ConfigError("mounts.uid_mappings", "an idmapped mount needs both uid and gid mappings")
        if self.idmapped() and not bind:
            raise ConfigError("mounts.uid_mappings", f"only a bind mount can be idmapped, not a {self.type} mount")

    def idmapped(self) -> bool:
        return bool(self.uid_mappings) or "idmap" in self.options or "ridmap" in self.options


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


# ---- resources (cgroups) ------------------------------------------------------


def _opt_int(lo: int | None = None, hi: int | None = None, *, extra: tuple[int, ...] = ()) -> v.Validator:
    """Validator: None, or an int in [lo, hi] (or one of ``extra``, e.g. -1 for unlimited)."""

    def check(_inst: object, attribute: v.FieldRef, value: object) -> None:
        if value is None:
            return
        name = v._name(attribute)
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(name, f"must be an integer, not {type(value).__name__}")
        if value in extra:
            return
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            rng = f"{lo if lo is not None else '-inf'}..{hi if hi is not None else 'inf'}"
            also = f" (or {', '.join(map(str, extra))})" if extra else ""
            raise ConfigError(name, f"{value} is outside {rng}{also}")

    return check


# Linux device numbers: 12-bit majors, 20-bit minors (and the kernel's v1
# devices files read all-ones as "*").
_MAJOR = _opt_int(0, 4095)
_MINOR = _opt_int(0, (1 << 20) - 1)


@attrs.frozen
class DeviceRule:
    """One device-cgroup rule, as OCI ``linux.resources.devices``: allow or deny
    ``access`` (a subset of ``rwm``) to devices of ``type`` (``a`` all, ``c``
    char, ``b`` block) with ``major``/``minor`` (None: any).  Later rules win."""

    allow: bool = attrs.field(converter=bool)
    type: str = attrs.field(default="a", validator=v.one_of(("a", "b", "c")))
    major: int | None = attrs.field(default=None, validator=_MAJOR)
    minor: int | None = attrs.field(default=None, validator=_MINOR)
    access: str = attrs.field(default="rwm")

    @access.validator
    def _access(self, _attribute: v.FieldRef, value: object) -> None:
        if not isinstance(value, str) or not value or not set(value) <= set("rwm") or len(set(value)) != len(value):
            raise ConfigError("devices.access", f"{value!r} is not a non-empty subset of 'rwm'")


@attrs.frozen
class Device:
    """A device node the runtime makes in the container (OCI
    ``linux.devices``, ``docker run --device``): ``type`` ``c`` (char), ``b``
    (block), ``u`` (unbuffered char) or ``p`` (fifo); with a cgroup, reading,
    writing and making it are allowed too."""

    path: str = attrs.field(validator=v.absolute_path)
    type: str = attrs.field(validator=v.one_of(("c", "b", "u", "p")))
    major: int = attrs.field(default=0, validator=_opt_int(0, 4095))
    minor: int = attrs.field(default=0, validator=_opt_int(0, (1 << 20) - 1))
    file_mode: int = attrs.field(default=0o666, validator=_opt_int(0, 0o7777))
    uid: int = attrs.field(default=0, validator=v.id_value)
    gid: int = attrs.field(default=0, validator=v.id_value)

    def __attrs_post_init__(self) -> None:
        if not self.path.startswith("/dev/") or "/../" in self.path + "/" or self.path.endswith("/"):
            raise ConfigError("devices.path", f"{self.path!r} is not a node under /dev")
        if self.type != "p" and (self.major is None or self.minor is None):
            raise ConfigError("devices", f"{self.path}: a {self.type} device needs a major and a minor number")

    def rule(self) -> DeviceRule | None:
        """The cgroup rule that lets the container use it (none for a fifo)."""
        if self.type == "p":
            return None
        return DeviceRule(allow=True, type="b" if self.type == "b" else "c", major=self.major, minor=self.minor)


def _char(major: int | None, minor: int | None, access: str = "rwm") -> DeviceRule:
    return DeviceRule(allow=True, type="c", major=major, minor=minor, access=access)


# runc's default allow-list (libcontainer/specconv AllowedDevices): mknod of
# anything, read/write of the standard nodes and ptys only.
DEFAULT_DEVICE_RULES = (
    DeviceRule(allow=False),
    _char(None, None, "m"),
    DeviceRule(allow=True, type="b", access="m"),
    _char(1, 3),  # null
    _char(1, 5),  # zero
    _char(1, 7),  # full
    _char(1, 8),  # random
    _char(1, 9),  # urandom
    _char(5, 0),  # tty
    _char(5, 1),  # console
    _char(5, 2),  # ptmx
    _char(136, None),  # pts/*
)


@attrs.frozen
class ThrottleDevice:
    """A per-device I/O limit: ``rate`` bytes (or operations) per second on the
    block device ``major:minor``."""

    major: int = attrs.field(validator=_MAJOR)
    minor: int = attrs.field(validator=_MINOR)
    rate: int = attrs.field(validator=_opt_int(0, 2**63 - 1))


@attrs.frozen
class WeightDevice:
    """A per-device I/O weight (10..1000, as blkio.weight_device)."""

    major: int = attrs.field(validator=_MAJOR)
    minor: int = attrs.field(validator=_MINOR)
    weight: int = attrs.field(validator=_opt_int(10, 1000))


@attrs.frozen
class HugepageLimit:
    """A hugetlb limit: at most ``limit`` bytes of ``page_size`` pages ("2MB", "1GB")."""

    page_size: str = attrs.field(validator=v.string)
    limit: int = attrs.field(validator=_opt_int(0, 2**63 - 1))

    @page_size.validator
    def _size(self, _attribute: v.FieldRef, value: str) -> None:
        if not v.HUGEPAGE_SIZE_RE.fullmatch(value):
            raise ConfigError("hugepage_limits.page_size", f"{value!r} is not a page size such as '2MB' or '1GB'")


def _typed_tuple(kind: type[_T], field: str, value: Iterable[object]) -> tuple[_T, ...]:
    """``value`` as a tuple, every item a ``kind`` (for the named converters of such fields)."""
    out: list[_T] = []
    for item in tuple(value):
        if not isinstance(item, kind):
            raise ConfigError(field, f"{item!r} is not a {kind.__name__}")
        out.append(item)
    return tuple(out)


# ---- security ------------------------------------------------------------------

# Capability names by number (<linux/capability.h>).
CAPABILITY_NAMES = tuple(
    "CAP_" + n
    for n in (
        "CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP LINUX_IMMUTABLE "
        "NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER SYS_MODULE SYS_RAWIO SYS_CHROOT "
        "SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE "
        "AUDIT_WRITE AUDIT_CONTROL SETFCAP MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ "
        "PERFMON BPF CHECKPOINT_RESTORE"
    ).split()
)
CAPABILITY_NUMBERS = {name: i for i, name in enumerate(CAPABILITY_NAMES)}
# Docker's default set (moby oci/caps/defaults.go).
DEFAULT_CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
    "CAP_AUDIT_WRITE",
)  # fmt: skip


def capability_name(value: object, field: str = "capabilities") -> str:
    """'net_admin', 'NET_ADMIN' or 'CAP_NET_ADMIN' -> 'CAP_NET_ADMIN'."""
    if not isinstance(value, str):
        raise ConfigError(field, f"{value!r} is not a capability name")
    name = value.upper()
    if not name.startswith("CAP_"):
        name = "CAP_" + name
    if name not in CAPABILITY_NUMBERS:
        raise ConfigError(field, f"{value!r} is not a capability")
    return name


def _cap_set(field: str, value: Iterable[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        raise ConfigError(field, "must be a sequence of capability names, not a string")
    names = {capability_name(n, field) for n in value}
    return tuple(sorted(names, key=CAPABILITY_NUMBERS.__getitem__))


def _bounding(value: Iterable[str]) -> tuple[str, ...]:
    return _cap_set("capabilities.bounding", value)


def _effective(value: Iterable[str]) -> tuple[str, ...]:
    return _cap_set("capabilities.effective", value)


def _permitted(value: Iterable[str]) -> tuple[str, ...]:
    return _cap_set("capabilities.permitted", value)


def _inheritable(value: Iterable[str]) -> tuple[str, ...]:
    return _cap_set("capabilities.inheritable", value)


def _ambient(value: Iterable[str]) -> tuple[str, ...]:
    return _cap_set("capabilities.ambient", value)


@attrs.frozen
class Capabilities:
    """The five capability sets of the container's process, by name.

    :meth:`docker` gives Docker's default set with ``--cap-add`` /
    ``--cap-drop`` applied (``"ALL"`` too); :meth:`of` gives one set in
    bounding, effective and permitted.  The kernel's rules are checked:
    effective within permitted, inheritable within bounding, ambient within
    permitted and inheritable.
    """

    bounding: tuple[str, ...] = attrs.field(default=(), converter=_bounding)
    effective: tuple[str, ...] = attrs.field(default=(), converter=_effective)
    permitted: tuple[str, ...] = attrs.field(default=(), converter=_permitted)
    inheritable: tuple[str, ...] = attrs.field(default=(), converter=_inheritable)
    ambient: tuple[str, ...] = attrs.field(default=(), converter=_ambient)

    def __attrs_post_init__(self) -> None:
        for field, sub, sup, what in (
            ("effective", self.effective, self.permitted, "permitted"),
            ("inheritable", self.inheritable, self.bounding, "bounding"),
            ("ambient", self.ambient, self.permitted, "permitted"),
            ("ambient", self.ambient, self.inheritable, "inheritable"),
        ):
            extra = sorted(set(sub) - set(sup))
            if extra:
                raise ConfigError(f"capabilities.{field}", f"{', '.join(extra)} not in the {what} set")

    @classmethod
    def of(cls, names: Iterable[str]) -> Capabilities:
        """``names`` in the bounding, effective and permitted sets (as Docker
        and runc give them); inheritable and ambient empty."""
        caps = _cap_set("capabilities", names)
        return cls(bounding=caps, effective=caps, permitted=caps)

    @classmethod
    def docker(cls, add: Iterable[str] = (), drop: Iterable[str] = ()) -> Capabilities:
        """Docker's default set with ``--cap-add``/``--cap-drop`` applied:
        ``add=["ALL"]`` gives every capability but the dropped ones;
        ``drop=["ALL"]`` gives only the added ones; otherwise the defaults
        less ``drop`` plus ``add``.  "ALL" means every capability this
        process (the runtime) holds, as the kernel will grant no more."""
        if isinstance(add, str) or isinstance(drop, str):
            raise ConfigError("capabilities", "add and drop are sequences of names, not strings")
        adds = [a for a in add if not (isinstance(a, str) and a.upper() == "ALL")]
        drops = [d for d in drop if not (isinstance(d, str) and d.upper() == "ALL")]
        add_all, drop_all = len(adds) != len(tuple(add)), len(drops) != len(tuple(drop))
        added = set(_cap_set("capabilities.add", adds))
        dropped = set(_cap_set("capabilities.drop", drops))
        if add_all:
            caps = set(held_capabilities()) - dropped
        elif drop_all:
            caps = added
        else:
            caps = (set(DEFAULT_CAPABILITIES) - dropped) | added
        return cls.of(caps)


def held_capabilities() -> tuple[str, ...]:
    """The capabilities in this process's bounding set that this kernel knows."""
    mask = 0
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("CapBnd:"):
                mask = int(line.split()[1], 16)
    return tuple(n for i, n in enumerate(CAPABILITY_NAMES) if mask >> i & 1)


# setrlimit resources by name (<asm-generic/resource.h>).
RLIMITS = {
    f"RLIMIT_{n}": i
    for i, n in enumerate(
        "CPU FSIZE DATA STACK CORE RSS NPROC NOFILE MEMLOCK AS LOCKS SIGPENDING MSGQUEUE NICE RTPRIO RTTIME".split()
    )
}
RLIM_INFINITY = 2**64 - 1


def _rlimit_type(value: object) -> str:
    name = value.upper() if isinstance(value, str) else value
    if isinstance(name, str) and not name.startswith("RLIMIT_"):
        name = "RLIMIT_" + name
    if name not in RLIMITS:
        raise ConfigError("rlimits.type", f"{value!r} is not a resource limit ({', '.join(RLIMITS)})")
    return str(name)


def _rlimit_value(value: object) -> int:
    if value == -1:
        return RLIM_INFINITY
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= RLIM_INFINITY:
        raise ConfigError("rlimits", f"{value!r} is not a limit (0..2**64-1, or -1 for unlimited)")
    return value


@attrs.frozen
class Rlimit:
    """A resource limit, as ``docker run --ulimit nofile=1024:2048``: ``type``
    is ``"RLIMIT_NOFILE"`` or ``"nofile"``; -1 means unlimited."""

    type: str = attrs.field(converter=_rlimit_type)
    soft: int = attrs.field(converter=_rlimit_value)
    hard: int = attrs.field(converter=_rlimit_value)

    def __attrs_post_init__(self) -> None:
        if self.soft > self.hard:
            raise ConfigError(f"rlimits.{self.type}", f"the soft limit {self.soft} is above the hard one {self.hard}")


SECCOMP_ACTIONS = (
    "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP", "SCMP_ACT_ERRNO",
    "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG",
)  # fmt: skip
SECCOMP_OPS = (
    "SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ",
)  # fmt: skip
SECCOMP_FLAGS = ("SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW")
_U64 = 2**64 - 1


def _u64(field: str) -> v.Validator:
    def check(_inst: object, _attribute: v.FieldRef, value: object) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= _U64:
            raise ConfigError(field, f"{value!r} is not a 64-bit unsigned value")

    return check


def _errno(field: str) -> v.Validator:
    def check(_inst: object, _attribute: v.FieldRef, value: object) -> None:
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 0xFFFF):
            raise ConfigError(field, f"{value!r} is not an errno (0..65535)")

    return check


@attrs.frozen
class SyscallArg:
    """A condition on argument ``index`` (0..5): ``op`` compares it with
    ``value`` (for SCMP_CMP_MASKED_EQ: ``arg & value == value_two``)."""

    index: int = attrs.field(validator=_opt_int(0, 5))
    value: int = attrs.field(validator=_u64("seccomp.args.value"))
    value_two: int = attrs.field(default=0, validator=_u64("seccomp.args.valueTwo"))
    op: str = attrs.field(default="SCMP_CMP_EQ", validator=v.one_of(SECCOMP_OPS))


def _syscall_args(value: Iterable[SyscallArg]) -> tuple[SyscallArg, ...]:
    return _typed_tuple(SyscallArg, "seccomp.syscalls.args", value)


def _rule_caps(value: Iterable[str]) -> tuple[str, ...]:
    return _cap_set("seccomp.syscalls.includes.caps", value)


def _rule_not_caps(value: Iterable[str]) -> tuple[str, ...]:
    return _cap_set("seccomp.syscalls.excludes.caps", value)


@attrs.frozen
class SyscallRule:
    """``action`` for the system calls ``names`` (when every condition of
    ``args`` holds).  The rule applies only with all of ``caps`` in the
    bounding set and none of ``not_caps``, on ``arches`` (Go names, e.g.
    "amd64") and not on ``not_arches``, on kernels of at least
    ``min_kernel``: Docker's ``includes``/``excludes``."""

    names: tuple[str, ...] = attrs.field(converter=_str_tuple, validator=[v.strings, v.non_empty])
    action: str = attrs.field(validator=v.one_of(SECCOMP_ACTIONS))
    errno: int | None = attrs.field(default=None, validator=_errno("seccomp.syscalls.errnoRet"))
    args: tuple[SyscallArg, ...] = attrs.field(default=(), converter=_syscall_args)
    caps: tuple[str, ...] = attrs.field(default=(), converter=_rule_caps)
    not_caps: tuple[str, ...] = attrs.field(default=(), converter=_rule_not_caps)
    arches: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple, validator=v.strings)
    not_arches: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple, validator=v.strings)
    min_kernel: str | None = attrs.field(default=None, validator=v.optional_string)

    def __attrs_post_init__(self) -> None:
        if self.min_kernel is not None and not v.KERNEL_VERSION_RE.fullmatch(self.min_kernel):
            raise ConfigError("seccomp.syscalls.includes.minKernel", f"{self.min_kernel!r} is not a kernel version")


def _syscall_rules(value: Iterable[SyscallRule]) -> tuple[SyscallRule, ...]:
    return _typed_tuple(SyscallRule, "seccomp.syscalls", value)


@attrs.frozen(cache_hash=True)
class SeccompProfile:
    """A seccomp profile with the meaning of Docker's JSON profiles (see
    :func:`pycontainer.security.load_seccomp_profile`): ``default_action``
    for every system call no rule names; ``default_errno`` the errno of
    SCMP_ACT_ERRNO actions that give none (EPERM otherwise);
    ``architectures`` the SCMP_ARCH_* names the filter also covers."""

    default_action: str = attrs.field(validator=v.one_of(SECCOMP_ACTIONS))
    syscalls: tuple[SyscallRule, ...] = attrs.field(default=(), converter=_syscall_rules)
    default_errno: int | None = attrs.field(default=None, validator=_errno("seccomp.defaultErrnoRet"))
    architectures: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple, validator=v.strings)
    flags: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple, validator=v.strings)

    def __attrs_post_init__(self) -> None:
        for f in self.flags:
            if f not in SECCOMP_FLAGS:
                raise ConfigError("seccomp.flags", f"{f!r} is not one of {', '.join(SECCOMP_FLAGS)}")


def _seccomp(value: object) -> SeccompProfile | str:
    if isinstance(value, SeccompProfile):
        return value
    if value in ("default", "unconfined"):
        return str(value)
    if isinstance(value, Mapping):
        from .security import seccomp_profile_from_json

        return seccomp_profile_from_json(value)
    raise ConfigError(
        "seccomp", f"must be 'default', 'unconfined', a SeccompProfile or a Docker profile mapping, not {value!r}"
    )


_SYSCTL_KEY = re.compile(r"[a-z0-9_]+(\.[a-zA-Z0-9_-]+)+")


def _sysctl(value: Mapping[str, str] | Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    items = list(value.items()) if isinstance(value, Mapping) else list(value)
    out = []
    for item in items:
        item = tuple(item) if isinstance(item, list) else item
        if not (isinstance(item, tuple) and len(item) == 2 and all(isinstance(x, str) for x in item)):
            raise ConfigError("sysctl", f"{item!r} is not a (name, value) pair of strings")
        key, val = item
        if not _SYSCTL_KEY.fullmatch(key):
            raise ConfigError(f"sysctl.{key}", "is not a kernel parameter name (such as net.ipv4.ip_forward)")
        if "\x00" in val or "\n" in val:
            raise ConfigError(f"sysctl.{key}", "the value must be one line without NUL bytes")
        out.append((key, val))
    if len({k for k, _ in out}) != len(out):
        raise ConfigError("sysctl", "a parameter is given twice")
    return tuple(out)


def _time_offsets(value: Mapping[str, Any] | Iterable[tuple[str, int, int]]) -> tuple[tuple[str, int, int], ...]:
    items: list[tuple[object, ...]] = (
        [(k, *v) for k, v in value.items()] if isinstance(value, Mapping) else [tuple(x) for x in value]
    )
    out: list[tuple[str, int, int]] = []
    for item in items:
        clock = item[0] if len(item) == 3 else None
        if not isinstance(clock, str) or clock not in ("monotonic", "boottime"):
            raise ConfigError("time_offsets", f"{item!r} is not (monotonic|boottime, secs, nanosecs)")
        _, secs, nanos = item
        if (
            not isinstance(secs, int)
            or isinstance(secs, bool)
            or not isinstance(nanos, int)
            or isinstance(nanos, bool)
            or not 0 <= nanos < 10**9
        ):
            raise ConfigError(
                f"time_offsets.{clock}", f"({secs!r}, {nanos!r}) is not whole seconds and 0..999999999 ns"
            )
        out.append((clock, secs, nanos))
    if len({c for c, _, _ in out}) != len(out):
        raise ConfigError("time_offsets", "a clock is given twice")
    return tuple(out)


def _rlimits(value: Iterable[Rlimit]) -> tuple[Rlimit, ...]:
    out = _typed_tuple(Rlimit, "rlimits", value)
    seen = [r.type for r in out]
    for name in seen:
        if seen.count(name) > 1:
            raise ConfigError("rlimits", f"{name} is given twice")
    return out


@attrs.frozen
class Process:
    """What runs in the container.

    ``user`` is a :class:`User`, a uid, or a Docker-style ``"name[:group]"`` /
    ``"uid[:gid]"`` string looked up in the rootfs's /etc/passwd and /etc/group.
    With an image (``ContainerConfig.image``), ``args`` replace the image's Cmd
    (empty: keep it), and the defaults of ``env``, ``cwd`` and ``user`` give
    way to the image's Env, WorkingDir and User.
    """

    args: tuple[str, ...] = attrs.field(converter=_args, validator=v.strings)
    env: tuple[str, ...] = attrs.field(default=DEFAULT_ENV, converter=_env, validator=v.env)
    cwd: str = attrs.field(default="/", validator=v.absolute_path)
    user: User | str = attrs.field(default=User(), converter=_user)
    umask: int = attrs.field(default=0o022, validator=v.umask)
    terminal: bool = attrs.field(default=False, converter=bool)
    # With an image: None keeps the image's Entrypoint; a sequence replaces it
    # (and then the image's Cmd too), as ``docker run --entrypoint``.
    entrypoint: tuple[str, ...] | None = attrs.field(
        default=None, converter=attrs.converters.optional(_args), validator=attrs.validators.optional(v.strings)
    )
    # None: Docker's default set (for exec: the container's)
    capabilities: Capabilities | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.instance_of(Capabilities))
    )
    no_new_privileges: bool = attrs.field(default=False, converter=bool)
    rlimits: tuple[Rlimit, ...] = attrs.field(default=(), converter=_rlimits)
    oom_score_adj: int | None = attrs.field(default=None, validator=_opt_int(-1000, 1000))
    # Accepted as in OCI; a host without AppArmor (or SELinux) refuses a
    # profile (label) other than "unconfined" at create.
    apparmor_profile: str | None = attrs.field(default=None, validator=v.optional_string)
    selinux_label: str | None = attrs.field(default=None, validator=v.optional_string)


_I64 = 2**63 - 1
# Docker's floor.  It also keeps a fresh container's memory cgroup from
# filling up before its child has left the runtime's memory (_plan.py).
MIN_MEMORY = 6 << 20


def _blkio_weight_device(value: Iterable[WeightDevice]) -> tuple[WeightDevice, ...]:
    return _typed_tuple(WeightDevice, "blkio_weight_device", value)


def _blkio_read_bps(value: Iterable[ThrottleDevice]) -> tuple[ThrottleDevice, ...]:
    return _typed_tuple(ThrottleDevice, "blkio_read_bps", value)


def _blkio_write_bps(value: Iterable[ThrottleDevice]) -> tuple[ThrottleDevice, ...]:
    return _typed_tuple(ThrottleDevice, "blkio_write_bps", value)


def _blkio_read_iops(value: Iterable[ThrottleDevice]) -> tuple[ThrottleDevice, ...]:
    return _typed_tuple(ThrottleDevice, "blkio_read_iops", value)


def _blkio_write_iops(value: Iterable[ThrottleDevice]) -> tuple[ThrottleDevice, ...]:
    return _typed_tuple(ThrottleDevice, "blkio_write_iops", value)


def _hugepage_limits(value: Iterable[HugepageLimit]) -> tuple[HugepageLimit, ...]:
    return _typed_tuple(HugepageLimit, "hugepage_limits", value)


def _device_rules(value: Iterable[DeviceRule]) -> tuple[DeviceRule, ...]:
    return _typed_tuple(DeviceRule, "devices", value)


@attrs.frozen
class Resources:
    """cgroup limits, with the meanings of Docker's and OCI's fields.

    Memory sizes are bytes (``memory`` at least 6 MiB, as Docker's);
    ``memory_swap`` is memory plus swap, -1 for
    unlimited (as ``docker run --memory-swap``).  ``cpus`` is Docker's
    ``--cpus`` (a quota of ``cpus`` x the period); ``cpu_quota`` and
    ``cpu_period`` are in microseconds, -1 quota for unlimited.
    ``pids_limit`` -1 (or 0) is unlimited.  Fields left None are not set.
    """

    memory: int | None = attrs.field(default=None, validator=_opt_int(MIN_MEMORY, _I64, extra=(-1,)))
    memory_reservation: int | None = attrs.field(default=None, validator=_opt_int(0, _I64, extra=(-1,)))
    memory_swap: int | None = attrs.field(default=None, validator=_opt_int(1, _I64, extra=(-1,)))
    memory_swappiness: int | None = attrs.field(default=None, validator=_opt_int(0, 100))
    oom_kill_disable: bool = attrs.field(default=False, converter=bool)
    cpu_shares: int | None = attrs.field(default=None, validator=_opt_int(2, 262144))
    cpus: float | None = attrs.field(default=None)
    cpu_quota: int | None = attrs.field(default=None, validator=_opt_int(1000, _I64, extra=(-1,)))
    cpu_period: int | None = attrs.field(default=None, validator=_opt_int(1000, 1000000))
    cpu_rt_runtime: int | None = attrs.field(default=None, validator=_opt_int(-1, _I64))
    cpu_rt_period: int | None = attrs.field(default=None, validator=_opt_int(1, 1000000))
    cpuset_cpus: str | None = attrs.field(default=None, validator=v.optional_cpuset)
    cpuset_mems: str | None = attrs.field(default=None, validator=v.optional_cpuset)
    pids_limit: int | None = attrs.field(default=None, validator=_opt_int(1, _I64, extra=(-1, 0)))
    blkio_weight: int | None = attrs.field(default=None, validator=_opt_int(10, 1000))
    blkio_weight_device: tuple[WeightDevice, ...] = attrs.field(default=(), converter=_blkio_weight_device)
    blkio_read_bps: tuple[ThrottleDevice, ...] = attrs.field(default=(), converter=_blkio_read_bps)
    blkio_write_bps: tuple[ThrottleDevice, ...] = attrs.field(default=(), converter=_blkio_write_bps)
    blkio_read_iops: tuple[ThrottleDevice, ...] = attrs.field(default=(), converter=_blkio_read_iops)
    blkio_write_iops: tuple[ThrottleDevice, ...] = attrs.field(default=(), converter=_blkio_write_iops)
    hugepage_limits: tuple[HugepageLimit, ...] = attrs.field(default=(), converter=_hugepage_limits)
    # None: DEFAULT_DEVICE_RULES for a new container, unchanged by an update
    devices: tuple[DeviceRule, ...] | None = attrs.field(
        default=None, converter=attrs.converters.optional(_device_rules)
    )

    @cpus.validator
    def _cpus(self, _attribute: v.FieldRef, value: object) -> None:
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.01 <= value <= 1024:
            raise ConfigError("cpus", f"{value!r} is not a number of CPUs in 0.01..1024")

    def __attrs_post_init__(self) -> None:
        if self.cpus is not None and self.cpu_quota is not None:
            raise ConfigError("cpus", "cpus and cpu_quota are two ways to say one thing; give one")
        if self.memory not in (None, -1):
            if self.memory_swap not in (None, -1) and self.memory_swap < self.memory:
                raise ConfigError("memory_swap", f"{self.memory_swap} is less than memory ({self.memory})")
            if self.memory_reservation not in (None, -1) and self.memory_reservation > self.memory:
                raise ConfigError(
                    "memory_reservation", f"{self.memory_reservation} is more than memory ({self.memory})"
                )
        elif self.memory_swap not in (None, -1):
            raise ConfigError("memory_swap", "needs memory: it is the total of memory and swap")

    def device_rules(self) -> tuple[DeviceRule, ...]:
        """The device rules in force: ``devices``, or runc's defaults."""
        return DEFAULT_DEVICE_RULES if self.devices is None else self.devices

    def quota_period(self) -> tuple[int | None, int | None]:
        """(quota, period) in microseconds, ``cpus`` converted as Docker does."""
        if self.cpus is not None:
            period = self.cpu_period or 100000
            return round(self.cpus * period), period
        return self.cpu_quota, self.cpu_period


def _resources(value: Resources) -> Resources:
    if not isinstance(value, Resources):
        raise ConfigError("resources", f"must be a Resources, not {type(value).__name__}")
    return value


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


@attrs.frozen
class Hook:
    """A program the runtime runs at a point of the container's life (OCI
    ``hooks``): ``path`` (absolute), ``args`` (argv, ``args[0]`` included; by
    default just the path), ``env`` (the whole environment, ``K=V``),
    ``timeout`` in seconds (None: no limit).  It reads the container's state
    JSON on stdin."""

    path: str = attrs.field(validator=v.absolute_path)
    args: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple, validator=v.strings)
    env: tuple[str, ...] = attrs.field(default=(), converter=_env)
    timeout: int | None = attrs.field(default=None, validator=_opt_int(1))

    def argv(self) -> list[str]:
        return list(self.args) or [self.path]


def _prestart_hooks(value: Iterable[Hook]) -> tuple[Hook, ...]:
    return _typed_tuple(Hook, "hooks.prestart", value)


def _create_runtime_hooks(value: Iterable[Hook]) -> tuple[Hook, ...]:
    return _typed_tuple(Hook, "hooks.create_runtime", value)


def _create_container_hooks(value: Iterable[Hook]) -> tuple[Hook, ...]:
    return _typed_tuple(Hook, "hooks.create_container", value)


def _start_container_hooks(value: Iterable[Hook]) -> tuple[Hook, ...]:
    return _typed_tuple(Hook, "hooks.start_container", value)


def _poststart_hooks(value: Iterable[Hook]) -> tuple[Hook, ...]:
    return _typed_tuple(Hook, "hooks.poststart", value)


def _poststop_hooks(value: Iterable[Hook]) -> tuple[Hook, ...]:
    return _typed_tuple(Hook, "hooks.poststop", value)


@attrs.frozen
class Hooks:
    """Hooks by the moment they run, as the OCI runtime spec places them:

    - ``prestart`` (deprecated by the spec) and ``create_runtime``: during
      create, once the namespaces and mounts are made and before
      pivot_root, in the runtime's namespaces;
    - ``create_container``: right after those, in the container's
      namespaces, the path resolved in the runtime's mount tree;
    - ``start_container``: at start, before the process runs, as the
      container's process (exec'd: its rootfs, cgroup, user, capabilities
      and seccomp);
    - ``poststart``: after the process started, before start returns, in
      the runtime's namespaces (a failure is a warning);
    - ``poststop``: when the container is deleted (a failure is a warning).

    A failing hook of the first four kinds fails create (or start), and the
    container is removed."""

    prestart: tuple[Hook, ...] = attrs.field(default=(), converter=_prestart_hooks)
    create_runtime: tuple[Hook, ...] = attrs.field(default=(), converter=_create_runtime_hooks)
    create_container: tuple[Hook, ...] = attrs.field(default=(), converter=_create_container_hooks)
    start_container: tuple[Hook, ...] = attrs.field(default=(), converter=_start_container_hooks)
    poststart: tuple[Hook, ...] = attrs.field(default=(), converter=_poststart_hooks)
    poststop: tuple[Hook, ...] = attrs.field(default=(), converter=_poststop_hooks)

    def at_create(self) -> bool:
        return bool(self.prestart or self.create_runtime or self.create_container)


def _hooks(value: Hooks | None) -> Hooks:
    if value is None:
        return Hooks()
    if not isinstance(value, Hooks):
        raise ConfigError("hooks", f"must be a Hooks, not {type(value).__name__}")
    return value


def _annotations(value: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    items = list(value.items()) if isinstance(value, Mapping) else [tuple(x) for x in value]
    for item in items:
        if len(item) != 2 or not all(isinstance(x, str) for x in item) or not item[0]:
            raise ConfigError("annotations", f"{item!r} is not a (key, value) pair of strings")
    if len({k for k, _ in items}) != len(items):
        raise ConfigError("annotations", "a key is given twice")
    return tuple(items)


def _process(value: Process) -> Process:
    if not isinstance(value, Process):
        raise ConfigError("process", f"must be a Process, not {type(value).__name__}")
    return value


def _devices(value: Iterable[Device]) -> tuple[Device, ...]:
    return _typed_tuple(Device, "devices", value)


@attrs.frozen(cache_hash=True)  # (hashed for the caches of its JSON and plan blocks, several times a create)
class ContainerConfig:
    """Everything needed to create a container.

    ``rootfs=None`` means the built-in busybox rootfs (see
    :func:`pycontainer.default_rootfs`); ``image`` names an image in the
    image store instead (see :mod:`pycontainer.images`), whose layers become
    the rootfs and whose config gives the process its defaults.  ``hostname=None`` means the first 12
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
    dns: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple, validator=v.strings)
    image: str | None = attrs.field(default=None, validator=v.optional_string)
    cgroups: bool = attrs.field(default=True, converter=bool)
    cgroups_path: str | None = attrs.field(default=None, validator=v.cgroups_path)
    resources: Resources = attrs.field(factory=Resources, converter=_resources)
    # "default": Docker's profile; "unconfined": no filter; or a profile of one's own
    seccomp: SeccompProfile | str = attrs.field(default="default", converter=_seccomp)
    # True: what Docker adds around a config: /proc, /dev (tmpfs), /dev/pts,
    # /dev/shm, /dev/mqueue and /sys mounted before ``mounts``; /etc/hostname,
    # /etc/hosts and /etc/resolv.conf from the state directory; the hostname
    # from the id; PATH, HOSTNAME and HOME in the environment.  False: the
    # config is the whole story, as an OCI bundle's is (pycontainer.oci); the
    # runtime still makes runc's default device nodes and /dev links.
    docker_defaults: bool = attrs.field(default=True, converter=bool)
    devices: tuple[Device, ...] = attrs.field(default=(), converter=_devices)
    # execution domain (OCI linux.personality): "LINUX", or "LINUX32" (uname says i686)
    personality: str | None = attrs.field(
        default=None, validator=attrs.validators.optional(v.one_of(("LINUX", "LINUX32")))
    )
    # clock offsets of a new time namespace: {"monotonic": (secs, nanosecs), "boottime": (secs, nanosecs)}
    time_offsets: tuple[tuple[str, int, int], ...] = attrs.field(default=(), converter=_time_offsets)
    # namespaced kernel parameters, as docker run --sysctl: {"net.ipv4.ip_forward": "1"}
    sysctl: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_sysctl)
    # restart policy, applied by the init (init=True): "no", "always", "unless-stopped",
    # "on-failure" or "on-failure:MAX" (Docker's --restart)
    restart: str = attrs.field(default="no", validator=v.restart_policy)
    # SELinux label of the container's mounts (OCI linux.mountLabel): refused at create
    # on a host without SELinux, as process.selinux_label is
    mount_label: str | None = attrs.field(default=None, validator=v.optional_string)
    # a session keyring of the container's own ("_ses.<id>", as runc's; False: runc --no-new-keyring)
    new_keyring: bool = attrs.field(default=True, converter=bool)
    # move the rootfs onto "/" and chroot instead of pivot_root (runc --no-pivot: for a ramfs root;
    # less safe: the host's root stays beneath, in the container's mount namespace)
    no_pivot_root: bool = attrs.field(default=False, converter=bool)
    # the image's VOLUMEs become anonymous volumes of the container (docker run's
    # way); False: they are plain paths of its rootfs (a build's steps, whose
    # changes there must reach the layer)
    image_volumes: bool = attrs.field(default=True, converter=bool)
    # programs run at points of the container's life (OCI hooks)
    hooks: Hooks = attrs.field(factory=Hooks, converter=_hooks)
    # free-form metadata (OCI annotations), shown in the state
    annotations: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_annotations)

    def __attrs_post_init__(self) -> None:
        if self.rootfs is not None and not self.rootfs.startswith("/"):
            raise ConfigError("rootfs", f"{self.rootfs!r} is not an absolute path")
        if self.rootfs is not None and self.image is not None:
            raise ConfigError("image", "give a rootfs or an image, not both")
        if self.image is None and not self.process.args:
            raise ConfigError("process.args", "must not be empty (only an image can supply them)")
        if self.image is None and self.process.entrypoint is not None:
            raise ConfigError("process.entrypoint", "only applies to an image")
        if not self.cgroups and self.resources != Resources():
            raise ConfigError("resources", "limits need a cgroup, and cgroups=False asks for none")
        if not self.cgroups and self.cgroups_path is not None:
            raise ConfigError("cgroups_path", "given with cgroups=False")
        for i, m in enumerate(self.mounts):
            if m.idmapped() and not m.uid_mappings and not self.uid_mappings:
                raise ConfigError(
                    f"mounts[{i}].options",
                    "idmap without mappings of its own takes the user namespace's: give uid_mappings",
                )
        if self.restart != "no" and not self.init:
            raise ConfigError("restart", "a restart policy is applied by the init: give init=True")
        if self.time_offsets and not self.new_namespace(NamespaceType.TIME):
            raise ConfigError("time_offsets", "need a new time namespace (namespaces=[..., 'time'])")

    def has_namespace(self, kind: NamespaceType) -> bool:
        return any(n.type is kind for n in self.namespaces)

    def new_namespace(self, kind: NamespaceType) -> bool:
        return any(n.type is kind and n.path is None for n in self.namespaces)


__all__ = [
    "CAPABILITY_NAMES",
    "DEFAULT_CAPABILITIES",
    "DEFAULT_DEVICE_RULES",
    "DEFAULT_ENV",
    "DEFAULT_MASKED_PATHS",
    "DEFAULT_NAMESPACES",
    "DEFAULT_READONLY_PATHS",
    "Capabilities",
    "ContainerConfig",
    "Device",
    "DeviceRule",
    "Hook",
    "Hooks",
    "HugepageLimit",
    "IDMap",
    "Mount",
    "Namespace",
    "NamespaceType",
    "Process",
    "Resources",
    "Rlimit",
    "SeccompProfile",
    "SyscallArg",
    "SyscallRule",
    "ThrottleDevice",
    "User",
    "WeightDevice",
]
