"""Unpack one image layer (tar, tar+gzip, tar+zstd) into a directory, safely.

Every entry is created relative to directory fds opened one component at a
time with O_NOFOLLOW: a symlink in the layer (or planted by an earlier
entry) is never followed, so nothing can be written outside the layer's
directory.  Entries that name a path outside the layer (``..``, absolute
paths), run through a symlink, or hard-link to outside the layer are
refused with ImageError; so are archives beyond the configured entry, size
and path-length limits.

OCI whiteouts become overlayfs ones: ``.wh.NAME`` a 0/0 character device
``NAME``; ``.wh..wh..opq`` the ``trusted.overlay.opaque=y`` xattr on its
directory.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import io
import os
import stat
import subprocess
import tarfile
from collections.abc import Iterator
from typing import IO, Any

import attrs

from ..errors import ImageError

WHITEOUT_PREFIX = ".wh."
OPAQUE = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"


@attrs.frozen
class LayerLimits:
    """What one layer may hold.  Beyond it, unpacking stops with ImageError."""

    max_entries: int = 1_000_000
    max_bytes: int = 64 << 30  # sum of regular files' sizes
    max_path: int = 4096  # bytes in one entry's path
    max_header: int = 1 << 20  # bytes of one pax or GNU long-name header (read whole by tarfile)


@attrs.frozen
class UnpackResult:
    """What unpacking a layer made: its DiffID and how many entries it had."""

    diff_id: str  # "sha256:<hex>" of the uncompressed tar stream
    entries: int
    bytes: int


class HashingReader(io.RawIOBase):
    """Passes a stream through, hashing what is read (a layer's DiffID, a
    blob's digest); with ``expect``, raises ImageError at the end of the
    stream if the content hashes to something else."""

    def __init__(self, raw: IO[bytes], expect: str | None = None) -> None:
        self._raw = raw
        self.sha = hashlib.sha256()
        self._expect = expect

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        data = self._raw.read(len(b))
        n = len(data)
        b[:n] = data
        self.sha.update(data)
        if not n and self._expect is not None:
            expect, self._expect = self._expect, None
            got = f"sha256:{self.sha.hexdigest()}"
            if got != expect:
                raise ImageError(f"blob {expect} is corrupt: its content hashes to {got}")
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()

    def drain(self) -> None:
        """Hash the rest (tar's end-of-archive padding counts in the DiffID)."""
        while True:
            data = self._raw.read(1 << 20)
            if not data:
                return
            self.sha.update(data)


def open_layer_stream(f: IO[bytes]) -> IO[bytes]:
    """The uncompressed tar stream of a layer, by its magic bytes."""
    head = f.read(4)
    rest = _Prefixed(head, f)
    if head[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=rest, mode="rb")  # type: ignore[return-value]
    if head == b"\x28\xb5\x2f\xfd":
        import zstandard

        # (zstandard types its source as IO[bytes]; it reads with read() alone, which a RawIOBase has)
        return zstandard.ZstdDecompressor().stream_reader(rest, read_across_frames=True)  # type: ignore[arg-type]
    return rest  # type: ignore[return-value]


class _Prefixed(io.RawIOBase):
    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self._head = head
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if self._head:
            n = min(len(b), len(self._head))
            b[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._rest.read(len(b))
        b[: len(data)] = data
        return len(data)


def _limited_tarinfo(max_header: int) -> type[tarfile.TarInfo]:
    """A TarInfo that refuses pax and GNU long-name headers bigger than
    ``max_header`` before tarfile reads them whole into memory."""

    class Limited(tarfile.TarInfo):
        def _proc_member(self, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
            if self.type == tarfile.GNUTYPE_SPARSE:
                raise ImageError("a layer with a GNU sparse file: not supported")
            limit = 64 << 10 if self.type == tarfile.XGLTYPE else max_header  # global headers apply to every entry
            if self.type in (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE, tarfile.GNUTYPE_LONGNAME,
                             tarfile.GNUTYPE_LONGLINK) and self.size > limit:  # fmt: skip
                raise ImageError(f"a layer header of {self.size} bytes, more than {limit}")
            member: tarfile.TarInfo = super()._proc_member(tarfile_)  # type: ignore[misc]  # (private: not in typeshed)
            if any(k.startswith("GNU.sparse.") for k in member.pax_headers):
                raise ImageError("a layer with a GNU sparse file: not supported")
            return member

    return Limited


def _parts(name: str, limits: LayerLimits) -> list[str]:
    """The entry's path as components; ImageError for one outside the layer."""
    if len(name.encode()) > limits.max_path:
        raise ImageError(f"layer entry path longer than {limits.max_path} bytes: {name[:80]!r}...")
    if "\x00" in name:
        raise ImageError(f"layer entry {name!r} holds a NUL byte")
    if name.startswith("/"):
        raise ImageError(f"layer entry {name!r} is an absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ImageError(f"layer entry {name!r} climbs out of the layer with '..'")
    return parts


class _Tree:
    """Directory fds of the layer, opened one component at a time without
    following symlinks, cached while unpacking."""

    def __init__(self, root_fd: int) -> None:
        self.root = root_fd
        self._fds: dict[tuple[str, ...], int] = {(): root_fd}
        self._loose: list[int] = []  # fds of a deep path beyond the cache, closed by trim

    def dir(self, parts: list[str], make: bool, entry: str) -> int:
        key: tuple[str, ...] = ()
        fd = self.root
        for part in parts:
            key = (*key, part)
            cached = self._fds.get(key)
            if cached is not None:
                fd = cached
                continue
            try:
                new = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            except FileNotFoundError:
                if not make:
                    raise
                os.mkdir(part, 0o755, dir_fd=fd)
                new = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            except OSError as e:
                if e.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise ImageError(
                        f"layer entry {entry!r} runs through {'/'.join(key)!r}, which is not a directory"
                    ) from None
                raise
            if len(self._fds) < 128:  # (up to four unpacks run at once)
                self._fds[key] = new
            else:  # a deep path: hold no more than the step before, until the entry is done
                if self._loose and self._loose[-1] == fd:
                    os.close(self._loose.pop())
                self._loose.append(new)
            fd = new
        return fd

    def trim(self, most: int = 96) -> None:
        """Between entries (no fd of the cache in use): keep it bounded, fds are few."""
        for fd in self._loose:
            os.close(fd)
        self._loose = []
        if len(self._fds) > most:
            self.close()

    def forget(self, parts: list[str]) -> None:
        """Drop cached fds at and below ``parts`` (the entry is being replaced)."""
        key = tuple(parts)
        for k in [k for k in self._fds if k[: len(key)] == key and k]:
            os.close(self._fds.pop(k))

    def close(self) -> None:
        for k, fd in self._fds.items():
            if k:
                os.close(fd)
        self._fds = {(): self.root}
        for fd in self._loose:
            os.close(fd)
        self._loose = []


def _remove(dir_fd: int, name: str) -> None:
    """Remove what is at ``name`` in ``dir_fd`` (a tree too, however deep or
    wide), never following a symlink."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        remove_tree(f"/proc/{os.getpid()}/fd/{dir_fd}/{name}")  # rm reaches our fd through /proc
    else:
        os.unlink(name, dir_fd=dir_fd)


def remove_tree(path: str) -> None:
    """``shutil.rmtree`` for trees of any depth and width: coreutils' rm
    (fts keeps neither a frame nor an fd per level, as Python's recursion
    would), on this file system only."""
    if not os.path.lexists(path):
        return
    r = subprocess.run(["rm", "-rf", "--one-file-system", "--", path], capture_output=True, text=True)
    if r.returncode != 0 or os.path.lexists(path):
        raise ImageError(f"cannot remove {path}: {r.stderr.strip()}")


def _ns(t: float) -> int:
    """A tar mtime (an int, or a float from a pax header) in nanoseconds."""
    return round(t * 10**9) if isinstance(t, float) else int(t) * 10**9


def _forget(tree: _Tree, dir_times: dict[tuple[str, ...], tuple[int, int]], parts: list[str]) -> None:
    """An entry is going away: drop its cached fds and the times its subtree
    was to get."""
    tree.forget(parts)
    key = tuple(parts)
    for k in [k for k in dir_times if k[: len(key)] == key]:
        del dir_times[k]


def _xattrs(member: tarfile.TarInfo) -> Iterator[tuple[str, bytes]]:
    for key, value in member.pax_headers.items():
        # overlay's own attributes (opaque, redirect, metacopy) come only from whiteouts
        if key.startswith("SCHILY.xattr.") and not key.startswith("SCHILY.xattr.trusted.overlay."):
            raw = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
            yield key[len("SCHILY.xattr.") :], raw


def unpack_layer(f: IO[bytes], dest: str, limits: LayerLimits | None = None, archive: bool = False) -> UnpackResult:
    """Unpack the layer read from ``f`` into the existing, empty directory ``dest``.

    The caller unpacks into a temporary directory and renames it into place
    (a crash never leaves a half layer that looks whole) and removes it on
    ImageError.  ``archive``: an image archive (OCI layout, docker save),
    not a layer: no devices, fifos or whiteouts (its files are then opened
    with symlinks followed by hand inside it: see ``open_in``)."""
    limits = limits or LayerLimits()
    stream = HashingReader(open_layer_stream(f))
    buffered = io.BufferedReader(stream, 1 << 20)
    root_fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    tree = _Tree(root_fd)
    dir_times: dict[tuple[str, ...], tuple[int, int]] = {}
    entries = total = 0
    try:
        try:
            tar = tarfile.open(fileobj=buffered, mode="r|", errorlevel=2, tarinfo=_limited_tarinfo(limits.max_header))
            for member in tar:
                entries += 1
                if entries > limits.max_entries:
                    raise ImageError(f"layer has more than {limits.max_entries} entries")
                if member.isreg():
                    total += member.size
                    if total > limits.max_bytes:
                        raise ImageError(f"layer holds more than {limits.max_bytes} bytes of files")
                tree.trim()
                # a stream needs no index of what went by (it would grow with the layer); (private: not in typeshed)
                tar.members = []  # type: ignore[attr-defined]
                if archive and (member.ischr() or member.isblk() or member.isfifo()):
                    raise ImageError(f"the archive holds {member.name!r}, a device or fifo")
                if archive and any(p.startswith(WHITEOUT_PREFIX) for p in _parts(member.name, limits)[-1:]):
                    raise ImageError(f"the archive holds {member.name!r}, a whiteout")
                _entry(tar, member, tree, limits, dir_times)
            tar.close()
        except RecursionError:
            raise ImageError("the layer's tree is too deep") from None
        except (tarfile.TarError, EOFError, OSError, ValueError) as e:
            if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise ImageError(f"no space left unpacking the layer into {dest}") from e
            if isinstance(e, ImageError):
                raise
            raise ImageError(f"the layer is not a valid tar archive: {e}") from e
        while buffered.read(1 << 20):  # to the end: the DiffID covers the whole stream
            pass
        stream.drain()
        # Directories' times last: creating entries in them moved them.
        for parts, (atime, mtime) in sorted(dir_times.items(), key=lambda kv: -len(kv[0])):
            if parts:
                parent = tree.dir(list(parts[:-1]), make=False, entry="/".join(parts))
                os.utime(parts[-1], ns=(atime, mtime), dir_fd=parent, follow_symlinks=False)
                tree.trim()
            else:
                os.utime(root_fd, ns=(atime, mtime))
    finally:
        tree.close()
        os.close(root_fd)
    return UnpackResult(diff_id=f"sha256:{stream.sha.hexdigest()}", entries=entries, bytes=total)


def _entry(
    tar: tarfile.TarFile,
    m: tarfile.TarInfo,
    tree: _Tree,
    limits: LayerLimits,
    dir_times: dict[tuple[str, ...], tuple[int, int]],
) -> None:
    parts = _parts(m.name, limits)
    if not parts:  # the layer's root itself ("./")
        if m.isdir():
            os.chmod(tree.root, m.mode & 0o7777)
            os.chown(tree.root, m.uid, m.gid)
            dir_times[()] = (_ns(m.mtime), _ns(m.mtime))
        return
    *parent_parts, name = parts
    parent = tree.dir(parent_parts, make=True, entry=m.name)

    if name == OPAQUE:
        os.setxattr(parent, OPAQUE_XATTR, b"y")
        return
    if name.startswith(WHITEOUT_PREFIX):
        target = name[len(WHITEOUT_PREFIX) :]
        if not target or target in (".", ".."):
            raise ImageError(f"layer entry {m.name!r} is a malformed whiteout")
        _forget(tree, dir_times, [*parent_parts, target])
        _remove(parent, target)
        os.mknod(target, stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=parent)
        return

    link_target: list[str] = []
    if m.islnk():
        link_target = _parts(m.linkname, limits)
        if not link_target:
            raise ImageError(f"layer entry {m.name!r} hard-links to the layer's root")

    # Replace what an earlier entry of this layer put there (a directory stays
    # a directory: the new entry only changes its metadata).
    try:
        old = os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        old = None
    if link_target == parts:
        if old is None or stat.S_ISDIR(old.st_mode):
            raise ImageError(f"layer entry {m.name!r} hard-links to itself, and is no file")
        return  # a link to itself: the file stays as it is
    if old is not None and not (m.isdir() and stat.S_ISDIR(old.st_mode)):
        _forget(tree, dir_times, parts)
        _remove(parent, name)

    if m.isdir():
        if old is None or not stat.S_ISDIR(old.st_mode):
            os.mkdir(name, 0o700, dir_fd=parent)
        fd = tree.dir(parts, make=False, entry=m.name)
        os.chown(fd, m.uid, m.gid)
        os.chmod(fd, m.mode & 0o7777)
        for key, value in _xattrs(m):
            os.setxattr(fd, key, value)
        dir_times[tuple(parts)] = (_ns(m.mtime), _ns(m.mtime))
        return
    if m.isreg():
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=parent)
        try:
            src = tar.extractfile(m)
            left = m.size
            while left > 0 and src is not None:
                chunk = src.read(min(left, 1 << 20))
                if not chunk:
                    raise ImageError(f"layer entry {m.name!r} is cut short")
                os.write(fd, chunk)
                left -= len(chunk)
            os.fchown(fd, m.uid, m.gid)
            os.fchmod(fd, m.mode & 0o7777)  # after chown, which clears setuid bits
            for key, value in _xattrs(m):
                os.setxattr(fd, key, value)
            os.utime(fd, ns=(_ns(m.mtime), _ns(m.mtime)))
        finally:
            os.close(fd)
        return
    if m.issym():
        os.symlink(m.linkname, name, dir_fd=parent)
    elif m.islnk():
        target_parts = link_target
        try:
            tparent = tree.dir(target_parts[:-1], make=False, entry=m.linkname)
            tst = os.stat(target_parts[-1], dir_fd=tparent, follow_symlinks=False)
        except FileNotFoundError:
            raise ImageError(
                f"layer entry {m.name!r} hard-links to {m.linkname!r}, which the layer does not hold"
            ) from None
        if stat.S_ISDIR(tst.st_mode):
            raise ImageError(f"layer entry {m.name!r} hard-links to a directory")
        os.link(target_parts[-1], name, src_dir_fd=tparent, dst_dir_fd=parent, follow_symlinks=False)
        return  # the link shares the target's inode: its metadata is the target's
    elif m.ischr() or m.isblk():
        kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
        os.mknod(name, kind | (m.mode & 0o7777), os.makedev(m.devmajor, m.devminor), dir_fd=parent)
    elif m.isfifo():
        os.mkfifo(name, m.mode & 0o7777, dir_fd=parent)
    else:
        raise ImageError(f"layer entry {m.name!r} has a type this runtime does not unpack ({m.type!r})")
    os.chown(name, m.uid, m.gid, dir_fd=parent, follow_symlinks=False)
    if not m.issym():
        os.chmod(name, m.mode & 0o7777, dir_fd=parent)
    for key, value in _xattrs(m):
        # no setxattr with a dir fd: through our fd of the directory, the
        # last component not followed
        os.setxattr(f"/proc/self/fd/{parent}/{name}", key, value, follow_symlinks=False)
    os.utime(name, ns=(_ns(m.mtime), _ns(m.mtime)), dir_fd=parent, follow_symlinks=False)
