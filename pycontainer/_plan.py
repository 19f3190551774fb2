"""Compile a container's configuration into the flat plan the C shim runs.

A plan is a list of :class:`Op` records (``kind``, four strings, four integers)
that ``encode`` packs into the ``struct pc_op`` array and string blob declared
in ``csrc/shim.h``.  It is pure data: unit tests check it without root.

The child's order (create), numbered as the sync points in docs/architecture.md:

1. (wait for GO when the parent must write uid/gid maps first)
2. join namespaces given by path (user first), re-clone if a pid/time one was joined
3. make "/" private (or slave), bind the rootfs onto itself, open the exec fifo
   (not for ``run``: ``CreateInputs.start_now``)
4. stdio; /proc, /dev (+ nodes, pts, shm, mqueue, links), /sys, the config's mounts,
   /etc/hostname, /etc/hosts, /etc/resolv.conf
5. pivot_root; masked and read-only paths; read-only rootfs; propagation
6. hostname, domainname; pty or setsid; umask; cwd; find the executable
7. oom_score_adj; READY -> the parent; seccomp (here without
   no_new_privs); block on the exec fifo until ``start`` (not for ``run``)
8. rlimits; bounding set; user and groups; the other capability sets;
   no_new_privs; mark fds >= 3 close-on-exec; seccomp (here with
   no_new_privs); for ``run`` wait for GO (the parent has claimed the id);
   execve
"""

from __future__ import annotations

import enum
import functools
import os
import re
import stat
import struct
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import attrs

from .config import ContainerConfig, Mount, NamespaceType, User
from .errors import ConfigError


class Op(enum.IntEnum):
    """Plan operations; values match the PC_OP_* enum in csrc/shim.h."""

    SETNS = 1
    FORK = 2
    UNSHARE = 3
    PROPAGATION = 4
    ROOTFS = 5
    MOUNT = 6
    MKNOD = 7
    SYMLINK = 8
    PIVOT = 9
    MASK = 10
    READONLY = 11
    REMOUNT_RO = 12
    HOSTNAME = 13
    DOMAINNAME = 14
    OPEN_FIFO = 15
    STDIO = 16
    PTY = 17
    SETSID = 18
    USER = 19
    UMASK = 20
    CHDIR = 21
    RESOLVE = 22
    READY = 23
    WAIT_START = 24
    CLOSE_FDS = 25
    EXEC = 26
    LOOPBACK = 27
    HANDOFF = 28
    SYNC = 29
    CGROUP_JOIN = 30
    BOUNDING = 31
    CAPS = 32
    NNP = 33
    RLIMIT = 34
    WRITE = 35
    SECCOMP = 36
    PERSONALITY = 37
    KEYRING = 38
    HIDE = 39
    IDMOUNT = 40
    WAIT_GO = 41


# The step names InitError reports.
STEP_NAMES = {
    Op.SETNS: "setns",
    Op.FORK: "clone",
    Op.UNSHARE: "unshare",
    Op.PROPAGATION: "mount propagation",
    Op.ROOTFS: "rootfs",
    Op.MOUNT: "mount",
    Op.MKNOD: "mknod",
    Op.SYMLINK: "symlink",
    Op.PIVOT: "pivot_root",
    Op.MASK: "mask path",
    Op.READONLY: "readonly path",
    Op.REMOUNT_RO: "readonly rootfs",
    Op.HOSTNAME: "sethostname",
    Op.DOMAINNAME: "setdomainname",
    Op.OPEN_FIFO: "exec fifo",
    Op.STDIO: "stdio",
    Op.PTY: "pty",
    Op.SETSID: "setsid",
    Op.USER: "setuid",
    Op.UMASK: "umask",
    Op.CHDIR: "chdir",
    Op.RESOLVE: "exec",
    Op.READY: "ready",
    Op.WAIT_START: "start",
    Op.CLOSE_FDS: "close fds",
    Op.EXEC: "exec",
    Op.LOOPBACK: "loopback",
    Op.HANDOFF: "helper exec",
    Op.SYNC: "sync",
    Op.CGROUP_JOIN: "cgroup join",
    Op.BOUNDING: "capabilities (bounding set)",
    Op.CAPS: "capabilities",
    Op.NNP: "no_new_privs",
    Op.RLIMIT: "rlimit",
    Op.WRITE: "write",
    Op.SECCOMP: "seccomp",
    Op.PERSONALITY: "personality",
    Op.KEYRING: "session keyring",
    Op.HIDE: "hide host mount",
    Op.IDMOUNT: "idmapped mount",
    Op.WAIT_GO: "start",
}

# <sys/mount.h>
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_REC = 16384
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24

# <linux/mount.h> mount_setattr attributes
ATTR_RDONLY = 0x01
ATTR_NOSUID = 0x02
ATTR_NODEV = 0x04
ATTR_NOEXEC = 0x08
ATTR_NOATIME = 0x10
ATTR_STRICTATIME = 0x20
ATTR_NODIRATIME = 0x80

# <sys/personality.h>
PERSONALITIES = {"LINUX": 0x0000, "LINUX32": 0x0008}

# PC_OP_WRITE v0 (csrc/shim.h)
WRITE_PROC = 1

# PC_M_* (csrc/shim.h)
M_MKDIR = 0x01
M_MKFILE = 0x02
M_RECURSIVE = 0x08
M_OPTIONAL = 0x10
M_HOST = 0x20

# <linux/sched.h>
CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

CLONE_FLAGS = {
    NamespaceType.PID: CLONE_NEWPID,
    NamespaceType.NETWORK: CLONE_NEWNET,
    NamespaceType.MOUNT: CLONE_NEWNS,
    NamespaceType.IPC: CLONE_NEWIPC,
    NamespaceType.UTS: CLONE_NEWUTS,
    NamespaceType.USER: CLONE_NEWUSER,
    NamespaceType.CGROUP: CLONE_NEWCGROUP,
    NamespaceType.TIME: CLONE_NEWTIME,
}
PROC_NS_NAMES = {
    NamespaceType.PID: "pid",
    NamespaceType.NETWORK: "net",
    NamespaceType.MOUNT: "mnt",
    NamespaceType.IPC: "ipc",
    NamespaceType.UTS: "uts",
    NamespaceType.USER: "user",
    NamespaceType.CGROUP: "cgroup",
    NamespaceType.TIME: "time",
}
# setns order: the user namespace first (it grants the rights to join the
# others), the mount namespace last (it changes the root under our feet).
JOIN_ORDER = (
    NamespaceType.USER,
    NamespaceType.IPC,
    NamespaceType.UTS,
    NamespaceType.NETWORK,
    NamespaceType.PID,
    NamespaceType.CGROUP,
    NamespaceType.TIME,
    NamespaceType.MOUNT,
)

_PROPAGATION_FLAGS = {
    "private": MS_PRIVATE,
    "rprivate": MS_PRIVATE | MS_REC,
    "slave": MS_SLAVE,
    "rslave": MS_SLAVE | MS_REC,
    "shared": MS_SHARED,
    "rshared": MS_SHARED | MS_REC,
    "unbindable": MS_UNBINDABLE,
    "runbindable": MS_UNBINDABLE | MS_REC,
}
# option -> (MS flags to set, MS flags to clear, mount_setattr attrs for binds)
_FLAG_OPTIONS: dict[str, tuple[int, int, int]] = {
    "ro": (MS_RDONLY, 0, ATTR_RDONLY),
    "rro": (MS_RDONLY, 0, ATTR_RDONLY),
    "rw": (0, MS_RDONLY, 0),
    "nosuid": (MS_NOSUID, 0, ATTR_NOSUID),
    "suid": (0, MS_NOSUID, 0),
    "nodev": (MS_NODEV, 0, ATTR_NODEV),
    "dev": (0, MS_NODEV, 0),
    "noexec": (MS_NOEXEC, 0, ATTR_NOEXEC),
    "exec": (0, MS_NOEXEC, 0),
    "noatime": (MS_NOATIME, 0, ATTR_NOATIME),
    "atime": (0, MS_NOATIME, 0),
    "nodiratime": (MS_NODIRATIME, 0, ATTR_NODIRATIME),
    "diratime": (0, MS_NODIRATIME, 0),
    "relatime": (MS_RELATIME, 0, 0),
    "norelatime": (0, MS_RELATIME, 0),
    "strictatime": (MS_STRICTATIME, 0, ATTR_STRICTATIME),
    "nostrictatime": (0, MS_STRICTATIME, 0),
    "sync": (MS_SYNCHRONOUS, 0, 0),
    "async": (0, MS_SYNCHRONOUS, 0),
    "dirsync": (MS_DIRSYNC, 0, 0),
    "mand": (MS_MANDLOCK, 0, 0),
    "nomand": (0, MS_MANDLOCK, 0),
    "bind": (MS_BIND, 0, 0),
    "rbind": (MS_BIND | MS_REC, 0, 0),
}

DEVICES = (
    # path, mode (S_IFCHR | perms), major, minor
    ("/dev/null", 0o20666, 1, 3),
    ("/dev/zero", 0o20666, 1, 5),
    ("/dev/full", 0o20666, 1, 7),
    ("/dev/random", 0o20666, 1, 8),
    ("/dev/urandom", 0o20666, 1, 9),
    ("/dev/tty", 0o20666, 5, 0),
)
DEV_LINKS = (
    ("/proc/self/fd", "/dev/fd"),
    ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"),
    ("/proc/self/fd/2", "/dev/stderr"),
    ("/proc/kcore", "/dev/core"),
    ("pts/ptmx", "/dev/ptmx"),
)

_OP_STRUCT = struct.Struct("@i4I4I4q")
NONE = 0xFFFFFFFF


class PlanOp(NamedTuple):
    """One step: its kind, four strings (None when unused) and four integers."""

    kind: Op
    s: tuple[str | bytes | None, ...]
    v: tuple[int, ...]


_NO_STRINGS = (None, None, None, None)
_NO_INTS = (0, 0, 0, 0)


def op(kind: Op, *s: str | bytes | None, v: Sequence[int] = ()) -> PlanOp:
    strs = s + _NO_STRINGS[len(s) :] if s else _NO_STRINGS
    ints = tuple(v) + _NO_INTS[len(v) :] if v else _NO_INTS
    return PlanOp(kind, strs, ints)


def encode(ops: Sequence[PlanOp]) -> tuple[bytes, bytes]:
    """Pack ops into (``struct pc_op[]`` bytes, string blob).

    Each op's string offsets count from its own first string, and its
    strings follow the previous op's in the blob (``pc_spawn`` makes them
    absolute, see csrc/shim.h): an op packs to the same bytes wherever it
    stands, so each distinct op is packed once (the hot path is the plan's
    static steps, the same objects for every container of a config)."""
    packed = [_encode_op(o) for o in ops]
    return b"".join([p[0] for p in packed]), b"".join([p[1] for p in packed])


def _encode_one(o: PlanOp) -> tuple[bytes, bytes]:
    offs = [NONE, NONE, NONE, NONE]
    lens = [0, 0, 0, 0]
    pieces: list[bytes] = []
    pos = 0
    for i, item in enumerate(o.s):
        if item is None:
            continue
        b = item.encode() if isinstance(item, str) else item
        offs[i] = pos
        lens[i] = len(b)
        pieces.append(b + b"\0")
        pos += len(b) + 1
    return _OP_STRUCT.pack(o.kind, *offs, *lens, *o.v), b"".join(pieces)


# (a few hundred bytes each; a config's static steps stay, per-container ones
# cycle through; op() makes every field a tuple of str, bytes or None: hashable)
_encode_op = functools.lru_cache(maxsize=1024)(_encode_one)


def mount_flags(options: Iterable[str]) -> tuple[int, int, int, list[str]]:
    """OCI mount options -> (MS flags, propagation flags, bind attrs, fs data options)."""
    flags = prop = attrs_ = 0
    data: list[str] = []
    for opt in options:
        if opt in _FLAG_OPTIONS:
            setf, clr, attr = _FLAG_OPTIONS[opt]
            flags = (flags | setf) & ~clr
            attrs_ |= attr
            if clr & MS_RDONLY:
                attrs_ &= ~ATTR_RDONLY
        elif opt in _PROPAGATION_FLAGS:
            prop = _PROPAGATION_FLAGS[opt]
        else:
            data.append(opt)
    return flags, prop, attrs_, data


@attrs.frozen
class IdmapParams:
    """How an idmapped bind mount is made: the submounts copied too (rbind,
    or pycontainer's default bind), idmapped too (``ridmap``; ``idmap``
    maps the top mount only, as the spec says), the MOUNT_ATTR_* bits and
    whether they reach the submounts (``rro``), its propagation."""

    clone_recursive: bool
    idmap_recursive: bool
    attrs: int
    attrs_recursive: bool
    propagation: int


def idmap_params(m: Mount, index: int) -> IdmapParams:
    opts = [o for o in m.options if o not in ("idmap", "ridmap")]
    _flags, prop, attr, data = mount_flags(opts)
    if data:
        raise ConfigError(f"mounts[{index}].options", f"{data[0]!r} is not an option of a bind mount")
    clone = "rbind" in opts or m.type == "bind" and "bind" not in opts
    return IdmapParams(clone, "ridmap" in m.options, attr, "rro" in opts, prop)


def _mount_op(m: Mount, index: int, tree_fd: int = -1, is_dir: bool | None = None) -> PlanOp:
    if is_dir is None:
        is_dir = os.path.isdir(m.source or "")
    if m.idmapped():
        mflags = M_MKDIR if is_dir else M_MKFILE
        return op(Op.IDMOUNT, None, m.destination, v=(tree_fd, mflags, idmap_params(m, index).propagation, 0))
    flags, prop, attr, data = mount_flags(m.options)
    is_bind = m.type == "bind" or bool(flags & MS_BIND)
    mflags = 0
    if is_bind:
        if data:
            raise ConfigError(f"mounts[{index}].options", f"{data[0]!r} is not an option of a bind mount")
        flags = MS_BIND | (flags & MS_REC)
        if "rbind" in m.options or m.type == "bind" and "bind" not in m.options:
            flags |= MS_REC  # Docker's -v is recursive; OCI "bind" alone is not
        if "rro" in m.options:
            mflags |= M_RECURSIVE
        src = m.source or ""
        mflags |= M_MKDIR if is_dir else M_MKFILE
        return op(Op.MOUNT, src, m.destination, None, None, v=(flags, mflags, prop, attr))
    mflags |= M_MKDIR
    return op(Op.MOUNT, m.source or m.type, m.destination, m.type, ",".join(data) or None, v=(flags, mflags, prop, 0))


def _id_mapped(maps: Sequence[object], ident: int) -> bool:
    return any(m.container_id <= ident < m.container_id + m.size for m in maps)  # type: ignore[attr-defined]


@attrs.frozen
class CreateInputs:
    """Everything the compiler needs besides the config, resolved by the caller."""

    rootfs: str  # the directory that becomes "/"
    state_dir: str  # host dir with exec.fifo and the /etc files
    hostname: str
    user: User
    env: tuple[str, ...]
    stdio: tuple[tuple[int, int], ...] = ()
    preserve_fds: int = 0
    init_fd: int = -1
    lower_rootfs: str | None = (
        None  # overlay lowerdir (the built-in rootfs, or image layers) under a per-container upper
    )
    lower_base: str | None = None  # chdir here first: lower_rootfs is relative to it (short paths, many layers)
    netns_fd: int = -1  # a fresh network namespace from the pool, joined instead of CLONE_NEWNET
    helper_fd: int = -1  # the sealed memfd of pycontainer-init (PC_OP_HANDOFF)
    etc_files: tuple[str, ...] = ("hostname", "hosts", "resolv.conf")
    cgroup_files: tuple[str, ...] = ()  # host paths to write "0" to, right after HANDOFF
    in_cgroup: bool = False  # the container has a cgroup (perhaps cloned into: no files then)
    confinement: Any = None  # security.Confinement: capabilities, seccomp, rlimits...; None: none applied
    exit_fd: int = 0  # > 0: the fd number (after the passed fds) where the --init records the exit status
    container_id: str = ""  # names the session keyring (config.new_keyring)
    stop_signal: int = 15  # the image's StopSignal: a stop, for the init's restart policy
    idmap_fds: tuple[int, ...] = ()  # per config mount: its idmapped detached tree (pc_idmapped_tree), else -1
    # per config mount: is its source a directory (a bind's mountpoint is
    # made one, else a file)?  () for a look at the host now.  The caller
    # looks, so that the host's answer is part of a template's key.
    source_dirs: tuple[bool, ...] = ()
    # run (create + start): no exec fifo; after READY the parent goes on
    # reading the sync socket (errors come at once) and sends GO once it
    # has claimed the id, which the child waits for right before the exec
    start_now: bool = False


MSG_MAPS = 7  # PC_MSG_MAPS in csrc/shim.h (checked by _spawn)
MSG_HOOKS = 8  # PC_MSG_HOOKS


def handoff_first(cfg: ContainerConfig) -> bool:
    """Must the child leave our memory before anything else?  Yes when it
    will change credentials or be seen from a namespace it joins: a new user
    namespace, or a joined pid, time or user namespace (see compile_create)."""
    return (
        cfg.new_namespace(NamespaceType.USER)
        or bool(cfg.time_offsets)  # set between unshare and the fork that enters the namespace
        or any(
            n.path is not None and n.type in (NamespaceType.PID, NamespaceType.TIME, NamespaceType.USER)
            for n in cfg.namespaces
        )
    )


def pool_allowed(cfg: ContainerConfig) -> bool:
    """A pooled network namespace belongs to the host's user namespace: only
    containers that stay in it may use one."""
    return cfg.new_namespace(NamespaceType.NETWORK) and not cfg.has_namespace(NamespaceType.USER)


@functools.lru_cache(maxsize=64)  # (a config is frozen; the flags are asked for at every create)
def spawn_flags(cfg: ContainerConfig, *, pooled_netns: bool = False, in_cgroup: bool = False) -> int:
    """The namespaces pc_spawn's clone makes: none when the helper must take
    over first (it unshares them itself, in the right order).  A cgroup
    namespace made at clone time would be rooted at the runtime's cgroups:
    with a cgroup of its own, the child makes it after joining that."""
    if handoff_first(cfg):
        return 0
    flags = clone_flags(cfg, pooled_netns=pooled_netns)
    return flags & ~CLONE_FLAGS[NamespaceType.CGROUP] if in_cgroup else flags


def clone_flags(cfg: ContainerConfig, *, pooled_netns: bool = False) -> int:
    """The CLONE_NEW* flags of the config's new namespaces."""
    flags = 0
    for ns in cfg.namespaces:
        if ns.path is None:
            flags |= CLONE_FLAGS[ns.type]
    if pooled_netns:
        flags &= ~CLONE_NEWNET
    return flags


def compile_create(cfg: ContainerConfig, inp: CreateInputs) -> list[PlanOp]:
    """The child's plan for a new container (see the module docstring)."""
    ops: list[PlanOp] = []
    userns = cfg.new_namespace(NamespaceType.USER)
    joined = [n for kind in JOIN_ORDER for n in cfg.namespaces if n.type is kind and n.path is not None]
    # Until HANDOFF the child shares our memory (CLONE_VM).  It must leave
    # before anything in a container can see it and before it changes
    # credentials: at once when it joins a pid, time or user namespace or
    # makes a user namespace; otherwise after the mounts, before it can be
    # seen (exec'd processes of a created container).
    #
    # With a cgroup, at once too, and then, before any other step, into the
    # cgroup: no step runs (or is charged) outside it, and the child never
    # sits in a memory cgroup while it shares our memory (the OOM killer
    # kills every process sharing its victim's memory: the runtime too).
    # On cgroup2 pc_spawn clones it straight into the cgroup; the moments
    # until the exec of the helper cannot exhaust a fresh cgroup's memory
    # (Resources.memory is at least 6 MiB).
    early = handoff_first(cfg)
    if early or inp.in_cgroup:
        ops.append(op(Op.HANDOFF, v=(inp.helper_fd,)))
        ops += [op(Op.CGROUP_JOIN, path) for path in inp.cgroup_files]
        if inp.in_cgroup and not early and cfg.new_namespace(NamespaceType.CGROUP):
            # rooted at the container's own cgroup (see spawn_flags)
            ops.append(op(Op.UNSHARE, v=(CLONE_FLAGS[NamespaceType.CGROUP],)))
    for n in joined:
        ops.append(op(Op.SETNS, n.path, v=(CLONE_FLAGS[n.type], -1)))
    if early:
        # pc_spawn made no namespace: the helper makes them, in an order that
        # gives each the right owner.  A new user namespace first: the parent
        # writes its maps on request, the helper becomes its root; then the
        # others, owned by it (or by a joined user namespace).  Pid and time
        # namespaces apply to children: re-clone.
        if userns:
            ops.append(op(Op.UNSHARE, v=(CLONE_NEWUSER,)))
            ops.append(op(Op.SYNC, v=(MSG_MAPS,)))
            ops.append(op(Op.USER, b"", v=(0, 0, 0)))
        rest = clone_flags(cfg, pooled_netns=inp.netns_fd >= 0) & ~CLONE_NEWUSER
        if rest:
            ops.append(op(Op.UNSHARE, v=(rest,)))
        if cfg.time_offsets:
            # the offsets of the time namespace our children enter: only
            # before any process is in it
            text = "".join(f"{clock} {secs} {nanos}\n" for clock, secs, nanos in cfg.time_offsets)
            ops.append(op(Op.WRITE, "/proc/self/timens_offsets", text, v=(WRITE_PROC,)))
        ops.append(op(Op.FORK))
    if inp.netns_fd >= 0:
        ops.append(op(Op.SETNS, None, v=(CLONE_NEWNET, inp.netns_fd)))
    elif cfg.new_namespace(NamespaceType.NETWORK):
        ops.append(op(Op.LOOPBACK))
    first = _PROPAGATION_FLAGS[
        "rslave" if "slave" in cfg.rootfs_propagation or "shared" in cfg.rootfs_propagation else "rprivate"
    ]
    ops.append(op(Op.PROPAGATION, v=(first,)))
    if inp.lower_rootfs is not None:
        if inp.lower_base is not None:
            ops.append(op(Op.CHDIR, inp.lower_base, v=(0,)))
        sd = inp.state_dir
        data = f"lowerdir={inp.lower_rootfs},upperdir={sd}/layer/upper,workdir={sd}/layer/work"
        if userns and os.geteuid() != 0:
            # mounted by a user namespace's root: overlay keeps its whiteouts
            # and opaque marks in user.* xattrs (trusted.* is the host root's)
            data += ",userxattr"
        ops.append(op(Op.MOUNT, "overlay", inp.rootfs, "overlay", data, v=(0, M_HOST, 0, 0)))
    ops.append(op(Op.ROOTFS, inp.rootfs))
    if not inp.start_now:
        ops.append(op(Op.OPEN_FIFO, f"{inp.state_dir}/exec.fifo"))
    ops.extend(_stdio_ops(inp.stdio, cfg.process.terminal))

    mine = {d.path for d in cfg.devices}  # the config's nodes win over the default ones
    if cfg.docker_defaults:
        kernel = _kernel_mounts(
            userns=userns,
            tty_gid=not userns or _id_mapped(cfg.gid_mappings, 5),
            ipc=cfg.new_namespace(NamespaceType.IPC),
            bind_sys=userns and not cfg.new_namespace(NamespaceType.NETWORK),
        )
        ops.extend(o for o in kernel if not (o.kind is Op.MKNOD and o.s[1] in mine))

    taken = {os.path.normpath(m.destination) for m in cfg.mounts}
    for i, m in enumerate(cfg.mounts):
        is_dir = inp.source_dirs[i] if len(inp.source_dirs) == len(cfg.mounts) else None
        ops.append(_mount_op(m, i, inp.idmap_fds[i] if m.idmapped() else -1, is_dir))
    if not cfg.docker_defaults and dev_is_ours(cfg):
        ops.extend(o for o in _default_devices() if not (o.kind is Op.MKNOD and o.s[1] in mine))
    for d in cfg.devices:
        kind = {"c": 0o020000, "u": 0o020000, "b": 0o060000, "p": 0o010000}[d.type]
        dev = 0 if d.type == "p" else os.makedev(d.major, d.minor)
        # in a user namespace mknod is refused: the host's node of that path is bound instead
        ops.append(op(Op.MKNOD, d.path if userns else None, d.path, v=(kind | d.file_mode, dev, d.uid, d.gid)))
    for name in inp.etc_files:
        if f"/etc/{name}" not in taken:
            ops.append(op(Op.MOUNT, f"{inp.state_dir}/{name}", f"/etc/{name}", None, None, v=(MS_BIND, M_MKFILE, 0, 0)))

    handed = early or inp.in_cgroup
    if cfg.hooks.at_create():
        # prestart, createRuntime and createContainer hooks: the mounts are
        # made, pivot_root is still to come (where runc runs them).  A hook
        # may see the child: it must have left our memory (rule 5).
        if not handed:
            ops.append(op(Op.HANDOFF, v=(inp.helper_fd,)))
            handed = True
        ops.append(op(Op.SYNC, v=(MSG_HOOKS,)))
    if cfg.no_pivot_root:
        # runc --no-pivot: the host's full procfs and sysfs mounts go before
        # the chroot (they would stay reachable beneath the moved root)
        ops += [op(Op.HIDE, path) for path in host_proc_sys_mounts(inp.rootfs)]
    ops.append(op(Op.PIVOT, v=(1 if cfg.no_pivot_root else 0,)))
    # The working directory is made (where missing) before the rootfs may turn read-only.
    ops.append(op(Op.CHDIR, cfg.process.cwd, v=(1,)))
    # Kernel parameters, in the container's own namespaces, before /proc/sys
    # turns read-only; only into a procfs (not whatever a rootfs put there).
    for key, value in (*cfg.sysctl, *_docker_net_sysctls(cfg, userns)):
        ops.append(op(Op.WRITE, "/proc/sys/" + key.replace(".", "/"), value, v=(WRITE_PROC,)))
    ops.extend(_masks(cfg.masked_paths, cfg.readonly_paths))
    if cfg.readonly_rootfs:
        ops.append(op(Op.REMOUNT_RO))
    if cfg.rootfs_propagation not in ("private", "rprivate"):
        ops.append(op(Op.PROPAGATION, v=(_PROPAGATION_FLAGS[cfg.rootfs_propagation],)))
    if cfg.new_namespace(NamespaceType.UTS) and inp.hostname:
        ops.append(op(Op.HOSTNAME, inp.hostname))
        if cfg.domainname:
            ops.append(op(Op.DOMAINNAME, cfg.domainname))
    if not handed:
        ops.append(op(Op.HANDOFF, v=(inp.helper_fd,)))
    if cfg.new_keyring:
        # A session keyring of its own, as runc's "_ses.<id>", searchable by
        # the container's uid (by "other" in a user namespace, as runc).
        ops.append(op(Op.KEYRING, keyring_name(inp.container_id), v=(0x8 if userns else 0x80000,)))

    ops.extend(
        _process_ops(
            cfg.process.terminal, cfg.process.umask, cfg.process.cwd, cfg.process.args, inp.env, make_cwd=False
        )
    )
    ops.extend(_oom_ops(inp.confinement))
    # (v0 = 1: the parent keeps listening, see CreateInputs.start_now)
    ops.append(op(Op.READY, v=(1,) if inp.start_now else ()))
    conf = inp.confinement
    if conf is not None and conf.seccomp is not None and not conf.no_new_privs:
        # Installed while the parent finishes create and calls start (runc
        # too installs it before the exec fifo without no_new_privs); an
        # error here is reported by start (see run_plan in csrc/shim.c), or
        # at once for run.
        ops.append(_seccomp_op(conf))
        conf = attrs.evolve(conf, seccomp=None)
    if not inp.start_now:
        ops.append(op(Op.WAIT_START))
    if cfg.personality is not None:
        ops.append(op(Op.PERSONALITY, v=(PERSONALITIES[cfg.personality],)))
    first_closed = 3 + inp.preserve_fds + (1 if inp.exit_fd else 0)
    ops.extend(
        _exec_ops(
            inp.user,
            first_closed,
            cfg.process.args,
            inp.env,
            inp.init_fd,
            conf,
            inp.exit_fd,
            cfg.restart,
            inp.stop_signal,
            wait_go=inp.start_now,
        )  # fmt: skip
    )
    return ops


# ---- the create plan through a template per config ---------------------------
#
# Containers of one config differ, as far as their plan goes, in their state
# dir, hostname and id (and fd numbers, which are part of the key).  The plan
# of a config is compiled and packed once with tokens in their place; each
# container then gets the template with the few ops that hold a token made
# anew.  A token holds NUL bytes, which no string the plan may carry can
# (C sees it as the string's end): none can stand for anything else.

_TOKEN_MARK = "\0pycontainer-"
_T_STATE, _T_HOST, _T_ID = (f"{_TOKEN_MARK}{k}-{os.urandom(8).hex()}\0" for k in ("state", "host", "id"))


class Packed(NamedTuple):
    """A plan and its ``encode``-ing, and the kinds of op it holds."""

    ops: list[PlanOp]
    packed: bytes
    blob: bytes
    kinds: frozenset[Op]


class _Template(NamedTuple):
    ops: tuple[PlanOp, ...]
    packed: tuple[bytes, ...]  # per op, as encode packs it
    blobs: tuple[bytes, ...]
    dynamic: tuple[tuple[int, tuple[int, ...]], ...]  # (op, its strings) that hold a token
    kinds: frozenset[Op]


def plan_create(cfg: ContainerConfig, inp: CreateInputs) -> Packed:
    """``compile_create`` and ``encode`` in one, the same as theirs, from
    the config's template where it may have one."""
    key = _tokenized(cfg, inp)
    if key is None:
        ops = compile_create(cfg, inp)
        return Packed(ops, *encode(ops), frozenset(o.kind for o in ops))
    t = _template(cfg, key, os.geteuid())
    ops, packed, blobs = list(t.ops), list(t.packed), list(t.blobs)
    values = ((_T_STATE, inp.state_dir), (_T_HOST, inp.hostname), (_T_ID, inp.container_id))
    for i, where in t.dynamic:
        strs = list(ops[i].s)
        for j in where:
            strs[j] = _detokenized(strs[j], values)
        ops[i] = PlanOp(ops[i].kind, tuple(strs), ops[i].v)
        packed[i], blobs[i] = _encode_one(ops[i])
    return Packed(ops, b"".join(packed), b"".join(blobs), t.kinds)


_FIELDS = tuple(f.name for f in attrs.fields(CreateInputs))
_TOKENIZED = {name: _FIELDS.index(name) for name in
              ("rootfs", "state_dir", "lower_rootfs", "lower_base", "hostname", "env", "container_id")}  # fmt: skip


def _tokenized(cfg: ContainerConfig, inp: CreateInputs) -> tuple[Any, ...] | None:
    """The template's key: ``inp``'s fields with tokens for the container's
    own values; None where the plan depends on more than the config and
    those values: the host's mounts (no_pivot_root), the container's cgroup
    paths, its bind sources' kinds unless given (source_dirs)."""
    if cfg.no_pivot_root or inp.cgroup_files or (cfg.mounts and len(inp.source_dirs) != len(cfg.mounts)):
        return None  # (nor where the mounts' sources were not looked at by the caller)
    sd = inp.state_dir
    key = [getattr(inp, name) for name in _FIELDS]
    for name in ("rootfs", "lower_rootfs", "lower_base"):
        path = key[_TOKENIZED[name]]
        if path is not None:
            key[_TOKENIZED[name]] = path.replace(sd, _T_STATE)
    key[_TOKENIZED["state_dir"]] = _T_STATE
    if inp.hostname:
        mine = f"HOSTNAME={inp.hostname}"
        key[_TOKENIZED["hostname"]] = _T_HOST
        key[_TOKENIZED["env"]] = tuple(f"HOSTNAME={_T_HOST}" if e == mine else e for e in inp.env)
    if inp.container_id:
        key[_TOKENIZED["container_id"]] = _T_ID
    return tuple(key)


@functools.lru_cache(maxsize=32)
def _template(cfg: ContainerConfig, key: tuple[Any, ...], _euid: int) -> _Template:
    ops = tuple(compile_create(cfg, CreateInputs(**dict(zip(_FIELDS, key, strict=True)))))
    encoded = [_encode_op(o) for o in ops]  # (another fd number, same ops: packed already)
    dynamic = []
    for i, o in enumerate(ops):
        where = tuple(j for j, x in enumerate(o.s) if _holds_token(x))
        if where:
            dynamic.append((i, where))
    packed, blobs = tuple(e[0] for e in encoded), tuple(e[1] for e in encoded)
    return _Template(ops, packed, blobs, tuple(dynamic), frozenset(o.kind for o in ops))


def _detokenized(x: str | bytes | None, values: tuple[tuple[str, str], ...]) -> str | bytes | None:
    """The container's values for the tokens in ``x``, a string of an op, or
    bytes made of strings (the exec op's NUL-separated env)."""
    if isinstance(x, str):
        for token, value in values:
            x = x.replace(token, value)
    elif isinstance(x, bytes):
        for token, value in values:
            x = x.replace(token.encode(), value.encode())
    return x


def _holds_token(x: str | bytes | None) -> bool:
    return (isinstance(x, str) and _TOKEN_MARK in x) or (isinstance(x, bytes) and _TOKEN_MARK.encode() in x)


NODEV_ATTRS = ATTR_NOSUID | ATTR_NODEV | ATTR_NOEXEC


@functools.lru_cache(maxsize=16)
def _kernel_mounts(*, userns: bool, tty_gid: bool, ipc: bool, bind_sys: bool) -> tuple[PlanOp, ...]:
    """/proc, /dev (nodes, pts, shm, mqueue, links) and /sys: runc's default mounts."""
    nodev = MS_NOSUID | MS_NOEXEC | MS_NODEV
    ops = [
        op(Op.MOUNT, "proc", "/proc", "proc", None, v=(nodev, M_MKDIR, 0, 0)),
        op(Op.MOUNT, "tmpfs", "/dev", "tmpfs", "mode=755,size=65536k", v=(MS_NOSUID | MS_STRICTATIME, M_MKDIR, 0, 0)),
    ]
    for path, mode, major, minor in DEVICES:
        ops.append(op(Op.MKNOD, path, path, v=(mode, os.makedev(major, minor))))
    # the mountpoints below and the links, in the same run of /dev steps (one dir fd)
    for name in ("pts", "shm", *(("mqueue",) if ipc else ())):
        ops.append(op(Op.MKNOD, None, f"/dev/{name}", v=(stat.S_IFDIR | 0o755, 0)))
    for text, link in DEV_LINKS:
        ops.append(op(Op.SYMLINK, text, link))
    pts = "newinstance,ptmxmode=0666,mode=0620" + (",gid=5" if tty_gid else "")
    ops.append(op(Op.MOUNT, "devpts", "/dev/pts", "devpts", pts, v=(MS_NOSUID | MS_NOEXEC, M_MKDIR, 0, 0)))
    ops.append(op(Op.MOUNT, "shm", "/dev/shm", "tmpfs", "mode=1777,size=65536k", v=(nodev, M_MKDIR, 0, 0)))
    if ipc:
        ops.append(op(Op.MOUNT, "mqueue", "/dev/mqueue", "mqueue", None, v=(nodev, M_MKDIR | M_OPTIONAL, 0, 0)))
    if bind_sys:
        # sysfs belongs to the network namespace's owner: bind the host's.
        ops.append(
            op(
                Op.MOUNT,
                "/sys",
                "/sys",
                None,
                None,
                v=(MS_BIND | MS_REC, M_MKDIR | M_RECURSIVE, 0, ATTR_RDONLY | NODEV_ATTRS),
            )
        )
    else:
        ops.append(op(Op.MOUNT, "sysfs", "/sys", "sysfs", None, v=(nodev | MS_RDONLY, M_MKDIR, 0, 0)))
    return tuple(ops)


def dev_is_ours(cfg: ContainerConfig) -> bool:
    """May the runtime make nodes in the container's /dev?  Only in a /dev it
    mounted itself (its tmpfs, or a bundle's non-bind mount there), never in
    one bound from elsewhere, where a node would land on that filesystem
    (runc skips its device set-up then too)."""
    at_dev = [m for m in cfg.mounts if os.path.normpath(m.destination) == "/dev"]
    if at_dev:
        last = at_dev[-1]
        return not (last.type == "bind" or "bind" in last.options or "rbind" in last.options)
    return cfg.docker_defaults


# Docker's defaults for a container with a network namespace of its own
# (since 20.10): any user may bind a port below 1024 (it is the container's
# own port space) and open ICMP echo sockets (ping without CAP_NET_RAW).
_DOCKER_NET_SYSCTLS = (("net.ipv4.ip_unprivileged_port_start", "0", False),
                       ("net.ipv4.ping_group_range", "0 2147483647", True))  # fmt: skip


@functools.lru_cache(maxsize=1)
def _kernel_net_sysctls() -> tuple[tuple[str, str, bool], ...]:
    """Those of Docker's network defaults this kernel has."""
    return tuple(s for s in _DOCKER_NET_SYSCTLS if os.path.exists("/proc/sys/" + s[0].replace(".", "/")))


def _docker_net_sysctls(cfg: ContainerConfig, userns: bool) -> list[tuple[str, str]]:
    """Docker's network defaults the config does not set itself (not for
    an OCI bundle's complete config; the gid range only where all gids are
    the container's, without a user namespace)."""
    if not cfg.docker_defaults or not cfg.new_namespace(NamespaceType.NETWORK):
        return []
    given = {key for key, _ in cfg.sysctl}
    return [(k, v) for k, v, no_userns in _kernel_net_sysctls() if k not in given and not (no_userns and userns)]


@functools.lru_cache(maxsize=1)
def _default_devices() -> tuple[PlanOp, ...]:
    """The nodes and links runc makes in /dev whatever the bundle's mounts."""
    ops = [op(Op.MKNOD, path, path, v=(mode, os.makedev(major, minor))) for path, mode, major, minor in DEVICES]
    return tuple(ops) + tuple(op(Op.SYMLINK, text, link) for text, link in DEV_LINKS)


@functools.lru_cache(maxsize=16)
def _masks(masked: tuple[str, ...], readonly: tuple[str, ...]) -> tuple[PlanOp, ...]:
    return tuple(op(Op.MASK, None, p) for p in masked) + tuple(op(Op.READONLY, None, p) for p in readonly)


def _stdio_ops(stdio: Sequence[tuple[int, int]], terminal: bool) -> list[PlanOp]:
    """dup the caller's fds into place; with a terminal, 0-2 come from the pty
    and only the passed fds (3, 4, ...) are dup'd."""
    pairs = [(src, dst) for src, dst in stdio if not terminal or dst > 2]
    if not pairs:
        return []
    return [op(Op.STDIO, b"".join(struct.pack("@ii", src, dst) for src, dst in pairs), v=(len(pairs),))]


def _path_of(env: Sequence[str]) -> str | None:
    for item in env:
        if item.startswith("PATH="):
            return item[5:]
    return None


def _process_ops(
    terminal: bool, umask: int, cwd: str, args: Sequence[str], env: Sequence[str], *, make_cwd: bool
) -> list[PlanOp]:
    return [
        op(Op.PTY) if terminal else op(Op.SETSID),
        op(Op.UMASK, v=(umask,)),
        op(Op.CHDIR, cwd, v=(int(make_cwd),)),
        op(Op.RESOLVE, args[0], _path_of(env)),
    ]


def _seccomp_op(conf: Any) -> PlanOp:
    return op(Op.SECCOMP, conf.seccomp, v=(len(conf.seccomp) // 8, conf.seccomp_flags))


def _oom_ops(conf: Any) -> list[PlanOp]:
    """oom_score_adj, written by the process itself once it has left our
    memory (the kernel sets it for every process sharing the mm)."""
    if conf is None or conf.oom_score_adj is None:
        return []
    return [op(Op.WRITE, "/proc/self/oom_score_adj", str(conf.oom_score_adj), v=(WRITE_PROC,))]


def _s64(value: int) -> int:
    """A u64 (RLIM_INFINITY) in the plan's signed 64-bit slot; C casts it back."""
    return value - 2**64 if value > 2**63 - 1 else value


def _rlimit_ops(conf: Any) -> list[PlanOp]:
    """Set after the last step that may need an fd above the limit (moving
    fds up, WAIT_START); the parent refuses what the kernel would refuse."""
    if conf is None:
        return []
    return [op(Op.RLIMIT, name, v=(res, _s64(soft), _s64(hard))) for name, res, soft, hard in conf.rlimits]


def _exec_ops(
    user: User,
    first_closed: int,
    args: Sequence[str],
    env: Sequence[str],
    init_fd: int,
    conf: Any = None,
    exit_fd: int = 0,
    restart: str = "no",
    stop_signal: int = 15,
    *,
    wait_go: bool = False,
) -> list[PlanOp]:
    """The last steps, in runc's order: the seccomp filter as late as it
    can be (without no_new_privs installing one needs CAP_SYS_ADMIN, so then
    before the capabilities go); the bounding set (with KEEPCAPS); the
    user; the other capability sets; no_new_privs; fds; execve.
    ``wait_go`` (run): the parent's GO is awaited after every other step,
    right before the execve, so that the confinement overlaps the parent's
    rename and nothing of the container's runs before the id is claimed."""
    groups = b"".join(struct.pack("@I", g) for g in user.additional_gids)
    ops: list[PlanOp] = []
    seccomp = conf is not None and conf.seccomp is not None
    if seccomp and not conf.no_new_privs:
        ops.append(_seccomp_op(conf))
    ops.extend(_rlimit_ops(conf))
    if conf is not None:
        ops.append(op(Op.BOUNDING, v=(conf.bounding, conf.last_cap)))
    ops.append(op(Op.USER, groups, v=(user.uid, user.gid, len(user.additional_gids))))
    if conf is not None:
        ops.append(op(Op.CAPS, v=(conf.effective, conf.permitted, conf.inheritable, conf.ambient)))
        if conf.no_new_privs:
            ops.append(op(Op.NNP))
    ops.append(op(Op.CLOSE_FDS, v=(first_closed,)))
    if seccomp and conf.no_new_privs:
        ops.append(_seccomp_op(conf))
    if wait_go:
        ops.append(op(Op.WAIT_GO))
    ops.append(
        op(
            Op.EXEC,
            b"\0".join(a.encode() for a in args),
            b"\0".join(e.encode() for e in env),
            f"{restart}@{stop_signal}".encode() if init_fd >= 0 and restart != "no" else None,
            v=(len(args), len(env), init_fd, exit_fd if init_fd >= 0 else 0),
        )
    )
    return ops


def keyring_name(container_id: str) -> str:
    return f"_ses.{container_id}"


def host_proc_sys_mounts(rootfs: str, mountinfo: str = "/proc/self/mountinfo") -> list[str]:
    """Mount points of whole procfs and sysfs mounts outside ``rootfs``
    (what runc's --no-pivot detaches before its chroot)."""
    out = []
    with open(mountinfo, encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            root, point, fstype = fields[3], _unescape(fields[4]), fields[sep + 1]
            inside = point == rootfs or point.startswith(rootfs.rstrip("/") + "/")
            if root == "/" and fstype in ("proc", "sysfs") and not inside:
                out.append(point)
    return out


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def compile_exec(
    ns_fds: Sequence[tuple[NamespaceType, int]],
    *,
    args: Sequence[str],
    env: Sequence[str],
    cwd: str,
    user: User,
    umask: int,
    terminal: bool,
    stdio: Sequence[tuple[int, int]] = (),
    preserve_fds: int = 0,
    helper_fd: int = -1,
    cgroup_files: Sequence[str] = (),
    confinement: Any = None,
    keyring: str = "",
) -> list[PlanOp]:
    """The plan that runs another process in a running container."""
    # Leave our memory before joining anything (see compile_create); the
    # cgroup first: nothing after the exec of the helper runs outside it.
    ops: list[PlanOp] = [op(Op.HANDOFF, v=(helper_fd,))]
    ops += [op(Op.CGROUP_JOIN, path) for path in cgroup_files]
    # by the host's /proc, before the container's mounts are ours to resolve
    ops.extend(_oom_ops(confinement))
    order = {k: i for i, k in enumerate(JOIN_ORDER)}
    for kind, fd in sorted(ns_fds, key=lambda item: order[item[0]]):
        ops.append(op(Op.SETNS, None, v=(CLONE_FLAGS[kind], fd)))
    if keyring:
        ops.append(op(Op.KEYRING, keyring, v=(0,)))  # the container's session keyring, as runc's exec joins
    # Joining a pid (or time) namespace only applies to children: clone again.
    ops.append(op(Op.FORK))
    ops.extend(_stdio_ops(stdio, terminal))
    ops.extend(_process_ops(terminal, umask, cwd, args, env, make_cwd=False))
    ops.extend(_exec_ops(user, 3 + preserve_fds, args, env, -1, confinement))
    return ops
