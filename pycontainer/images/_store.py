"""The image store: content-addressed blobs in an OCI image layout, named
references, and unpacked layers shared by every image that uses them.

Layout under the data root (``/var/lib/pycontainer``)::

    images/oci-layout, images/index.json, images/blobs/sha256/<hex>
                         an OCI image layout (skopeo reads it as oci:<root>/images:<name:tag>)
    layers/sha256/<hex>  a layer unpacked, named by its DiffID
    l/<16 hex>           short symlinks to layers, for overlay's lowerdir
    lock                 flock'd by every change to the index or the layers

Blobs are verified against their digest when written and when read.
Every write goes to a temporary name and is renamed into place, so a crash
never leaves a half blob, half layer or half index that looks whole.
"""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import hashlib
import io
import json
import os
import platform
import re
import tarfile
import tempfile
import time
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any

import attrs

from ..errors import ImageError
from ._unpack import HashingReader, LayerLimits, remove_tree, unpack_layer

if TYPE_CHECKING:
    from _typeshed import SupportsRead

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
REF_ANNOTATION = "org.opencontainers.image.ref.name"

_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_NAME_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def _split(ref: str) -> tuple[str, str, bool]:
    """(name, tag, whether the name named a registry host)."""
    name, tag = ref, "latest"
    if ":" in ref.rsplit("/", 1)[-1]:
        name, tag = ref.rsplit(":", 1)
    first = name.split("/", 1)[0]
    has_domain = "/" in name and ("." in first or ":" in first or first == "localhost")
    return name, tag, has_domain


def normalize_ref(ref: str) -> str:
    """A reference in Docker's full form: ``busybox`` is
    ``docker.io/library/busybox:latest``, ``me/app:1`` is
    ``docker.io/me/app:1``; a name with a registry host (``localhost/x``,
    ``registry:5000/x``) keeps it.  ImageError for a malformed one."""
    if _DIGEST_RE.match(ref):
        return ref
    name, tag, has_domain = _split(ref)
    if has_domain:
        domain, path = name.split("/", 1)
    else:
        domain, path = "docker.io", name if "/" in name else f"library/{name}"
    if not _NAME_RE.match(path) or not _TAG_RE.match(tag) or not domain:
        raise ImageError(f"{ref!r} is not an image reference (name[:tag], lower case)")
    return f"{domain}/{path}:{tag}"


def local_ref(ref: str) -> str | None:
    """Where a short name may also live: ``localhost/<name>`` (podman's home
    for images made here, such as the built-in ``localhost/busybox``)."""
    name, tag, has_domain = _split(ref)
    return None if has_domain or _DIGEST_RE.match(ref) else normalize_ref(f"localhost/{name}:{tag}")


def host_platform() -> tuple[str, str]:
    """This machine's (os, architecture) in OCI's words, such as ("linux", "amd64")."""

    machine = platform.machine()
    return "linux", {
        "x86_64": "amd64",
        "aarch64": "arm64",
        "armv7l": "arm",
        "ppc64le": "ppc64le",
        "s390x": "s390x",
    }.get(machine, machine)


@attrs.frozen
class ImageConfig:
    """The runtime defaults an image carries (its config's ``config`` object)."""

    env: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    working_dir: str = ""
    user: str = ""
    exposed_ports: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()
    stop_signal: str = ""
    labels: dict[str, str] = attrs.field(factory=dict)

    @classmethod
    def from_json(cls, cfg: dict[str, Any]) -> ImageConfig:
        c = cfg.get("config") or {}
        return cls(
            env=tuple(c.get("Env") or ()),
            entrypoint=tuple(c.get("Entrypoint") or ()),
            cmd=tuple(c.get("Cmd") or ()),
            working_dir=c.get("WorkingDir") or "",
            user=c.get("User") or "",
            exposed_ports=tuple(sorted(c.get("ExposedPorts") or {})),
            volumes=tuple(sorted(c.get("Volumes") or {})),
            stop_signal=c.get("StopSignal") or "",
            labels=dict(c.get("Labels") or {}),
        )


@attrs.frozen
class Image:
    """An image in the store: its manifest's digest and what it names."""

    digest: str  # of the manifest
    manifest: dict[str, Any] = attrs.field(eq=False, repr=False)
    config_json: dict[str, Any] = attrs.field(eq=False, repr=False)
    refs: tuple[str, ...] = ()

    @property
    def config(self) -> ImageConfig:
        return ImageConfig.from_json(self.config_json)

    @property
    def config_digest(self) -> str:
        return str(self.manifest["config"]["digest"])

    @property
    def layers(self) -> list[dict[str, Any]]:
        return list(self.manifest.get("layers") or [])

    @property
    def diff_ids(self) -> list[str]:
        """The layers' DiffIDs, each checked to be a sha256 digest (they name
        directories and files: nothing else may pass)."""
        return [_check_digest(d) for d in (self.config_json.get("rootfs") or {}).get("diff_ids") or []]

    @property
    def id(self) -> str:
        """Docker's image id: the config's digest."""
        return self.config_digest


# Parsed JSON blobs by digest, shared by every store object (content-addressed:
# a digest's content never changes; callers must not mutate what they get).
_json_cache: dict[str, dict[str, Any]] = {}
# Short links of layer dirs (a layer's link never changes; gc forgets what it
# removes, and the layer dirs themselves are checked on every use).
_known_links: dict[str, str] = {}
_image_layers: dict[tuple[str, str], tuple[str, ...]] = {}


def _is_manifest(doc: dict[str, Any]) -> bool:
    """An image manifest (or index), not a config (which has a "config" object too)."""
    cfg = doc.get("config")
    return ("layers" in doc and isinstance(cfg, dict) and "digest" in cfg) or "manifests" in doc


def _check_digest(digest: str) -> str:
    if not isinstance(digest, str) or not _DIGEST_RE.match(digest):
        raise ImageError(f"{digest!r} is not a sha256 digest")
    return digest


class ImageStore:
    """Images under ``root`` (default: ``$PYCONTAINER_DATA_ROOT`` or /var/lib/pycontainer)."""

    def __init__(self, root: str | None = None, limits: LayerLimits | None = None) -> None:
        from ..rootfs import data_root

        self.root = data_root(root)
        self.limits = limits or LayerLimits()
        self.layout = os.path.join(self.root, "images")
        self.blobs = os.path.join(self.layout, "blobs", "sha256")
        self.layers_dir = os.path.join(self.root, "layers", "sha256")
        self.links = os.path.join(self.root, "l")
        if os.path.exists(os.path.join(self.layout, "index.json")) and os.path.isdir(self.links):
            if not os.stat(self.layout).st_mode & 0o077:
                return  # made before, private
        # Private to root: layers keep their setuid files and device nodes, and
        # blobs may be private images.  (A user namespace's root cannot reach
        # them: its containers get a copied rootfs, see Container.create.)
        os.makedirs(self.root, mode=0o711, exist_ok=True)
        for d in (
            self.layout,
            os.path.dirname(self.blobs),
            self.blobs,
            os.path.dirname(self.layers_dir),
            self.layers_dir,
            self.links,
        ):
            os.makedirs(d, mode=0o700, exist_ok=True)
            os.chmod(d, 0o700)
        oci_layout = os.path.join(self.layout, "oci-layout")
        if not os.path.exists(oci_layout):
            self._write_atomic(oci_layout, b'{"imageLayoutVersion": "1.0.0"}')
        if not os.path.exists(os.path.join(self.layout, "index.json")):
            with self._locked():
                if not os.path.exists(os.path.join(self.layout, "index.json")):
                    self._write_index({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []})

    # ---- locking and atomic files ------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(os.path.join(self.root, "lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _write_atomic(self, path: str, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
        try:
            os.write(fd, data)
            os.fsync(fd)
            os.fchmod(fd, 0o644)
        finally:
            os.close(fd)
        try:
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise

    # ---- blobs -------------------------------------------------------------------------

    def blob_path(self, digest: str) -> str:
        return os.path.join(self.blobs, _check_digest(digest)[len("sha256:") :])

    def has_blob(self, digest: str) -> bool:
        return os.path.exists(self.blob_path(digest))

    def touch(self, digest: str) -> None:
        """Mark a blob as just used: gc spares blobs younger than its grace,
        so one an import reuses cannot go before the import names it."""
        with contextlib.suppress(FileNotFoundError):
            os.utime(self.blob_path(digest))

    def put_blob(self, data: bytes | SupportsRead[bytes], digest: str | None = None) -> str:
        """Store a blob (bytes or a stream); verified against ``digest`` when
        given.  Returns its digest.  Idempotent."""
        if digest is not None and self.has_blob(digest):
            if not isinstance(data, (bytes, bytearray)):
                while data.read(1 << 20):  # consume the stream as a copy would
                    pass
            self.touch(digest)
            return digest
        fd, tmp = tempfile.mkstemp(dir=self.blobs, prefix=".tmp-")
        sha = hashlib.sha256()
        try:
            try:
                if isinstance(data, (bytes, bytearray)):
                    sha.update(data)
                    os.write(fd, data)
                else:
                    while True:
                        chunk = data.read(1 << 20)
                        if not chunk:
                            break
                        sha.update(chunk)
                        os.write(fd, chunk)
                os.fchmod(fd, 0o600)
                os.fsync(fd)  # the rename below is the commit point: the data first
            finally:
                os.close(fd)
            got = f"sha256:{sha.hexdigest()}"
            if digest is not None and got != digest:
                raise ImageError(f"blob does not match its digest: expected {digest}, got {got}")
            os.replace(tmp, self.blob_path(got))
            return got
        except OSError as e:
            raise ImageError(f"cannot store a blob under {self.blobs}: {os.strerror(e.errno or 0)}") from e
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def open_blob(self, digest: str) -> IO[bytes]:
        """A reader of the blob that raises ImageError at its end if the blob is corrupt."""
        path = self.blob_path(digest)
        try:
            f = open(path, "rb")  # noqa: SIM115 - handed to the caller
        except FileNotFoundError:
            raise ImageError(f"blob {digest} is not in the store") from None
        return io.BufferedReader(HashingReader(f, digest), 1 << 20)

    def read_blob(self, digest: str) -> bytes:
        with self.open_blob(digest) as f:
            return f.read()

    def read_json(self, digest: str) -> dict[str, Any]:
        """A JSON blob (manifest, index, config), parsed; cached by digest (its
        content cannot change), verified on first read."""
        cached = _json_cache.get(digest)
        if cached is not None and os.path.exists(self.blob_path(digest)):
            return cached
        try:
            if os.path.getsize(self.blob_path(digest)) > MAX_JSON:
                raise ImageError(f"blob {digest} is larger than {MAX_JSON} bytes: no manifest or config is")
        except FileNotFoundError:
            raise ImageError(f"blob {digest} is not in the store") from None
        try:
            data = json.loads(self.read_blob(digest))
        except ValueError as e:
            raise ImageError(f"blob {digest} is not JSON: {e}") from None
        if not isinstance(data, dict):
            raise ImageError(f"blob {digest} is not a JSON object")
        if len(_json_cache) > 1024:
            _json_cache.clear()
        _json_cache[digest] = data
        return data

    # ---- the index -------------------------------------------------------------------

    def _read_index(self) -> dict[str, Any]:
        with open(os.path.join(self.layout, "index.json"), encoding="utf-8") as f:
            return json.load(f)  # type: ignore[no-any-return]

    def _write_index(self, index: dict[str, Any]) -> None:
        self._write_atomic(os.path.join(self.layout, "index.json"), json.dumps(index, indent=1).encode())

    def _set_ref(self, ref: str, manifest_digest: str, media_type: str, size: int) -> None:
        """Point ``ref`` at a manifest (under the lock)."""
        index = self._read_index()
        entries = [m for m in index["manifests"] if (m.get("annotations") or {}).get(REF_ANNOTATION) != ref]
        entries.append(
            {"mediaType": media_type, "digest": manifest_digest, "size": size, "annotations": {REF_ANNOTATION: ref}}
        )
        index["manifests"] = entries
        self._write_index(index)

    def add_image(self, config: dict[str, Any] | bytes, layers: list[dict[str, Any]], ref: str | None) -> Image:
        """Store an image made here: its config (JSON, or its exact bytes),
        an OCI manifest over ``layers`` (descriptors of blobs already in the
        store), named ``ref``, or kept untagged (dangling) without one."""
        raw_config = config if isinstance(config, bytes) else json.dumps(config, sort_keys=True).encode()
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": self.put_blob(raw_config), "size": len(raw_config)},
            "layers": layers,
        }
        raw = json.dumps(manifest, sort_keys=True).encode()
        digest = self.put_blob(raw)
        if ref is None:
            self.keep(digest, len(raw))
        else:
            with self._locked():
                self._set_ref(normalize_ref(ref), digest, OCI_MANIFEST, len(raw))
        return self.get(digest)

    def layer_descriptor(
        self, digest: str, media_type: str = "application/vnd.oci.image.layer.v1.tar"
    ) -> dict[str, Any]:
        return {"mediaType": media_type, "digest": digest, "size": os.path.getsize(self.blob_path(digest))}

    def keep(self, digest: str, size: int, media_type: str = OCI_MANIFEST) -> None:
        """Record an untagged manifest in the index, so that it stays (as a
        dangling image) until removed."""
        with self._locked():
            index = self._read_index()
            if not any(m["digest"] == digest and not m.get("annotations") for m in index["manifests"]):
                index["manifests"].append({"mediaType": media_type, "digest": digest, "size": size})
                self._write_index(index)

    def refs(self) -> dict[str, str]:
        """name:tag -> manifest digest."""
        out = {}
        for m in self._read_index()["manifests"]:
            ref = (m.get("annotations") or {}).get(REF_ANNOTATION)
            if ref:
                out[ref] = m["digest"]
        return out

    def tag(self, ref: str, new: str) -> Image:
        image = self.get(ref)
        new = normalize_ref(new)
        with self._locked():
            raw = self.read_blob(image.digest)
            self._set_ref(new, image.digest, image.manifest.get("mediaType") or OCI_MANIFEST, len(raw))
        return self.get(new)

    def untag(self, ref: str) -> None:
        ref = normalize_ref(ref)
        with self._locked():
            index = self._read_index()
            before = len(index["manifests"])
            index["manifests"] = [
                m for m in index["manifests"] if (m.get("annotations") or {}).get(REF_ANNOTATION) != ref
            ]
            if len(index["manifests"]) == before:
                raise ImageError(f"no image {ref!r} in the store")
            self._write_index(index)

    def get(self, ref: str | Image) -> Image:
        """The image ``ref`` names: ``name[:tag]``, a manifest digest, or an
        image id (config digest)."""
        if isinstance(ref, Image):
            return ref
        refs = self.refs()
        if _DIGEST_RE.match(ref):
            # a manifest's digest, or an image id (its config's digest)
            digest = ref if ref in refs.values() else ""
            if not digest:
                digest = next((d for d in refs.values() if self._config_digest(d) == ref), "")
            if not digest and self.has_blob(ref) and _is_manifest(self.read_json(ref)):
                digest = ref  # an untagged (dangling) image
            if not digest:
                raise ImageError(f"no image {ref} in the store")
        else:
            norm = normalize_ref(ref)
            if norm not in refs:
                local = local_ref(ref)
                if local is None or local not in refs:
                    raise ImageError(f"no image {ref!r} ({norm}) in the store")
                norm = local
            digest = refs[norm]
        manifest = self.read_json(digest)
        if manifest.get("mediaType") in INDEX_TYPES or "manifests" in manifest:
            digest = self._pick_platform(manifest)
            manifest = self.read_json(digest)
        config = self.read_json(_check_digest(manifest["config"]["digest"]))
        names = tuple(sorted(r for r, d in refs.items() if d == digest))
        return Image(digest=digest, manifest=manifest, config_json=config, refs=names)

    def _config_digest(self, manifest_digest: str) -> str:
        try:
            return str(self.read_json(manifest_digest)["config"]["digest"])
        except (ImageError, KeyError, TypeError):
            return ""

    def _pick_platform(self, index: dict[str, Any]) -> str:
        os_, arch = host_platform()
        for m in index.get("manifests") or []:
            p = m.get("platform") or {}
            if p.get("os") == os_ and p.get("architecture") == arch:
                return _check_digest(m["digest"])
        raise ImageError(f"the image index has no manifest for {os_}/{arch}")

    # (from here on in the class, ``list`` names this method: annotations say builtins.list)
    def list(self) -> list[Image]:
        """Every image, tagged or not."""
        out = []
        seen = set()
        for ref in sorted(self.refs()):
            image = self.get(ref)
            if image.digest not in seen:
                seen.add(image.digest)
                out.append(image)
        for m in self._read_index()["manifests"]:
            if not m.get("annotations") and m["digest"] not in seen:
                seen.add(m["digest"])
                out.append(self.get(m["digest"]))
        return out

    # ---- import ---------------------------------------------------------------------

    def import_oci_layout(self, path: str, ref: str | None = None) -> builtins.list[Image]:
        """Import every tagged image of an OCI image layout (a directory or a
        tar of one).  ``ref`` names the image when the layout holds one
        untagged image (or renames a single tagged one)."""
        if os.path.isdir(path):
            return self._import_layout_dir(path, ref)
        with scratch_dir(self.root) as tmp:
            _safe_extract_tar(path, tmp, self.limits)
            return self._import_layout_dir(tmp, ref)

    def _import_layout_dir(self, path: str, ref: str | None) -> builtins.list[Image]:
        index = read_json_in(path, "index.json")

        def copy(digest: str) -> None:
            algo, _, hexd = _check_digest(digest).partition(":")
            with open_in(path, f"blobs/{algo}/{hexd}") as f:
                self.put_blob(f, digest)

        found: list[tuple[str | None, dict[str, Any]]] = []
        for m in index.get("manifests") or []:
            ann = m.get("annotations") or {}
            # containerd's full name if there; else OCI's ref.name when it is
            # a whole reference.  Tools (skopeo, umoci) set ref.name to a bare
            # tag ("latest"), which names no image: the caller's ref must.
            name = ann.get("io.containerd.image.name")
            rn = ann.get(REF_ANNOTATION)
            if name is None and rn and ("/" in rn or ":" in rn):
                name = rn
            found.append((name, m))
        if not found:
            raise ImageError(f"the OCI layout at {path} holds no image")
        if ref is not None and len(found) != 1:
            raise ImageError(
                f"the OCI layout at {path} holds {len(found)} images: name them in the layout, not with ref"
            )
        images = []
        for name, desc in found:
            digest = _check_digest(desc["digest"])
            copy(digest)
            manifest = self.read_json(digest)
            manifests = [manifest]
            if manifest.get("mediaType") in INDEX_TYPES or "manifests" in manifest:
                for sub in manifest.get("manifests") or []:
                    copy(sub["digest"])
                manifests = [self.read_json(sub["digest"]) for sub in manifest.get("manifests") or []]
            for mf in manifests:
                copy(mf["config"]["digest"])
                for layer in mf.get("layers") or []:
                    copy(layer["digest"])
            target = ref or name
            if target is None:
                raise ImageError(f"an image in {path} has no name (no {REF_ANNOTATION} with one): give it a ref")
            norm = normalize_ref(target)
            with self._locked():
                self._set_ref(norm, digest, desc.get("mediaType") or OCI_MANIFEST, int(desc.get("size") or 0))
            images.append(self.get(norm))
        return images

    def import_docker_archive(self, path: str) -> builtins.list[Image]:
        """Import every image of a ``docker save`` archive (tar or directory)."""
        from ._archive import import_docker_archive

        return import_docker_archive(self, path)

    def export_oci_layout(self, refs: str | builtins.list[str], dest: str) -> None:
        """Write images to an OCI layout (a directory, or a tar when ``dest`` ends in .tar)."""
        from ._archive import export_oci_layout

        export_oci_layout(self, [refs] if isinstance(refs, str) else refs, dest)

    def export_docker_archive(self, refs: str | builtins.list[str], dest: str) -> None:
        """Write images as a ``docker save`` archive."""
        from ._archive import export_docker_archive

        export_docker_archive(self, [refs] if isinstance(refs, str) else refs, dest)

    def import_rootfs(
        self, source: str | IO[bytes], ref: str | None = None, config: dict[str, Any] | None = None
    ) -> Image:
        """``docker import``: a one-layer image of a root filesystem tarball
        (a path or a stream; gzip and zstd are read too), with ``config``
        (Cmd, Env, ...) as its config.  An archive that is not a tar is an
        ImageError; nothing of it stays."""
        from ._unpack import open_layer_stream

        close = isinstance(source, str)
        try:
            f = open(source, "rb") if isinstance(source, str) else source  # noqa: SIM115 - closed below
        except OSError as e:
            raise ImageError(f"cannot read {source}: {e.strerror}") from None
        fd, tmp = tempfile.mkstemp(dir=self.blobs, prefix=".import-")
        try:
            with os.fdopen(fd, "wb") as out:
                stream = open_layer_stream(f)
                for chunk in iter(lambda: stream.read(1 << 20), b""):
                    out.write(chunk)
            import tarfile

            if not tarfile.is_tarfile(tmp):
                raise ImageError(f"{source if close else 'the input'} is not a tar archive")
            with open(tmp, "rb") as t:
                digest = self.put_blob(t)
        finally:
            if close:
                f.close()
            if os.path.exists(tmp):
                os.unlink(tmp)
        os_, arch = host_platform()
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        cfg = {
            "architecture": arch,
            "os": os_,
            "created": created,
            "config": dict(config or {}),
            "rootfs": {"type": "layers", "diff_ids": [digest]},
            "history": [{"created": created, "created_by": "pycontainer import"}],
        }
        return self.add_image(cfg, [self.layer_descriptor(digest)], ref)

    def pull(self, ref: str, **kwargs: Any) -> Image:
        """Pull from a registry (see images._registry.pull for the options:
        username, password, insecure, platform, progress)."""
        from ._registry import pull

        return pull(self, ref, **kwargs)

    def push(self, ref: str, dest: str | None = None, **kwargs: Any) -> str:
        """Push to a registry (see images._registry.push: username, password,
        insecure, chunk_size, progress); returns the manifest digest."""
        from ._registry import push

        return push(self, ref, dest, **kwargs)

    # ---- holders, removal, garbage collection ---------------------------------------

    def _holders_dir(self, digest: str) -> str:
        return os.path.join(self.root, "holders", _check_digest(digest)[len("sha256:") :])

    def hold(self, digest: str, container_dir: str) -> str:
        """Record that the container at ``container_dir`` runs on the image
        (``digest``): removal refuses it, GC keeps it.  Returns the holder file."""
        d = self._holders_dir(digest)
        os.makedirs(d, mode=0o700, exist_ok=True)
        path = os.path.join(d, hashlib.sha256(container_dir.encode()).hexdigest()[:32])
        self._write_atomic(path, container_dir.encode())
        return path

    @staticmethod
    def release(holder: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(holder)

    def holders(self, digest: str) -> builtins.list[str]:
        """State directories of the containers that hold the image (stale
        records, whose container is gone, are dropped on the way)."""
        d = self._holders_dir(digest)
        out = []
        for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
            path = os.path.join(d, name)
            try:
                with open(path, encoding="utf-8") as f:
                    cdir = f.read()
                age = time.time() - os.stat(path).st_mtime
            except FileNotFoundError:
                continue
            # a container being created has no state.json yet: a young record counts
            if os.path.exists(os.path.join(cdir, "state.json")) or age < 60:
                out.append(cdir)
                continue
            self.release(path)
        return out

    def remove(self, ref: str) -> None:
        """Remove a name, or (by digest) an image with all its names.  As
        ``docker rmi``: refused when it would leave nameless an image a
        container runs on (or was made from and not yet deleted).  Blobs
        and layers go at the next ``gc``."""
        image = self.get(ref)
        with self._locked():
            index = self._read_index()
            if _DIGEST_RE.match(ref):
                drop = [m for m in index["manifests"] if m["digest"] == image.digest]
            else:
                names = self.refs()
                name = normalize_ref(ref)
                if name not in names:
                    name = local_ref(ref) or name
                drop = [m for m in index["manifests"] if (m.get("annotations") or {}).get(REF_ANNOTATION) == name]
            left = [m for m in index["manifests"] if m not in drop and m["digest"] == image.digest]
            users = self.holders(image.digest)
            if users and not left:
                raise ImageError(f"image {ref!r} is in use by container {os.path.basename(users[0])!r} ({users[0]})")
            index["manifests"] = [m for m in index["manifests"] if m not in drop]
            self._write_index(index)

    def gc(self, grace: float = 600.0) -> dict[str, int]:
        """Remove blobs, unpacked layers and short links no image in the
        index (tagged or dangling) nor any container holding one needs.
        Blobs younger than ``grace`` seconds stay: an import may be writing
        them before it names them.  Returns what was removed."""
        with self._locked():
            manifests = {m["digest"] for m in self._read_index()["manifests"]}
            holders_root = os.path.join(self.root, "holders")
            for hexd in os.listdir(holders_root) if os.path.isdir(holders_root) else []:
                if self.holders(f"sha256:{hexd}"):
                    manifests.add(f"sha256:{hexd}")
                else:
                    with contextlib.suppress(OSError):
                        os.rmdir(os.path.join(holders_root, hexd))
            blobs: set[str] = set()
            layers: set[str] = set()
            for digest in manifests:
                try:
                    doc = self.read_json(digest)
                except ImageError:
                    continue
                todo = [doc]
                blobs.add(digest)
                if "manifests" in doc:
                    todo = []
                    for sub in doc.get("manifests") or []:
                        blobs.add(sub["digest"])
                        with contextlib.suppress(ImageError):
                            todo.append(self.read_json(sub["digest"]))
                for mf in todo:
                    if "config" not in mf:
                        continue
                    blobs.add(mf["config"]["digest"])
                    blobs.update(layer["digest"] for layer in mf.get("layers") or [])
                    with contextlib.suppress(ImageError):
                        cfg = self.read_json(mf["config"]["digest"])
                        layers.update(d.split(":")[1] for d in (cfg.get("rootfs") or {}).get("diff_ids") or [])
            removed = {"blobs": 0, "bytes": 0, "layers": 0, "links": 0}
            now = time.time()
            for name in os.listdir(self.blobs):
                path = os.path.join(self.blobs, name)
                if f"sha256:{name}" in blobs:
                    continue
                st = os.lstat(path)
                if now - st.st_mtime < grace:
                    continue
                os.unlink(path)
                removed["blobs"] += 1
                removed["bytes"] += st.st_size
            for name in os.listdir(self.layers_dir):
                if name in layers or (
                    name.startswith(".tmp-") and now - os.lstat(os.path.join(self.layers_dir, name)).st_mtime < grace
                ):
                    continue
                remove_tree(os.path.join(self.layers_dir, name))
                _known_links.pop(os.path.join(self.layers_dir, name), None)
                removed["layers"] += 1
            for name in os.listdir(self.links):
                link = os.path.join(self.links, name)
                if not os.path.exists(link):
                    os.unlink(link)
                    removed["links"] += 1
            for layer in [k for k, v in _known_links.items() if not os.path.exists(os.path.join(self.root, v))]:
                del _known_links[layer]
            return removed

    # ---- layers ----------------------------------------------------------------------

    def layer_dir(self, diff_id: str) -> str:
        return os.path.join(self.layers_dir, _check_digest(diff_id)[len("sha256:") :])

    def unpack(self, ref: str | Image) -> builtins.list[str]:
        """Unpack the image's layers (each once, shared by every image using
        it) and return their directories, bottom layer first."""
        image = self.get(ref)
        cached = _image_layers.get((self.root, image.digest))
        if cached is not None and all(os.path.isdir(d) for d in cached):  # another process's gc
            return list(cached)
        layers = image.layers
        diff_ids = image.diff_ids
        if len(diff_ids) != len(layers):
            raise ImageError(f"image {image.digest}: {len(layers)} layers but {len(diff_ids)} diff_ids")
        pairs = [
            (_check_digest(desc["digest"]), _check_digest(diff_id))
            for desc, diff_id in zip(layers, diff_ids, strict=True)
        ]
        missing = [p for p in pairs if not os.path.isdir(self.layer_dir(p[1]))]
        if len(missing) > 1:
            # Layers are independent: unpack them at once (zlib, zstd and
            # sha256 let go of the GIL; the disk works meanwhile).
            import concurrent.futures

            workers = min(4, os.cpu_count() or 1, len(missing))
            with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
                for fut in [pool.submit(self._unpack_layer, blob, diff_id) for blob, diff_id in missing]:
                    fut.result()
        dirs = [self._unpack_layer(blob, diff_id) for blob, diff_id in pairs]
        _image_layers[(self.root, image.digest)] = tuple(dirs)
        return dirs

    def _unpack_layer(self, blob: str, diff_id: str) -> str:
        final = self.layer_dir(diff_id)
        if os.path.isdir(final):
            return final
        tmp = tempfile.mkdtemp(dir=self.layers_dir, prefix=".tmp-")
        try:
            os.chmod(tmp, 0o755)
            with self.open_blob(blob) as f:
                result = unpack_layer(f, tmp, self.limits)
                f.read()  # the blob's end: its digest is checked there
            if result.diff_id != diff_id:
                raise ImageError(f"layer {blob} unpacks to {result.diff_id}, but the image says {diff_id}")
            try:
                os.rename(tmp, final)
            except OSError:
                if not os.path.isdir(final):  # else another process won the race: use theirs
                    raise
        finally:
            if os.path.exists(tmp):
                remove_tree(tmp)
        return final

    def short_link(self, layer: str) -> str:
        """``l/<16 hex>``, a short path to a layer directory (relative to the
        store root), so that many layers fit in overlay's mount options."""
        known = _known_links.get(layer)
        if known is not None:
            return known
        name = os.path.basename(layer)[:16]
        link = os.path.join(self.links, name)
        if not os.path.islink(link):
            with contextlib.suppress(FileExistsError):
                os.symlink(os.path.relpath(layer, self.links), link)
        _known_links[layer] = f"l/{name}"
        return f"l/{name}"


@contextlib.contextmanager
def scratch_dir(where: str) -> Iterator[str]:
    """A temporary directory under ``where``, removed however deep its tree."""
    tmp = tempfile.mkdtemp(dir=where, prefix=".import-")
    try:
        yield tmp
    finally:
        remove_tree(tmp)


def open_in(base: str, rel: str, limit: int | None = None) -> IO[bytes]:
    """A regular file at ``base/rel``: symlinks on the way are followed by
    hand and never leave ``base`` (an archive names its own files, never the
    host's), fifos and devices are refused; read no further than ``limit``
    bytes when given."""
    from ..rootfs import open_in_root

    if ".." in rel.split("/"):
        raise ImageError(f"{rel!r} is not a path inside {base}")
    try:
        fd = open_in_root(base, rel)
    except OSError as e:
        raise ImageError(f"{base}/{rel}: {e.strerror or e}") from None
    os.set_blocking(fd, True)
    f = os.fdopen(fd, "rb")
    if limit is not None and os.fstat(fd).st_size > limit:
        f.close()
        raise ImageError(f"{base}/{rel} is larger than {limit} bytes")
    return f


MAX_JSON = 4 << 20


def read_json_in(base: str, rel: str) -> Any:
    with open_in(base, rel, MAX_JSON) as f:
        try:
            return json.loads(f.read())
        except ValueError as e:
            raise ImageError(f"{base}/{rel} is not JSON: {e}") from None


def _safe_extract_tar(path: str, dest: str, limits: LayerLimits) -> None:
    """Extract an archive of an image layout (or a docker save) safely: the
    layer unpacker's rules, and no devices or fifos."""
    try:
        with open(path, "rb") as f:
            unpack_layer(f, dest, limits, archive=True)
    except OSError as e:
        raise ImageError(f"cannot read {path}: {os.strerror(e.errno or 0)}") from None
    except tarfile.TarError as e:
        raise ImageError(f"{path} is not a tar archive: {e}") from None
