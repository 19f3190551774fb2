"""The copy snapshotter: a container's rootfs as a plain copy of its image's
layers, for kernels (or filesystems) without overlayfs.  Slower to make and
larger than an overlay, but it needs nothing from the kernel."""

from __future__ import annotations

import os
import shutil
import stat
from typing import Any

from ..errors import ImageError
from ._unpack import OPAQUE_XATTR, remove_tree


def overlay_supported() -> bool:
    """Does the running kernel know overlayfs (loaded, or loadable: the
    module is tried by the first mount, so a missing line is not final)?"""
    try:
        with open("/proc/filesystems", encoding="ascii") as f:
            if any(line.split()[-1] == "overlay" for line in f if line.strip()):
                return True
    except OSError:
        return False
    return os.path.exists(f"/lib/modules/{os.uname().release}/kernel/fs/overlayfs")


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        remove_tree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def _copy_meta(src: str, dst: str, st: os.stat_result) -> None:
    os.chown(dst, st.st_uid, st.st_gid, follow_symlinks=False)
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(dst, stat.S_IMODE(st.st_mode))
        for name in os.listxattr(src, follow_symlinks=False):
            if not name.startswith("trusted.overlay."):
                os.setxattr(dst, name, os.getxattr(src, name, follow_symlinks=False), follow_symlinks=False)
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def copy_layers(layers: list[str], dest: str) -> None:
    """Apply ``layers`` (bottom first, unpacked, overlay whiteouts) onto the
    empty directory ``dest``."""
    try:
        for layer in layers:
            _apply(layer, dest)
    except OSError as e:
        raise ImageError(f"cannot copy the image's layers into {dest}: {e}") from e


def _apply(src_top: str, dst_top: str) -> None:
    """One layer onto the tree, with a stack (no recursion: a layer may be
    thousands of levels deep)."""
    dirs = []
    stack = [(src_top, dst_top)]
    while stack:
        src_dir, dst_dir = stack.pop()
        with os.scandir(src_dir) as it:
            entries = sorted(it, key=lambda e: e.name)
        for e in entries:
            src, dst = e.path, os.path.join(dst_dir, e.name)
            st = e.stat(follow_symlinks=False)
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:  # a whiteout
                _remove(dst)
                continue
            if stat.S_ISDIR(st.st_mode):
                if os.path.lexists(dst) and not (os.path.isdir(dst) and not os.path.islink(dst)):
                    _remove(dst)
                if _opaque(src) and os.path.isdir(dst):
                    _remove(dst)
                if not os.path.isdir(dst):
                    os.mkdir(dst, 0o700)
                stack.append((src, dst))
                dirs.append((src, dst, st))
                continue
            _remove(dst)
            if stat.S_ISREG(st.st_mode):
                shutil.copyfile(src, dst, follow_symlinks=False)
            elif stat.S_ISLNK(st.st_mode):
                os.symlink(os.readlink(src), dst)
            elif stat.S_ISFIFO(st.st_mode):
                os.mkfifo(dst, 0o600)
            else:
                os.mknod(dst, st.st_mode, st.st_rdev)
            _copy_meta(src, dst, st)
    for src, dst, st in reversed(dirs):  # deepest last-made first: after their contents, which move their times
        _copy_meta(src, dst, st)


def _opaque(path: str) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def shift_ownership(root: str, uid: Any, gid: Any) -> None:
    """chown everything under ``root`` (itself too) to ``uid(owner)``,
    ``gid(group)``: an image's owners as a user namespace maps them.  Modes
    are put back after (chown clears setuid and setgid bits)."""

    def shift(name: str) -> None:
        st = os.lstat(name)
        os.chown(name, uid(st.st_uid), gid(st.st_gid), follow_symlinks=False)
        if not stat.S_ISLNK(st.st_mode):
            os.chmod(name, stat.S_IMODE(st.st_mode))

    shift(root)
    stack = [root]
    while stack:  # each entry once, as a child of its directory; no recursion
        d = stack.pop()
        with os.scandir(d) as it:
            for e in it:
                shift(e.path)
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
