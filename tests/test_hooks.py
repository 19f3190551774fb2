"""OCI hooks on the real kernel: each kind at its moment, in its namespaces,
with the state on stdin; failures and timeouts as the runtime spec rules."""

from __future__ import annotations

import json
import os
import time
import warnings

import pytest

from pycontainer import PIPE, Container, ContainerConfig, Hook, HookError, Hooks, Namespace, Process

from .conftest import owned_copy

SH = "/bin/sh"  # the host's shell: hooks of the runtime's namespaces run on the host


def recorder(log: str, name: str, extra: str = "") -> Hook:
    """A hook that appends one JSON line: its name, the state it read, its
    mount and uts namespaces, and what it sees at /."""
    script = (
        f'state=$(cat); printf \'{{"name":"%s","state":%s,"mnt":"%s","uts":"%s","root":"%s"}}\\n\' '
        f'"{name}" "$state" "$(readlink /proc/self/ns/mnt)" "$(readlink /proc/self/ns/uts)" '
        f'"$(ls / | tr "\\n" " ")" >> {log}; {extra}'
    )
    return Hook(path=SH, args=["sh", "-c", script])


def read_log(log: str) -> list[dict]:
    with open(log) as f:
        return [json.loads(line) for line in f]


def ns(kind: str) -> str:
    return os.readlink(f"/proc/self/ns/{kind}")


def test_every_kind_runs_at_its_moment_in_its_namespaces(root, config, tmp_path):
    log = str(tmp_path / "hooks.log")
    inside = Hook(path="/bin/sh", args=["sh", "-c", "cat > /start.json; ls / > /start.ls"])
    hooks = Hooks(
        prestart=[recorder(log, "prestart")],
        create_runtime=[recorder(log, "create_runtime")],
        create_container=[recorder(log, "create_container")],
        start_container=[inside],
        poststart=[recorder(log, "poststart")],
        poststop=[recorder(log, "poststop", f"if test -e {root}/hk; then echo STATE-LEFT >> {log}; fi")],
    )
    cfg = config("sh", "-c", "cat /start.json; echo; cat /start.ls", hooks=hooks, annotations={"org.example": "yes"})
    c = Container.create(root, "hk", cfg, stdout=PIPE)
    pid = c.pid
    created = read_log(log)
    assert [r["name"] for r in created] == ["prestart", "create_runtime", "create_container"]
    for r in created:
        assert r["state"] == {"ociVersion": r["state"]["ociVersion"], "id": "hk", "pid": pid, "status": "creating",
                              "bundle": cfg.rootfs, "annotations": {"org.example": "yes"}}  # fmt: skip
    # prestart and createRuntime: ours; createContainer: the container's,
    # before pivot_root (the host's tree is still its root)
    assert created[0]["mnt"] == created[1]["mnt"] == ns("mnt") and created[0]["uts"] == ns("uts")
    cc = created[2]
    assert cc["mnt"] == os.readlink(f"/proc/{pid}/ns/mnt") != ns("mnt")
    assert cc["uts"] == os.readlink(f"/proc/{pid}/ns/uts") != ns("uts")
    assert set(cc["root"].split()) == {n for n in os.listdir("/") if not n.startswith(".")}

    c.start()
    out, _ = c.communicate(timeout=30)
    start_state, start_ls = out.decode().split("\n", 1)
    # startContainer: in the container, in its rootfs, before the process
    assert json.loads(start_state) == {**created[0]["state"], "status": "created"}
    assert "linuxrc" in start_ls.split() and "start.json" in start_ls.split()
    poststart = read_log(log)[3]
    assert poststart["name"] == "poststart" and poststart["state"]["status"] == "running"
    assert poststart["mnt"] == ns("mnt")

    c.delete()
    lines = read_log(log) if "STATE-LEFT" not in open(log).read() else pytest.fail("poststop ran before the delete")
    assert [r["name"] for r in lines] == ["prestart", "create_runtime", "create_container", "poststart", "poststop"]
    assert lines[-1]["state"]["status"] == "stopped" and lines[-1]["mnt"] == ns("mnt")


def test_hook_args_and_env_are_exactly_as_given(root, config, tmp_path):
    out = tmp_path / "env"
    hook = Hook(path=SH, args=["my-name", "-c", f'echo "$0|$FOO|$(env | wc -l)" > {out}'], env=["FOO=bar"])
    c = Container.run(root, "hk-env", config("true", hooks=Hooks(poststart=[hook])))
    c.wait(timeout=30)
    c.delete()
    # argv[0] as given; the environment is the hook's alone (sh adds PWD, SHLVL, _ at most)
    name, foo, count = out.read_text().strip().split("|")
    assert (name, foo) == ("my-name", "bar") and int(count) <= 4


def test_a_failing_create_hook_fails_create_and_leaves_nothing(root, config, tmp_path):
    log = str(tmp_path / "hooks.log")
    failing = Hook(path=SH, args=["sh", "-c", "echo it went wrong >&2; exit 3"])
    hooks = Hooks(
        prestart=[recorder(log, "prestart")],
        create_runtime=[recorder(log, "create_runtime"), failing, recorder(log, "never")],
        create_container=[recorder(log, "never")],
        poststop=[recorder(log, "poststop")],
    )
    with pytest.raises(HookError) as e:
        Container.create(root, "hk-fail", config("true", hooks=hooks))
    assert (e.value.kind, e.value.index, e.value.path) == ("create_runtime", 1, SH)
    assert "exited with status 3" in str(e.value) and "it went wrong" in str(e.value)
    # the lifecycle goes on at delete: poststop runs, nothing of the container stays
    names = [r["name"] for r in read_log(log)]
    assert names == ["prestart", "create_runtime", "poststop"]
    assert os.listdir(root) == []


def test_a_failing_create_container_hook_names_itself(root, config):
    missing = Hook(path="/no/such/hook")
    with pytest.raises(HookError) as e:
        Container.create(root, "hk-missing", config("true", hooks=Hooks(create_container=[missing])))
    assert e.value.kind == "create_container" and e.value.path == "/no/such/hook"
    assert "No such file" in str(e.value)
    with pytest.raises(HookError) as e:
        Container.create(root, "hk-missing", config("true", hooks=Hooks(create_runtime=[missing])))
    assert e.value.kind == "create_runtime" and "cannot run" in str(e.value)
    assert os.listdir(root) == []


def test_a_hook_past_its_timeout_is_killed_with_what_it_started(root, config, tmp_path):
    pids = tmp_path / "pids"
    slow = Hook(path=SH, args=["sh", "-c", f"sleep 60 & echo $$ $! > {pids}; wait"], timeout=1)
    began = time.monotonic()
    with pytest.raises(HookError) as e:
        Container.create(root, "hk-slow", config("true", hooks=Hooks(prestart=[slow])))
    assert "timed out after 1 s" in str(e.value)
    assert time.monotonic() - began < 10
    for pid in map(int, pids.read_text().split()):
        assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"
    assert os.listdir(root) == []


def test_a_timed_out_hook_in_the_container_is_killed_too(root, config, tmp_path):
    # no pid namespace of its own: the init's death would not take the hook with it
    pids = tmp_path / "pids"
    slow = Hook(path=SH, args=["sh", "-c", f"sleep 60 & echo $$ $! > {pids}; wait"], timeout=1)
    ns = [Namespace(t) for t in ("mount", "uts", "ipc")]
    with pytest.raises(HookError, match="timed out"):
        Container.create(root, "hk-slow-cc", config("true", namespaces=ns, hooks=Hooks(create_container=[slow])))
    for pid in map(int, pids.read_text().split()):
        assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"
    assert os.listdir(root) == []


def test_start_container_hooks_run_confined_as_the_containers_process(root, config):
    """A startContainer hook is a program of the rootfs: it runs as the
    container's process does (its cgroup, capabilities, seccomp), not with
    the runtime's privileges."""
    probe = "grep -E '^(CapEff|Seccomp):' /proc/self/status; cat /proc/self/cgroup"
    hook = Hook(path="/bin/sh", args=["sh", "-c", f"({probe}) > /hook.txt"])
    c = Container.run(root, "hk-conf", config("sh", "-c", f"{probe}; echo ==; cat /hook.txt",
                                               hooks=Hooks(start_container=[hook])), stdout=PIPE)  # fmt: skip
    out, _ = c.communicate(timeout=30)
    c.delete()
    mine, hooks = out.decode().split("==\n")
    assert mine == hooks and "Seccomp:\t2" in mine


def test_a_failing_start_container_hook_stops_the_container(root, config, tmp_path):
    log = str(tmp_path / "hooks.log")
    failing = Hook(path="/bin/sh", args=["sh", "-c", "exit 1"])
    hooks = Hooks(
        start_container=[failing], poststart=[recorder(log, "poststart")], poststop=[recorder(log, "poststop")]
    )
    c = Container.create(root, "hk-start", config("sh", "-c", "echo ran > /dev/stderr", hooks=hooks), stderr=PIPE)
    with pytest.raises(HookError) as e:
        c.start()
    assert e.value.kind == "start_container"
    c.wait(timeout=30)
    assert c.state().status.value == "stopped"
    assert c.stderr.read() == b""  # the process never ran
    c.delete()
    assert [r["name"] for r in read_log(log)] == ["poststop"]


def test_run_with_start_container_hooks_creates_then_starts(root, config, tmp_path):
    """startContainer hooks run in the created container, before start: run
    takes the two steps then (elsewhere its init execs without the exec fifo)."""
    inside = Hook(path="/bin/sh", args=["sh", "-c", "cat > /start.json"])
    c = Container.run(root, "hk-run", config("cat", "/start.json", hooks=Hooks(start_container=[inside])), stdout=PIPE)
    out, _ = c.communicate(timeout=30)
    assert c.wait(timeout=30).code == 0
    c.delete()
    assert json.loads(out)["status"] == "created"
    log = str(tmp_path / "hooks.log")
    failing = Hook(path="/bin/sh", args=["sh", "-c", "exit 1"])
    hooks = Hooks(
        start_container=[failing], poststart=[recorder(log, "poststart")], poststop=[recorder(log, "poststop")]
    )
    with pytest.raises(HookError) as e:
        Container.run(root, "hk-run-fail", config("true", hooks=hooks))
    assert e.value.kind == "start_container"
    assert [r["name"] for r in read_log(log)] == ["poststop"]
    assert os.listdir(root) == []


def test_run_runs_poststart_hooks_once_the_process_runs_their_failures_warnings(root, config, tmp_path):
    log = str(tmp_path / "hooks.log")
    failing = Hook(path=SH, args=["sh", "-c", "exit 2"])
    exe = tmp_path / "exe"
    what_runs = f'pid=$(echo "$state" | sed \'s/.*"pid": *\\([0-9]*\\).*/\\1/\'); readlink /proc/$pid/exe > {exe}'
    hooks = Hooks(poststart=[failing, recorder(log, "poststart", what_runs)], poststop=[recorder(log, "poststop")])
    with pytest.warns(UserWarning, match=r"hooks.poststart\[0\].*status 2"):
        c = Container.run(root, "hk-run-post", config("sleep", "30", hooks=hooks))
    try:
        [post] = read_log(log)
        assert post["state"]["status"] == "running" and post["state"]["pid"] == c.pid
        assert exe.read_text() == "/bin/busybox\n"  # exec'd before the hook ran
    finally:
        c.delete(force=True)
    assert [r["name"] for r in read_log(log)] == ["poststart", "poststop"]


def test_poststart_and_poststop_failures_are_warnings(root, config, tmp_path):
    failing = Hook(path=SH, args=["sh", "-c", "exit 2"])
    after = tmp_path / "after"
    hooks = Hooks(poststart=[failing, Hook(path=SH, args=["sh", "-c", f"touch {after}"])], poststop=[failing])
    c = Container.create(root, "hk-warn", config("true", hooks=hooks))
    with pytest.warns(UserWarning, match=r"hooks.poststart\[0\].*status 2"):
        c.start()
    assert after.exists()  # the next hook ran
    assert c.wait(timeout=30).code == 0
    with pytest.warns(UserWarning, match=r"hooks.poststop\[0\]"):
        c.delete()
    assert os.listdir(root) == []


def test_hooks_survive_in_the_state_for_a_later_process(root, config, tmp_path):
    marker = tmp_path / "marker"
    hooks = Hooks(poststart=[Hook(path=SH, args=["sh", "-c", f"cat > {marker}"])])
    c = Container.create(root, "hk-load", config("true", hooks=hooks))
    c.close()
    other = Container.load(root, "hk-load")
    assert other.config.hooks == hooks
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        other.start()
    assert json.loads(marker.read_text())["status"] == "running"
    deadline = time.monotonic() + 30
    while other.state().status.value != "stopped" and time.monotonic() < deadline:
        time.sleep(0.02)
    other.delete()


def test_hooks_in_a_user_namespace(rootfs, public_dir):

    from pycontainer import IDMap

    logs = os.path.join(public_dir, "logs")
    os.mkdir(logs)
    os.chown(logs, 100000, 100000)  # the container's root may write there
    log = os.path.join(logs, "hooks.log")
    mine = owned_copy(rootfs, os.path.join(public_dir, "rootfs"), 100000)
    root = os.path.join(public_dir, "state")
    cfg = ContainerConfig(
        process=Process(args=["cat", "/start"]),
        rootfs=mine,
        namespaces=[*(Namespace(t) for t in ("pid", "mount", "uts", "ipc", "user"))],
        uid_mappings=[IDMap(0, 100000, 65536)],
        gid_mappings=[IDMap(0, 100000, 65536)],
        hooks=Hooks(
            create_container=[Hook(path=SH, args=["sh", "-c", f"id -u > {log}; readlink /proc/self/ns/user >> {log}"])],
            start_container=[Hook(path="/bin/sh", args=["sh", "-c", "id -u > /start"])],
        ),
    )
    c = Container.run(root, "hk-user", cfg, stdout=PIPE)
    out, _ = c.communicate(timeout=30)
    c.delete()
    assert os.listdir(root) == []
    uid, userns = open(log).read().split()
    assert uid == "0" and userns != ns("user")  # root of the container's own user namespace
    assert out.decode().strip() == "0"
