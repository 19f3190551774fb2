"""Build layers and OCI image layouts in tests, without any tool."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile
from collections.abc import Iterable
from typing import Any

import attrs


@attrs.frozen
class E:
    """One tar entry: kind is file, dir, symlink, hardlink, char, block, fifo."""

    name: str
    kind: str = "file"
    data: bytes = b""
    target: str = ""  # symlink text or hardlink target
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    mtime: int = 1_600_000_000
    dev: tuple[int, int] = (0, 0)
    xattrs: tuple[tuple[str, bytes], ...] = ()


_TYPES = {
    "file": tarfile.REGTYPE,
    "dir": tarfile.DIRTYPE,
    "symlink": tarfile.SYMTYPE,
    "hardlink": tarfile.LNKTYPE,
    "char": tarfile.CHRTYPE,
    "block": tarfile.BLKTYPE,
    "fifo": tarfile.FIFOTYPE,
}


def tar_bytes(entries: Iterable[E]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for e in entries:
            ti = tarfile.TarInfo(e.name)
            ti.type = _TYPES[e.kind]
            ti.mode = e.mode
            ti.uid, ti.gid, ti.mtime = e.uid, e.gid, e.mtime
            if e.kind in ("symlink", "hardlink"):
                ti.linkname = e.target
            if e.kind in ("char", "block"):
                ti.devmajor, ti.devminor = e.dev
            if e.xattrs:
                ti.pax_headers = {f"SCHILY.xattr.{k}": v.decode("latin-1") for k, v in e.xattrs}
            if e.kind == "file":
                ti.size = len(e.data)
                t.addfile(ti, io.BytesIO(e.data))
            else:
                t.addfile(ti)
    return buf.getvalue()


def compress(data: bytes, how: str) -> bytes:
    if how == "gzip":
        return gzip.compress(data, mtime=0)
    if how == "zstd":
        import zstandard

        return zstandard.ZstdCompressor().compress(data)
    return data


MEDIA = {
    "none": "application/vnd.oci.image.layer.v1.tar",
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
}


def _put(blobs: str, data: bytes) -> dict[str, Any]:
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobs, digest), "wb") as f:
        f.write(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def make_layout(
    path: str,
    layers: list[list[E]],
    *,
    ref: str | None = "test:latest",
    config: dict[str, Any] | None = None,
    compression: str = "gzip",
) -> str:
    """An OCI image layout at ``path`` with one image; returns its manifest digest."""
    blobs = os.path.join(path, "blobs", "sha256")
    os.makedirs(blobs, exist_ok=True)
    with open(os.path.join(path, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion": "1.0.0"}')
    descs, diff_ids = [], []
    for entries in layers:
        raw = tar_bytes(entries)
        diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
        descs.append({"mediaType": MEDIA[compression], **_put(blobs, compress(raw, compression))})
    cfg = {
        "architecture": "amd64",
        "os": "linux",
        "config": config or {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    cdesc = {"mediaType": "application/vnd.oci.image.config.v1+json", **_put(blobs, json.dumps(cfg).encode())}
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": cdesc,
        "layers": descs,
    }
    mdesc = _put(blobs, json.dumps(manifest).encode())
    entry: dict[str, Any] = {"mediaType": "application/vnd.oci.image.manifest.v1+json", **mdesc}
    if ref:
        entry["annotations"] = {"org.opencontainers.image.ref.name": ref}
    with open(os.path.join(path, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [entry]}, f)
    return str(mdesc["digest"])


def isolated(*cmd: str) -> list[str]:
    """``cmd`` in a private mount namespace with fresh tmpfs over /var/lib,
    /run and /dev/shm: skopeo and podman keep caches and locks there
    (/var/lib/containers/cache, /run/libpod, /dev/shm/libpod_lock), which
    must not outlive a test."""
    script = (
        "mount -t tmpfs tmpfs /var/lib && mkdir /var/lib/containers && mount -t tmpfs tmpfs /run"
        ' && mount -t tmpfs tmpfs /dev/shm && exec "$@"'
    )
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", *cmd]


def start_registry(directory: str, auth: str = "") -> tuple[subprocess.Popen[bytes], str]:
    """Debian's docker-registry on a free 127.0.0.1 port, storage under
    ``directory``; ``auth`` is YAML for its ``auth:`` section.  Returns the
    process (terminate and wait for it) and host:port once it accepts."""
    import socket
    import time

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    config = os.path.join(directory, "registry.yml")
    with open(config, "w") as f:
        f.write(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {directory}/reg\n"
                f"http:\n  addr: 127.0.0.1:{port}\n{auth}")  # fmt: skip
    log = open(os.path.join(directory, "registry.log"), "wb")  # noqa: SIM115 - the process keeps it
    proc = subprocess.Popen(["docker-registry", "serve", config], stdout=log, stderr=log)
    log.close()
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc, f"127.0.0.1:{port}"
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                with open(os.path.join(directory, "registry.log")) as f:
                    raise RuntimeError(f"docker-registry did not start: {f.read()[-500:]}") from None
            time.sleep(0.05)
