"""The registry client: against Debian's docker-registry on 127.0.0.1 (with
and without htpasswd auth), skopeo both ways, and a small fake registry for
what docker-registry does not do here (bearer tokens, image indexes,
corrupt blobs)."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import shutil
import subprocess
import threading

import pytest

from pycontainer import ImageError
from pycontainer.images import ImageStore

from .imagetools import E, isolated, make_layout, start_registry

pytestmark = pytest.mark.skipif(shutil.which("docker-registry") is None, reason="docker-registry is not installed")


@pytest.fixture(params=["open", "htpasswd"])
def registry(request, tmp_path):
    """A docker-registry on 127.0.0.1 with filesystem storage in tmp_path:
    (host:port, credentials or None)."""
    auth = ""
    creds = None
    if request.param == "htpasswd":
        import bcrypt

        (tmp_path / "htpasswd").write_text("alice:" + bcrypt.hashpw(b"s3cret", bcrypt.gensalt(5)).decode() + "\n")
        auth = f"auth:\n  htpasswd:\n    realm: test\n    path: {tmp_path}/htpasswd\n"
        creds = ("alice", "s3cret")
    proc, host = start_registry(str(tmp_path), auth)
    try:
        yield host, creds
    finally:
        proc.terminate()
        proc.wait(10)


def _creds(creds):
    return {"username": creds[0], "password": creds[1]} if creds else {}


def skopeo(*args):
    r = subprocess.run(isolated("skopeo", *args), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout


LAYERS = [[E("etc", "dir"), E("etc/hello", data=b"hello")], [E("big", data=os.urandom(300_000))]]


@pytest.mark.parametrize("chunk", [None, 64 * 1024])
def test_push_and_pull_round_trip(tmp_path, registry, chunk):
    host, creds = registry
    store = ImageStore(str(tmp_path / "a"))
    make_layout(str(tmp_path / "lay"), LAYERS, ref="x")
    (image,) = store.import_oci_layout(str(tmp_path / "lay"), ref=f"{host}/team/app:1")
    assert store.push(f"{host}/team/app:1", chunk_size=chunk, **_creds(creds)) == image.digest
    other = ImageStore(str(tmp_path / "b"))
    pulled = other.pull(f"{host}/team/app:1", **_creds(creds))
    assert pulled.digest == image.digest and pulled.diff_ids == image.diff_ids
    (top, _) = reversed(other.unpack(pulled))
    assert len(open(os.path.join(top, "big"), "rb").read()) == 300_000


def test_a_second_push_skips_the_blobs_the_registry_has(tmp_path, registry, monkeypatch):
    from pycontainer.images import _registry

    host, creds = registry
    store = ImageStore(str(tmp_path / "a"))
    make_layout(str(tmp_path / "lay"), LAYERS, ref="x")
    store.import_oci_layout(str(tmp_path / "lay"), ref=f"{host}/team/app:1")
    store.push(f"{host}/team/app:1", **_creds(creds))
    calls = []
    real = _registry.Registry.request

    def spy(self, method, url, **kw):
        calls.append(method)
        return real(self, method, url, **kw)

    monkeypatch.setattr(_registry.Registry, "request", spy)
    store.push(f"{host}/team/app:1", f"{host}/team/app:2", **_creds(creds))
    assert "POST" not in calls and calls.count("HEAD") == 3 and calls[-1] == "PUT"


def test_skopeo_both_ways(tmp_path, registry):
    host, creds = registry
    tls = ["--tls-verify=false"]
    dauth = [f"--dest-creds={creds[0]}:{creds[1]}"] if creds else []
    sauth = [f"--src-creds={creds[0]}:{creds[1]}"] if creds else []
    iauth = [f"--creds={creds[0]}:{creds[1]}"] if creds else []
    # skopeo pushes, we pull
    make_layout(str(tmp_path / "lay"), LAYERS, ref="latest")
    skopeo("copy", "--dest-tls-verify=false", *dauth, f"oci:{tmp_path}/lay:latest", f"docker://{host}/from/skopeo:1")
    want = json.loads(skopeo("inspect", *tls, *iauth, f"docker://{host}/from/skopeo:1"))["Digest"]
    store = ImageStore(str(tmp_path / "s"))
    assert store.pull(f"{host}/from/skopeo:1", **_creds(creds)).digest == want
    # we push, skopeo reads it back and copies it to an OCI dir
    store.tag(f"{host}/from/skopeo:1", f"{host}/from/us:2")
    digest = store.push(f"{host}/from/us:2", **_creds(creds))
    assert json.loads(skopeo("inspect", *tls, *iauth, f"docker://{host}/from/us:2"))["Digest"] == digest
    skopeo("copy", "--src-tls-verify=false", *sauth, f"docker://{host}/from/us:2", f"oci:{tmp_path}/back:us")
    index = json.loads((tmp_path / "back" / "index.json").read_text())
    assert index["manifests"][0]["digest"] == digest


def test_wrong_or_missing_credentials(tmp_path, registry):
    host, creds = registry
    if creds is None:
        pytest.skip("this registry asks for none")
    store = ImageStore(str(tmp_path / "s"))
    with pytest.raises(ImageError, match="user name and password"):
        store.pull(f"{host}/nothing:1")
    with pytest.raises(ImageError, match="401"):
        store.pull(f"{host}/nothing:1", username="alice", password="wrong")


def test_pulling_what_is_not_there(tmp_path, registry):
    host, creds = registry
    with pytest.raises(ImageError, match="404"):
        ImageStore(str(tmp_path / "s")).pull(f"{host}/nothing/here:1", **_creds(creds))


# ---- a fake registry: bearer tokens, indexes, lies ---------------------------------------


class FakeRegistry:
    """Serves what ``routes`` says: path -> (status, headers, body); asks for
    a bearer token from its own /token first."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, dict[str, str], bytes]] = {}
        self.token_requests: list[str] = []
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                path, _, query = self.path.partition("?")
                if path == "/token":
                    fake.token_requests.append(query)
                    self._send(200, {"Content-Type": "application/json"}, json.dumps({"token": "tok123"}).encode())
                    return
                if self.headers.get("Authorization") != "Bearer tok123":
                    realm = f"http://127.0.0.1:{fake.port}/token"
                    challenge = f'Bearer realm="{realm}",service="fake",scope="repository:lib/img:pull"'
                    self._send(401, {"WWW-Authenticate": challenge}, b"")
                    return
                status, headers, body = fake.routes.get(path, (404, {}, b"not found"))
                self._send(status, headers, body)

            def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def serve_layout(self, layout: str, repo: str, tag: str) -> None:
        blobs = os.path.join(layout, "blobs", "sha256")
        for name in os.listdir(blobs):
            with open(os.path.join(blobs, name), "rb") as f:
                data = f.read()
            self.routes[f"/v2/{repo}/blobs/sha256:{name}"] = (200, {}, data)
        index = json.load(open(os.path.join(layout, "index.json")))
        mdigest = index["manifests"][0]["digest"]
        raw = self.routes[f"/v2/{repo}/blobs/{mdigest}"][2]
        headers = {"Content-Type": "application/vnd.oci.image.manifest.v1+json", "Docker-Content-Digest": mdigest}
        self.routes[f"/v2/{repo}/manifests/{tag}"] = (200, headers, raw)
        self.routes[f"/v2/{repo}/manifests/{mdigest}"] = (200, headers, raw)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def fake():
    f = FakeRegistry()
    yield f
    f.close()


def test_anonymous_bearer_tokens(tmp_path, fake):
    digest = make_layout(str(tmp_path / "lay"), LAYERS, ref="x")
    fake.serve_layout(str(tmp_path / "lay"), "lib/img", "1")
    image = ImageStore(str(tmp_path / "s")).pull(f"127.0.0.1:{fake.port}/lib/img:1")
    assert image.digest == digest
    assert fake.token_requests and "service=fake" in fake.token_requests[0]
    assert len(fake.token_requests) == 1  # the token is kept for the scope


def test_an_index_resolves_to_this_hosts_platform(tmp_path, fake):
    digest = make_layout(str(tmp_path / "lay"), LAYERS, ref="x")
    fake.serve_layout(str(tmp_path / "lay"), "lib/img", "1")
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + "0" * 64, "size": 1,
             "platform": {"os": "linux", "architecture": "riscv64"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": 1,
             "platform": {"os": "linux", "architecture": "amd64" if os.uname().machine == "x86_64" else "arm64"}},
        ],
    }  # fmt: skip
    raw = json.dumps(index).encode()
    fake.routes["/v2/lib/img/manifests/multi"] = (200, {"Content-Type": index["mediaType"]}, raw)
    image = ImageStore(str(tmp_path / "s")).pull(f"127.0.0.1:{fake.port}/lib/img:multi")
    assert image.digest == digest


def test_lies_are_caught(tmp_path, fake):
    make_layout(str(tmp_path / "lay"), LAYERS, ref="x")
    fake.serve_layout(str(tmp_path / "lay"), "lib/img", "1")
    store = ImageStore(str(tmp_path / "s"))
    # a manifest that is not what its digest header says
    status, headers, raw = fake.routes["/v2/lib/img/manifests/1"]
    fake.routes["/v2/lib/img/manifests/bad"] = (200, headers, raw.replace(b'"schemaVersion": 2', b'"schemaVersion":2'))
    with pytest.raises(ImageError, match="hashes to"):
        store.pull(f"127.0.0.1:{fake.port}/lib/img:bad")
    # a blob whose content is not its digest
    manifest = json.loads(raw)
    layer = manifest["layers"][1]["digest"]
    status, headers, data = fake.routes[f"/v2/lib/img/blobs/{layer}"]
    fake.routes[f"/v2/lib/img/blobs/{layer}"] = (200, headers, data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(ImageError, match="does not match its digest"):
        store.pull(f"127.0.0.1:{fake.port}/lib/img:1")
    assert not store.has_blob(layer) and store.refs() == {}
    assert hashlib.sha256(data).hexdigest() == layer.split(":")[1]


def test_credentials_never_leave_the_registry(tmp_path, fake):
    """A blob redirected to another server gets no Authorization header; a
    token realm on plain http elsewhere is refused."""
    make_layout(str(tmp_path / "lay"), LAYERS, ref="x")
    fake.serve_layout(str(tmp_path / "lay"), "lib/img", "1")
    other = FakeRegistry()
    try:
        seen = []
        manifest = json.loads(fake.routes["/v2/lib/img/manifests/1"][2])
        blob_path = f"/v2/lib/img/blobs/{manifest['layers'][0]['digest']}"
        data = fake.routes[blob_path][2]
        other.routes[blob_path] = (200, {}, data)
        fake.routes[blob_path] = (307, {"Location": f"http://localhost:{other.port}{blob_path}"}, b"")
        orig = other.server.RequestHandlerClass.do_GET

        def spy(handler):
            seen.append(handler.headers.get("Authorization"))
            if handler.path.startswith("/v2/"):
                handler.headers.replace_header("Authorization", "Bearer tok123") if handler.headers.get(
                    "Authorization"
                ) else handler.headers.add_header("Authorization", "Bearer tok123")
            return orig(handler)

        other.server.RequestHandlerClass.do_GET = spy
        ImageStore(str(tmp_path / "s")).pull(f"127.0.0.1:{fake.port}/lib/img:1", username="u", password="p")
        assert seen and all(a is None for a in seen)
    finally:
        other.close()


def test_a_token_realm_on_plain_http_elsewhere_is_refused(tmp_path, fake):
    fake.routes["/v2/lib/img/manifests/1"] = (200, {}, b"{}")
    handler = fake.server.RequestHandlerClass
    orig = handler.do_GET

    def challenge(h):
        if h.path.startswith("/v2/"):
            h._send(401, {"WWW-Authenticate": 'Bearer realm="http://example.invalid/token",service="x"'}, b"")
        else:
            orig(h)

    handler.do_GET = challenge
    with pytest.raises(ImageError, match="only https"):
        ImageStore(str(tmp_path / "s")).pull(f"127.0.0.1:{fake.port}/lib/img:1", username="u", password="p")


def test_pull_by_digest_moves_no_tag(tmp_path, fake):
    digest = make_layout(str(tmp_path / "lay"), LAYERS, ref="x")
    fake.serve_layout(str(tmp_path / "lay"), "lib/img", "1")
    store = ImageStore(str(tmp_path / "s"))
    image = store.pull(f"127.0.0.1:{fake.port}/lib/img@{digest}")
    assert image.digest == digest and store.refs() == {} and image in store.list()


def test_progress_events_of_a_push_and_a_pull(tmp_path, registry):
    """Docker's words per layer, in order, from the first to the last byte;
    a second pull of the same layers says they exist."""
    from pycontainer.images import Progress

    host, creds = registry
    store = ImageStore(str(tmp_path / "a"))
    make_layout(str(tmp_path / "lay"), LAYERS, ref="x")
    (image,) = store.import_oci_layout(str(tmp_path / "lay"), ref=f"{host}/team/app:1")
    layers = [d["digest"] for d in image.layers]
    pushed: list[Progress] = []
    store.push(f"{host}/team/app:1", chunk_size=64 * 1024, progress=pushed.append, **_creds(creds))
    big = [p for p in pushed if p.blob == layers[1]]
    assert [p.status for p in big][0] == "Preparing" and big[-1].status == "Pushed"
    sent = [p.current for p in big if p.status == "Pushing"]
    assert sent == sorted(sent) and len(sent) >= 4 and big[-1].current == big[-1].total > 300_000 // 2
    assert {p.blob for p in pushed} == set(layers)  # (the config is not shown)
    again: list[Progress] = []
    store.push(f"{host}/team/app:1", progress=again.append, **_creds(creds))
    assert [p.status for p in again if p.blob == layers[0]] == ["Preparing", "Layer already exists"]

    other = ImageStore(str(tmp_path / "b"))
    pulled: list[Progress] = []
    other.pull(f"{host}/team/app:1", progress=pulled.append, **_creds(creds))
    for d in layers:
        mine = [p for p in pulled if p.blob == d]
        assert mine[0].status == "Waiting" and mine[-1].status == "Pull complete"
        assert mine[-1].current == mine[-1].total and all(p.status == "Downloading" for p in mine[1:-1])
    second: list[Progress] = []
    other.pull(f"{host}/team/app:1", progress=second.append, **_creds(creds))
    assert [(p.blob, p.status) for p in second] == [(d, "Already exists") for d in layers]


def test_progress_bars_draw_lines_in_place_on_a_terminal_and_status_lines_elsewhere():
    import io

    from pycontainer.images import Progress, ProgressBars
    from pycontainer.images._progress import bar

    assert bar(5_000_000, 10_000_000, width=10) == "[=====>    ] 5.0MB/10.0MB"
    assert bar(10, 10, width=4) == "[====] 10B/10B"
    out = io.StringIO()
    bars = ProgressBars(out, tty=True, interval=0)
    a, b = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    bars(Progress(a, "Waiting", 0, 100))
    bars(Progress(b, "Already exists"))
    bars(Progress(a, "Downloading", 50, 100))
    bars.close()
    frames = out.getvalue().split("\x1b[2A")  # each redraw goes back up over both lines
    assert frames[-1] == "\x1b[2Kaaaaaaaaaaaa: Downloading " + bar(50, 100) + "\n\x1b[2Kbbbbbbbbbbbb: Already exists\n"
    plain = io.StringIO()
    bars = ProgressBars(plain, tty=False)
    for p in (Progress(a, "Waiting"), Progress(a, "Downloading", 1, 9), Progress(a, "Downloading", 5, 9),
              Progress(a, "Pull complete", 9, 9)):  # fmt: skip
        bars(p)
    assert plain.getvalue() == "aaaaaaaaaaaa: Waiting\naaaaaaaaaaaa: Downloading\naaaaaaaaaaaa: Pull complete\n"
