"""Image archives: ``docker save`` archives in and out, OCI layouts out.

A docker archive holds ``manifest.json`` (``[{"Config": ..., "RepoTags": [...],
"Layers": [...]}]``), the image config, and each layer as an uncompressed tar.
Imported, its layers are stored as they are (uncompressed OCI layers, whose
digest is their DiffID) under an OCI manifest the store writes.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tarfile
import tempfile
from typing import TYPE_CHECKING, Any

from ..errors import ImageError
from ._store import (
    MAX_JSON,
    OCI_MANIFEST,
    REF_ANNOTATION,
    Image,
    _check_digest,
    _safe_extract_tar,
    normalize_ref,
    open_in,
    read_json_in,
    scratch_dir,
)
from ._unpack import open_layer_stream, remove_tree

if TYPE_CHECKING:
    from ._store import ImageStore

OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"


def _inside(base: str, rel: str) -> str:
    """``rel`` checked to stay inside the archive (open_in refuses symlinks on the way)."""
    if not isinstance(rel, str) or rel.startswith("/") or ".." in rel.split("/"):
        raise ImageError(f"the archive names {rel!r}, which lies outside it")
    return rel


def import_docker_archive(store: ImageStore, path: str) -> list[Image]:
    """Import every image of a ``docker save`` archive (a tar or its extracted directory)."""
    if not os.path.isdir(path):
        with scratch_dir(store.root) as tmp:
            _safe_extract_tar(path, tmp, store.limits)
            return import_docker_archive(store, tmp)
    entries = read_json_in(path, "manifest.json")
    if not isinstance(entries, list) or not entries:
        raise ImageError(f"{path}: manifest.json lists no image")
    images = []
    for entry in entries:
        try:
            config_name, layer_names = entry["Config"], entry["Layers"]
            tags = entry.get("RepoTags") or []
        except (KeyError, TypeError):
            raise ImageError(f"{path}: a manifest.json entry lacks Config or Layers") from None
        with open_in(path, _inside(path, config_name), MAX_JSON) as f:
            config_raw = f.read()
        config = json.loads(config_raw)
        diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
        if len(diff_ids) != len(layer_names):
            raise ImageError(f"{path}: {len(layer_names)} layers but {len(diff_ids)} diff_ids in the config")
        layers = []
        for name, diff_id in zip(layer_names, diff_ids, strict=True):
            with open_in(path, _inside(path, name)) as f:
                head = f.read(4)
                f.seek(0)
                if head[:2] == b"\x1f\x8b" or head == b"\x28\xb5\x2f\xfd":
                    # a compressed layer (newer docker saves): its DiffID is the tar's
                    digest = store.put_blob(f)
                    media = OCI_LAYER + ("+gzip" if head[:2] == b"\x1f\x8b" else "+zstd")
                else:
                    digest = store.put_blob(f, _check_digest(diff_id))
                    media = OCI_LAYER
            layers.append(store.layer_descriptor(digest, media))
        tags = [normalize_ref(t) for t in tags]
        image = store.add_image(config_raw, layers, tags[0] if tags else None)
        for extra in tags[1:]:
            store.tag(image.digest, extra)
        images.append(store.get(image.digest))
    return images


def export_oci_layout(store: ImageStore, refs: list[str], dest: str) -> None:
    """Write the images to an OCI image layout: a directory, or a tar
    archive when ``dest`` ends in .tar.  The ref.name annotation holds the
    whole name:tag (skopeo: ``oci:DEST:name:tag``)."""
    as_tar = dest.endswith(".tar")
    # staged in the store (root's), not beside dest, whose directory another user may write
    out = tempfile.mkdtemp(dir=store.root, prefix=".export-")
    try:
        blobs = os.path.join(out, "blobs", "sha256")
        os.makedirs(blobs)
        manifests = []
        for ref in refs:
            image = store.get(ref)
            for digest in [image.digest, image.config_digest, *(layer["digest"] for layer in image.layers)]:
                target = os.path.join(blobs, _check_digest(digest).split(":")[1])
                if not os.path.exists(target):
                    _copy_verified(store, digest, target)
            name = normalize_ref(ref) if not ref.startswith("sha256:") else None
            desc: dict[str, Any] = {
                "mediaType": image.manifest.get("mediaType") or OCI_MANIFEST,
                "digest": image.digest,
                "size": os.path.getsize(store.blob_path(image.digest)),
            }
            if name:
                desc["annotations"] = {REF_ANNOTATION: name}
            manifests.append(desc)
        with open(os.path.join(out, "oci-layout"), "w") as f:
            f.write('{"imageLayoutVersion": "1.0.0"}')
        with open(os.path.join(out, "index.json"), "w") as f:
            json.dump(
                {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests}, f
            )
        if as_tar:
            _tar_dir(out, dest)
        else:
            if os.path.exists(dest) and os.listdir(dest):
                raise ImageError(f"{dest} exists and is not empty")
            with contextlib.suppress(FileNotFoundError):
                os.rmdir(dest)
            try:
                os.rename(out, dest)
                out = ""
            except OSError as e:
                if e.errno != errno.EXDEV:
                    raise
                shutil.copytree(out, dest, symlinks=True)  # another file system: copy (out goes below)
    finally:
        if out:
            remove_tree(out)


def export_docker_archive(store: ImageStore, refs: list[str], dest: str) -> None:
    """Write the images as a ``docker save`` archive (tar), which ``docker
    load``, podman and skopeo (docker-archive:) read."""
    entries = []
    tmp = tempfile.mkdtemp(dir=store.root, prefix=".export-")  # root's own, as in export_oci_layout
    try:
        for ref in refs:
            image = store.get(ref)
            config_hex = _check_digest(image.config_digest).split(":")[1]
            _copy_verified(store, image.config_digest, os.path.join(tmp, f"{config_hex}.json"))
            layer_names = []
            for layer, diff_id in zip(image.layers, image.diff_ids, strict=True):
                name = f"{diff_id.split(':')[1]}/layer.tar"
                target = os.path.join(tmp, name)
                if not os.path.exists(target):
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    sha = hashlib.sha256()
                    with store.open_blob(layer["digest"]) as src, open(target, "wb") as dst:
                        stream = open_layer_stream(src)
                        while chunk := stream.read(1 << 20):
                            sha.update(chunk)
                            dst.write(chunk)
                        src.read()  # the blob's end: its digest is checked there
                    if f"sha256:{sha.hexdigest()}" != diff_id:
                        raise ImageError(f"layer {layer['digest']} does not decompress to its DiffID {diff_id}")
                layer_names.append(name)
            tags = [normalize_ref(ref)] if not ref.startswith("sha256:") else []
            entries.append({"Config": f"{config_hex}.json", "RepoTags": tags, "Layers": layer_names})
        with open(os.path.join(tmp, "manifest.json"), "w") as f:
            json.dump(entries, f)
        _tar_dir(tmp, dest)
    finally:
        remove_tree(tmp)


def _copy_verified(store: ImageStore, digest: str, target: str) -> None:
    """Copy a blob out, checked against its digest as it is read."""
    with store.open_blob(digest) as src, open(target, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)


def _tar_dir(src: str, dest: str) -> None:
    """Tar ``src`` to ``dest`` through a temporary file of our own beside it
    (a name made with O_EXCL: nothing planted there is followed)."""
    fd, part = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(dest)) or ".", prefix=".export-", suffix=".tar")
    try:
        with os.fdopen(fd, "wb") as f, tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT) as t:
            for name in sorted(os.listdir(src)):
                t.add(os.path.join(src, name), arcname=name, filter=_plain)
            os.fchmod(f.fileno(), 0o644)  # by fd: the name may be swapped meanwhile
        os.replace(part, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(part)
        raise


def _plain(ti: tarfile.TarInfo) -> tarfile.TarInfo:
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    return ti


__all__ = ["export_docker_archive", "export_oci_layout", "import_docker_archive"]
