"""Bad input: each gets a typed error that names what was wrong, and leaves nothing behind."""

from __future__ import annotations

import errno
import os
import shutil

import pytest

from pycontainer import (
    ConfigError,
    Container,
    ContainerConfig,
    ContainerExists,
    ContainerNotFound,
    InitError,
    InvalidStateTransition,
    Mount,
    Process,
    PyContainerError,
)

from .conftest import needs_root

pytestmark = [needs_root, pytest.mark.root]


def test_missing_rootfs(root):
    cfg = ContainerConfig(process=Process(args=["true"]), rootfs="/nonexistent/rootfs")
    with pytest.raises(ConfigError, match="rootfs.*'/nonexistent/rootfs' does not exist"):
        Container.create(root, "x", cfg)
    assert os.listdir(root) == []


def test_missing_executable_names_the_binary(root, config):
    with pytest.raises(InitError) as e:
        Container.create(root, "x", config("/bin/no-such-binary", "arg"))
    assert e.value.errno == errno.ENOENT
    assert e.value.step == "exec"
    assert e.value.path == "/bin/no-such-binary"
    assert "no-such-binary" in str(e.value) and "ENOENT" in str(e.value)
    assert os.listdir(root) == []


def test_missing_executable_on_path(root, config):
    with pytest.raises(InitError, match="exec 'frobnicate': ENOENT"):
        Container.create(root, "x", config("frobnicate"))
    assert os.listdir(root) == []


def test_non_executable_file(root, config):
    with pytest.raises(InitError) as e:
        Container.create(root, "x", config("/etc/passwd"))
    assert e.value.errno == errno.EACCES
    assert os.listdir(root) == []


@pytest.fixture
def evil_rootfs(rootfs, tmp_path):
    """A copy of the rootfs whose symlinks point mount targets at host paths."""
    path = tmp_path / "evil"
    shutil.copytree(rootfs, path, symlinks=True)
    host_target = tmp_path / "host-target"
    host_target.mkdir()
    os.symlink(str(host_target), path / "abs-escape")  # absolute, to a host dir
    (path / "inside").mkdir()
    os.symlink("../../../../../../inside", path / "dotdot-escape")
    return path, host_target


def test_symlink_to_a_host_path_never_mounts_on_the_host(root, evil_rootfs, tmp_path):
    path, host_target = evil_rootfs
    src = tmp_path / "src"
    src.mkdir()
    (src / "file").write_text("x")
    cfg = ContainerConfig(process=Process(args=["true"]), rootfs=str(path), mounts=[Mount("/abs-escape", str(src))])
    # The link resolves inside the rootfs, where its target does not exist and
    # cannot be made through a symlink: a typed error, the host dir untouched.
    with pytest.raises(InitError) as e:
        Container.create(root, "x", cfg)
    assert e.value.step == "mount" and e.value.path == "/abs-escape" and e.value.errno == errno.ELOOP
    assert os.listdir(host_target) == []
    assert os.listdir(root) == []


@pytest.mark.parametrize("dest", ["/abs-escape/sub/dir", "/abs-escape/file"])
def test_missing_mountpoints_below_a_host_symlink_are_never_made_on_the_host(root, evil_rootfs, tmp_path, dest):
    """The missing directories above a mountpoint are made bottom-up from
    the deepest one that exists in the root: the link's target is not there,
    and a directory cannot be made where the link is."""
    path, host_target = evil_rootfs
    src = tmp_path / "src"
    src.write_text("x") if dest.endswith("file") else src.mkdir()
    cfg = ContainerConfig(process=Process(args=["true"]), rootfs=str(path), mounts=[Mount(dest, str(src))])
    with pytest.raises(InitError) as e:
        Container.create(root, "x", cfg)
    assert e.value.step == "mount" and e.value.path == dest and e.value.errno == errno.ELOOP
    assert os.listdir(host_target) == [] and os.listdir(root) == []


def test_missing_mountpoints_are_made_at_any_depth(root, evil_rootfs, tmp_path):
    path, _ = evil_rootfs
    src = tmp_path / "src"
    src.mkdir()
    (src / "file").write_text("x")
    (tmp_path / "one").write_text("y")
    mounts = [Mount("/new/a/b/c", str(src)), Mount("/inside/d/e/one", str(tmp_path / "one")),
              Mount("/dotdot-escape/f/g", str(src)),
              # not normalised (OCI only asks for absolute paths): "." and ".." as runc takes them
              Mount("/dot/./h", str(src)), Mount("/up/../../../k", str(src)),
              # after a "..", what follows may exist already: found, not made (nor refused)
              Mount("/gone/../inside/z", str(src)), Mount("/gone2/../new2/q", str(src))]  # fmt: skip
    args = ["cat", "/new/a/b/c/file", "/inside/d/e/one", "/inside/f/g/file", "/dot/h/file", "/k/file",
            "/inside/z/file", "/new2/q/file"]  # fmt: skip
    cfg = ContainerConfig(process=Process(args=args, cwd="/w/./x/../y"), rootfs=str(path), mounts=mounts)
    from pycontainer import PIPE

    with Container.run(root, "x", cfg, stdout=PIPE) as c:
        out, _ = c.communicate(timeout=30)
    assert out == b"xyxxxxx"
    assert (path / "new/a/b/c").is_dir() and (path / "inside/d/e/one").is_file() and (path / "inside/f/g").is_dir()
    assert (path / "dot/h").is_dir() and (path / "up").is_dir() and (path / "k").is_dir() and (path / "w/y").is_dir()


def test_symlink_with_dotdot_stays_inside_the_rootfs(root, evil_rootfs, tmp_path):
    path, _ = evil_rootfs
    src = tmp_path / "src"
    src.mkdir()
    (src / "file").write_text("x")
    cfg = ContainerConfig(
        process=Process(args=["cat", "/inside/file"]), rootfs=str(path), mounts=[Mount("/dotdot-escape", str(src))]
    )
    from pycontainer import PIPE

    with Container.run(root, "x", cfg, stdout=PIPE) as c:
        out, _ = c.communicate(timeout=30)
    assert out == b"x"  # mounted on <rootfs>/inside, seen there from inside


def test_duplicate_id(root, config):
    with Container.create(root, "dup", config("true")):
        with pytest.raises(ContainerExists, match="'dup' already exists"):
            Container.create(root, "dup", config("true"))


def test_unknown_id(root):
    with pytest.raises(ContainerNotFound, match="'ghost' does not exist"):
        Container.load(root, "ghost")


def test_invalid_id(root, config):
    with pytest.raises(ConfigError, match="id"):
        Container.create(root, "../escape", config("true"))
    assert os.listdir(root) == []


def test_kill_of_a_stopped_container(root, config):
    with Container.run(root, "done", config("true")) as c:
        c.wait(timeout=10)
        with pytest.raises(InvalidStateTransition, match="cannot kill container 'done': it is stopped"):
            c.kill()


def test_start_of_a_running_container(root, config):
    with Container.run(root, "r", config("sleep", "30")) as c:
        with pytest.raises(InvalidStateTransition, match="cannot start container 'r': it is running"):
            c.start()
        with pytest.raises(InvalidStateTransition, match="cannot delete"):
            c.delete()


def test_delete_twice(root, config):
    c = Container.create(root, "twice", config("true"))
    c.delete()
    with pytest.raises(ContainerNotFound):
        c.delete()


def test_crashed_creator_debris_is_swept(root, config):
    # What a creator killed mid-way leaves: its private .creating-* dir.
    import subprocess

    p = subprocess.Popen(["true"])  # its pid names nobody once it has been reaped
    p.wait()
    debris = os.path.join(root, f".creating-x-{p.pid}-0000")
    os.mkdir(debris)
    live = os.path.join(root, f".creating-y-{os.getpid()}-0000")
    os.mkdir(live)
    assert Container.list(root) == []
    assert not os.path.exists(debris)  # its creator is dead
    assert os.path.exists(live)  # ours is alive: left alone
    os.rmdir(live)
    with Container.create(root, "x", config("true")):
        pass


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"hostname": "bad host"}, "hostname"),
        ({"rootfs": "relative/path"}, "rootfs"),
        ({"rootfs_propagation": "sideways"}, "rootfs_propagation"),
        ({"namespaces": ["pid", "bogus"]}, "namespaces"),
        ({"namespaces": ["pid", "uts"]}, "namespaces"),  # no mount namespace
        ({"namespaces": ["mount", "mount"]}, "namespaces"),
        ({"mounts": [Mount("/proc/x", "/tmp")]}, "mounts[0].destination"),
        ({"mounts": [Mount("/a", "/tmp"), Mount("/a/", "/tmp")]}, "mounts[1].destination"),
        ({"mounts": [Mount("/a", "/no/such/source")]}, "mounts[0].source"),
    ],
)
def test_bad_config_fields(root, rootfs, fields, field):
    with pytest.raises(ConfigError) as e:
        Container.create(root, "x", ContainerConfig(process=Process(args=["true"]), **{"rootfs": rootfs, **fields}))
    assert e.value.field == field
    assert os.listdir(root) == []


def test_every_error_is_a_pycontainer_error():
    for cls in (ConfigError, ContainerExists, ContainerNotFound, InitError, InvalidStateTransition):
        assert issubclass(cls, PyContainerError)


def test_a_mount_inside_a_read_only_tmpfs_is_refused_before_anything_is_made(root, config):
    """(Found by tests/test_random_configs.py: the child met EROFS making the
    mountpoint.)  An empty read-only tmpfs can hold no mountpoint; nested
    the other way round it works."""
    from pycontainer import Mount

    bad = config("true", mounts=[Mount("/_", None, "tmpfs", ["ro"]), Mount("/_/_", None, "tmpfs")])
    with pytest.raises(ConfigError, match=r"inside the read-only tmpfs of mounts\[0\]") as e:
        Container.create(root, "ro", bad)
    assert e.value.field == "mounts[1].destination" and os.listdir(root) == []
    good = config("true", mounts=[Mount("/_", None, "tmpfs"), Mount("/_/_", None, "tmpfs", ["ro"])])
    with Container.run(root, "ok", good) as c:
        assert c.wait(timeout=30).code == 0
