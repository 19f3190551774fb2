"""A client for the OCI distribution API v2: pull and push.

Manifests (OCI and Docker schema2, image indexes and manifest lists with
platform selection) and blobs are checked against their digests; blobs the
store (pull) or the registry (push) already has are skipped; blobs go up in
one PUT or in chunks (PATCH with Content-Range).  Authentication: a
registry's 401 says how (``WWW-Authenticate``): Basic with the credentials,
or Bearer with a token from the named realm (anonymous, or with the
credentials), cached per scope.

Registries on localhost are spoken to over plain HTTP; others over HTTPS
unless ``insecure=True``.
"""

from __future__ import annotations

import base64
import concurrent.futures
import hashlib
import http.client
import json
import os
import re
import urllib.parse
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

from ..errors import ImageError
from ._progress import Progress, ProgressCallback, reporting
from ._store import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    INDEX_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
    Image,
    _check_digest,
    host_platform,
    normalize_ref,
)

if TYPE_CHECKING:
    from ._store import ImageStore

ACCEPT = ", ".join((OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST))
MAX_DOCUMENT = 4 << 20  # manifests, indexes, tokens, error bodies: read no more
_CHALLENGE_RE = re.compile(r'(\w+)="([^"]*)"')


def split_ref(ref: str) -> tuple[str, str, str]:
    """(registry host, repository, tag or digest) of a reference; Docker Hub's
    docker.io is registry-1.docker.io."""
    if "@" in ref:
        name, _, digest = ref.partition("@")
        host, _, repo = normalize_ref(name).rpartition(":")[0].partition("/")
        return ("registry-1.docker.io" if host == "docker.io" else host), repo, _check_digest(digest)
    full = normalize_ref(ref)
    name, _, tag = full.rpartition(":")
    host, _, repo = name.partition("/")
    return ("registry-1.docker.io" if host == "docker.io" else host), repo, tag


class Registry:
    """One registry host: requests with the authentication it asks for."""

    def __init__(
        self,
        host: str,
        *,
        username: str | None = None,
        password: str | None = None,
        insecure: bool | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.host = host
        hostname = host.rsplit(":", 1)[0].strip("[]")
        if insecure is None:
            insecure = hostname in ("localhost", "127.0.0.1", "::1")
        self.scheme = "http" if insecure else "https"
        self.creds = (username, password) if username is not None else None
        self.timeout = timeout
        self._tokens: dict[str, str] = {}
        self._basic = False

    # ---- HTTP ------------------------------------------------------------------------

    def _conn(self, netloc: str, scheme: str) -> http.client.HTTPConnection:
        if scheme == "https":
            return http.client.HTTPSConnection(netloc, timeout=self.timeout)
        return http.client.HTTPConnection(netloc, timeout=self.timeout)

    def _auth_header(self, scope: str) -> dict[str, str]:
        if scope in self._tokens:
            return {"Authorization": f"Bearer {self._tokens[scope]}"}
        if self._basic and self.creds:
            raw = f"{self.creds[0]}:{self.creds[1]}".encode()
            return {"Authorization": "Basic " + base64.b64encode(raw).decode()}
        return {}

    def request(
        self,
        method: str,
        url: str,
        *,
        scope: str,
        headers: dict[str, str] | None = None,
        body: bytes | IO[bytes] | None = None,
        ok: tuple[int, ...] = (200,),
        stream: bool = False,
    ) -> http.client.HTTPResponse:
        """``url`` is a path (/v2/...) or an absolute URL (a Location).  On 401
        the challenge is answered once; redirects are followed (blobs are
        often served from elsewhere)."""
        for attempt in range(2):
            target = url
            for _hop in range(5):
                parts = urllib.parse.urlsplit(target)
                scheme = parts.scheme or self.scheme
                netloc = parts.netloc or self.host
                path = urllib.parse.urlunsplit(("", "", parts.path, parts.query, ""))
                h = dict(headers or {})
                if netloc == self.host and scheme == self.scheme:  # credentials never leave the registry
                    h.update(self._auth_header(scope))
                conn = self._conn(netloc, scheme)
                try:
                    if hasattr(body, "seek"):
                        body.seek(0)  # type: ignore[union-attr]
                    conn.request(method, path, body=body, headers=h)
                    resp = conn.getresponse()
                except OSError as e:
                    conn.close()
                    raise ImageError(f"{method} {scheme}://{netloc}{parts.path}: {e}") from None
                if resp.status in (301, 302, 303, 307, 308) and resp.getheader("Location"):
                    target = urllib.parse.urljoin(f"{scheme}://{netloc}{parts.path}", resp.getheader("Location", ""))
                    resp.read(MAX_DOCUMENT)
                    conn.close()
                    continue
                break
            if resp.status == 401 and attempt == 0 and netloc == self.host and scheme == self.scheme:
                challenge = resp.getheader("WWW-Authenticate", "")
                resp.read(MAX_DOCUMENT)
                conn.close()
                self._answer(challenge, scope)
                continue
            if resp.status not in ok:
                detail = resp.read(4096).decode(errors="replace").strip()
                conn.close()
                raise ImageError(f"{method} {self.host}{parts.path}: HTTP {resp.status} {resp.reason}: {detail[:300]}")
            if not stream:
                data = resp.read(MAX_DOCUMENT + 1)
                conn.close()
                if len(data) > MAX_DOCUMENT:
                    raise ImageError(
                        f"{method} {self.host}{parts.path}: the answer is larger than {MAX_DOCUMENT} bytes"
                    )
                resp._pyc_body = data  # type: ignore[attr-defined]
            return resp
        raise ImageError(f"{self.host}: authentication failed for {scope}")

    def _answer(self, challenge: str, scope: str) -> None:
        kind, _, params = challenge.partition(" ")
        fields = dict(_CHALLENGE_RE.findall(params))
        if kind.lower() == "basic":
            if not self.creds:
                raise ImageError(f"{self.host} wants a user name and password")
            self._basic = True
            return
        if kind.lower() != "bearer" or "realm" not in fields:
            raise ImageError(f"{self.host}: an authentication this client does not speak: {challenge!r}")
        query = {"service": fields.get("service", ""), "scope": fields.get("scope", scope)}
        url = fields["realm"] + "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v})
        parts = urllib.parse.urlsplit(url)
        same_host = parts.netloc == self.host
        if parts.scheme != "https" and not (parts.scheme == "http" == self.scheme and same_host):
            raise ImageError(
                f"{self.host} sends us for a token to {fields['realm']!r}: only https (or the registry itself)"
            )
        conn = self._conn(parts.netloc, parts.scheme)
        h = {}
        if self.creds:
            raw = f"{self.creds[0]}:{self.creds[1]}".encode()
            h["Authorization"] = "Basic " + base64.b64encode(raw).decode()
        try:
            conn.request("GET", urllib.parse.urlunsplit(("", "", parts.path, parts.query, "")), headers=h)
            resp = conn.getresponse()
            data = resp.read(MAX_DOCUMENT + 1)
        except OSError as e:
            raise ImageError(f"token from {fields['realm']}: {e}") from None
        finally:
            conn.close()
        if resp.status != 200:
            raise ImageError(f"token from {fields['realm']}: HTTP {resp.status} (wrong credentials?)")
        try:
            doc = json.loads(data)
            token = doc.get("token") or doc["access_token"]
        except (ValueError, KeyError):
            raise ImageError(f"token from {fields['realm']}: no token in the answer") from None
        self._tokens[scope] = token


def _body(resp: http.client.HTTPResponse) -> bytes:
    return resp._pyc_body  # type: ignore[attr-defined, no-any-return]


def _digest_of(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def pull(
    store: ImageStore,
    ref: str,
    *,
    username: str | None = None,
    password: str | None = None,
    insecure: bool | None = None,
    platform: tuple[str, str] | None = None,
    progress: bool | None | ProgressCallback = None,
) -> Image:
    """Pull ``ref`` into the store under its name; returns the image.
    ``progress``: a callable given a :class:`Progress` per layer event
    (from several threads: blobs come in parallel), True for Docker's
    progress bars on stderr, None for them where stderr is a terminal."""
    host, repo, tag = split_ref(ref)
    reg = Registry(host, username=username, password=password, insecure=insecure)
    scope = f"repository:{repo}:pull"
    with reporting(progress) as show:
        return _pull(store, ref, reg, host, repo, tag, scope, platform, show)


def _pull(
    store: ImageStore,
    ref: str,
    reg: Registry,
    host: str,
    repo: str,
    tag: str,
    scope: str,
    platform: tuple[str, str] | None,
    show: ProgressCallback | None,
) -> Image:
    raw, media, digest = _get_manifest(reg, repo, tag, scope)
    doc = json.loads(raw)
    if media in INDEX_TYPES or "manifests" in doc:
        os_, arch = platform or host_platform()
        pick = next(
            (m for m in doc.get("manifests") or [] if (m.get("platform") or {}).get("os") == os_
             and (m.get("platform") or {}).get("architecture") == arch),
            None,
        )  # fmt: skip
        if pick is None:
            raise ImageError(f"{ref}: the image index has no manifest for {os_}/{arch}")
        raw, media, digest = _get_manifest(reg, repo, _check_digest(pick["digest"]), scope)
        doc = json.loads(raw)
    if "config" not in doc:
        raise ImageError(f"{ref}: the registry's manifest ({media}) is not an image manifest")
    layers = {_check_digest(desc["digest"]) for desc in doc.get("layers") or []}
    wanted = []
    for desc in [doc["config"], *(doc.get("layers") or [])]:
        d = _check_digest(desc["digest"])
        if not store.has_blob(d):
            wanted.append(desc)
            if show is not None and d in layers:  # (the config is not shown, as Docker's)
                show(Progress(d, "Waiting", 0, int(desc.get("size") or 0)))
        elif show is not None and d in layers:
            show(Progress(d, "Already exists"))

    def fetch(desc: dict[str, Any]) -> None:
        d = desc["digest"]
        if not isinstance(desc.get("size"), int) or desc["size"] <= 0:
            raise ImageError(f"{ref}: blob {d} has no size in its manifest (a registry could send without end)")
        resp = reg.request("GET", f"/v2/{repo}/blobs/{d}", scope=scope, stream=True)
        size = desc["size"]
        tell = (lambda n: show(Progress(d, "Downloading", n, size))) if show is not None and d in layers else None
        store.put_blob(_Counting(resp, tell, size, d), d)
        if tell is not None and show is not None:
            show(Progress(d, "Pull complete", size, size))

    # Blobs in parallel, as skopeo does: the socket reads and the hashing
    # let go of the GIL.
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        for fut in [pool.submit(fetch, desc) for desc in wanted]:
            fut.result()
    store.put_blob(raw, digest)
    if "@" in ref:  # by digest: no tag moves; the image stays, untagged
        store.keep(digest, len(raw), media or OCI_MANIFEST)
        return store.get(digest)
    name = normalize_ref(ref)
    with store._locked():
        store._set_ref(name, digest, media or OCI_MANIFEST, len(raw))
    return store.get(name)


class _Counting:
    """Reads through, telling how far it got; no further than the size the
    manifest gave (a registry cannot fill the disk with one blob)."""

    def __init__(self, f: Any, tell: Callable[[int], None] | None, size: int, what: str) -> None:
        self._f = f
        self._tell = tell
        self._n = 0
        self._size = size
        self._what = what

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        self._n += len(data)
        if self._n > self._size:
            raise ImageError(f"blob {self._what} is longer than the {self._size} bytes its manifest says")
        if self._tell is not None:
            self._tell(self._n)
        return data  # type: ignore[no-any-return]


def _get_manifest(reg: Registry, repo: str, ref: str, scope: str) -> tuple[bytes, str, str]:
    resp = reg.request("GET", f"/v2/{repo}/manifests/{ref}", scope=scope, headers={"Accept": ACCEPT})
    raw = _body(resp)
    digest = _digest_of(raw)
    claimed = resp.getheader("Docker-Content-Digest")
    if ref.startswith("sha256:") and digest != ref:
        raise ImageError(f"manifest {ref} from {reg.host} hashes to {digest}")
    if claimed and claimed != digest:
        raise ImageError(f"manifest {repo}:{ref} from {reg.host} hashes to {digest}, not the {claimed} it claims")
    media = (resp.getheader("Content-Type") or "").split(";")[0].strip()
    try:
        media = json.loads(raw).get("mediaType") or media
    except ValueError:
        raise ImageError(f"manifest {repo}:{ref} from {reg.host} is not JSON") from None
    return raw, media, digest


def push(
    store: ImageStore,
    ref: str,
    dest: str | None = None,
    *,
    username: str | None = None,
    password: str | None = None,
    insecure: bool | None = None,
    chunk_size: int | None = None,
    progress: bool | None | ProgressCallback = None,
) -> str:
    """Push the image ``ref`` to ``dest`` (default: ``ref`` itself, whose
    name says the registry).  Blobs go in one PUT, or in ``chunk_size``
    chunks.  Returns the manifest's digest.  ``progress`` as :func:`pull`'s."""
    image = store.get(ref)
    host, repo, tag = split_ref(dest or ref)
    reg = Registry(host, username=username, password=password, insecure=insecure)
    scope = f"repository:{repo}:pull,push"
    with reporting(progress) as show:
        return _push(store, image, reg, host, repo, tag, scope, chunk_size, show)


def _push(
    store: ImageStore,
    image: Image,
    reg: Registry,
    host: str,
    repo: str,
    tag: str,
    scope: str,
    chunk_size: int | None,
    tell: ProgressCallback | None,
) -> str:
    layers = {_check_digest(desc["digest"]) for desc in image.layers}

    def show(d: str, status: str, current: int = 0, total: int = 0) -> None:
        if tell is not None and d in layers:  # (the config is not shown, as Docker's)
            tell(Progress(d, status, current, total))

    for desc in image.layers:
        show(_check_digest(desc["digest"]), "Preparing")
    for desc in [image.manifest["config"], *image.layers]:
        d = _check_digest(desc["digest"])
        have = reg.request("HEAD", f"/v2/{repo}/blobs/{d}", scope=scope, ok=(200, 404))
        if have.status == 200:
            show(d, "Layer already exists")
            continue
        start = reg.request("POST", f"/v2/{repo}/blobs/uploads/", scope=scope, ok=(202,))
        location = start.getheader("Location") or ""
        size = os.path.getsize(store.blob_path(d))
        with store.open_blob(d) as f:
            if chunk_size is None:
                data = f.read()
                show(d, "Pushing", 0, size)
                reg.request("PUT", _with_digest(location, d), scope=scope, body=data, ok=(201,),
                            headers={"Content-Type": "application/octet-stream", "Content-Length": str(len(data))})  # fmt: skip
            else:
                offset = 0
                while chunk := f.read(chunk_size):
                    r = reg.request("PATCH", location, scope=scope, body=chunk, ok=(202,), headers={
                        "Content-Type": "application/octet-stream",
                        "Content-Length": str(len(chunk)),
                        "Content-Range": f"{offset}-{offset + len(chunk) - 1}",
                    })  # fmt: skip
                    location = r.getheader("Location") or location
                    offset += len(chunk)
                    show(d, "Pushing", offset, size)
                reg.request("PUT", _with_digest(location, d), scope=scope, body=b"", ok=(201,),
                            headers={"Content-Length": "0"})  # fmt: skip
        show(d, "Pushed", size, size)
    raw = store.read_blob(image.digest)
    media = image.manifest.get("mediaType") or OCI_MANIFEST
    resp = reg.request("PUT", f"/v2/{repo}/manifests/{tag}", scope=scope, body=raw, ok=(201,),
                       headers={"Content-Type": media, "Content-Length": str(len(raw))})  # fmt: skip
    claimed = resp.getheader("Docker-Content-Digest")
    if claimed and claimed != image.digest:
        raise ImageError(f"{host} stored the manifest as {claimed}, not {image.digest}")
    return image.digest


def _with_digest(location: str, digest: str) -> str:
    return location + ("&" if "?" in location else "?") + urllib.parse.urlencode({"digest": digest})
