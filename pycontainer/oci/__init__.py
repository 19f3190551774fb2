"""OCI runtime-spec 1.x ``config.json`` <-> :class:`ContainerConfig`.

The only code that knows the runtime-spec JSON.  :func:`config_from_spec`
reads a bundle's config (the spec's meanings: no ``capabilities`` is no
capability, no ``seccomp`` is no filter, no ``maskedPaths`` masks nothing,
``mounts`` is the whole list); :func:`spec_from_config` writes one.  A field
pycontainer cannot honour yet is a :class:`ConfigError` naming it, never
silently dropped: ``linux.intelRdt``, mount labels, personality flags.  The one exception is a ``cgroup`` mount on a
host that is not pure cgroup v2: it is left out with a warning (runc builds
one from binds of the container's cgroup directories; pycontainer does not
yet).
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Mapping
from typing import Any

from ..config import (
    DEFAULT_DEVICE_RULES,
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
    Process,
    Resources,
    Rlimit,
    ThrottleDevice,
    User,
    WeightDevice,
)
from ..errors import ConfigError

SPEC_VERSION = "1.0.2"
_VERSION_RE = re.compile(r"^1\.[0-9]+\.[0-9]+(-[0-9A-Za-z.+-]+)?$")

_TOP = {"ociVersion", "process", "root", "hostname", "domainname", "mounts", "hooks", "annotations", "linux"}
_PROCESS = {
    "terminal", "consoleSize", "user", "args", "commandLine", "env", "cwd", "capabilities", "rlimits",
    "noNewPrivileges", "apparmorProfile", "oomScoreAdj", "selinuxLabel", "ioPriority", "scheduler",
}  # fmt: skip
_LINUX = {
    "namespaces", "uidMappings", "gidMappings", "timeOffsets", "devices", "cgroupsPath", "resources",
    "unified", "rdmaResources", "intelRdt", "sysctl", "seccomp", "rootfsPropagation", "maskedPaths",
    "readonlyPaths", "mountLabel", "personality", "memoryPolicy",
}  # fmt: skip


def _obj(value: object, field: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(field, f"must be an object, not {type(value).__name__}")
    return value


def _list(value: object, field: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(field, f"must be a list, not {type(value).__name__}")
    return value


def _get(obj: Mapping[str, Any], key: str) -> Any:
    """``obj[key]``, None where missing: the config class's validator
    refuses what is not a value of its field."""
    return obj.get(key)


def _bool(value: object, field: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(field, f"must be true or false, not {value!r}")
    return value


def _unknown(obj: Mapping[str, Any], known: set[str], field: str) -> None:
    extra = sorted(set(obj) - known)
    if extra:
        raise ConfigError(f"{field}.{extra[0]}" if field else extra[0], "is not a field of the runtime spec")


def _unsupported(obj: Mapping[str, Any], names: tuple[str, ...], field: str) -> None:
    for n in names:
        if obj.get(n):
            raise ConfigError(f"{field}.{n}" if field else n, "is not supported by pycontainer yet")


def _cgroup_v2_only() -> bool:
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as f:
            types = {line.split(" - ")[1].split()[0] for line in f if " - " in line}
    except OSError:
        return False
    return "cgroup2" in types and "cgroup" not in types


# ---- spec -> config -------------------------------------------------------------


def _process(p: Mapping[str, Any]) -> Process:
    _unknown(p, _PROCESS, "process")
    _unsupported(p, ("commandLine", "ioPriority", "scheduler"), "process")
    user = _obj(p.get("user"), "process.user")
    _unknown(user, {"uid", "gid", "umask", "additionalGids", "username"}, "process.user")
    caps = _obj(p.get("capabilities"), "process.capabilities")
    _unknown(caps, {"bounding", "effective", "permitted", "inheritable", "ambient"}, "process.capabilities")
    rlimits = []
    for i, r in enumerate(_list(p.get("rlimits"), "process.rlimits")):
        r = _obj(r, f"process.rlimits[{i}]")
        rlimits.append(Rlimit(r.get("type"), r.get("soft"), r.get("hard")))
    if "args" not in p or not p["args"]:
        raise ConfigError("process.args", "must not be empty")
    return Process(
        args=_list(p.get("args"), "process.args"),
        env=_list(p.get("env"), "process.env"),
        cwd=p.get("cwd", "/"),
        user=User(uid=user.get("uid", 0), gid=user.get("gid", 0), additional_gids=user.get("additionalGids") or ()),
        umask=user.get("umask", 0o022),
        terminal=_bool(p.get("terminal", False), "process.terminal"),
        capabilities=_capabilities(caps),
        no_new_privileges=_bool(p.get("noNewPrivileges", False), "process.noNewPrivileges"),
        rlimits=rlimits,
        oom_score_adj=p.get("oomScoreAdj"),
        apparmor_profile=p.get("apparmorProfile") or None,
        selinux_label=p.get("selinuxLabel") or None,
    )


def _capabilities(caps: Mapping[str, Any]) -> Capabilities:
    """Absent sets are empty (runc), not Docker's default.  An ambient
    capability that is not both permitted and inheritable cannot be raised:
    runc warns and goes on (its own ``runc spec`` asks for three such), and
    so does this."""
    sets = {
        k: _list(caps.get(k), f"process.capabilities.{k}")
        for k in ("bounding", "effective", "permitted", "inheritable")
    }
    ambient = _list(caps.get("ambient"), "process.capabilities.ambient")
    norm = {k: set(Capabilities.of(v).bounding) for k, v in sets.items()}
    kept = [a for a in ambient if set(Capabilities.of([a]).bounding) <= norm["permitted"] & norm["inheritable"]]
    if len(kept) != len(ambient):
        dropped = sorted(set(map(str, ambient)) - set(map(str, kept)))
        warnings.warn(
            f"process.capabilities.ambient: {', '.join(dropped)} not permitted and inheritable: not raised",
            stacklevel=4,
        )
    return Capabilities(**sets, ambient=kept)


def _mounts(raw: list[Any]) -> list[Mount]:
    out = []
    for i, m in enumerate(raw):
        m = _obj(m, f"mounts[{i}]")
        _unknown(m, {"destination", "source", "type", "options", "uidMappings", "gidMappings"}, f"mounts[{i}]")
        kind = m.get("type") or "bind"
        if kind == "cgroup":
            if _cgroup_v2_only():
                out.append(Mount(_get(m, "destination"), "cgroup2", "cgroup2", _list(m.get("options"), "options")))
            else:
                warnings.warn(
                    f"mounts[{i}]: a cgroup mount at {m.get('destination')!r} is left out on a cgroup v1/hybrid host",
                    stacklevel=3,
                )
            continue
        opts = _list(m.get("options"), f"mounts[{i}].options")
        if kind == "none" or any(o in ("bind", "rbind") for o in opts):
            kind = "bind"
        if kind == "bind" and not {"bind", "rbind"} & set(opts):
            opts = ["bind", *opts]  # the spec's bind without rbind is not recursive (pycontainer's own is)
        maps = {
            field: [
                IDMap(x.get("containerID"), x.get("hostID"), x.get("size"))
                for x in _list(m.get(key), f"mounts[{i}].{key}")
            ]  # fmt: skip
            for key, field in (("uidMappings", "uid_mappings"), ("gidMappings", "gid_mappings"))
        }
        try:
            out.append(Mount(_get(m, "destination"), m.get("source"), kind, opts, **maps))
        except ConfigError as e:
            raise ConfigError(f"mounts[{i}].{e.field.removeprefix('mounts.')}", e.reason) from None
    return out


def _resources(r: Mapping[str, Any]) -> Resources:
    _unknown(
        r,
        {"devices", "memory", "cpu", "pids", "blockIO", "hugepageLimits", "network", "rdma", "unified"},
        "linux.resources",
    )
    _unsupported(r, ("network", "rdma", "unified"), "linux.resources")
    mem = _obj(r.get("memory"), "linux.resources.memory")
    _unknown(mem, {"limit", "reservation", "swap", "kernel", "kernelTCP", "swappiness", "disableOOMKiller", "useHierarchy",
                   "checkBeforeUpdate"}, "linux.resources.memory")  # fmt: skip
    cpu = _obj(r.get("cpu"), "linux.resources.cpu")
    _unknown(cpu, {"shares", "quota", "burst", "period", "realtimeRuntime", "realtimePeriod", "cpus", "mems", "idle"},
             "linux.resources.cpu")  # fmt: skip
    _unsupported(cpu, ("burst", "idle"), "linux.resources.cpu")
    bio = _obj(r.get("blockIO"), "linux.resources.blockIO")
    _unsupported(bio, ("leafWeight",), "linux.resources.blockIO")

    def throttles(name: str) -> list[ThrottleDevice]:
        return [ThrottleDevice(d.get("major"), d.get("minor"), d.get("rate")) for d in _list(bio.get(name), name)]

    devices = None
    if "devices" in r:
        # runc allows its default nodes after the spec's rules, whatever they say
        devices = [
            DeviceRule(
                allow=_bool(d.get("allow", False), "linux.resources.devices.allow"),
                type=d.get("type") or "a",
                major=d.get("major"),
                minor=d.get("minor"),
                access=d.get("access") or "rwm",
            )
            for d in _list(r.get("devices"), "linux.resources.devices")
        ]
        defaults = list(DEFAULT_DEVICE_RULES[1:])
        if devices[-len(defaults) :] != defaults:  # (not when they are there already: a spec we wrote)
            devices += defaults
    pids = _obj(r.get("pids"), "linux.resources.pids")
    swappiness = mem.get("swappiness")
    return Resources(
        memory=mem.get("limit"),
        memory_reservation=mem.get("reservation"),
        memory_swap=mem.get("swap"),
        memory_swappiness=None if swappiness is None or swappiness > 100 else swappiness,
        oom_kill_disable=_bool(mem.get("disableOOMKiller", False), "linux.resources.memory.disableOOMKiller"),
        cpu_shares=cpu.get("shares") or None,
        cpu_quota=cpu.get("quota") if cpu.get("quota") not in (None, 0) else None,
        cpu_period=cpu.get("period") or None,
        cpu_rt_runtime=cpu.get("realtimeRuntime"),
        cpu_rt_period=cpu.get("realtimePeriod"),
        cpuset_cpus=cpu.get("cpus") or None,
        cpuset_mems=cpu.get("mems") or None,
        pids_limit=pids.get("limit"),
        blkio_weight=bio.get("weight") or None,
        blkio_weight_device=[
            WeightDevice(d.get("major"), d.get("minor"), d.get("weight"))
            for d in _list(bio.get("weightDevice"), "weightDevice")
        ],
        blkio_read_bps=throttles("throttleReadBpsDevice"),
        blkio_write_bps=throttles("throttleWriteBpsDevice"),
        blkio_read_iops=throttles("throttleReadIOPSDevice"),
        blkio_write_iops=throttles("throttleWriteIOPSDevice"),
        hugepage_limits=[
            HugepageLimit(h.get("pageSize"), h.get("limit")) for h in _list(r.get("hugepageLimits"), "hugepageLimits")
        ],
        devices=devices,
    )


def config_from_spec(spec: Mapping[str, Any] | str | bytes, bundle: str = ".") -> ContainerConfig:
    """A runtime-spec config (JSON text or parsed) as a ContainerConfig;
    ``root.path`` is taken relative to ``bundle``.  Raises ConfigError naming
    the field for anything invalid or not supported."""
    if isinstance(spec, (str, bytes)):
        try:
            spec = json.loads(spec)
        except (ValueError, RecursionError) as e:
            raise ConfigError("config.json", f"is not JSON: {e}") from None
    try:
        return _config_from_spec(spec, bundle)
    except (TypeError, AttributeError, ValueError, RecursionError) as e:
        if isinstance(e, ConfigError):
            raise
        # a value of the wrong JSON type somewhere the checks above do not look
        raise ConfigError("config.json", f"is not a runtime-spec config: {type(e).__name__}: {e}") from None


def _config_from_spec(spec: Any, bundle: str) -> ContainerConfig:
    from ..security import seccomp_profile_from_json

    spec = _obj(spec, "config.json")
    _unknown(spec, _TOP, "")
    version = spec.get("ociVersion")
    if not isinstance(version, str) or not _VERSION_RE.match(version):
        raise ConfigError("ociVersion", f"{version!r} is not a runtime-spec 1.x version")
    hooks = _hooks(_obj(spec.get("hooks"), "hooks"))
    annotations = _obj(spec.get("annotations"), "annotations")
    root = _obj(spec.get("root"), "root")
    _unknown(root, {"path", "readonly"}, "root")
    if not root.get("path"):
        raise ConfigError("root.path", "is missing")
    linux = _obj(spec.get("linux"), "linux")
    _unknown(linux, _LINUX, "linux")
    _unsupported(linux, ("intelRdt",
                         "rdmaResources", "unified", "memoryPolicy"), "linux")  # fmt: skip
    seccomp = linux.get("seccomp")
    namespaces = []
    for i, n in enumerate(_list(linux.get("namespaces"), "linux.namespaces")):
        n = _obj(n, f"linux.namespaces[{i}]")
        namespaces.append(Namespace(n.get("type"), n.get("path") or None))

    def maps(name: str) -> list[IDMap]:
        return [
            IDMap(m.get("containerID"), m.get("hostID"), m.get("size")) for m in _list(linux.get(name), f"linux.{name}")
        ]

    return ContainerConfig(
        process=_process(_obj(spec.get("process"), "process")),
        rootfs=os.path.normpath(os.path.join(os.path.abspath(bundle), root["path"])),
        readonly_rootfs=_bool(root.get("readonly", False), "root.readonly"),
        hostname=spec.get("hostname") or None,
        domainname=spec.get("domainname") or None,
        namespaces=namespaces,
        uid_mappings=maps("uidMappings"),
        gid_mappings=maps("gidMappings"),
        mounts=_mounts(_list(spec.get("mounts"), "mounts")),
        docker_defaults=False,
        rootfs_propagation=linux.get("rootfsPropagation") or "rprivate",
        masked_paths=_list(linux.get("maskedPaths"), "linux.maskedPaths"),
        readonly_paths=_list(linux.get("readonlyPaths"), "linux.readonlyPaths"),
        cgroups_path=linux.get("cgroupsPath") or None,
        resources=_resources(_obj(linux.get("resources"), "linux.resources")),
        seccomp="unconfined" if seccomp is None else seccomp_profile_from_json(_obj(seccomp, "linux.seccomp")),
        sysctl=dict(_obj(linux.get("sysctl"), "linux.sysctl")),
        devices=[_device(i, d) for i, d in enumerate(_list(linux.get("devices"), "linux.devices"))],
        personality=_personality(_obj(linux.get("personality"), "linux.personality")),
        time_offsets={
            clock: (o.get("secs", 0), o.get("nanosecs", 0))
            for clock, o in _obj(linux.get("timeOffsets"), "linux.timeOffsets").items()
            if isinstance(o, Mapping)
        },
        hooks=hooks,
        annotations=dict(annotations),
        mount_label=linux.get("mountLabel") or None,
    )


# the spec's hook kinds and Hooks' field names
_HOOK_KINDS = {
    "prestart": "prestart",
    "createRuntime": "create_runtime",
    "createContainer": "create_container",
    "startContainer": "start_container",
    "poststart": "poststart",
    "poststop": "poststop",
}


def _hooks(hooks: Mapping[str, Any]) -> Hooks:
    _unknown(hooks, set(_HOOK_KINDS), "hooks")
    out: dict[str, list[Hook]] = {}
    for kind, field in _HOOK_KINDS.items():
        out[field] = []
        for i, h in enumerate(_list(hooks.get(kind), f"hooks.{kind}")):
            where = f"hooks.{kind}[{i}]"
            h = _obj(h, where)
            _unknown(h, {"path", "args", "env", "timeout"}, where)
            timeout = h.get("timeout")
            if timeout is not None and (not isinstance(timeout, int) or isinstance(timeout, bool) or timeout < 1):
                raise ConfigError(f"{where}.timeout", f"{timeout!r} is not a whole number of seconds > 0")
            try:
                out[field].append(Hook(_get(h, "path"), _list(h.get("args"), f"{where}.args"),
                                       _list(h.get("env"), f"{where}.env"), timeout))  # fmt: skip
            except ConfigError as e:
                raise ConfigError(f"{where}.{e.field}", e.reason) from None
    return Hooks(**out)


def _personality(p: Mapping[str, Any]) -> str | None:
    if not p:
        return None
    _unknown(p, {"domain", "flags"}, "linux.personality")
    if p.get("flags"):
        raise ConfigError("linux.personality.flags", "are not supported by pycontainer yet")
    return p.get("domain")


def _device(i: int, d: object) -> Device:
    d = _obj(d, f"linux.devices[{i}]")
    _unknown(d, {"path", "type", "major", "minor", "fileMode", "uid", "gid"}, f"linux.devices[{i}]")
    return Device(
        path=_get(d, "path"),
        type=_get(d, "type"),
        major=d.get("major", 0 if d.get("type") == "p" else None),
        minor=d.get("minor", 0 if d.get("type") == "p" else None),
        file_mode=0o666 if d.get("fileMode") is None else d["fileMode"],
        uid=d.get("uid", 0),
        gid=d.get("gid", 0),
    )


def load_bundle(bundle: str) -> ContainerConfig:
    """``<bundle>/config.json`` as a ContainerConfig."""
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            text = f.read()
    except OSError as e:
        raise ConfigError("config.json", f"cannot read {path}: {e.strerror}") from None
    return config_from_spec(text, bundle)


# ---- config -> spec -------------------------------------------------------------

_DEFAULT_SPEC_MOUNTS = [
    {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
    {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
     "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
    {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
    {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
]  # fmt: skip


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v not in (None, [], {})}


def spec_from_config(cfg: ContainerConfig) -> dict[str, Any]:
    """A ContainerConfig as a runtime-spec config (the inverse of
    :func:`config_from_spec` for what a bundle can say).  The config must
    have a rootfs and a resolved user (no image, no "name:group" string),
    and a seccomp profile of its own or none."""
    from ..security import _default_caps, default_seccomp_profile, seccomp_profile_to_json

    if cfg.rootfs is None or cfg.image is not None:
        raise ConfigError("rootfs", "a bundle needs a rootfs directory (not an image)")
    p = cfg.process
    if not isinstance(p.user, User):
        raise ConfigError("process.user", f"{p.user!r} must be resolved to numbers for a bundle")
    caps = p.capabilities or _default_caps()
    process = _drop_none(
        {
            "terminal": p.terminal,
            "user": _drop_none(
                {"uid": p.user.uid, "gid": p.user.gid, "umask": p.umask, "additionalGids": list(p.user.additional_gids)}
            ),
            "args": list(p.args),
            "env": list(p.env),
            "cwd": p.cwd,
            "capabilities": {
                k: list(getattr(caps, k)) for k in ("bounding", "effective", "permitted", "inheritable", "ambient")
            },
            "rlimits": [{"type": r.type, "soft": r.soft, "hard": r.hard} for r in p.rlimits],
            "noNewPrivileges": p.no_new_privileges,
            "oomScoreAdj": p.oom_score_adj,
            "apparmorProfile": p.apparmor_profile,
            "selinuxLabel": p.selinux_label,
        }
    )
    process["terminal"] = p.terminal
    mounts = [] if not cfg.docker_defaults else [dict(m) for m in _DEFAULT_SPEC_MOUNTS]
    for m in cfg.mounts:
        opts = list(m.options)
        if m.type == "bind" and not {"bind", "rbind"} & set(opts):
            opts.insert(0, "rbind")  # Docker's -v is recursive
        mounts.append(_drop_none({"destination": m.destination, "type": m.type, "source": m.source, "options": opts,
                                  "uidMappings": [{"containerID": x.container_id, "hostID": x.host_id, "size": x.size}
                                                  for x in m.uid_mappings],
                                  "gidMappings": [{"containerID": x.container_id, "hostID": x.host_id, "size": x.size}
                                                  for x in m.gid_mappings]}))  # fmt: skip
    r = cfg.resources
    quota, period = r.quota_period()
    resources = _drop_none(
        {
            "memory": _drop_none({"limit": r.memory, "reservation": r.memory_reservation, "swap": r.memory_swap,
                                  "swappiness": r.memory_swappiness, "disableOOMKiller": r.oom_kill_disable or None}),
            "cpu": _drop_none({"shares": r.cpu_shares, "quota": quota, "period": period, "realtimeRuntime": r.cpu_rt_runtime,
                               "realtimePeriod": r.cpu_rt_period, "cpus": r.cpuset_cpus, "mems": r.cpuset_mems}),
            "pids": _drop_none({"limit": r.pids_limit}),
            "blockIO": _drop_none({
                "weight": r.blkio_weight,
                "weightDevice": [{"major": d.major, "minor": d.minor, "weight": d.weight} for d in r.blkio_weight_device],
                **{name: [{"major": d.major, "minor": d.minor, "rate": d.rate} for d in getattr(r, field)]
                   for name, field in (("throttleReadBpsDevice", "blkio_read_bps"), ("throttleWriteBpsDevice", "blkio_write_bps"),
                                       ("throttleReadIOPSDevice", "blkio_read_iops"), ("throttleWriteIOPSDevice", "blkio_write_iops"))},
            }),
            "hugepageLimits": [{"pageSize": h.page_size, "limit": h.limit} for h in r.hugepage_limits],
            # None: runc's allow-list, which an absent list means too
            "devices": [_drop_none({"allow": d.allow, "type": d.type, "major": d.major, "minor": d.minor, "access": d.access})
                        for d in r.devices or ()],
        }
    )  # fmt: skip
    if "devices" in resources:
        for d in resources["devices"]:
            d.setdefault("allow", False)
    seccomp = None
    if cfg.seccomp != "unconfined":
        seccomp = seccomp_profile_to_json(default_seccomp_profile() if cfg.seccomp == "default" else cfg.seccomp)  # type: ignore[arg-type]
    linux = _drop_none(
        {
            "namespaces": [_drop_none({"type": n.type.value, "path": n.path}) for n in cfg.namespaces],
            "uidMappings": [
                {"containerID": m.container_id, "hostID": m.host_id, "size": m.size} for m in cfg.uid_mappings
            ],
            "gidMappings": [
                {"containerID": m.container_id, "hostID": m.host_id, "size": m.size} for m in cfg.gid_mappings
            ],
            "cgroupsPath": cfg.cgroups_path,
            "resources": resources,
            "seccomp": seccomp,
            # rprivate is what the runtime does anyway (and the schema knows
            # only the four names without "r"; runc takes all eight)
            "rootfsPropagation": None if cfg.rootfs_propagation == "rprivate" else cfg.rootfs_propagation,
            "sysctl": dict(cfg.sysctl),
            "personality": {"domain": cfg.personality} if cfg.personality else None,
            "timeOffsets": {c: {"secs": secs, "nanosecs": ns} for c, secs, ns in cfg.time_offsets},
            "devices": [
                {
                    "path": d.path,
                    "type": d.type,
                    "major": d.major,
                    "minor": d.minor,
                    "fileMode": d.file_mode,
                    "uid": d.uid,
                    "gid": d.gid,
                }
                for d in cfg.devices
            ],  # fmt: skip
            "mountLabel": cfg.mount_label,
            "maskedPaths": list(cfg.masked_paths),
            "readonlyPaths": list(cfg.readonly_paths),
        }
    )
    hooks = {
        kind: [
            _drop_none({"path": h.path, "args": list(h.args) or None, "env": list(h.env) or None, "timeout": h.timeout})
            for h in getattr(cfg.hooks, field)
        ]  # fmt: skip
        for kind, field in _HOOK_KINDS.items()
        if getattr(cfg.hooks, field)
    }
    return _drop_none(
        {
            "ociVersion": SPEC_VERSION,
            "process": process,
            "root": {"path": cfg.rootfs, "readonly": cfg.readonly_rootfs},
            "hostname": cfg.hostname,
            "domainname": cfg.domainname,
            "mounts": mounts,
            "hooks": hooks or None,
            "annotations": dict(cfg.annotations) or None,
            "linux": linux,
        }
    )


__all__ = ["SPEC_VERSION", "config_from_spec", "load_bundle", "spec_from_config"]
