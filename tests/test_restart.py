"""Container.restart and Container.rename (issue 8's restart, start and
rename), on the real kernel."""

from __future__ import annotations

import os
import time

import attrs
import pytest

from pycontainer import (
    PIPE,
    CgroupError,
    Container,
    ContainerConfig,
    ContainerExists,
    ContainerNotFound,
    InvalidStateTransition,
    LogConfig,
    Process,
    Status,
)

from .conftest import needs_root

pytestmark = needs_root

COUNT = "echo . >> /runs; wc -l < /runs"  # how many times it ran, kept in its writable layer


def _image_config(*args: str) -> ContainerConfig:
    return ContainerConfig(process=Process(args=list(args)), init=True)


def test_restart_keeps_the_writable_layer_and_the_log_and_is_a_new_instance(root, data_root):
    c = Container.run(root, "rs", _image_config("sh", "-c", COUNT), data_root=data_root, log=LogConfig())
    try:
        assert c.wait(timeout=30).code == 0
        first_pid, first_instance = c.pid, c._data["instance"]
        stale = Container.load(root, "rs")  # a handle to the instance about to be replaced
        c.restart()
        assert c.pid != first_pid and c._data["instance"] != first_instance
        assert c.wait(timeout=30).code == 0
        assert [e.data for e in c.logs(follow=True)] == [b"1\n", b"2\n"]
        # the replaced instance's handle cannot act on the new one
        with pytest.raises(ContainerNotFound):
            stale.delete()
        assert Container.load(root, "rs").status is Status.STOPPED
        # its holds are the new instance's: exactly one on the image
        holders = [h for h in os.listdir(os.path.join(data_root, "holders", c._data["image"].split(":")[1]))]
        assert len(holders) == 1
    finally:
        c.delete()
    assert os.listdir(root) == []
    assert not os.path.exists(os.path.join(data_root, "holders", c._data["image"].split(":")[1], holders[0]))


def test_restart_stops_a_running_one_and_starts_a_created_one(root, data_root):
    c = Container.create(root, "rc", _image_config("sh", "-c", COUNT + "; exec sleep 60"), data_root=data_root,
                         stdout=PIPE)  # fmt: skip
    try:
        c.restart()  # created: just started
        assert c.stdout.readline() == b"1\n"
        c.restart(timeout=0.5, stdout=PIPE)  # running: stopped (SIGTERM, then SIGKILL), made anew
        assert c.status is Status.RUNNING and c.stdout.readline() == b"2\n"
        c.pause()
        with pytest.raises(InvalidStateTransition, match="paused"):
            c.restart()
        c.resume()
    finally:
        c.delete(force=True)
    assert os.listdir(root) == []


def test_a_failed_restart_leaves_the_stopped_container_as_it_was(root, data_root, monkeypatch):
    import pycontainer.container as container_mod

    c = Container.run(root, "rf", _image_config("sh", "-c", COUNT), data_root=data_root, stdout=PIPE)
    try:
        assert c.wait(timeout=30).code == 0
        holder = c._data["image_holder"]

        def broken(*a, **k):
            raise CgroupError("no cgroup today")

        monkeypatch.setattr(container_mod._cgroups, "new_manager", broken)
        with pytest.raises(CgroupError, match="no cgroup today"):
            c.restart()
        monkeypatch.undo()
        assert sorted(n for n in os.listdir(root)) == ["rf"]  # no half-made instance
        again = Container.load(root, "rf")
        assert again.status is Status.STOPPED and again._data["instance"] == c._data["instance"]
        assert os.path.exists(os.path.join(again.dir, "layer", "upper", "runs")) and os.path.exists(holder)
        again.restart(stdout=PIPE)
        assert again.stdout.read() == b"2\n"
        again.wait(timeout=30)
        again.delete()
    finally:
        if os.path.exists(os.path.join(root, "rf")):
            Container.load(root, "rf").delete(force=True)
    assert os.listdir(root) == []


def test_rename_moves_the_container_and_its_holds(root, data_root):
    c = Container.run(root, "old", _image_config("sleep", "60"), data_root=data_root)
    other = Container.run(root, "taken", _image_config("sleep", "60"), data_root=data_root)
    try:
        stale = Container.load(root, "old")
        with pytest.raises(ContainerExists):
            c.rename("taken")
        assert c.id == "old" and os.path.isdir(os.path.join(root, "old"))
        c.rename("new")
        assert c.id == "new" and sorted(os.listdir(root)) == ["new", "taken"]
        loaded = Container.load(root, "new")
        assert loaded.status is Status.RUNNING and loaded.pid == c.pid
        assert loaded.state().rootfs.startswith(os.path.join(root, "new") + "/")
        with open(loaded._data["image_holder"]) as f:
            assert f.read() == os.path.join(root, "new")
        with pytest.raises(ContainerNotFound):
            stale.delete(force=True)
        with pytest.raises(ContainerNotFound):
            Container.load(root, "old")
        c.restart(timeout=0.2)  # a renamed container restarts under its new name
        assert c.id == "new" and c.status is Status.RUNNING
    finally:
        c.delete(force=True)
        other.delete(force=True)
    assert os.listdir(root) == []


def test_an_auto_removed_container_is_removed_under_its_new_name(root, config):
    c = Container.run(root, "ar", config("sleep", "60"), log=LogConfig(), auto_remove=True)
    c.rename("ar2")
    c.kill(9)
    c.wait(timeout=10)  # (reaped: it is our child)
    deadline = time.monotonic() + 20
    while os.listdir(root):
        assert time.monotonic() < deadline, os.listdir(root)
        time.sleep(0.05)


def test_an_image_whose_etc_is_a_link_keeps_it(root, data_root, tmp_path):
    """The init layer makes only the mountpoints an image lacks, never a
    directory over one of its links (an /etc -> private/etc stays)."""
    import shutil

    from pycontainer.images import ImageStore

    from .imagetools import E, make_layout

    with open(shutil.which("busybox") or "/bin/busybox", "rb") as f:
        busybox = f.read()
    make_layout(str(tmp_path / "lay"), [[
        E("bin", "dir", mode=0o755), E("bin/busybox", data=busybox, mode=0o755), E("bin/sh", "symlink", target="busybox"),
        E("private", "dir", mode=0o755), E("private/etc", "dir", mode=0o755),
        E("private/etc/marker", data=b"mine\n"), E("etc", "symlink", target="private/etc"),
    ]], ref="x")  # fmt: skip
    store = ImageStore(data_root)
    store.import_oci_layout(str(tmp_path / "lay"), ref="localhost/etclink:1")
    cfg = ContainerConfig(process=Process(args=["sh", "-c", "cat /etc/marker; /bin/busybox readlink /etc"]))
    c = Container.run(root, "el", cfg, image="localhost/etclink:1", data_root=data_root, stdout=PIPE)
    try:
        assert c.stdout.read() == b"mine\nprivate/etc\n"
        assert c.wait(timeout=30).code == 0
    finally:
        c.delete()
    store.remove("localhost/etclink:1")


def test_a_late_wait_of_the_replaced_instance_leaves_the_new_one_alone(root, data_root):
    """Its creator reaps the old init after another handle restarted it:
    the status goes nowhere near the new instance's exit.json."""
    c = Container.run(root, "lw", _image_config("sh", "-c", "exec sleep 60"), data_root=data_root)
    other = Container.load(root, "lw")
    try:
        other.restart(timeout=0.2)  # (SIGTERM to a sleep as pid 1 behind an init: SIGKILL after the timeout)
        c.wait(timeout=30)  # the old init, reaped by its creator now
        again = Container.load(root, "lw")
        assert again.status is Status.RUNNING and again.pid == other.pid
        assert not os.path.exists(os.path.join(again.dir, "exit.json")) or os.path.getsize(
            os.path.join(again.dir, "exit.json")) == 0  # fmt: skip
    finally:
        other.delete(force=True)
    assert os.listdir(root) == []


def test_restart_runs_the_image_it_ran_and_its_fixed_cgroup_path(root, data_root, tmp_path):
    """A retagged image does not change a restarted container (Docker keeps
    the image id), and a fixed cgroupsPath is made anew in the same place."""
    from pycontainer.images import ImageStore

    from .imagetools import E, make_layout

    store = ImageStore(data_root)
    base = Container.run(root, "warm", _image_config("true"), data_root=data_root)  # (the built-in image)
    base.wait(timeout=30)
    base.delete()
    builtin = store.get("localhost/busybox")
    make_layout(str(tmp_path / "v2"), [[E("version", data=b"2\n")]], ref="x")
    (v2,) = store.import_oci_layout(str(tmp_path / "v2"), ref="localhost/other:1")
    store.tag(builtin.digest, "localhost/app:1")
    cfg = attrs.evolve(_image_config("sh", "-c", "cat /version 2>/dev/null || echo 1"), image="localhost/app:1",
                       cgroups_path=f"/pctest-restart-{os.getpid()}")  # fmt: skip
    c = Container.run(root, "img", cfg, data_root=data_root, stdout=PIPE)
    try:
        assert c.stdout.read() == b"1\n"
        c.wait(timeout=30)
        store.tag(v2.digest, "localhost/app:1")  # the tag names another image now
        c.restart(stdout=PIPE)
        assert c.stdout.read() == b"1\n"  # still the image it ran
        assert c.wait(timeout=30).code == 0
    finally:
        c.delete(force=True)
    for ref in ("localhost/app:1", "localhost/other:1"):
        store.remove(ref)
    assert os.listdir(root) == []


def test_a_restart_killed_halfway_gives_the_layer_back_to_the_next(root, data_root):
    """The restarting process dies after it took the writable layer and
    before the new instance is in place: the next restart, through load()
    as the CLI's, finds the layer back (the journal), not a fresh one."""
    import subprocess
    import sys

    c = Container.run(root, "cr", _image_config("sh", "-c", COUNT), data_root=data_root, stdout=PIPE)
    assert c.stdout.read() == b"1\n" and c.wait(timeout=30).code == 0
    c.close()
    dying = (
        "import os, sys; import pycontainer._spawn as s; from pycontainer import Container\n"
        "s.spawn = lambda *a, **k: os.kill(os.getpid(), 9)\n"
        "Container.load(sys.argv[1], 'cr').restart()\n"
    )
    r = subprocess.run([sys.executable, "-c", dying, root], env={**os.environ, "PYCONTAINER_DATA_ROOT": data_root})
    assert r.returncode == -9
    assert any(n.startswith(".creating-cr-") for n in os.listdir(root))  # (its debris, with the layer)
    again = Container.load(root, "cr")
    again.restart(stdout=PIPE)
    try:
        assert again.stdout.read() == b"2\n"  # the same writable layer
        assert again.wait(timeout=30).code == 0
    finally:
        again.delete()
    assert os.listdir(root) == []


def test_rename_onto_a_taken_id_leaves_the_others_holds(root, data_root):
    a = Container.run(root, "ha", _image_config("sleep", "60"), data_root=data_root)
    b = Container.run(root, "hb", _image_config("sleep", "60"), data_root=data_root)
    try:
        with pytest.raises(ContainerExists):
            a.rename("hb")
        with open(b._data["image_holder"]) as f:
            assert f.read() == os.path.join(root, "hb")
    finally:
        a.delete(force=True)
        b.delete(force=True)
