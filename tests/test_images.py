"""Images: the layer unpacker (hostile input included), the store, and
containers running on image layers."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import shutil
import tarfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pycontainer import PIPE, ConfigError, Container, ContainerConfig, ImageError, Process, PyContainerError
from pycontainer.images import ImageStore, LayerLimits, normalize_ref, unpack_layer

from .imagetools import E, compress, isolated, make_layout, tar_bytes


def unpack(tmp_path, entries, limits=None, how="none"):
    """Unpack into <tmp>/box/layer; <tmp>/box/victim is a directory hostile
    entries aim at.  Returns the layer dir."""
    box = tmp_path / "box"
    (box / "victim").mkdir(parents=True, exist_ok=True)
    dest = box / "layer"
    dest.mkdir()
    unpack_layer(io.BytesIO(compress(tar_bytes(entries), how)), str(dest), limits or LayerLimits())
    return dest


def outside_untouched(tmp_path):
    box = tmp_path / "box"
    return sorted(os.listdir(box)) == ["layer", "victim"] and os.listdir(box / "victim") == []


# ---- what a layer holds ------------------------------------------------------------


@pytest.mark.parametrize("how", ["none", "gzip", "zstd"])
def test_every_kind_of_entry_with_its_metadata(tmp_path, how):
    cap = b"\x01\x00\x00\x02\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
    d = unpack(tmp_path, [
        E("etc", "dir", mode=0o755, mtime=1_500_000_000),
        E("etc/passwd", data=b"root:x:0:0::/root:/bin/sh\n", mode=0o644, uid=0, gid=0, mtime=1_400_000_000),
        E("bin", "dir", mode=0o755),
        E("bin/tool", data=b"\x7fELF", mode=0o4755, uid=1000, gid=1000, xattrs=(("security.capability", cap),)),
        E("bin/link", "hardlink", target="bin/tool"),
        E("bin/sym", "symlink", target="/etc/passwd"),
        E("dev", "dir", mode=0o755),
        E("dev/null", "char", mode=0o666, dev=(1, 3)),
        E("dev/loop0", "block", mode=0o660, dev=(7, 0)),
        E("run", "dir"),
        E("run/pipe", "fifo", mode=0o600),
    ], how=how)  # fmt: skip
    assert (d / "etc/passwd").read_bytes().startswith(b"root:")
    assert os.stat(d / "etc/passwd").st_mtime == 1_400_000_000
    assert os.stat(d / "etc").st_mtime == 1_500_000_000  # dirs' times set after their contents
    tool = os.stat(d / "bin/tool")
    assert stat.S_IMODE(tool.st_mode) == 0o4755 and (tool.st_uid, tool.st_gid) == (1000, 1000)
    assert os.getxattr(d / "bin/tool", "security.capability") == cap
    assert os.stat(d / "bin/link").st_ino == tool.st_ino
    assert os.readlink(d / "bin/sym") == "/etc/passwd"
    assert stat.S_ISCHR(os.stat(d / "dev/null").st_mode) and os.stat(d / "dev/null").st_rdev == os.makedev(1, 3)
    assert stat.S_ISBLK(os.stat(d / "dev/loop0").st_mode)
    assert stat.S_ISFIFO(os.stat(d / "run/pipe").st_mode)


def test_oci_whiteouts_become_overlay_whiteouts(tmp_path):
    d = unpack(tmp_path, [E("etc", "dir"), E("etc/.wh.shadow"), E("var", "dir"), E("var/.wh..wh..opq")])
    st_ = os.lstat(d / "etc/shadow")
    assert stat.S_ISCHR(st_.st_mode) and st_.st_rdev == 0
    assert os.getxattr(d / "var", "trusted.overlay.opaque") == b"y"
    assert not (d / "etc/.wh.shadow").exists()


def test_a_later_entry_replaces_an_earlier_one(tmp_path):
    d = unpack(tmp_path, [E("a", data=b"1"), E("a", "dir"), E("a/b", data=b"2"), E("a", "symlink", target="x")])
    assert os.readlink(d / "a") == "x"


# ---- hostile layers -------------------------------------------------------------------

HOSTILE = {
    "dotdot": [E("../victim/pwned", data=b"x")],
    "dotdot-inside": [E("a", "dir"), E("a/../../victim/pwned", data=b"x")],
    "absolute": [E("/etc/pwned", data=b"x")],
    "through-symlink": [E("a", "symlink", target="../victim"), E("a/pwned", data=b"x")],
    "through-abs-symlink": [E("a", "symlink", target="/"), E("a/tmp/pwned", data=b"x")],
    "hardlink-out": [E("h", "hardlink", target="../victim/x")],
    "hardlink-abs": [E("h", "hardlink", target="/etc/passwd")],
    "hardlink-missing": [E("h", "hardlink", target="nothere")],
    "hardlink-via-symlink": [E("s", "symlink", target="/etc"), E("h", "hardlink", target="s/passwd")],
    "whiteout-dotdot": [E(".wh..."), E("x")],
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_entries_are_refused_and_nothing_lands_outside(tmp_path, name):
    with pytest.raises(ImageError):
        unpack(tmp_path, HOSTILE[name])
    assert outside_untouched(tmp_path)


@pytest.mark.parametrize(
    "entries, limits, how, match",
    [
        ([E(f"f{i}") for i in range(20)], LayerLimits(max_entries=10), "none", "entries"),
        ([E("big", data=b"x" * 5000)], LayerLimits(max_bytes=4096), "gzip", "bytes"),
        ([E("a" * 300)], LayerLimits(max_path=200), "none", "longer"),
    ],
)
def test_limits_stop_bombs(tmp_path, entries, limits, how, match):
    with pytest.raises(ImageError, match=match):
        unpack(tmp_path, entries, limits, how=how)
    assert outside_untouched(tmp_path)


def test_garbage_is_an_image_error(tmp_path):
    dest = tmp_path / "l"
    dest.mkdir()
    with pytest.raises(ImageError):
        unpack_layer(io.BytesIO(b"\x1f\x8b not really gzip" * 40), str(dest))


# ---- the unpacker against a model, hostile trees included ------------------------------

NAMES = st.sampled_from(["a", "b", "c", ".wh.a", ".wh.b", ".wh..wh..opq"])


@st.composite
def entries(draw):
    out = []
    for _ in range(draw(st.integers(1, 12))):
        depth = draw(st.integers(1, 3))
        parts = [draw(NAMES) for _ in range(depth)]
        if draw(st.integers(0, 15)) == 0:
            parts.insert(draw(st.integers(0, len(parts) - 1)), "..")
        name = "/".join(parts)
        kind = draw(st.sampled_from(["file", "dir", "symlink", "hardlink"]))
        target = "/".join(draw(NAMES) for _ in range(draw(st.integers(1, 2))))
        if kind == "symlink" and draw(st.booleans()):
            target = draw(st.sampled_from(["../victim", "/", "/etc", "a"]))
        out.append(E(name, kind, data=name.encode(), target=target))
    return out


def model(es):
    """What the layer should hold: path -> ("file", data) | ("dir",) |
    ("symlink", text) | ("whiteout",), plus "opaque" dirs; or "error"."""
    fs: dict[str, tuple] = {}
    opaque: set[str] = set()
    inode: dict[str, bytes] = {}

    def parent_ok(parts):
        for i in range(1, len(parts)):
            p = "/".join(parts[:i])
            node = fs.get(p)
            if node is None:
                fs[p] = ("dir",)
            elif node[0] != "dir":
                return False
        return True

    def remove(p):
        for k in [k for k in fs if k == p or k.startswith(p + "/")]:
            del fs[k]
        for k in [k for k in opaque if k == p or k.startswith(p + "/")]:
            opaque.discard(k)

    for e in es:
        parts = [p for p in e.name.split("/") if p not in ("", ".")]
        if ".." in parts or e.name.startswith("/"):
            return "error"
        if not parent_ok(parts):
            return "error"
        name = parts[-1]
        path = "/".join(parts)
        parent = "/".join(parts[:-1])
        if name == ".wh..wh..opq":
            opaque.add(parent)
            continue
        if name.startswith(".wh."):
            target = name[4:]
            if target in ("", ".", ".."):
                return "error"
            tp = f"{parent}/{target}" if parent else target
            remove(tp)
            fs[tp] = ("whiteout",)
            continue
        old = fs.get(path)
        if e.kind == "hardlink":
            tparts = [p for p in e.target.split("/") if p not in ("", ".")]
            if not tparts or ".." in tparts or e.target.startswith("/"):
                return "error"
            if tparts != parts and old is not None:
                remove(path)  # the entry it replaces goes first (and a target inside it with it)
            for i in range(1, len(tparts)):
                n = fs.get("/".join(tparts[:i]))
                if n is None:
                    return "error"  # a missing parent: the target is not there
                if n[0] != "dir":
                    return "error"
            tnode = fs.get("/".join(tparts))
            if tnode is None or tnode[0] == "dir":
                return "error"
            if old is not None:
                remove(path)
            fs[path] = tnode
            continue
        if old is not None and not (e.kind == "dir" and old[0] == "dir"):
            remove(path)
        if e.kind == "dir":
            fs.setdefault(path, ("dir",))
        elif e.kind == "file":
            fs[path] = ("file", e.data)
        else:
            fs[path] = ("symlink", e.target)
    del inode
    return fs, opaque


def observe(d):
    fs, opaque = {}, set()
    for dirpath, dirnames, filenames in os.walk(d):
        rel = os.path.relpath(dirpath, d)
        rel = "" if rel == "." else rel
        if (
            rel and os.getxattr(dirpath, "trusted.overlay.opaque", follow_symlinks=False)
            if _has_opaque(dirpath)
            else False
        ):
            opaque.add(rel)
        if not rel and _has_opaque(dirpath):
            opaque.add("")
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            key = f"{rel}/{n}" if rel else n
            s = os.lstat(p)
            if stat.S_ISDIR(s.st_mode):
                fs[key] = ("dir",)
            elif stat.S_ISLNK(s.st_mode):
                fs[key] = ("symlink", os.readlink(p))
                if n in dirnames:
                    dirnames.remove(n)
            elif stat.S_ISCHR(s.st_mode) and s.st_rdev == 0:
                fs[key] = ("whiteout",)
            else:
                with open(p, "rb") as f:
                    fs[key] = ("file", f.read())
    return fs, opaque


def _has_opaque(path):
    try:
        return os.getxattr(path, "trusted.overlay.opaque", follow_symlinks=False) == b"y"
    except OSError:
        return False


@settings(
    max_examples=int(os.environ.get("PYC_EXAMPLES", "150")),  # more for a deep run
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(es=entries())
def test_unpack_matches_the_model(tmp_path_factory, es):
    tmp = tmp_path_factory.mktemp("u")
    expected = model(es)
    if expected == "error":
        with pytest.raises(ImageError):
            unpack(tmp, es)
    else:
        d = unpack(tmp, es)
        assert observe(d) == expected
    assert outside_untouched(tmp)


# ---- the store -------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path):
    return ImageStore(str(tmp_path / "data"))


BASE = [
    E("bin", "dir", mode=0o755),
    E("etc", "dir", mode=0o755),
    E("etc/passwd", data=b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"),
    E("etc/group", data=b"root:x:0:\napp:x:1000:\n"),
    E("etc/shadow", data=b"secret"),
    E("data", "dir"),
    E("data/old", data=b"old"),
    E("tmp", "dir", mode=0o1777),
]


def busybox_layer(rootfs: str) -> list[E]:
    """The session's busybox rootfs as layer entries."""
    out = []
    for dirpath, dirnames, filenames in os.walk(rootfs):
        rel = os.path.relpath(dirpath, rootfs)
        if rel != ".":
            out.append(E(rel, "dir", mode=stat.S_IMODE(os.stat(dirpath).st_mode)))
        for n in sorted(filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]):
            p = os.path.join(dirpath, n)
            key = n if rel == "." else f"{rel}/{n}"
            if os.path.islink(p):
                out.append(E(key, "symlink", target=os.readlink(p)))
            elif key.startswith(("etc/passwd", "etc/group")):
                continue
            else:
                with open(p, "rb") as f:
                    out.append(E(key, data=f.read(), mode=stat.S_IMODE(os.stat(p).st_mode)))
    return out


def test_import_get_tag_untag(store, tmp_path):
    digest = make_layout(str(tmp_path / "lay"), [BASE], ref="example.com:5000/team/app:1.0", config={"Cmd": ["sh"]})
    (image,) = store.import_oci_layout(str(tmp_path / "lay"))
    assert image.digest == digest and image.refs == ("example.com:5000/team/app:1.0",)
    assert store.get(digest) == image and store.get(image.id) == image
    store.tag("example.com:5000/team/app:1.0", "app")
    assert store.get("app:latest").digest == digest == store.get("docker.io/library/app").digest
    store.untag("app")
    with pytest.raises(ImageError, match="no image"):
        store.get("app")
    assert [i.digest for i in store.list()] == [digest]


def test_a_layout_whose_ref_is_a_bare_tag_needs_a_name(store, tmp_path):
    make_layout(str(tmp_path / "lay"), [BASE], ref="latest")
    with pytest.raises(ImageError, match="no name"):
        store.import_oci_layout(str(tmp_path / "lay"))
    (image,) = store.import_oci_layout(str(tmp_path / "lay"), ref="named")
    assert image.refs == ("docker.io/library/named:latest",)


def test_a_corrupt_blob_is_caught_on_read(store, tmp_path):
    make_layout(str(tmp_path / "lay"), [BASE], ref="x/y:1")
    (image,) = store.import_oci_layout(str(tmp_path / "lay"))
    path = store.blob_path(image.layers[0]["digest"])
    data = bytearray(open(path, "rb").read())
    data[-10] ^= 0xFF
    os.chmod(path, 0o644)
    with open(path, "wb") as f:
        f.write(data)
    with pytest.raises(ImageError):
        store.unpack(image)
    assert [n for n in os.listdir(store.layers_dir)] == []  # no half layer left


def test_a_layout_with_a_wrong_digest_is_refused(store, tmp_path):
    make_layout(str(tmp_path / "lay"), [BASE], ref="x/y:1")
    blobs = tmp_path / "lay" / "blobs" / "sha256"
    victim = sorted(blobs.iterdir(), key=lambda p: -p.stat().st_size)[0]  # the layer
    victim.write_bytes(victim.read_bytes() + b"junk")
    with pytest.raises(ImageError, match="digest"):
        store.import_oci_layout(str(tmp_path / "lay"))


def test_bad_references(store):
    for ref in ("UPPER", "a b", "x:", "x:-bad", ""):
        with pytest.raises(ImageError):
            normalize_ref(ref)
    assert normalize_ref("busybox") == "docker.io/library/busybox:latest"
    assert normalize_ref("me/app:1") == "docker.io/me/app:1"
    assert normalize_ref("localhost:5000/a/b") == "localhost:5000/a/b:latest"
    assert normalize_ref("localhost/x") == "localhost/x:latest"


def test_layers_are_unpacked_once_and_shared(store, tmp_path):
    make_layout(str(tmp_path / "a"), [BASE], ref="x/a:1")
    make_layout(str(tmp_path / "b"), [BASE, [E("extra", data=b"e")]], ref="x/b:1")
    store.import_oci_layout(str(tmp_path / "a"))
    store.import_oci_layout(str(tmp_path / "b"))
    (la,) = store.unpack("x/a:1")
    lb = store.unpack("x/b:1")
    assert lb[0] == la and len(os.listdir(store.layers_dir)) == 2


def test_umoci_layouts_import(store, tmp_path, rootfs):
    lay = str(tmp_path / "lay")
    bundle = str(tmp_path / "bundle")
    subprocess.run(["umoci", "init", "--layout", lay], check=True)
    subprocess.run(["umoci", "new", "--image", f"{lay}:v1"], check=True)
    subprocess.run(["umoci", "unpack", "--image", f"{lay}:v1", bundle], check=True, capture_output=True)
    subprocess.run(["cp", "-a", f"{rootfs}/.", f"{bundle}/rootfs/"], check=True)
    subprocess.run(["umoci", "repack", "--image", f"{lay}:v1", bundle], check=True, capture_output=True)
    subprocess.run(["umoci", "config", "--image", f"{lay}:v1", "--config.cmd", "sh"], check=True)
    (image,) = store.import_oci_layout(lay, ref="from-umoci:v1")
    assert image.config.cmd == ("sh",)
    (layer,) = store.unpack(image)
    assert os.path.isfile(os.path.join(layer, "bin", "busybox"))


# ---- containers on images --------------------------------------------------------------


@pytest.fixture
def images(tmp_path, rootfs):
    """A data root with an image of the busybox rootfs plus layers on top."""
    data = str(tmp_path / "data")
    store = ImageStore(data)
    lay = str(tmp_path / "lay")
    base = busybox_layer(rootfs) + BASE
    upper = [E("etc/.wh.shadow"), E("data", "dir"), E("data/.wh..wh..opq"), E("data/new", data=b"new"),
             E("home", "dir"), E("home/app", "dir", uid=1000, gid=1000)]  # fmt: skip
    make_layout(lay, [base, upper], ref="localhost/app:1", compression="zstd",
                config={"Cmd": ["sh", "-c", "echo cmd $GREETING"], "Env": ["PATH=/bin", "GREETING=hi"],
                        "WorkingDir": "/data", "User": "app"})  # fmt: skip
    store.import_oci_layout(lay)
    return data, store


def run_image(root, data, *args, **fields):
    cfg = ContainerConfig(process=Process(args=args, **fields.pop("process", {})), image="localhost/app:1", **fields)
    c = Container.run(root, "img", cfg, stdout=PIPE, stderr=PIPE, data_root=data)
    try:
        out, err = c.communicate(timeout=30)
        return c.wait(), out.decode(), err.decode()
    finally:
        c.delete()


def test_a_container_runs_the_images_cmd_as_its_user_in_its_workdir(root, images):
    data, _ = images
    status, out, err = run_image(root, data)
    assert status.code == 0 and out == "cmd hi\n", err
    status, out, _ = run_image(root, data, "sh", "-c", "id -u; pwd; echo $GREETING $HOME")
    assert out.split() == ["1000", "/data", "hi", "/home/app"]


def test_create_takes_the_image_as_an_argument_too(root, images):
    data, _ = images
    plain = ContainerConfig(process=Process(args=["sh", "-c", "pwd"]))
    c = Container.run(root, "arg", plain, image="localhost/app:1", stdout=PIPE, data_root=data)
    try:
        assert c.communicate(timeout=30)[0] == b"/data\n" and c.config.image == "localhost/app:1"
    finally:
        c.delete()


def test_explicit_settings_override_the_image(root, images):
    data, _ = images
    _, out, _ = run_image(root, data, "sh", "-c", "id -u; pwd; echo $GREETING",
                          process={"user": "root", "cwd": "/tmp", "env": ["GREETING=yo", "PATH=/bin"]})  # fmt: skip
    assert out.split() == ["0", "/tmp", "yo"]
    _, out, _ = run_image(root, data, "hello", process={"entrypoint": ["echo", "entry"]})
    assert out == "entry hello\n"


def test_whiteouts_and_opaque_dirs_apply_across_layers(root, images):
    data, _ = images
    _, out, _ = run_image(root, data, "sh", "-c", "ls /data; test -e /etc/shadow && echo shadow; cat /etc/group",
                          process={"user": "root"})  # fmt: skip
    assert out.split()[:1] == ["new"] and "shadow" not in out and "app:x:1000:" in out


def test_writes_go_to_the_containers_own_layer(root, images):
    data, store = images
    run_image(root, data, "sh", "-c", "echo changed > /data/new; rm /bin/sh.not-there 2>/dev/null; true",
              process={"user": "root"})  # fmt: skip
    (lower_new,) = [
        p for p in (os.path.join(d, "data/new") for d in store.unpack("localhost/app:1")) if os.path.exists(p)
    ]
    assert open(lower_new).read() == "new"


def test_an_image_with_fifty_layers_runs(root, tmp_path, rootfs):
    data = str(tmp_path / "data")
    store = ImageStore(data)
    layers = [busybox_layer(rootfs) + BASE] + [[E(f"l{i}", data=str(i).encode())] for i in range(49)]
    make_layout(str(tmp_path / "lay"), layers, ref="localhost/many:1", config={"Cmd": ["sh", "-c", "cat /l0 /l48"]})
    store.import_oci_layout(str(tmp_path / "lay"))
    cfg = ContainerConfig(process=Process(args=[]), image="localhost/many:1")
    c = Container.run(root, "many", cfg, stdout=PIPE, stderr=PIPE, data_root=data)
    try:
        out, err = c.communicate(timeout=30)
        assert c.wait().code == 0 and out == b"048", err
    finally:
        c.delete()


def test_image_config_errors(root, images):
    data, _ = images
    with pytest.raises(ConfigError, match="rootfs or an image"):
        ContainerConfig(process=Process(args=["true"]), image="x", rootfs="/")
    with pytest.raises(ConfigError, match="process.args"):
        ContainerConfig(process=Process(args=[]))
    with pytest.raises(ImageError, match="no image"):
        Container.create(root, "x", ContainerConfig(process=Process(args=["true"]), image="nope"), data_root=data)
    assert os.listdir(root) == []


def test_tarfile_roundtrip_helper_sanity():
    # the test helper writes what tarfile reads back (guards the tests above)
    names = [m.name for m in tarfile.open(fileobj=io.BytesIO(tar_bytes(BASE)))]
    assert names[:2] == ["bin", "etc"]


# ---- archives, and skopeo both ways ------------------------------------------------------


def skopeo(*args):
    r = subprocess.run(isolated("skopeo", *args), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_docker_archive_round_trip_and_skopeo_reads_it(store, tmp_path):
    import json

    make_layout(str(tmp_path / "lay"), [BASE, [E("x", data=b"1")]], ref="localhost/two:1")
    (image,) = store.import_oci_layout(str(tmp_path / "lay"))
    store.export_docker_archive("localhost/two:1", str(tmp_path / "d.tar"))
    info = json.loads(skopeo("inspect", "--raw", "--config", f"docker-archive:{tmp_path}/d.tar"))
    assert info["rootfs"]["diff_ids"] == image.diff_ids
    other = ImageStore(str(tmp_path / "other"))
    (back,) = other.import_docker_archive(str(tmp_path / "d.tar"))
    assert back.config_digest == image.config_digest and back.refs == ("localhost/two:1",)
    assert len(other.unpack(back)) == 2


def test_oci_exports_and_the_store_itself_read_by_skopeo(store, tmp_path):
    import json

    digest = make_layout(str(tmp_path / "lay"), [BASE], ref="localhost/one:1")
    store.import_oci_layout(str(tmp_path / "lay"))
    store.export_oci_layout("localhost/one:1", str(tmp_path / "out"))
    store.export_oci_layout("localhost/one:1", str(tmp_path / "out.tar"))
    for where in (f"oci:{tmp_path}/out:localhost/one:1", f"oci-archive:{tmp_path}/out.tar:localhost/one:1",
                  f"oci:{store.layout}:localhost/one:1"):  # fmt: skip
        assert json.loads(skopeo("inspect", where))["Digest"] == digest


def test_skopeo_archives_import(store, tmp_path):
    make_layout(str(tmp_path / "lay"), [BASE], ref="latest")
    skopeo("copy", f"oci:{tmp_path}/lay:latest", f"docker-archive:{tmp_path}/sk.tar:sk/img:2")
    skopeo("copy", f"oci:{tmp_path}/lay:latest", f"oci-archive:{tmp_path}/ska.tar:latest")
    (a,) = store.import_docker_archive(str(tmp_path / "sk.tar"))
    (b,) = store.import_oci_layout(str(tmp_path / "ska.tar"), ref="sk/img:3")
    assert store.get("sk/img:2") == a and a.refs == ("docker.io/sk/img:2",)
    assert a.diff_ids == b.diff_ids and store.unpack(a) == store.unpack(b)


def test_a_docker_archive_that_points_outside_is_refused(store, tmp_path):
    import json

    d = tmp_path / "arch"
    d.mkdir()
    (d / "manifest.json").write_text(json.dumps([{"Config": "../../etc/passwd", "Layers": []}]))
    with pytest.raises(ImageError, match="outside"):
        store.import_docker_archive(str(d))


# ---- changes and commit -----------------------------------------------------------------


def test_changes_and_commit_make_an_image_that_runs(root, images):
    data, store = images
    cfg = ContainerConfig(process=Process(args=["sleep", "100"], user="root"), image="localhost/app:1")
    c = Container.run(root, "chg", cfg, data_root=data)
    try:
        script = "echo added > /added; echo changed > /etc/group; rm /etc/passwd; rm -r /data; mkdir -p /data/fresh"
        p = c.exec(["sh", "-c", script], stdout=PIPE, stderr=PIPE)
        assert p.wait().code == 0, p.communicate()
        got = dict((path, kind) for kind, path in c.changes())
        assert got["/added"] == "A" and got["/etc/group"] == "C" and got["/etc/passwd"] == "D"
        assert got["/etc"] == "C" and got["/data"] == "C"  # re-made over a deleted dir: opaque
        image = c.commit("localhost/app:2", comment="test", config={"Cmd": ["cat", "/added"]})
        assert c.status.value == "running"  # paused and resumed around the commit
    finally:
        c.delete(force=True)
    assert image.refs == ("localhost/app:2",) and len(image.layers) == 3
    assert image.config.cmd == ("cat", "/added")
    check = ContainerConfig(
        process=Process(
            args=["sh", "-c", "cat /added /etc/group; test -e /etc/passwd || echo gone; ls /data"], user="0"
        ),
        image="localhost/app:2",
    )
    c = Container.run(root, "chk", check, stdout=PIPE, stderr=PIPE, data_root=data)
    try:
        out, err = c.communicate(timeout=30)
        assert out.decode().split() == ["added", "changed", "gone", "fresh"], err
    finally:
        c.delete()


def test_an_untagged_commit_stays_as_a_dangling_image(root, images):
    data, store = images
    c = Container.run(root, "dang", ContainerConfig(process=Process(args=["touch", "/x"], user="root"), image="localhost/app:1"),
                      data_root=data)  # fmt: skip
    try:
        c.wait()
        image = c.commit()
    finally:
        c.delete()
    assert image.refs == () and image.digest in [i.digest for i in store.list()]


def test_a_plain_rootfs_has_no_changes_to_list(root, config):
    c = Container.run(root, "plain", config("true"))
    try:
        c.wait()
        with pytest.raises(PyContainerError, match="plain rootfs"):
            c.changes()
    finally:
        c.delete()


# ---- removal and garbage collection --------------------------------------------------------


def test_an_image_in_use_cannot_lose_its_last_name_and_gc_keeps_what_is_needed(root, images):
    data, store = images
    store.tag("localhost/app:1", "localhost/app:other")
    c = Container.create(root, "held", ContainerConfig(process=Process(args=["true"]), image="localhost/app:1"),
                         data_root=data)  # fmt: skip
    try:
        store.remove("localhost/app:other")  # another name remains: fine
        with pytest.raises(ImageError, match="in use by container 'held'"):
            store.remove("localhost/app:1")
        assert store.gc(grace=0) == {"blobs": 0, "bytes": 0, "layers": 0, "links": 0}
    finally:
        c.delete()
    layers = store.unpack("localhost/app:1")
    store.remove("localhost/app:1")
    removed = store.gc(grace=0)
    assert removed == {"blobs": 4, "bytes": removed["bytes"], "layers": 2, "links": 2} and removed["bytes"] > 0
    assert not any(os.path.exists(d) for d in layers) and os.listdir(store.blobs) == []
    with pytest.raises(ImageError):
        store.get("localhost/app:1")


def test_gc_spares_young_blobs_an_import_may_still_name(store):
    digest = store.put_blob(b"fresh")
    assert store.gc()["blobs"] == 0 and store.has_blob(digest)
    assert store.gc(grace=0)["blobs"] == 1 and not store.has_blob(digest)


def test_the_copy_snapshotter_gives_the_same_rootfs(root, images):
    data, store = images
    cfg = ContainerConfig(
        process=Process(
            args=["sh", "-c", "ls /data; test -e /etc/shadow && echo shadow; id -u; echo x > /new"], user="0"
        ),
        image="localhost/app:1",
    )
    c = Container.run(root, "copy", cfg, stdout=PIPE, stderr=PIPE, data_root=data, snapshotter="copy")
    try:
        out, err = c.communicate(timeout=30)
        assert out.decode().split() == ["new", "0"], err
        with pytest.raises(PyContainerError, match="copied rootfs"):
            c.changes()
    finally:
        c.delete()
    assert all(not os.path.exists(os.path.join(d, "new")) for d in store.unpack("localhost/app:1"))
    with pytest.raises(ConfigError, match="snapshotter"):
        Container.create(root, "bad", cfg, data_root=data, snapshotter="zfs")
    assert os.listdir(root) == []


def test_image_volumes_become_anonymous_volumes(root, tmp_path, rootfs):
    data = str(tmp_path / "data")
    store = ImageStore(data)
    layer = busybox_layer(rootfs) + BASE
    make_layout(str(tmp_path / "lay"), [layer], ref="localhost/vol:1",
                config={"Volumes": {"/data": {}}, "StopSignal": "SIGQUIT", "ExposedPorts": {"80/tcp": {}}})  # fmt: skip
    store.import_oci_layout(str(tmp_path / "lay"))
    cfg = ContainerConfig(
        process=Process(args=["sh", "-c", "cat /data/old; echo new > /data/added"]), image="localhost/vol:1"
    )
    c = Container.run(root, "vol", cfg, stdout=PIPE, stderr=PIPE, data_root=data)
    try:
        out, err = c.communicate(timeout=30)
        assert out == b"old", err
        assert ("A", "/data/added") not in c.changes()  # written to the volume, not the container's layer
        assert c.image_config == {"stop_signal": "SIGQUIT", "exposed_ports": ["80/tcp"], "volumes": ["/data"]}
        assert open(os.path.join(c.dir, "volumes", "0", "added")).read() == "new\n"
    finally:
        c.delete()
    assert not os.path.exists(c.dir)


def test_several_processes_share_one_store(tmp_path):
    """Four processes import and unpack the same layout under different
    names at once: every name lands, each layer is unpacked once."""
    import sys

    make_layout(str(tmp_path / "lay"), [BASE, [E("x", data=b"1")]], ref="latest")
    data = str(tmp_path / "data")
    script = (
        "import sys\n"
        "from pycontainer.images import ImageStore\n"
        "s = ImageStore(sys.argv[1])\n"
        "for i in range(5):\n"
        "    s.import_oci_layout(sys.argv[2], ref=f'localhost/p{sys.argv[3]}:{i}')\n"
        "    s.unpack(f'localhost/p{sys.argv[3]}:{i}')\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, data, str(tmp_path / "lay"), str(n)]) for n in range(4)]
    assert [p.wait(60) for p in procs] == [0, 0, 0, 0]
    store = ImageStore(data)
    assert len(store.refs()) == 20 and len(os.listdir(store.layers_dir)) == 2
    assert not [n for n in os.listdir(store.blobs) if n.startswith(".tmp-")]


@pytest.mark.skipif(shutil.which("podman") is None, reason="podman is not installed")
def test_podman_loads_our_archives(store, tmp_path):
    make_layout(str(tmp_path / "lay"), [BASE], ref="localhost/forpodman:1")
    store.import_oci_layout(str(tmp_path / "lay"))
    store.export_docker_archive("localhost/forpodman:1", str(tmp_path / "d.tar"))
    store.export_oci_layout("localhost/forpodman:1", str(tmp_path / "o.tar"))
    podman = ["podman", "--root", str(tmp_path / "storage"), "--runroot", "/run/podman",  # on the private /run
              "--storage-driver", "vfs", "--events-backend", "none"]  # fmt: skip
    for archive in ("d.tar", "o.tar"):
        r = subprocess.run(isolated(*podman, "load", "-i", str(tmp_path / archive)), capture_output=True, text=True)
        assert r.returncode == 0 and "localhost/forpodman:1" in r.stdout + r.stderr, r.stderr


def test_layer_symlinks_never_reach_the_host(root, tmp_path, rootfs):
    """A layer whose /etc points at the host's /etc: its /etc/passwd is not
    read; one whose /a does: the volume over /a/ssl starts empty."""
    data = str(tmp_path / "data")
    store = ImageStore(data)
    base = [e for e in busybox_layer(rootfs) if not e.name.startswith("etc")]
    make_layout(str(tmp_path / "user"), [base + [E("etc", "symlink", target="/etc")]], ref="localhost/evil:user")
    make_layout(str(tmp_path / "vol"), [busybox_layer(rootfs) + [E("a", "symlink", target="/etc")]], ref="localhost/evil:vol",
                config={"Volumes": {"/a/ssl": {}}})  # fmt: skip
    store.import_oci_layout(str(tmp_path / "user"))
    store.import_oci_layout(str(tmp_path / "vol"))
    assert os.path.isdir("/etc/ssl") and os.listdir("/etc/ssl")  # the host has what the image aims at
    with pytest.raises(ConfigError, match="no user 'root'"):
        Container.create(root, "evil", ContainerConfig(process=Process(args=["true"], user="root"), image="localhost/evil:user"),
                         data_root=data)  # fmt: skip
    assert os.listdir(root) == []
    c = Container.create(root, "evil", ContainerConfig(process=Process(args=["true"]), image="localhost/evil:vol"),
                         data_root=data)  # fmt: skip
    try:
        assert os.listdir(os.path.join(c.dir, "volumes", "0")) == []
    finally:
        c.delete()


# ---- hostile archives and images (from review) ------------------------------------------


def _tar_of(tmp_path, name, entries):
    path = tmp_path / name
    path.write_bytes(tar_bytes(entries))
    return str(path)


def test_an_archive_cannot_send_the_import_to_host_files(store, tmp_path):
    # a planted layout elsewhere on the host, with a secret
    make_layout(str(tmp_path / "elsewhere"), [[E("secret", data=b"host secret")]], ref="localhost/x:1")
    index = (tmp_path / "elsewhere" / "index.json").read_bytes()
    evil = _tar_of(tmp_path, "evil.tar", [
        E("oci-layout", data=b'{"imageLayoutVersion": "1.0.0"}'),
        E("index.json", data=index),
        E("blobs", "symlink", target=str(tmp_path / "elsewhere" / "blobs")),
    ])  # fmt: skip
    with pytest.raises(ImageError):
        store.import_oci_layout(evil)
    assert store.refs() == {}
    for target in ("/dev/zero", "/etc/passwd"):
        bad = _tar_of(tmp_path, "d.tar", [E("manifest.json", "symlink", target=target)])
        with pytest.raises(ImageError):
            store.import_docker_archive(bad)
    dev = _tar_of(tmp_path, "dev.tar", [E("manifest.json", "char", dev=(1, 5))])
    with pytest.raises(ImageError, match="device"):
        store.import_docker_archive(dev)


def test_diff_ids_that_are_no_digests_are_refused(store, tmp_path):
    import json

    make_layout(str(tmp_path / "lay"), [BASE], ref="localhost/bad:1")
    # rewrite the config's diff_ids into a path, and re-point the manifest and index
    blobs = tmp_path / "lay" / "blobs" / "sha256"
    index = json.loads((tmp_path / "lay" / "index.json").read_text())
    manifest = json.loads((blobs / index["manifests"][0]["digest"][7:]).read_text())
    config = json.loads((blobs / manifest["config"]["digest"][7:]).read_text())
    config["rootfs"]["diff_ids"] = [f"sha256:{tmp_path}/escaped/x"]
    raw = json.dumps(config).encode()
    import hashlib as h

    (blobs / h.sha256(raw).hexdigest()).write_bytes(raw)
    manifest["config"]["digest"] = "sha256:" + h.sha256(raw).hexdigest()
    raw_m = json.dumps(manifest).encode()
    (blobs / h.sha256(raw_m).hexdigest()).write_bytes(raw_m)
    index["manifests"][0]["digest"] = "sha256:" + h.sha256(raw_m).hexdigest()
    (tmp_path / "lay" / "index.json").write_text(json.dumps(index))
    (image,) = store.import_oci_layout(str(tmp_path / "lay"))
    for act in (
        lambda: store.unpack(image),
        lambda: store.export_docker_archive("localhost/bad:1", str(tmp_path / "o.tar")),
    ):
        with pytest.raises(ImageError, match="not a sha256 digest"):
            act()
    assert not (tmp_path / "escaped").exists()


def test_header_bombs_and_deep_trees_are_image_errors(tmp_path):
    big = tarfile.TarInfo("x")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        big.pax_headers = {"comment": "a" * 300_000}
        t.addfile(big, io.BytesIO(b""))
    dest = tmp_path / "l1"
    dest.mkdir()
    with pytest.raises(ImageError, match="header"):
        unpack_layer(io.BytesIO(buf.getvalue()), str(dest), LayerLimits(max_header=64 << 10))
    deep = "/".join(["d"] * 1200)
    d = unpack(tmp_path, [E(deep, "dir"), E(".wh.d")])  # removing it needs no recursion
    assert os.listdir(d) == ["d"] and stat.S_ISCHR(os.lstat(d / "d").st_mode)
    d2 = tmp_path / "deep"
    d2.mkdir()
    unpack_layer(io.BytesIO(tar_bytes([E(deep, "dir")])), str(d2))
    from pycontainer.images import remove_tree

    remove_tree(str(d2))  # and neither does removing a deep layer (pytest's own cleanup would recurse)
    assert not d2.exists()
    assert outside_untouched(tmp_path)


def test_many_directories_stay_within_the_fd_limit(tmp_path):
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    n = soft + 200
    d = unpack(tmp_path, [E(f"d{i}", "dir") for i in range(n)] + [E(f"d{i}/f", data=b"x") for i in range(0, n, 97)])
    assert len(os.listdir(d)) == n


def test_the_store_is_private_and_user_namespaces_get_a_shifted_copy(root, images, public_dir):
    from pycontainer import IDMap, NamespaceType
    from pycontainer.config import DEFAULT_NAMESPACES

    data, store = images
    for d in (store.layout, store.blobs, store.layers_dir, store.links):
        assert os.stat(d).st_mode & 0o077 == 0, d
    cfg = ContainerConfig(
        process=Process(args=["sh", "-c", "stat -c '%u %g' /etc/passwd /home/app; id -u"], user="0"),
        image="localhost/app:1",
        namespaces=[*DEFAULT_NAMESPACES, NamespaceType.USER],
        uid_mappings=[IDMap(0, 100000, 65536)],
        gid_mappings=[IDMap(0, 100000, 65536)],
    )
    c = Container.run(public_dir, "userns", cfg, stdout=PIPE, stderr=PIPE, data_root=data)
    try:
        out, err = c.communicate(timeout=30)
        assert out.decode().split() == ["0", "0", "1000", "1000", "0"], err
        st = os.stat(os.path.join(c.dir, "rootfs", "fs", "home", "app"))
        assert (st.st_uid, st.st_gid) == (101000, 101000)  # as the namespace maps them
        fence = os.stat(os.path.join(c.dir, "rootfs"))
        assert fence.st_mode & 0o077 == 0 and fence.st_uid == 100000  # no other host user reaches the copy
    finally:
        c.delete()
    with pytest.raises(ConfigError, match="snapshotter"):
        Container.create(public_dir, "x", cfg, data_root=data, snapshotter="overlay")


def test_global_pax_and_sparse_headers_are_refused(tmp_path):
    def raw_member(name, kind, payload):
        ti = tarfile.TarInfo(name)
        ti.type = kind
        ti.size = len(payload)
        head = ti.tobuf(format=tarfile.USTAR_FORMAT)
        return head + payload + b"\0" * (-len(payload) % 512)

    rec = "comment=" + "x" * (100 << 10) + "\n"
    rec = f"{len(rec) + len(str(len(rec))) + 1} {rec}"
    global_bomb = raw_member("pax_global_header", tarfile.XGLTYPE, rec.encode()) + b"\0" * 1024
    sparse = raw_member("s", tarfile.GNUTYPE_SPARSE, b"") + b"\0" * 1024
    for name, data in (("header", global_bomb), ("sparse", sparse)):
        dest = tmp_path / name
        dest.mkdir()
        with pytest.raises(ImageError, match=name):
            unpack_layer(io.BytesIO(data), str(dest))


def test_deep_images_copy_and_go(tmp_path):
    from pycontainer.images import copy_layers, remove_tree

    deep = "/".join(["d"] * 1500)
    layer = tmp_path / "layer"
    layer.mkdir()
    unpack_layer(io.BytesIO(tar_bytes([E(deep, "dir"), E(f"{deep}/f", data=b"x")])), str(layer))
    dest = tmp_path / "copy"
    dest.mkdir()
    copy_layers([str(layer)], str(dest))
    assert (dest / deep / "f").read_bytes() == b"x"
    for d in (layer, dest):
        remove_tree(str(d))
        assert not d.exists()
