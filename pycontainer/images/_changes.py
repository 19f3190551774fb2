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


def _is_opaque(path: str) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def _walk(upper: str, rel: str = "") -> Iterator[tuple[str, str, os.stat_result]]:
    """(relative path, absolute path, lstat) of everything in ``upper``, parents first."""
    base = os.path.join(upper, rel) if rel else upper
    with os.scandir(base) as it:
        entries = sorted(it, key=lambda e: e.name)
    for e in entries:
        path = f"{rel}/{e.name}" if rel else e.name
        st = e.stat(follow_symlinks=False)
        yield path, e.path, st
        if stat.S_ISDIR(st.st_mode):
            yield from _walk(upper, path)


def _in_layers(layers: list[str], path: str) -> bool:
    """Does the overlay of ``layers`` (top first) show ``path``?"""
    from ..rootfs import layer_lookup

    return layer_lookup(tuple(layers), path) is not None


def changes(upper: str, layers: list[str]) -> list[tuple[str, str]]:
    """``[("A"|"C"|"D", "/path"), ...]``: what the container added, changed
    and deleted, against its image's layers (top first)."""
    out = []
    for rel, _path, st in _walk(upper):
        if _is_whiteout(st):
            out.append(("D", f"/{rel}"))
        elif _in_layers(layers, rel):
            out.append(("C", f"/{rel}"))
        else:
            out.append(("A", f"/{rel}"))
    return out


def _layer_tar(upper: str, dest: str) -> str:
    """Write the upper directory as an OCI layer tar; return its DiffID."""
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as t:
        for rel, path, st in _walk(upper):
            if _is_whiteout(st):
                parent, _, name = rel.rpartition("/")
                wh = tarfile.TarInfo(f"{parent}/{WHITEOUT_PREFIX}{name}" if parent else f"{WHITEOUT_PREFIX}{name}")
                wh.mtime = int(st.st_mtime)
                t.addfile(wh)
                continue
            ti = t.gettarinfo(path, arcname=rel)
            ti.uname = ti.gname = ""
            if ti.isreg():
                with open(path, "rb") as f:
                    t.addfile(ti, f)
            else:
                t.addfile(ti)
            if stat.S_ISDIR(st.st_mode) and _is_opaque(path):
                opq = tarfile.TarInfo(f"{rel}/{OPAQUE}")
                opq.mtime = int(st.st_mtime)
                t.addfile(opq)
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
) -> Image:
    """A new image: ``base`` plus one layer holding the changes in ``upper``.
    ``config`` updates the image config's ``config`` object (Cmd, Env, ...)."""
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
    cfg.setdefault("history", []).append({"created": created, "created_by": "pycontainer commit", "comment": comment})
    return store.add_image(cfg, [*base.layers, store.layer_descriptor(layer_digest)], ref)
