"""Host-side rootfs helpers: safe paths in a rootfs, users, /etc files, the built-in rootfs.

The mounts themselves are done by the C shim (see ``_plan``); this module only
reads a rootfs (for /etc/passwd) and writes the files Docker writes for a
container: hostname, hosts and resolv.conf.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import stat
import struct
import subprocess
import tempfile

from .config import User
from .errors import ConfigError, ImageError, PyContainerError

DEFAULT_DATA_ROOT = "/var/lib/pycontainer"


def data_root(root: str | None = None) -> str:
    """The data root: ``root``, else $PYCONTAINER_DATA_ROOT, else
    /var/lib/pycontainer (for a non-root user ~/.local/share/pycontainer)."""
    root = root or os.environ.get("PYCONTAINER_DATA_ROOT")
    if root:
        return root
    if os.geteuid() != 0:
        from .rootless import default_data_root

        return default_data_root()
    return DEFAULT_DATA_ROOT


MAX_ETC_FILE = 4 << 20  # /etc/passwd and /etc/group are read up to this size


def open_in_root(root: str, path: str) -> int:
    """Open the regular file ``path`` of the rootfs ``root`` for reading, with
    fds all the way: each component is opened with O_NOFOLLOW relative to its
    parent, symlinks are followed by hand and never leave ``root`` (absolute
    ones restart at it, ".." stops at it), and anything but a regular file
    (a fifo that would block, a device that never ends) is refused.  The
    rootfs may belong to a running container that changes it meanwhile."""
    stack = [os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)]
    try:
        parts = [p for p in path.split("/") if p]
        hops = 0
        while parts:
            part = parts.pop(0)
            if part == ".":
                continue
            if part == "..":
                if len(stack) > 1:
                    os.close(stack.pop())
                continue
            fd = os.open(part, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=stack[-1])
            mode = os.fstat(fd).st_mode
            if stat.S_ISLNK(mode):
                target = os.readlink(part, dir_fd=stack[-1])
                os.close(fd)
                hops += 1
                if hops > 40:
                    raise OSError(errno.ELOOP, "too many levels of symbolic links", path)
                if target.startswith("/"):
                    while len(stack) > 1:
                        os.close(stack.pop())
                parts = [p for p in target.split("/") if p] + parts
                continue
            stack.append(fd)
            if parts and not stat.S_ISDIR(mode):
                raise NotADirectoryError(errno.ENOTDIR, "not a directory", path)
        if len(stack) == 1 or not stat.S_ISREG(os.fstat(stack[-1]).st_mode):
            raise IsADirectoryError(errno.EISDIR, "not a regular file", path)
        return os.open(f"/proc/self/fd/{stack[-1]}", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    finally:
        for fd in stack:
            os.close(fd)


def is_file_in_root(root: str, path: str) -> bool:
    """True when ``path`` names a regular file inside the rootfs (see open_in_root)."""
    try:
        os.close(open_in_root(root, path))
    except OSError:
        return False
    return True


def walk_in_layer(layer: str, parts: list[str]) -> int | None:
    """An O_PATH fd of the directory ``layer/parts...``, walked one component
    at a time without following symlinks (a layer's symlinks point into the
    container, never at the host); None where a component is missing or no
    directory."""
    fd = os.open(layer, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    for comp in parts:
        try:
            nfd = os.open(comp, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
        except OSError:
            os.close(fd)
            return None
        os.close(fd)
        fd = nfd
    return fd


def layer_lookup(layers: tuple[str, ...], path: str) -> tuple[str, os.stat_result] | None:
    """The top-most of ``layers`` (top first) that holds ``path``, and the
    entry's lstat: what the overlay of the layers shows there.  None when no
    layer holds it, or a layer hides it from the ones below: a whiteout at
    it or above it, a file or symlink above it (symlinks are never followed:
    they point into the container), or an opaque directory above it."""
    parts = [p for p in path.split("/") if p and p != "."]
    if not parts:
        return None
    for layer in layers:
        fd = os.open(layer, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        opaque = False
        try:
            for i, comp in enumerate(parts):
                try:
                    st = os.stat(comp, dir_fd=fd, follow_symlinks=False)
                except (FileNotFoundError, NotADirectoryError):
                    break  # not in this layer: maybe in a lower one
                if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                    return None  # deleted here
                if i == len(parts) - 1:
                    return layer, st
                if not stat.S_ISDIR(st.st_mode):
                    return None  # a file or a symlink over the path
                nfd = os.open(comp, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
                os.close(fd)
                fd = nfd
                try:
                    opaque = opaque or os.getxattr(fd, "trusted.overlay.opaque") == b"y"
                except OSError:
                    pass
        finally:
            os.close(fd)
        if opaque:
            return None  # an opaque directory above it hides the layers below
    return None


def _read_in_layers(layers: tuple[str, ...], path: str) -> list[str]:
    """``path`` as the overlay of ``layers`` (top first) shows it."""
    hit = layer_lookup(layers, path)
    return _read_in_root(hit[0], path) if hit else []


def is_file_in_layers(layers: tuple[str, ...], path: str) -> bool:
    """Is ``path`` a regular file in the overlay of ``layers`` (top first)?"""
    hit = layer_lookup(layers, path)
    return hit is not None and is_file_in_root(hit[0], path)


def _read_in_root(root: str, path: str) -> list[str]:
    try:
        fd = open_in_root(root, path)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return []
    except OSError as e:
        raise ConfigError("user", f"cannot read {path} in the rootfs: {e.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        data = f.read(MAX_ETC_FILE + 1)
    if len(data) > MAX_ETC_FILE:
        raise ConfigError("user", f"{path} in the rootfs is larger than {MAX_ETC_FILE} bytes")
    return data.decode("utf-8", errors="replace").splitlines()


def _read(rootfs: str | tuple[str, ...], path: str) -> list[str]:
    return _read_in_layers(rootfs, path) if isinstance(rootfs, tuple) else _read_in_root(rootfs, path)


def _entries(lines: list[str]) -> list[list[str]]:
    return [line.split(":") for line in lines if line and not line.startswith("#")]


# (rootfs or layers, spec) -> (the files' key, or None for layers; the answer)
_UserKey = tuple[str | tuple[str, ...], User | str]
_user_cache: dict[_UserKey, tuple[object, tuple[User, str]]] = {}


def _files_key(rootfs: str) -> object:
    out: list[tuple[int, int, int] | None] = []
    for name in ("etc/passwd", "etc/group"):
        try:
            st = os.stat(os.path.join(rootfs, name))
            out.append((st.st_ino, st.st_mtime_ns, st.st_size))
        except OSError:
            out.append(None)
    return tuple(out)


def lookup_user(rootfs: str | tuple[str, ...], spec: User | str) -> tuple[User, str]:
    """Cached :func:`lookup_user_uncached`, keyed on the files' inode, mtime
    and size.  ``rootfs`` may be image layers, top first (immutable: cached
    as they are)."""
    key: _UserKey = (rootfs, spec)
    if isinstance(rootfs, tuple):
        hit = _user_cache.get(key)
        if hit is None:
            hit = (None, lookup_user_uncached(rootfs, spec))
            _user_cache[key] = hit
        return hit[1]
    if rootfs.startswith("/proc/"):
        return lookup_user_uncached(rootfs, spec)
    files = _files_key(rootfs)
    hit = _user_cache.get(key)
    if hit is not None and hit[0] == files:
        return hit[1]
    result = lookup_user_uncached(rootfs, spec)
    if len(_user_cache) > 256:
        _user_cache.clear()
    _user_cache[key] = (files, result)
    return result


def lookup_user_uncached(rootfs: str | tuple[str, ...], spec: User | str) -> tuple[User, str]:
    """Resolve a Docker-style ``user[:group]`` against the rootfs: (User, home).

    Numeric ids need no entry; names must exist in /etc/passwd or /etc/group.
    Supplementary groups come from /etc/group, as Docker does."""
    if isinstance(spec, User):
        home = "/"
        for e in _entries(_read(rootfs, "/etc/passwd")):
            if len(e) >= 6 and e[2] == str(spec.uid):
                home = e[5] or "/"
                break
        return spec, home
    name, _, group = spec.partition(":")
    passwd = _entries(_read(rootfs, "/etc/passwd"))
    uid = gid = None
    home = "/"
    user_name = None
    for e in passwd:
        if len(e) >= 4 and (e[0] == name or e[2] == name):
            uid, gid, home, user_name = int(e[2]), int(e[3]), (e[5] if len(e) > 5 and e[5] else "/"), e[0]
            break
    if uid is None:
        if not name.isdigit():
            raise ConfigError("user", f"no user {name!r} in the rootfs's /etc/passwd")
        uid, gid = int(name), int(name) if not group else 0
    groups = _entries(_read(rootfs, "/etc/group"))
    if group:
        gid = None
        for e in groups:
            if len(e) >= 3 and (e[0] == group or e[2] == group):
                gid = int(e[2])
                break
        if gid is None:
            if not group.isdigit():
                raise ConfigError("user", f"no group {group!r} in the rootfs's /etc/group")
            gid = int(group)
    extra = []
    if user_name is not None:
        for e in groups:
            if len(e) >= 4 and user_name in e[3].split(",") and e[2].isdigit() and int(e[2]) != gid:
                extra.append(int(e[2]))
    assert gid is not None
    return User(uid=uid, gid=gid, additional_gids=tuple(extra)), home


# ---- /etc files, as Docker writes them ---------------------------------------

HOSTS_HEADER = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "ff00::0\tip6-mcastprefix\n"
    "ff02::1\tip6-allnodes\n"
    "ff02::2\tip6-allrouters\n"
)
DEFAULT_DNS = ("8.8.8.8", "8.8.4.4")  # Docker's fallback when the host has only local resolvers


def hosts_file(hostname: str, addresses: tuple[str, ...] = ()) -> str:
    return HOSTS_HEADER + "".join(f"{a}\t{hostname}\n" for a in addresses)


_host_file_cache: dict[str, tuple[tuple[int, ...], list[str]]] = {}


def _host_lines(path: str) -> list[str]:
    """The lines of a host file, re-read only when its inode, size or mtime changed."""
    try:
        st = os.stat(path)
    except OSError:
        return []
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    hit = _host_file_cache.get(path)
    if hit is not None and hit[0] == key:
        return hit[1]
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    _host_file_cache[path] = (key, lines)
    return lines


def resolv_conf(*, own_netns: bool, servers: tuple[str, ...] = (), host_file: str = "/etc/resolv.conf") -> str:
    """The container's resolv.conf: the host's, or ``servers`` when given.

    In its own network namespace a container cannot reach the host's
    loopback resolvers (systemd-resolved, dnsmasq), so those lines are dropped
    and Docker's public fallback is used when none remain."""
    if servers:
        return "".join(f"nameserver {s}\n" for s in servers)
    lines = _host_lines(host_file)
    if not own_netns:
        return "".join(f"{line}\n" for line in lines)
    kept = []
    nameservers = 0
    for line in lines:
        words = line.split()
        if words[:1] == ["nameserver"] and len(words) > 1:
            if words[1].startswith("127.") or words[1] == "::1":
                continue
            nameservers += 1
        kept.append(line)
    if not nameservers:
        kept += [f"nameserver {s}" for s in DEFAULT_DNS]
    return "".join(f"{line}\n" for line in kept)


# ---- the built-in rootfs -----------------------------------------------------

BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")
_PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
_GROUP = "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n"


def _is_static_elf(path: str) -> bool:
    """True when the ELF file has no PT_INTERP, i.e. needs no dynamic loader."""
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF":
            return False
        is64 = head[4] == 2
        endian = "<" if head[5] == 1 else ">"
        if is64:
            (phoff,) = struct.unpack_from(endian + "Q", head, 32)
            phentsize, phnum = struct.unpack_from(endian + "HH", head, 54)
        else:
            (phoff,) = struct.unpack_from(endian + "I", head, 28)
            phentsize, phnum = struct.unpack_from(endian + "HH", head, 42)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    for i in range(phnum):
        (ptype,) = struct.unpack_from(endian + "I", table, i * phentsize)
        if ptype == 3:  # PT_INTERP
            return False
    return True


def find_busybox() -> str:
    for path in BUSYBOX_CANDIDATES:
        if os.path.exists(path):
            if not _is_static_elf(path):
                raise ImageError(
                    f"{path} is dynamically linked and cannot run in an empty rootfs; install Debian's busybox-static"
                )
            return path
    raise ImageError("no busybox found (looked at " + ", ".join(BUSYBOX_CANDIDATES) + "); install busybox-static")


def default_rootfs(root: str | None = None) -> str:
    """The built-in rootfs: the host's static busybox and its applets.

    Built once under ``<data root>/rootfs/busybox-<digest>`` (in a temporary
    directory renamed into place, so a crash never leaves a half-made one) and
    shared read-only: each container gets its own overlay upper layer on it."""
    busybox = find_busybox()
    with open(busybox, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:16]
    parent = os.path.join(data_root(root), "rootfs")
    final = os.path.join(parent, f"busybox-{digest}")
    if os.path.isdir(final):
        return final
    try:
        os.makedirs(parent, mode=0o711, exist_ok=True)
        os.chmod(parent, 0o711)  # whatever the umask: a user namespace's root must traverse it
    except OSError as e:
        raise PyContainerError(f"cannot make the built-in rootfs's directory {parent}: {e.strerror}") from None
    tmp = tempfile.mkdtemp(prefix=".busybox-", dir=parent)
    try:
        _assemble_busybox(busybox, tmp)
        os.chmod(tmp, 0o755)
        try:
            os.rename(tmp, final)
        except OSError:
            if not os.path.isdir(final):  # somebody else won the race otherwise
                raise
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def _assemble_busybox(busybox: str, dest: str) -> None:
    for d, mode in (
        ("bin", 0o755), ("sbin", 0o755), ("usr/bin", 0o755), ("usr/sbin", 0o755), ("etc", 0o755),
        ("proc", 0o555), ("sys", 0o555), ("dev", 0o755), ("tmp", 0o1777), ("root", 0o700),
        ("var/tmp", 0o1777), ("run", 0o755), ("home", 0o755),
    ):  # fmt: skip
        os.makedirs(os.path.join(dest, d), exist_ok=True)
        os.chmod(os.path.join(dest, d), mode)
    shutil.copy2(busybox, os.path.join(dest, "bin/busybox"))
    os.chmod(os.path.join(dest, "bin/busybox"), 0o755)
    listing = subprocess.run([busybox, "--list-full"], capture_output=True, text=True, check=True).stdout
    for applet in listing.split():
        applet = applet.strip("/")
        if not applet or applet == "bin/busybox" or ".." in applet.split("/"):
            continue
        link = os.path.join(dest, applet)
        os.makedirs(os.path.dirname(link), exist_ok=True)
        if not os.path.lexists(link):
            os.symlink("/bin/busybox", link)
    for name, text, mode in (
        ("etc/passwd", _PASSWD, 0o644),
        ("etc/group", _GROUP, 0o644),
        ("etc/hostname", "", 0o644),
        ("etc/hosts", "", 0o644),
        ("etc/resolv.conf", "", 0o644),
    ):
        with open(os.path.join(dest, name), "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(os.path.join(dest, name), mode)


# The rest are the runtime's helpers (the container, the builder and the
# image store use them), not an API.
__all__ = ["data_root", "default_rootfs"]
