"""Container.restart and Container.rename (issue 8's restart, start and
rename), on the real kernel."""

from __future__ import annotations

import os
import time

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
