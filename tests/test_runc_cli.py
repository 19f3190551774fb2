"""pycontainer-runc (issue 7): runc's command line over an OCI bundle, each
command run as its own process, as engines run runc."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from pycontainer import Container, ExitStatus, Status

from .conftest import needs_root

pytestmark = needs_root


@pytest.fixture
def bundle(tmp_path, rootfs):
    """A bundle from `pycontainer-runc spec`, with the built-in rootfs."""
    b = tmp_path / "bundle"
    b.mkdir()
    assert runc(tmp_path / "unused", "spec", "--bundle", str(b)).returncode == 0
    shutil.copytree(rootfs, b / "rootfs", symlinks=True)

    def with_args(*args: str) -> str:
        spec = json.loads((b / "config.json").read_text())
        spec["process"]["terminal"] = False
        spec["process"]["args"] = list(args)
        (b / "config.json").write_text(json.dumps(spec))
        return str(b)

    return with_args


def runc(root, *args: str) -> subprocess.CompletedProcess:
    """Run one command of pycontainer-runc."""
    return run_files([sys.executable, "-m", "pycontainer.oci.runc", "--root", str(root), *args])


def run_files(argv: list[str]) -> subprocess.CompletedProcess:
    """Run a command with files, not pipes, for stdout and stderr: a
    detached container keeps the stdio it was given (as under runc), and a
    pipe would not reach EOF until the container ends."""
    import tempfile

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, timeout=60)
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(r.args, r.returncode, out.read(), err.read())


def test_spec_writes_a_valid_bundle_config_and_keeps_an_existing_one(tmp_path):
    from .test_oci import SCHEMA_DIR

    r = runc(tmp_path / "state", "spec", "--bundle", str(tmp_path))
    assert r.returncode == 0, r.stderr
    spec = json.loads((tmp_path / "config.json").read_text())
    assert spec["root"] == {"path": "rootfs", "readonly": True} and spec["process"]["terminal"] is True
    if SCHEMA_DIR.exists():
        import jsonschema  # noqa: F401  (validated in test_oci; here: it loads back)
    from pycontainer.oci import config_from_spec

    config_from_spec(spec, str(tmp_path))
    r = runc(tmp_path / "state", "spec", "--bundle", str(tmp_path))
    assert r.returncode == 1 and "exists" in r.stderr


def test_run_in_the_foreground_passes_the_exit_code_and_stdio(tmp_path, bundle, cleanup):
    root = tmp_path / "state"
    r = runc(root, "run", "--bundle", bundle("sh", "-c", "echo out; echo err >&2; exit 3"), "c1")
    assert (r.returncode, r.stdout, r.stderr) == (3, "out\n", "err\n")
    assert os.listdir(root) == []


@pytest.fixture
def cleanup(tmp_path):
    """Whatever a failing test left under its state root goes (host_guard
    then checks that nothing else stays)."""
    yield
    root = tmp_path / "state"
    if root.exists():
        for c in Container.list(str(root)):
            c.delete(force=True)


def test_create_start_state_ps_kill_delete(tmp_path, bundle, cleanup):
    root, pidfile = tmp_path / "state", tmp_path / "pid"
    b = bundle("sleep", "30")
    r = runc(root, "create", "--bundle", b, "--pid-file", str(pidfile), "c2")
    assert r.returncode == 0, r.stderr
    state = json.loads(runc(root, "state", "c2").stdout)
    assert state["status"] == "created" and state["pid"] == int(pidfile.read_text()) and state["bundle"] == b
    assert json.loads(runc(root, "list", "--format", "json").stdout)[0]["id"] == "c2"
    assert runc(root, "start", "c2").returncode == 0
    assert runc(root, "start", "c2").returncode == 1  # twice: an error, as runc's
    assert json.loads(runc(root, "state", "c2").stdout)["status"] == "running"
    assert state["pid"] in json.loads(runc(root, "ps", "--format", "json", "c2").stdout)
    assert runc(root, "kill", "c2", "KILL").returncode == 0
    deadline = time.monotonic() + 20
    while json.loads(runc(root, "state", "c2").stdout)["status"] != "stopped":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    r = runc(root, "kill", "c2", "KILL")
    assert r.returncode == 1 and 'msg="container not running"' in r.stderr  # kill of a stopped container
    assert runc(root, "delete", "c2").returncode == 0
    r = runc(root, "state", "c2")
    assert r.returncode == 1 and "does not exist" in r.stderr
    assert os.listdir(root) == []


def test_a_detached_container_keeps_running_and_its_status_is_kept(tmp_path, bundle, cleanup):
    root = tmp_path / "state"
    assert runc(root, "run", "--detach", "--bundle", bundle("sh", "-c", "sleep 60"), "long").returncode == 0
    assert runc(root, "run", "-d", "--bundle", bundle("sh", "-c", "exit 5"), "short").returncode == 0
    r = runc(root, "delete", "long")
    assert r.returncode == 1 and "running" in r.stderr  # not without --force
    deadline = time.monotonic() + 20
    while Container.load(str(root), "short").status is not Status.STOPPED:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    # no process of ours waited for it: its init recorded the status
    assert Container.load(str(root), "short").wait(timeout=5) == ExitStatus(code=5)
    assert runc(root, "kill", "long", "SIGTERM").returncode == 0
    assert runc(root, "delete", "--force", "long").returncode == 0
    assert runc(root, "delete", "short").returncode == 0
    assert os.listdir(root) == []


def test_errors_are_runc_style_and_logged(tmp_path, bundle, cleanup):
    root, log = tmp_path / "state", tmp_path / "log.json"
    r = runc(root, "--log", str(log), "--log-format", "json", "kill", "ghost")
    assert r.returncode == 1 and "does not exist" in r.stderr
    entry = json.loads(log.read_text().splitlines()[-1])
    assert entry == {"level": "error", "msg": "container does not exist", "time": entry["time"]}
    r = runc(root, "--debug", "--log", str(log), "--log-format", "json", "list", "-q")
    debug = [json.loads(line) for line in log.read_text().splitlines()][-2:]
    assert r.returncode == 0 and [d["level"] for d in debug] == ["debug", "debug"]
    assert "list -q" in debug[0]["msg"] and "exit status 0" in debug[1]["msg"]
    assert runc(root, "run", "-d", "--bundle", bundle("sleep", "60"), "x").returncode == 0
    r = runc(root, "kill", "x", "SIGWHATEVER")
    assert r.returncode == 1 and "unknown signal" in r.stderr
    assert runc(root, "delete", "-f", "x").returncode == 0


def test_features(tmp_path):
    r = runc(tmp_path, "features")
    f = json.loads(r.stdout)
    assert f["linux"]["seccomp"]["enabled"] and "SCMP_ACT_ERRNO" in f["linux"]["seccomp"]["actions"]
    assert "user" in f["linux"]["namespaces"] and "CAP_SYS_ADMIN" in f["linux"]["capabilities"]


def test_exec_a_command_and_a_process_file(tmp_path, bundle, cleanup):
    root = tmp_path / "state"
    assert runc(root, "run", "-d", "--bundle", bundle("sleep", "60"), "ex").returncode == 0
    r = runc(root, "exec", "--env", "X=1", "--cwd", "/tmp", "ex", "sh", "-c", "echo $X $(pwd); exit 4")
    assert (r.returncode, r.stdout) == (4, "1 /tmp\n"), r.stderr
    proc = {"args": ["sh", "-c", "grep CapEff /proc/self/status; id -u"], "cwd": "/", "env": ["PATH=/bin"],
            "user": {"uid": 1000, "gid": 1000}, "capabilities": {}}  # fmt: skip
    (tmp_path / "process.json").write_text(json.dumps(proc))
    r = runc(root, "exec", "--process", str(tmp_path / "process.json"), "ex")
    assert r.returncode == 0 and r.stdout.split() == ["CapEff:", "0000000000000000", "1000"], r.stderr
    assert runc(root, "kill", "ex", "KILL").returncode == 0
    deadline = time.monotonic() + 20
    while Container.load(str(root), "ex").status is not Status.STOPPED:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    r = runc(root, "exec", "ex", "true")
    assert r.returncode == 255 and "cannot exec in a stopped container" in r.stderr  # as runc's exec
    assert runc(root, "delete", "ex").returncode == 0
    r = runc(root, "exec", "ex", "true")
    assert r.returncode == 255 and "does not exist" in r.stderr


def test_a_terminal_goes_to_the_console_socket(tmp_path, bundle, cleanup):
    """As runc: the pty master is sent over --console-socket (SCM_RIGHTS,
    the terminal's name as data); the caller talks to the container through it."""
    import socket
    import threading

    root, path = tmp_path / "state", str(tmp_path / "console.sock")
    b = bundle("sh", "-c", "tty; read line; echo got-$line; sleep 30")
    spec = json.loads((tmp_path / "bundle" / "config.json").read_text())
    spec["process"]["terminal"] = True
    (tmp_path / "bundle" / "config.json").write_text(json.dumps(spec))
    got: dict = {}
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(path)
        listener.listen(1)

        def accept() -> None:
            conn, _ = listener.accept()
            with conn:
                got["name"], got["fds"], _, _ = socket.recv_fds(conn, 1024, 1)

        t = threading.Thread(target=accept)
        t.start()
        r = runc(root, "run", "-d", "--console-socket", path, "--bundle", b, "tty")
        t.join(timeout=30)
    assert r.returncode == 0, r.stderr
    (master,) = got["fds"]
    try:
        assert got["name"] == b"/dev/ptmx"  # the master's name, as runc's console package gives it
        os.write(master, b"hi\n")
        out = b""
        deadline = time.monotonic() + 20
        while b"got-hi" not in out:
            assert time.monotonic() < deadline, out
            out += os.read(master, 4096)
        assert b"/dev/pts/0" in out  # the container's own devpts
    finally:
        os.close(master)
    assert runc(root, "delete", "-f", "tty").returncode == 0
    # without a console socket a terminal is refused, with a message
    r = runc(root, "run", "--bundle", b, "tty2")
    assert r.returncode == 1 and "console-socket" in r.stderr


def _set_spec(tmp_path, **changes) -> None:
    path = tmp_path / "bundle" / "config.json"
    spec = json.loads(path.read_text())
    for key, value in changes.items():
        where = spec
        *parents, last = key.split("__")
        for p in parents:
            where = where.setdefault(p, {})
        where[last] = value
    path.write_text(json.dumps(spec))


def test_update_and_events_stats(tmp_path, bundle, cleanup):
    root = tmp_path / "state"
    assert runc(root, "run", "-d", "--bundle", bundle("sleep", "60"), "up").returncode == 0
    stats = json.loads(runc(root, "events", "--stats", "up").stdout)
    assert stats["type"] == "stats" and stats["id"] == "up"
    assert stats["data"]["pids"]["current"] >= 1 and "limit" not in stats["data"]["pids"]
    r = runc(root, "update", "--memory", "64m", "--pids-limit", "20", "up")
    assert r.returncode == 0, r.stderr
    data = json.loads(runc(root, "events", "--stats", "up").stdout)["data"]
    assert data["pids"]["limit"] == 20 and data["memory"]["usage"]["limit"] == 64 << 20
    (tmp_path / "res.json").write_text(json.dumps({"pids": {"limit": 30}}))
    assert runc(root, "update", "--resources", str(tmp_path / "res.json"), "up").returncode == 0
    data = json.loads(runc(root, "events", "--stats", "up").stdout)["data"]
    assert data["pids"]["limit"] == 30 and data["memory"]["usage"]["limit"] == 64 << 20  # the rest stays
    r = runc(root, "update", "--memory", "lots", "up")
    assert r.returncode == 1 and "--memory" in r.stderr
    assert runc(root, "delete", "-f", "up").returncode == 0


def test_events_streams_stats_and_an_oom_until_the_container_stops(tmp_path, bundle, cleanup):
    root = tmp_path / "state"
    b = bundle("sh", "-c", "sleep 1; dd if=/dev/zero of=/dev/null bs=64M count=1")
    _set_spec(tmp_path, linux__resources={"memory": {"limit": 16 << 20, "swap": 16 << 20}})
    assert runc(root, "run", "-d", "--bundle", b, "ev").returncode == 0
    r = runc(root, "events", "--interval", "200ms", "ev")
    assert r.returncode == 0, r.stderr
    events = [json.loads(line) for line in r.stdout.splitlines()]
    assert sum(e["type"] == "stats" for e in events) >= 3  # about a second of them
    assert {"type": "oom", "id": "ev"} in events
    assert runc(root, "delete", "ev").returncode == 0


def test_hooks_from_the_bundle_run_across_commands(tmp_path, bundle, cleanup):
    root, log = tmp_path / "state", tmp_path / "hooks.log"

    def hook(name: str) -> dict:
        return {"path": "/bin/sh", "args": ["sh", "-c", f'echo "{name} $(cat)" >> {log}']}

    b = bundle("true")
    _set_spec(tmp_path, hooks={"createRuntime": [hook("createRuntime")], "poststart": [hook("poststart")],
                               "poststop": [hook("poststop")]},
              annotations={"org.example.k": "v"})  # fmt: skip
    assert runc(root, "create", "--bundle", b, "hk").returncode == 0
    assert json.loads(runc(root, "state", "hk").stdout)["annotations"] == {"org.example.k": "v"}
    assert runc(root, "start", "hk").returncode == 0
    deadline = time.monotonic() + 20
    while Container.load(str(root), "hk").status is not Status.STOPPED:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert runc(root, "delete", "hk").returncode == 0
    lines = log.read_text().splitlines()
    assert [line.split()[0] for line in lines] == ["createRuntime", "poststart", "poststop"]
    states = [json.loads(line.split(" ", 1)[1]) for line in lines]
    assert [s["status"] for s in states] == ["creating", "running", "stopped"]
    assert all(s["bundle"] == b and s["annotations"] == {"org.example.k": "v"} for s in states)
    # a failing poststop hook is a warning (logged), not a failure
    _set_spec(tmp_path, hooks={"poststop": [{"path": "/bin/false"}]})
    r = runc(root, "run", "--bundle", b, "hk2")
    assert r.returncode == 0 and "level=warning msg=\"hooks.poststop[0] '/bin/false' exited with status 1\"" in r.stderr
    # a failing createRuntime hook fails create, leaving nothing
    _set_spec(tmp_path, hooks={"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", "echo nope >&2; exit 9"]}]})
    r = runc(root, "create", "--bundle", b, "hk3")
    assert (
        r.returncode == 1 and "createRuntime" not in r.stderr and "create_runtime[0]" in r.stderr and "nope" in r.stderr
    )
    assert os.listdir(root) == []
    # a run whose start fails (a failing startContainer hook) leaves nothing, as runc's
    _set_spec(tmp_path, hooks={"startContainer": [{"path": "/bin/false"}]})
    r = runc(root, "run", "--bundle", b, "hk4")
    assert r.returncode == 1 and "start_container[0]" in r.stderr
    assert os.listdir(root) == []


def test_force_deleting_what_is_not_there_succeeds_as_runc(tmp_path):
    r = runc(tmp_path / "state", "delete", "--force", "nothing")
    assert (r.returncode, r.stderr) == (0, "")
    r = runc(tmp_path / "state", "delete", "nothing")
    assert r.returncode == 1 and "does not exist" in r.stderr


def _errors(stderr: str) -> list[str]:
    """The msg of each level=error line (warnings differ: runc has fewer)."""
    import re

    return [json.loads(m) for m in re.findall(r'level=error msg=(".*")$', stderr, re.MULTILINE)]


@pytest.mark.skipif(shutil.which("runc") is None, reason="runc is not installed (README's apt-get line installs it)")
def test_lifecycle_errors_match_runcs_codes_and_messages(tmp_path, rootfs, cleanup):
    """The same steps through runc and pycontainer-runc, side by side: each
    exit status and each error message alike (podman and containerd match
    on runc's words)."""
    b = tmp_path / "bundle"
    b.mkdir()
    subprocess.run(["runc", "spec", "--bundle", str(b)], check=True)
    shutil.copytree(rootfs, b / "rootfs", symlinks=True)
    spec = json.loads((b / "config.json").read_text())
    spec["process"].update(terminal=False, args=["sleep", "60"])
    spec["linux"]["cgroupsPath"] = f"/pctest-life-{os.getpid()}/c1"
    (b / "config.json").write_text(json.dumps(spec))
    steps = [
        ["state", "ghost"], ["kill", "ghost"], ["delete", "ghost"], ["delete", "--force", "ghost"],
        ["create", "--bundle", str(b), "c1"], ["create", "--bundle", str(b), "c1"], ["resume", "c1"],
        ["delete", "c1"],  # a created container may go without --force
        ["create", "--bundle", str(b), "c1"], ["start", "c1"], ["start", "c1"], ["delete", "c1"], ["resume", "c1"],
        ["pause", "c1"], ["pause", "c1"], ["exec", "c1", "true"], ["resume", "c1"], ["kill", "c1", "KILL"],
        "wait", ["kill", "c1"], ["start", "c1"], ["exec", "c1", "true"], ["pause", "c1"], ["resume", "c1"],
        ["delete", "c1"], ["exec", "c1", "true"], ["kill", "c1"],
    ]  # fmt: skip

    def drive(argv0: list[str], root: str) -> list[tuple[str, int, list[str]]]:
        out = []
        for step in steps:
            if step == "wait":
                wait_until_stopped(argv0, root)
                continue
            r = run_files([*argv0, "--root", root, *step])
            out.append((" ".join(step[:1] + step[-1:]), r.returncode, _errors(r.stderr)))
        return out

    def wait_until_stopped(argv0: list[str], root: str) -> None:
        deadline = time.monotonic() + 20
        while True:
            r = run_files([*argv0, "--root", root, "state", "c1"])
            if json.loads(r.stdout)["status"] == "stopped":
                return
            assert time.monotonic() < deadline
            time.sleep(0.05)

    try:
        theirs = drive(["runc"], str(tmp_path / "runc-state"))
    finally:
        run_files(["runc", "--root", str(tmp_path / "runc-state"), "delete", "--force", "c1"])
        for top in ("/sys/fs/cgroup", *(f"/sys/fs/cgroup/{n}" for n in os.listdir("/sys/fs/cgroup"))):
            # runc leaves the parent of its cgroup (pycontainer removes what it made)
            with contextlib.suppress(OSError):
                os.rmdir(os.path.join(top, f"pctest-life-{os.getpid()}"))
    ours = drive([sys.executable, "-m", "pycontainer.oci.runc"], str(tmp_path / "state"))
    for t, o in zip(theirs, ours, strict=True):
        # (runc names itself in "runc create failed: ...", and offers an
        # --ignore-paused that pycontainer-runc does not have)
        words = [m.replace("runc ", "", 1).replace(" (use --ignore-paused to override)", "") for m in t[2]]
        assert o == (t[0], t[1], words), (t, o)


def test_no_pivot_and_no_new_keyring_reach_the_container(tmp_path, bundle, cleanup):
    root = tmp_path / "state"
    b = bundle("sleep", "30")
    ids = [f"np-{os.urandom(4).hex()}" for _ in range(2)]  # (keyrings outlive containers a while)
    assert runc(root, "create", "--no-pivot", "--no-new-keyring", "--bundle", b, ids[0]).returncode == 0
    assert runc(root, "create", "--bundle", b, ids[1]).returncode == 0
    first, second = (Container.load(str(root), i).config for i in ids)
    assert first.no_pivot_root and not first.new_keyring
    assert not second.no_pivot_root and second.new_keyring
    with open("/proc/keys") as f:
        keys = f.read()
    assert f" _ses.{ids[0]}: " not in keys and f" _ses.{ids[1]}: " in keys
    for i in ids:
        assert runc(root, "delete", i).returncode == 0


def test_each_command_parses_alone_as_in_the_full_parser():
    """pycontainer-runc builds only the subcommand it runs: the list of
    commands it knows must be the full parser's."""
    from pycontainer.oci import runc as cli

    full = cli._parser(["--help"])
    choices = next(a for a in full._actions if a.dest == "command").choices
    assert tuple(choices) == cli._COMMANDS
    assert cli._command_of(["--root", "/x", "--log-format", "json", "--debug", "kill", "c", "9"]) == "kill"
    one = cli._parser(["--root", "/x", "update", "--memory", "1m", "c"])
    assert list(next(a for a in one._actions if a.dest == "command").choices) == ["update"]
    args = one.parse_args(["--root", "/x", "update", "--memory", "1m", "c"])
    assert (args.root, args.command, args.memory, args.id) == ("/x", "update", "1m", "c")
