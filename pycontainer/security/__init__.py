"""What keeps a container's process in: capabilities, seccomp, no_new_privs,
rlimits and oom_score_adj, compiled for the C shim.

The configuration lives in :mod:`pycontainer.config` (:class:`Capabilities`,
:class:`Rlimit`, :class:`SeccompProfile`); this module turns it into the
numbers and the BPF program the child's plan carries.  Seccomp profiles are
compiled in the parent with libseccomp (through the cffi shim), once per
profile and capability set: the child only installs the bytes.

Docker's default seccomp profile ships as ``default_seccomp.json`` next to
this file (moby/profiles ``seccomp/default.json``); a profile of one's own is
read with :func:`load_seccomp_profile`.
"""

from __future__ import annotations

import errno as _errno
import functools
import json
import os
import platform
import re
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from ..config import (
    CAPABILITY_NAMES,
    CAPABILITY_NUMBERS,
    Capabilities,
    ContainerConfig,
    NamespaceType,
    Process,
    SeccompProfile,
    SyscallArg,
    SyscallRule,
    held_capabilities,
)
from ..errors import ConfigError
from . import _bpf

DEFAULT_PROFILE_PATH = os.path.join(os.path.dirname(__file__), "default_seccomp.json")

# libseccomp's action values (<seccomp.h> SCMP_ACT_*); ERRNO and TRACE carry
# a 16-bit value in the low bits.
_ACTIONS = {
    "SCMP_ACT_KILL": 0x00000000,
    "SCMP_ACT_KILL_THREAD": 0x00000000,
    "SCMP_ACT_KILL_PROCESS": 0x80000000,
    "SCMP_ACT_TRAP": 0x00030000,
    "SCMP_ACT_ERRNO": 0x00050000,
    "SCMP_ACT_TRACE": 0x7FF00000,
    "SCMP_ACT_LOG": 0x7FFC0000,
    "SCMP_ACT_ALLOW": 0x7FFF0000,
}
_OPS = {
    "SCMP_CMP_NE": 1,
    "SCMP_CMP_LT": 2,
    "SCMP_CMP_LE": 3,
    "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5,
    "SCMP_CMP_GT": 6,
    "SCMP_CMP_MASKED_EQ": 7,
}
_FLAGS = {"SECCOMP_FILTER_FLAG_TSYNC": 1, "SECCOMP_FILTER_FLAG_LOG": 2, "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4}
_BPF_MAXINSNS = 4096
# uname -m -> the Go architecture names of Docker's includes.arches
_GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "i686": "386", "i386": "386", "armv7l": "arm", "ppc64le": "ppc64le"}
# uname -m -> the SCMP_ARCH_* name of the native architecture (archMap keys)
_SCMP_ARCH = {"x86_64": "SCMP_ARCH_X86_64", "aarch64": "SCMP_ARCH_AARCH64", "i686": "SCMP_ARCH_X86"}


# ---- profiles -------------------------------------------------------------------


def _native_scmp_arch() -> str:
    m = platform.machine()
    return _SCMP_ARCH.get(m, "SCMP_ARCH_" + m.upper())


def _json_get(obj: Mapping[str, Any], key: str) -> Any:
    """``obj[key]`` of parsed JSON, None where missing: the config class's
    validator refuses what is not a value of its field."""
    return obj.get(key)


def _json_rule(i: int, raw: object) -> SyscallRule:
    field = f"seccomp.syscalls[{i}]"
    if not isinstance(raw, Mapping):
        raise ConfigError(field, f"must be an object, not {type(raw).__name__}")
    unknown = set(raw) - {"name", "names", "action", "errnoRet", "args", "includes", "excludes", "comment"}
    if unknown:
        raise ConfigError(field, f"unknown key {sorted(unknown)[0]!r}")
    names = list(raw.get("names") or [])
    if raw.get("name"):
        names.append(raw["name"])
    if not names:
        raise ConfigError(f"{field}.names", "names no system call")
    action = _json_get(raw, "action")
    if action == "SCMP_ACT_NOTIFY":
        raise ConfigError(f"{field}.action", "SCMP_ACT_NOTIFY (a user-space listener) is not supported")
    inc, exc = raw.get("includes") or {}, raw.get("excludes") or {}
    if not isinstance(inc, Mapping) or not isinstance(exc, Mapping):
        raise ConfigError(field, "includes and excludes must be objects")
    for part, what in ((inc, "includes"), (exc, "excludes")):
        extra = set(part) - {"caps", "arches", "minKernel"}
        if extra:
            raise ConfigError(f"{field}.{what}", f"unknown key {sorted(extra)[0]!r}")
    if exc.get("minKernel"):
        raise ConfigError(f"{field}.excludes.minKernel", "is not supported (Docker ignores it too)")
    args = []
    for j, a in enumerate(raw.get("args") or ()):
        if not isinstance(a, Mapping) or set(a) - {"index", "value", "valueTwo", "op"}:
            raise ConfigError(f"{field}.args[{j}]", "must be an object of index, value, valueTwo and op")
        args.append(
            SyscallArg(
                index=a.get("index", 0), value=a.get("value", 0), value_two=a.get("valueTwo", 0), op=_json_get(a, "op")
            )
        )
    return SyscallRule(
        names=names,
        action=action,
        errno=raw.get("errnoRet"),
        args=args,
        caps=inc.get("caps") or (),
        not_caps=exc.get("caps") or (),
        arches=inc.get("arches") or (),
        not_arches=exc.get("arches") or (),
        min_kernel=inc.get("minKernel") or None,
    )


def seccomp_profile_from_json(data: Mapping[str, Any] | str | bytes) -> SeccompProfile:
    """A Docker (or OCI ``linux.seccomp``) JSON profile, as text or parsed,
    as a :class:`SeccompProfile`.  Raises :class:`ConfigError` naming the
    part that is wrong."""
    if isinstance(data, (str, bytes)):
        try:
            data = json.loads(data)
        except ValueError as e:
            raise ConfigError("seccomp", f"is not JSON: {e}") from None
    if not isinstance(data, Mapping):
        raise ConfigError("seccomp", f"must be a JSON object, not {type(data).__name__}")
    unknown = set(data) - {
        "defaultAction", "defaultErrnoRet", "architectures", "archMap", "syscalls", "flags",
        "listenerPath", "listenerMetadata",
    }  # fmt: skip
    if unknown:
        raise ConfigError("seccomp", f"unknown key {sorted(unknown)[0]!r}")
    if data.get("listenerPath"):
        raise ConfigError("seccomp.listenerPath", "seccomp notify listeners are not supported")
    if data.get("defaultAction") == "SCMP_ACT_NOTIFY":
        raise ConfigError("seccomp.defaultAction", "SCMP_ACT_NOTIFY (a user-space listener) is not supported")
    arches = list(data.get("architectures") or ())
    if not arches and data.get("archMap"):
        native = _native_scmp_arch()
        for entry in data["archMap"]:
            if isinstance(entry, Mapping) and entry.get("architecture") == native:
                arches = [native, *(entry.get("subArchitectures") or ())]
    syscalls = data.get("syscalls") or ()
    if not isinstance(syscalls, (list, tuple)):
        raise ConfigError("seccomp.syscalls", "must be a list")
    try:
        return SeccompProfile(
            default_action=_json_get(data, "defaultAction"),
            default_errno=data.get("defaultErrnoRet"),
            architectures=arches,
            flags=data.get("flags") or (),
            syscalls=[_json_rule(i, r) for i, r in enumerate(syscalls)],
        )
    except (TypeError, AttributeError) as e:
        raise ConfigError("seccomp", f"is not a seccomp profile: {e}") from None


def load_seccomp_profile(path: str | os.PathLike[str]) -> SeccompProfile:
    """Read a Docker/OCI JSON seccomp profile from a file
    (``docker run --security-opt seccomp=FILE``)."""
    try:
        with open(path, "rb") as f:
            text = f.read()
    except OSError as e:
        raise ConfigError("seccomp", f"cannot read {os.fspath(path)!r}: {e.strerror}") from None
    return seccomp_profile_from_json(text)


@functools.cache
def default_seccomp_profile() -> SeccompProfile:
    """Docker's default profile (read once)."""
    return load_seccomp_profile(DEFAULT_PROFILE_PATH)


def seccomp_profile_to_json(profile: SeccompProfile) -> dict[str, Any]:
    """The Docker JSON form of a profile (what :func:`seccomp_profile_from_json` reads)."""
    out: dict[str, Any] = {"defaultAction": profile.default_action}
    if profile.default_errno is not None:
        out["defaultErrnoRet"] = profile.default_errno
    if profile.architectures:
        out["architectures"] = list(profile.architectures)
    if profile.flags:
        out["flags"] = list(profile.flags)
    rules = []
    for r in profile.syscalls:
        rule: dict[str, Any] = {"names": list(r.names), "action": r.action}
        if r.errno is not None:
            rule["errnoRet"] = r.errno
        if r.args:
            rule["args"] = [{"index": a.index, "value": a.value, "valueTwo": a.value_two, "op": a.op} for a in r.args]
        inc = {k: v for k, v in (("caps", list(r.caps)), ("arches", list(r.arches)), ("minKernel", r.min_kernel)) if v}
        exc = {k: v for k, v in (("caps", list(r.not_caps)), ("arches", list(r.not_arches))) if v}
        if inc:
            rule["includes"] = inc
        if exc:
            rule["excludes"] = exc
        rules.append(rule)
    out["syscalls"] = rules
    return out


# ---- compiling ------------------------------------------------------------------


def _kernel() -> tuple[int, ...]:
    m = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", os.uname().release)
    return tuple(int(x or 0) for x in m.groups()) if m else (0, 0, 0)


def _version(text: str) -> tuple[int, ...]:
    parts = [int(x) for x in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def _applies(rule: SyscallRule, bounding: frozenset[str], arch: str, kernel: tuple[int, ...]) -> bool:
    """Docker's includes/excludes: caps against the bounding set."""
    if any(c not in bounding for c in rule.caps) or any(c in bounding for c in rule.not_caps):
        return False
    if rule.arches and arch not in rule.arches or arch in rule.not_arches:
        return False
    return not (rule.min_kernel and kernel < _version(rule.min_kernel))


def _action_value(action: str, ret: int | None, default_ret: int | None) -> int:
    value = _ACTIONS[action]
    if action in ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"):
        value |= (ret if ret is not None else default_ret if default_ret is not None else _errno.EPERM) & 0xFFFF
    return value


@functools.lru_cache(maxsize=32)
def compile_seccomp(profile: SeccompProfile, bounding: frozenset[str]) -> tuple[bytes, int]:
    """``profile`` for a process with the capabilities ``bounding``, as
    (``struct sock_filter[]`` bytes, SECCOMP_FILTER_FLAG_* bits).  Cached: a
    profile is compiled once per capability set.  System calls this
    libseccomp does not know are left out (Docker's profile names some of
    other architectures and newer kernels), as runc does.

    libseccomp compiles the rules; its program is then re-encoded by ranges
    of system-call numbers (:mod:`._bpf`: the same function, proved by
    running both together; a third of the length for Docker's profile, and
    half the kernel's time to install it), unless that finds something it
    does not know."""
    program = libseccomp_program(profile, bounding)
    try:
        shorter = _bpf.ranged(program)
    except _bpf.Unsupported:
        shorter = program  # installed as libseccomp wrote it
    except Exception as e:  # (a bug in _bpf: libseccomp's program is the safe one)
        warnings.warn(f"seccomp: re-encoding the filter failed ({e!r}); libseccomp's program is used", stacklevel=2)
        shorter = program
    if len(shorter) < len(program):
        program = shorter
    flags = 0
    for f in profile.flags:
        flags |= _FLAGS[f]
    return program, flags


def libseccomp_program(profile: SeccompProfile, bounding: frozenset[str]) -> bytes:
    """libseccomp's BPF program for ``profile`` and the capabilities
    ``bounding``, as it exports it (not cached; :func:`compile_seccomp` is)."""
    from .. import _shim

    lib, ffi = _shim.lib, _shim.ffi
    default = _action_value(profile.default_action, None, profile.default_errno)
    ctx = lib.seccomp_init(default)
    if ctx == ffi.NULL:
        raise ConfigError("seccomp.defaultAction", f"libseccomp refused {profile.default_action}")
    try:
        lib.seccomp_attr_set(ctx, lib.SCMP_FLTATR_CTL_NNP, 0)
        lib.seccomp_attr_set(ctx, lib.SCMP_FLTATR_CTL_OPTIMIZE, 2)  # a binary tree of syscall numbers
        for name in profile.architectures:
            if name == "SCMP_ARCH_X32" and not _x32():
                continue  # this kernel runs no x32 code: a third of the program, and of its install time, saved
            token = lib.seccomp_arch_resolve_name(name.lower().removeprefix("scmp_arch_").encode())
            if not token:
                raise ConfigError("seccomp.architectures", f"{name!r} is not an architecture libseccomp knows")
            r = lib.seccomp_arch_add(ctx, token)
            if r < 0 and r != -_errno.EEXIST:
                raise ConfigError("seccomp.architectures", f"{name}: {os.strerror(-r)}")
        arch, kernel = _GO_ARCH.get(platform.machine(), platform.machine()), _kernel()
        for i, rule in enumerate(profile.syscalls):
            if not _applies(rule, bounding, arch, kernel):
                continue
            action = _action_value(rule.action, rule.errno, None)  # EPERM when the rule gives none (runc, OCI)
            if action == default:
                continue  # libseccomp refuses a rule that says what the default says
            # Conditions on one argument index cannot be ANDed by libseccomp:
            # like runc, such a rule becomes one rule per condition (ORed).
            indexes = [a.index for a in rule.args]
            groups = [rule.args] if len(set(indexes)) == len(indexes) else [(a,) for a in rule.args]
            # libseccomp compares (arg & mask) with (value & mask): a MASKED_EQ
            # whose value has bits outside its mask, which no argument can
            # meet, would match where the profile says it never does.  Such a
            # group of conditions is left out: it never applies.
            groups = [g for g in groups if not any(a.op == "SCMP_CMP_MASKED_EQ" and a.value_two & ~a.value for a in g)]
            for name in rule.names:
                nr = lib.seccomp_syscall_resolve_name(name.encode())
                if nr == -1:
                    continue
                for group in groups:
                    cmps = ffi.new("struct scmp_arg_cmp[]", max(len(group), 1))
                    for k, a in enumerate(group):
                        cmps[k].arg, cmps[k].op = a.index, _OPS[a.op]
                        cmps[k].datum_a, cmps[k].datum_b = a.value, a.value_two
                    r = lib.seccomp_rule_add_array(ctx, action, nr, len(group), cmps)
                    if r < 0:
                        raise ConfigError(
                            f"seccomp.syscalls[{i}]", f"{name}: libseccomp refused the rule: {os.strerror(-r)}"
                        )
        fd = os.memfd_create("pycontainer-seccomp", os.MFD_CLOEXEC)
        try:
            r = lib.seccomp_export_bpf(ctx, fd)
            if r < 0:
                raise ConfigError("seccomp", f"libseccomp cannot export the filter: {os.strerror(-r)}")
            size = os.lseek(fd, 0, os.SEEK_END)
            program = os.pread(fd, size, 0)
        finally:
            os.close(fd)
    finally:
        lib.seccomp_release(ctx)
    if len(program) % 8 or not program:
        raise ConfigError("seccomp", "libseccomp exported no whole BPF program")
    if len(program) // 8 > _BPF_MAXINSNS:
        raise ConfigError(
            "seccomp",
            f"the profile compiles to {len(program) // 8} BPF instructions, over the kernel's {_BPF_MAXINSNS}",
        )
    return program


@functools.cache
def _x32() -> bool:
    """Does this kernel run x32 system calls?  Asked of the static helper in
    a process of its own: where a filter without an x32 branch is in force
    (a runtime nested in a container of ours), the call kills its caller."""
    if platform.machine() != "x86_64":
        return False
    helper = os.path.join(os.path.dirname(os.path.dirname(__file__)), "_pchelper")
    try:
        pid = os.posix_spawn(helper, ["pycontainer-helper", "--x32-probe"], {})
        _, status = os.waitpid(pid, 0)
    except OSError:
        return True  # cannot tell: keep the branch (the filter stays complete)
    return os.waitstatus_to_exitcode(status) == 0


# ---- capabilities ---------------------------------------------------------------


def cap_mask(names: Iterable[str]) -> int:
    """The bit mask of the capabilities ``names`` (such as ``CAP_NET_ADMIN``)."""

    mask = 0
    for n in names:
        mask |= 1 << CAPABILITY_NUMBERS[n]
    return mask


@functools.cache
def last_cap() -> int:
    """The highest capability number this kernel knows."""
    try:
        with open("/proc/sys/kernel/cap_last_cap", encoding="ascii") as f:
            return int(f.read())
    except (OSError, ValueError):
        return len(CAPABILITY_NAMES) - 1


@functools.cache
def _held() -> frozenset[str]:
    return frozenset(held_capabilities())


@functools.cache
def host_lsm() -> tuple[bool, bool]:
    """(AppArmor enabled, SELinux enabled) on this host."""
    apparmor = False
    try:
        with open("/sys/module/apparmor/parameters/enabled", encoding="ascii") as f:
            apparmor = f.read().strip() == "Y"
    except OSError:
        pass
    return apparmor, os.path.exists("/sys/fs/selinux/enforce")


def features() -> dict[str, Any]:
    """What this host and build can confine with (as ``runc features``)."""
    apparmor, selinux = host_lsm()
    return {
        "capabilities": [n for n in CAPABILITY_NAMES[: last_cap() + 1]],
        "seccomp": {
            "enabled": True,
            "actions": sorted(_ACTIONS),
            "operators": sorted(_OPS),
            "flags": sorted(_FLAGS),
        },
        "apparmor": apparmor,
        "selinux": selinux,
    }


@attrs.frozen
class Confinement:
    """A process's confinement as the plan carries it (see ``_plan``)."""

    bounding: int
    effective: int
    permitted: int
    inheritable: int
    ambient: int
    last_cap: int
    no_new_privs: bool = False
    seccomp: bytes | None = None
    seccomp_flags: int = 0
    rlimits: tuple[tuple[str, int, int, int], ...] = ()
    oom_score_adj: int | None = None


def _check_lsm(process: Process, mount_label: str | None = None) -> None:
    apparmor, selinux = host_lsm()
    if mount_label and not selinux:
        raise ConfigError(
            "mount_label", f"{mount_label!r} cannot be applied: this host has no SELinux (unsupported here)"
        )
    if process.apparmor_profile not in (None, "", "unconfined") and not apparmor:
        raise ConfigError(
            "process.apparmor_profile",
            f"{process.apparmor_profile!r} cannot be applied: this host has no AppArmor (unsupported here)",
        )
    if process.selinux_label and not selinux:
        raise ConfigError(
            "process.selinux_label",
            f"{process.selinux_label!r} cannot be applied: this host has no SELinux (unsupported here)",
        )
    if process.apparmor_profile not in (None, "", "unconfined") or process.selinux_label or mount_label:
        raise ConfigError("process.apparmor_profile", "applying AppArmor or SELinux labels is not supported yet")


def confinement(process: Process, config: ContainerConfig, *, base: Process | None = None) -> Confinement:
    """``process`` of a container of ``config`` compiled for the plan.  For an
    exec, ``base`` is the container's own process: what ``process`` leaves
    unset (capabilities, rlimits, oom_score_adj) comes from it, and
    no_new_privs holds if either asks for it."""
    if base is None and process is config.process:
        # A container's own process: compiled once per config (configs are
        # frozen; the host's LSMs and the runtime's capabilities are read
        # once too), but its rlimits checked each time against the
        # runtime's own, which may have been lowered meanwhile.
        _check_rlimits(process.rlimits)
        return _container_confinement(config)
    return _confinement(process, config, base)


@functools.lru_cache(maxsize=64)
def _container_confinement(config: ContainerConfig) -> Confinement:
    return _confinement(config.process, config, None)


def _confinement(process: Process, config: ContainerConfig, base: Process | None) -> Confinement:
    from ..config import RLIMITS

    _check_lsm(process, config.mount_label if base is None else None)
    caps = process.capabilities
    if caps is None and base is not None:
        caps = base.capabilities
    if caps is None:
        caps = _default_caps()
    in_userns = config.has_namespace(NamespaceType.USER)
    if not in_userns:
        # Outside a user namespace the kernel grants no capability the
        # runtime lacks (this machine's root may lack CAP_SYS_RESOURCE).
        asked = set(caps.bounding) | set(caps.permitted) | set(caps.inheritable)
        missing = sorted(asked - _held(), key=CAPABILITY_NUMBERS.__getitem__)
        if missing:
            raise ConfigError(
                "process.capabilities", f"{', '.join(missing)}: the runtime itself does not hold it, so cannot grant it"
            )
    top = last_cap()
    beyond = [n for n in set(caps.bounding) | set(caps.permitted) if CAPABILITY_NUMBERS[n] > top]
    if beyond:
        raise ConfigError("process.capabilities", f"{', '.join(sorted(beyond))}: this kernel does not know it")
    program, flags = None, 0
    if config.seccomp != "unconfined":
        profile = default_seccomp_profile() if config.seccomp == "default" else config.seccomp
        assert isinstance(profile, SeccompProfile)
        # An exec gets the container's filter, as Docker's and runc's do,
        # whatever capabilities it is given (runc exec --cap).
        filter_caps = caps if base is None else (base.capabilities or _default_caps())
        program, flags = compile_seccomp(profile, frozenset(filter_caps.bounding))
    rlimits = process.rlimits or (base.rlimits if base is not None else ())
    _check_rlimits(rlimits)
    oom = process.oom_score_adj if process.oom_score_adj is not None or base is None else base.oom_score_adj
    return Confinement(
        bounding=cap_mask(caps.bounding),
        effective=cap_mask(caps.effective),
        permitted=cap_mask(caps.permitted),
        inheritable=cap_mask(caps.inheritable),
        ambient=cap_mask(caps.ambient),
        last_cap=top,
        no_new_privs=process.no_new_privileges or (base is not None and base.no_new_privileges),
        seccomp=program,
        seccomp_flags=flags,
        rlimits=tuple((r.type, RLIMITS[r.type], r.soft, r.hard) for r in rlimits),
        oom_score_adj=oom,
    )


def _check_rlimits(rlimits: Iterable[Any]) -> None:
    """What the kernel would refuse in the child, refused here with the
    reason: a hard limit above the runtime's own needs CAP_SYS_RESOURCE (in
    the initial user namespace: a container's user namespace does not help),
    and no open-file limit may pass fs.nr_open."""
    import resource

    for r in rlimits:
        res = getattr(resource, r.type)
        hard = resource.getrlimit(res)[1]
        ours = float("inf") if hard == resource.RLIM_INFINITY else hard
        theirs = float("inf") if r.hard >= 2**63 - 1 else r.hard
        if theirs > ours and "CAP_SYS_RESOURCE" not in _held():
            raise ConfigError(
                f"process.rlimits.{r.type}",
                f"a hard limit of {r.hard} is above the runtime's own ({hard}); raising it needs CAP_SYS_RESOURCE, "
                "which the runtime lacks",
            )
        if r.type == "RLIMIT_NOFILE":
            try:
                with open("/proc/sys/fs/nr_open", encoding="ascii") as f:
                    nr_open = int(f.read())
            except (OSError, ValueError):
                continue
            if r.hard > nr_open:
                raise ConfigError(f"process.rlimits.{r.type}", f"{r.hard} is above fs.nr_open ({nr_open})")


@functools.cache
def _default_caps() -> Capabilities:
    return Capabilities.of(Capabilities.docker().bounding)


__all__ = [
    "DEFAULT_PROFILE_PATH",
    "Confinement",
    "cap_mask",
    "compile_seccomp",
    "confinement",
    "default_seccomp_profile",
    "features",
    "load_seccomp_profile",
    "seccomp_profile_from_json",
    "seccomp_profile_to_json",
]
