"""The built-in image, ``localhost/busybox``: the host's static busybox and
its applets as a one-layer image, made in the store with no download."""

from __future__ import annotations

import hashlib
import os
import tarfile
import tempfile

from ._store import Image, ImageStore, host_platform

BUILTIN = "localhost/busybox:latest"
LABEL = "org.pycontainer.busybox.sha256"


def builtin_image(store: ImageStore) -> Image:
    """``localhost/busybox:latest``, made (once per busybox binary) from the
    host's static busybox."""
    from ..rootfs import default_rootfs, find_busybox

    with open(find_busybox(), "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    refs = store.refs()
    if BUILTIN in refs:
        image = store.get(BUILTIN)
        if image.config.labels.get(LABEL) == digest:
            return image
    rootfs = default_rootfs(store.root)  # the assembled tree (built once, shared)
    fd, tmp = tempfile.mkstemp(dir=store.root, prefix=".busybox-layer-")
    try:
        with os.fdopen(fd, "wb") as out, tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as t:
            for name in sorted(os.listdir(rootfs)):
                t.add(os.path.join(rootfs, name), arcname=name, filter=_normalized)
        sha = hashlib.sha256()
        with open(tmp, "rb") as f:
            while chunk := f.read(1 << 20):
                sha.update(chunk)
        diff_id = f"sha256:{sha.hexdigest()}"
        with open(tmp, "rb") as f:
            layer_digest = store.put_blob(f, diff_id)
    finally:
        os.unlink(tmp)
    os_, arch = host_platform()
    config = {
        "architecture": arch,
        "os": os_,
        "config": {"Env": [f"PATH={_path()}"], "Cmd": ["sh"], "Labels": {LABEL: digest}},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "pycontainer: the host's static busybox", "comment": "built in"}],
    }
    return store.add_image(config, [store.layer_descriptor(layer_digest)], BUILTIN)


def _path() -> str:
    from ..config import DEFAULT_PATH

    return DEFAULT_PATH


def _normalized(ti: tarfile.TarInfo) -> tarfile.TarInfo:
    """Reproducible: root-owned, one fixed time."""
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = "root"
    ti.mtime = 0
    return ti
