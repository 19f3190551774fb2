"""A container's changes (its overlay's upper directory): listed like
``docker diff``, and committed as a new layer on top of its image.

In the upper directory overlayfs marks a deleted path with a 0/0 character
device and a directory whose lower contents are hidden with the
``trusted.overlay.opaque`` attribute; in the layer they become OCI
whiteouts (``.wh.NAME``, ``.wh..wh..opq``).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tarfile
import tempfile
import time
from collections.abc import Iterator
from typing import Any

from ..errors import ImageError
from ._store import Image, ImageStore
from ._unpack import OPAQUE, OPAQUE_XATTR, WHITEOUT_PREFIX


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _is_opaque(fd: int) -> bool:
    try:
        return os.getxattr(fd, OPAQUE_XATTR) == b"y"
    except OSError:
        return False


def _walk(dir_fd: int, rel: str = "") -> Iterator[tuple[str, int, str, os.stat_result]]:
    """(relative path, parent dir fd, name, lstat) of everything under
    ``dir_fd``, parents first; directories are entered by fd with
    O_NOFOLLOW, so a running container swapping one for a symlink cannot
    lead the walk out of its layer."""
    for name in sorted(os.listdir(dir_fd)):
        path = f"{rel}/{name}" if rel else name
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            continue  # gone meanwhile
        yield path, dir_fd, name, st
        if stat.S_ISDIR(st.st_mode):
            try:
                sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
            except OSError:
                continue  # swapped for something else meanwhile
            try:
                yield from _walk(sub, path)
            finally:
                os.close(sub)


def _open_upper(upper: str) -> int:
    return os.open(upper, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)


def _in_layers(layers: list[str], path: str) -> bool:
    """Does the overlay of ``layers`` (top first) show ``path``?"""
    from ..rootfs import layer_lookup

    return layer_lookup(tuple(layers), path) is not None


def changes(upper: str, layers: list[str]) -> list[tuple[str, str]]:
    """``[("A"|"C"|"D", "/path"), ...]``: what the container added, changed
    and deleted, against its image's layers (top first)."""
    out = []
    fd = _open_upper(upper)
    try:
        for rel, _parent, _name, st in _walk(fd):
            if _is_whiteout(st):
                out.append(("D", f"/{rel}"))
            elif _in_layers(layers, rel):
                out.append(("C", f"/{rel}"))
            else:
                out.append(("A", f"/{rel}"))
    finally:
        os.close(fd)
    return out


def _tarinfo(rel: str, st: os.stat_result) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(rel)
    ti.mode = stat.S_IMODE(st.st_mode)
    ti.uid, ti.gid = st.st_uid, st.st_gid
    ti.mtime = int(st.st_mtime)
    return ti


def _layer_tar(upper: str, dest: str) -> str:
    """Write the upper directory as an OCI layer tar; return its DiffID.
    Everything is read through fds (a file swapped for a symlink meanwhile
    is refused, never followed)."""
    top = _open_upper(upper)
    try:
        with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as t:
            for rel, parent, name, st in _walk(top):
                if _is_whiteout(st):
                    head, _, tail = rel.rpartition("/")
                    wh = tarfile.TarInfo(f"{head}/{WHITEOUT_PREFIX}{tail}" if head else f"{WHITEOUT_PREFIX}{tail}")
                    wh.mtime = int(st.st_mtime)
                    t.addfile(wh)
                    continue
                ti = _tarinfo(rel, st)
                if stat.S_ISREG(st.st_mode):
                    try:
                        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=parent)
                    except OSError:
                        continue  # gone or swapped meanwhile
                    with os.fdopen(fd, "rb") as f:
                        now = os.fstat(fd)
                        if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino) or not stat.S_ISREG(now.st_mode):
                            continue
                        ti.type = tarfile.REGTYPE
                        ti.size = now.st_size
                        t.addfile(ti, f)
                elif stat.S_ISDIR(st.st_mode):
                    ti.type = tarfile.DIRTYPE
                    t.addfile(ti)
                    dfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
                    try:
                        if _is_opaque(dfd):
                            opq = tarfile.TarInfo(f"{rel}/{OPAQUE}")
                            opq.mtime = int(st.st_mtime)
                            t.addfile(opq)
                    finally:
                        os.close(dfd)
                elif stat.S_ISLNK(st.st_mode):
                    ti.type = tarfile.SYMTYPE
                    ti.linkname = os.readlink(name, dir_fd=parent)
                    t.addfile(ti)
                elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                    ti.type = tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else tarfile.BLKTYPE
                    ti.devmajor, ti.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
                    t.addfile(ti)
                elif stat.S_ISFIFO(st.st_mode):
                    ti.type = tarfile.FIFOTYPE
                    t.addfile(ti)
    finally:
        os.close(top)
    sha = hashlib.sha256()
    with open(dest, "rb") as f:
        while chunk := f.read(1 << 20):
            sha.update(chunk)
    return f"sha256:{sha.hexdigest()}"


def commit(
    store: ImageStore,
    base: Image,
    upper: str,
    ref: str | None,
    *,
    comment: str = "",
    config: dict[str, Any] | None = None,
    created_by: str = "pycontainer commit",
) -> Image:
    """A new image: ``base`` plus one layer holding the changes in ``upper``.
    ``config`` updates the image config's ``config`` object (Cmd, Env, ...);
    ``created_by`` goes into its history (a build step's instruction)."""
    fd, tmp = tempfile.mkstemp(dir=store.root, prefix=".commit-")
    os.close(fd)
    try:
        diff_id = _layer_tar(upper, tmp)
        with open(tmp, "rb") as f:
            layer_digest = store.put_blob(f, diff_id)
    except OSError as e:
        raise ImageError(f"cannot write the new layer: {os.strerror(e.errno or 0)}") from e
    finally:
        os.unlink(tmp)
    cfg = json.loads(json.dumps(base.config_json))
    cfg.setdefault("rootfs", {"type": "layers", "diff_ids": []})["diff_ids"] = [*base.diff_ids, diff_id]
    if config:
        cfg.setdefault("config", {}).update(config)
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    cfg["created"] = created
    cfg.setdefault("history", []).append({"created": created, "created_by": created_by, "comment": comment})
    return store.add_image(cfg, [*base.layers, store.layer_descriptor(layer_digest)], ref)
