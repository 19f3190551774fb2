"""The Docker-like CLI (issue 8), run as a user would: python -m pycontainer ..."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from .conftest import needs_root

pytestmark = [needs_root, pytest.mark.root]


def cli(root: str, data_root: str, *args: str, **kw) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYCONTAINER_ROOT": root, "PYCONTAINER_DATA_ROOT": data_root}
    return subprocess.run(
        [sys.executable, "-m", "pycontainer", *args], capture_output=True, text=True, env=env, timeout=60, **kw
    )


def test_run_with_the_builtin_rootfs(root, data_root):
    r = cli(
        root,
        data_root,
        "run",
        "--rm",
        "--hostname",
        "demo",
        "-e",
        "GREETING=hi",
        "--",
        "sh",
        "-c",
        "echo $GREETING from $(hostname); exit 4",
    )
    assert r.stdout == "hi from demo\n"
    assert r.returncode == 4
    assert os.listdir(root) == []


def test_run_options(root, data_root, rootfs, tmp_path):
    (tmp_path / "vol").mkdir()
    r = cli(
        root, data_root, "run", "--rm", "--rootfs", rootfs, "-v", f"{tmp_path / 'vol'}:/vol:ro", "-w", "/work", "-u", "nobody",
        "--init", "--read-only", "--", "sh", "-c", "pwd; id -un; touch /vol/x || echo ro; cat /proc/1/cmdline | head -c 16",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[:3] == ["/work", "nobody", "ro"]
    assert r.stdout.splitlines()[3].startswith("pycontainer-init")


def test_exit_codes_for_errors(root, data_root):
    assert cli(root, data_root, "run", "--", "no-such-cmd").returncode == 127  # (and removed: it never ran)
    r = cli(root, data_root, "run", "--rootfs", "/nonexistent", "--", "true")
    assert r.returncode == 125 and "does not exist" in r.stderr
    r = cli(root, data_root, "run", "--rm", "--", "sh", "-c", "kill -9 $$; exit 3")
    assert r.returncode == 3  # pid 1 cannot be killed from inside
    r = cli(root, data_root, "state", "ghost")
    assert r.returncode == 125 and "'ghost' does not exist" in r.stderr
    r = cli(root, data_root, "run", "-v", "nocolon", "--", "true")
    assert r.returncode == 125 and "[SRC:]DST" in r.stderr


def test_list_state_kill_delete(root, data_root, config):
    from pycontainer import Container

    c = Container.run(root, "svc", config("sleep", "60"))
    try:
        r = cli(root, data_root, "list")
        assert r.returncode == 0 and "svc" in r.stdout and "Up" in r.stdout
        state = json.loads(cli(root, data_root, "state", "svc").stdout)
        assert state["id"] == "svc" and state["status"] == "running" and state["pid"] == c.pid
        r = cli(root, data_root, "delete", "svc")
        assert r.returncode == 1 and "running" in r.stderr  # needs -f (Docker's status for it: 1)
        assert cli(root, data_root, "kill", "-s", "KILL", "svc").returncode == 0
        assert c.wait(timeout=10).signal == 9
        assert cli(root, data_root, "kill", "svc").returncode == 1  # stopped
        assert cli(root, data_root, "delete", "svc").returncode == 0
        assert os.listdir(root) == []
    finally:
        if os.path.exists(os.path.join(root, "svc")):
            c.delete(force=True)
        else:
            c.close()


def test_tty(root, data_root):
    r = subprocess.run(
        ["script", "-qec", f"{sys.executable} -m pycontainer run --rm -t -- sh -c 'tty; echo $TERM'", "/dev/null"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        env={**os.environ, "PYCONTAINER_ROOT": root, "PYCONTAINER_DATA_ROOT": data_root},
    )  # fmt: skip
    assert "/dev/pts/0" in r.stdout and "xterm" in r.stdout


def test_networks_from_the_command_line(root, data_root):
    from pycontainer import _netpool

    r = cli(root, data_root, "network", "create", "lan", "--subnet", "10.131.0.0/24", "--subnet6", "fd00:31::/64")
    assert r.returncode == 0 and r.stdout == "lan\n", r.stderr
    r = cli(root, data_root, "network", "create", "lan2", "--subnet", "10.131.0.0/25")
    assert r.returncode == 125 and "overlaps network 'lan'" in r.stderr
    r = cli(root, data_root, "network", "ls")
    assert r.stdout.splitlines()[1].split()[:3] == ["lan", "10.131.0.0/24", "fd00:31::/64"]
    # a container on a bridge network whose "host" is a throwaway namespace
    fd = _netpool.new_netns()
    try:
        from pycontainer.network import NetworkStore

        NetworkStore(root).create("tlan", subnet="10.132.0.0/24", host_netns=f"/proc/{os.getpid()}/fd/{fd}")
        r = cli(root, data_root, "run", "--rm", "--name", "web", "--network", "tlan", "-p", "8080:80", "--",
                "sh", "-c", "ip -o -4 addr show eth0 | awk '{print $4}'; grep web /etc/hosts")  # fmt: skip
        assert r.returncode == 0 and r.stdout == "10.132.0.2/24\n10.132.0.2\tweb\n", r.stderr
        inspect = json.loads(cli(root, data_root, "network", "inspect", "tlan").stdout)
        assert inspect["subnet"] == "10.132.0.0/24" and inspect["members"] == []
        assert cli(root, data_root, "network", "rm", "tlan").returncode == 0
    finally:
        os.close(fd)
    r = cli(root, data_root, "run", "-p", "80:80", "--", "true")
    assert r.returncode == 125 and "need a bridge network" in r.stderr
    r = cli(root, data_root, "run", "--network", "nowhere", "--", "true")
    assert r.returncode == 125 and "nor a network" in r.stderr
    assert cli(root, data_root, "network", "rm", "lan").returncode == 0
    r = cli(root, data_root, "network", "rm", "lan")
    assert r.returncode == 125 and "no network 'lan'" in r.stderr


def _wait_status(root, data_root, cid, want, timeout=20.0):
    import time

    deadline = time.monotonic() + timeout
    while True:
        ps = [json.loads(line) for line in cli(root, data_root, "ps", "-a", "--format", "json").stdout.splitlines()]
        got = next((p["State"] for p in ps if p["ID"] == cid), None)
        if got == want:
            return
        assert time.monotonic() < deadline, (cid, got, want)
        time.sleep(0.05)


def test_detached_run_logs_exec_stop_wait_inspect_rm(root, data_root):
    script = 'echo started; echo to-err >&2; trap "echo bye; exit 0" TERM; while :; do sleep 0.1; done'
    r = cli(root, data_root, "run", "-d", "--name", "bg", "--log-opt", "max-size=1m", "--", "sh", "-c", script)
    assert (r.returncode, r.stdout) == (0, "bg\n"), r.stderr
    _wait_status(root, data_root, "bg", "running")
    r = cli(root, data_root, "ps")
    assert r.stdout.splitlines()[0].split()[:2] == ["CONTAINER", "ID"] and "bg" in r.stdout and "Up" in r.stdout
    assert cli(root, data_root, "ps", "-q").stdout == "bg\n"
    r = cli(root, data_root, "exec", "-e", "X=1", "bg", "sh", "-c", "echo in-exec $X; exit 5")
    assert (r.returncode, r.stdout) == (5, "in-exec 1\n")
    r = cli(root, data_root, "pause", "bg")
    assert r.returncode == 0 and "Paused" in cli(root, data_root, "ps").stdout
    assert cli(root, data_root, "unpause", "bg").returncode == 0
    r = cli(root, data_root, "top", "bg")
    assert "sleep" in r.stdout or "sh -c" in r.stdout
    import time

    began = time.monotonic()
    assert cli(root, data_root, "stop", "-t", "10", "bg").returncode == 0
    assert time.monotonic() - began < 8  # the trap ended it at SIGTERM: no wait for the timeout
    r = cli(root, data_root, "logs", "bg")
    assert (r.stdout, r.stderr) == ("started\nbye\n", "to-err\n")
    r = cli(root, data_root, "logs", "--tail", "1", "-t", "bg")
    assert r.stdout.split(" ", 1)[1] == "bye\n" and r.stdout[:4].isdigit()
    assert cli(root, data_root, "wait", "bg").stdout == "0\n"
    info = json.loads(cli(root, data_root, "inspect", "bg").stdout)[0]
    assert info["State"]["Status"] == "exited" and info["State"]["ExitCode"] == 0 and info["Path"] == "sh"
    assert cli(root, data_root, "ps").stdout.count("\n") == 1  # header only: stopped ones need -a
    assert "Exited (0)" in cli(root, data_root, "ps", "-a").stdout
    assert cli(root, data_root, "rm", "bg").returncode == 0
    assert os.listdir(root) == []


def test_stop_kills_after_the_timeout(root, data_root):
    import time

    r = cli(
        root,
        data_root,
        "run",
        "-d",
        "--name",
        "stubborn",
        "--",
        "sh",
        "-c",
        "trap '' TERM; while :; do sleep 0.1; done",
    )
    assert r.returncode == 0, r.stderr
    _wait_status(root, data_root, "stubborn", "running")
    began = time.monotonic()
    assert cli(root, data_root, "stop", "-t", "1", "stubborn").returncode == 0
    took = time.monotonic() - began
    assert 1.0 <= took < 8
    assert cli(root, data_root, "wait", "stubborn").stdout == "137\n"  # SIGKILL
    assert cli(root, data_root, "rm", "stubborn").returncode == 0


def test_create_start_and_a_kept_foreground_container(root, data_root, tmp_path):
    (tmp_path / "env").write_text("A=1\n# a comment\nB=2\n")
    r = cli(root, data_root, "create", "--name", "made", "--env-file", str(tmp_path / "env"), "-e", "B=3",
            "--tmpfs", "/scratch", "--", "sh", "-c", "echo $A$B; mount | grep -c ' /scratch '")  # fmt: skip
    assert (r.returncode, r.stdout) == (0, "made\n"), r.stderr
    _wait_status(root, data_root, "made", "created")
    assert cli(root, data_root, "start", "made").returncode == 0
    assert cli(root, data_root, "wait", "made").stdout == "0\n"
    assert cli(root, data_root, "logs", "made").stdout == "13\n1\n"
    # a foreground run without --rm stays, stopped, as Docker's
    r = cli(root, data_root, "run", "--name", "kept", "--", "sh", "-c", "exit 7")
    assert r.returncode == 7
    assert "Exited (7)" in cli(root, data_root, "ps", "-a").stdout
    r = cli(root, data_root, "rm", "made", "kept", "ghost")
    assert r.returncode == 1 and r.stdout == "made\nkept\n" and "ghost" in r.stderr
    assert os.listdir(root) == []


def test_resource_and_security_options(root, data_root):
    r = cli(root, data_root, "run", "--rm", "-m", "64m", "--pids-limit", "20", "--cap-drop", "ALL",
            "--cap-add", "CHOWN", "--security-opt", "no-new-privileges", "--",
            "sh", "-c", "grep -E '^(CapEff|NoNewPrivs)' /proc/self/status")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["CapEff:", "0000000000000001", "NoNewPrivs:", "1"]
    r = cli(root, data_root, "run", "-d", "--rm", "--name", "gone", "--", "sh", "-c", "echo hi")
    assert (r.returncode, r.stdout) == (0, "gone\n"), r.stderr
    import time

    deadline = time.monotonic() + 20
    while "gone" in cli(root, data_root, "ps", "-a", "-q").stdout:  # removed once it ended
        assert time.monotonic() < deadline
        time.sleep(0.1)
    r = cli(root, data_root, "run", "--rm", "--restart", "always", "--", "true")
    assert r.returncode == 125 and "conflict" in r.stderr
    r = cli(root, data_root, "run", "--restart", "sometimes", "--", "true")
    assert r.returncode == 125 and "restart policy" in r.stderr
    r = cli(root, data_root, "run", "--rm", "--mount", "type=volume,dst=/x,volume-nocopy", "--", "sh", "-c", "ls -A /x | wc -l")
    assert (r.returncode, r.stdout) == (0, "0\n"), r.stderr  # an anonymous volume, gone with --rm
    assert cli(root, data_root, "volume", "ls").stdout.splitlines()[1:] == []
    r = cli(root, data_root, "run", "--rm", "-v", "bad name!:/x", "--", "true")
    assert r.returncode == 125 and "volume name" in r.stderr
    assert os.listdir(root) == []


def test_images_tag_save_rmi_load_history(root, data_root, tmp_path):
    assert (
        cli(root, data_root, "run", "--rm", "--", "true").returncode == 0
    )  # (the built-in image is made on first use)
    r = cli(root, data_root, "images")
    assert r.returncode == 0 and "localhost/busybox" in r.stdout, r.stderr
    assert cli(root, data_root, "tag", "localhost/busybox", "localhost/mine:1").returncode == 0
    rows = [json.loads(line) for line in cli(root, data_root, "images", "--format", "json").stdout.splitlines()]
    assert {("localhost/mine", "1"), ("localhost/busybox", "latest")} <= {(r["Repository"], r["Tag"]) for r in rows}
    assert cli(root, data_root, "save", "-o", str(tmp_path / "mine.tar"), "localhost/mine:1").returncode == 0
    r = cli(root, data_root, "rmi", "localhost/mine:1", "localhost/nothing:9")
    assert r.returncode == 1 and r.stdout == "Untagged: localhost/mine:1\n" and "nothing" in r.stderr
    assert "localhost/mine" not in cli(root, data_root, "images").stdout
    r = cli(root, data_root, "load", "-i", str(tmp_path / "mine.tar"))
    assert r.returncode == 0 and "localhost/mine:1" in r.stdout, r.stderr
    r = cli(root, data_root, "run", "--rm", "localhost/mine:1", "echo", "from-loaded")
    assert (r.returncode, r.stdout) == (0, "from-loaded\n"), r.stderr
    assert "busybox" in cli(root, data_root, "history", "localhost/mine:1").stdout
    # an OCI layout in a tar loads too
    from pycontainer.images import ImageStore

    ImageStore(data_root).export_oci_layout("localhost/mine:1", str(tmp_path / "layout"))
    subprocess.run(["tar", "-C", str(tmp_path / "layout"), "-cf", str(tmp_path / "oci.tar"), "."], check=True)
    assert cli(root, data_root, "rmi", "localhost/mine:1").returncode == 0
    r = cli(root, data_root, "load", "-i", str(tmp_path / "oci.tar"))
    assert r.returncode == 0 and "localhost/mine:1" in r.stdout, r.stderr
    assert cli(root, data_root, "rmi", "localhost/mine:1").returncode == 0
    r = cli(root, data_root, "load", "-i", str(tmp_path / "layout" / "index.json"))
    assert r.returncode == 125 and "not a tar" in r.stderr
    assert os.listdir(root) == []


def test_diff_and_commit(root, data_root):
    r = cli(
        root,
        data_root,
        "run",
        "--name",
        "maker",
        "--",
        "sh",
        "-c",
        "echo made > /made.txt; rm /etc/motd 2>/dev/null; true",
    )
    assert r.returncode == 0, r.stderr
    diff = cli(root, data_root, "diff", "maker").stdout.splitlines()
    assert "A /made.txt" in diff
    r = cli(root, data_root, "commit", "-m", "a test", "-c", 'CMD ["cat", "/made.txt"]', "maker", "localhost/made:1")
    assert r.returncode == 0 and r.stdout.startswith("sha256:"), r.stderr
    r = cli(root, data_root, "run", "--rm", "localhost/made:1")
    assert (r.returncode, r.stdout) == (0, "made\n"), r.stderr
    assert "a test" in cli(root, data_root, "history", "localhost/made:1").stdout
    assert cli(root, data_root, "rm", "maker").returncode == 0
    assert cli(root, data_root, "rmi", "localhost/made:1").returncode == 0
    assert os.listdir(root) == []


def test_login_logout_and_push_pull_through_a_registry(root, data_root, tmp_path):
    """Credentials are kept 0600 and used: push to Debian's docker-registry
    (htpasswd) on 127.0.0.1, remove the image, pull it back and run it."""
    assert (
        cli(root, data_root, "run", "--rm", "--", "true").returncode == 0
    )  # (the built-in image is made on first use)
    import stat

    import bcrypt

    from .imagetools import start_registry

    (tmp_path / "htpasswd").write_text("alice:" + bcrypt.hashpw(b"s3cret", bcrypt.gensalt(5)).decode() + "\n")
    auth = f"auth:\n  htpasswd:\n    realm: test\n    path: {tmp_path}/htpasswd\n"
    proc, host = start_registry(str(tmp_path), auth)
    env_auth = {"PYCONTAINER_AUTH_FILE": str(tmp_path / "conf" / "auth.json")}
    try:

        def c(*args: str, **kw) -> subprocess.CompletedProcess[str]:
            env = {**os.environ, "PYCONTAINER_ROOT": root, "PYCONTAINER_DATA_ROOT": data_root, **env_auth}
            return subprocess.run([sys.executable, "-m", "pycontainer", *args], capture_output=True, text=True,
                                  env=env, timeout=120, **kw)  # fmt: skip

        assert c("tag", "localhost/busybox", f"{host}/bb:1").returncode == 0
        r = c("push", "-q", f"{host}/bb:1")
        assert r.returncode == 125 and "user name and password" in r.stderr  # no credentials yet
        r = c("login", "-u", "alice", "-p", "wrong", host)
        assert r.returncode == 1 and "refused" in r.stderr and "401" in r.stderr
        assert not (tmp_path / "conf" / "auth.json").exists()  # nothing kept of a refused login
        r = c("login", "-u", "alice", "--password-stdin", host, input="s3cret\n")
        assert r.returncode == 0 and "Login Succeeded" in r.stdout, r.stderr
        st = os.stat(tmp_path / "conf" / "auth.json")
        assert stat.S_IMODE(st.st_mode) == 0o600 and stat.S_IMODE(os.stat(tmp_path / "conf").st_mode) == 0o700
        r = c("push", f"{host}/bb:1")
        assert r.returncode == 0 and r.stdout.startswith("sha256:"), r.stderr
        assert r.stderr.splitlines()[-1].endswith(": Pushed")  # (Docker's progress: a pipe gets status lines)
        assert c("rmi", f"{host}/bb:1").returncode == 0
        r = c("pull", f"{host}/bb:1")
        assert r.returncode == 0 and r.stdout == f"{host}/bb:1\n", r.stderr
        assert r.stderr.splitlines()[-1] == f"Status: Downloaded newer image for {host}/bb:1", r.stderr
        r = c("pull", "-q", f"{host}/bb:1")
        assert r.returncode == 0 and r.stderr == "", r.stderr
        r = c("run", "--rm", f"{host}/bb:1", "echo", "pulled")
        assert (r.returncode, r.stdout) == (0, "pulled\n"), r.stderr
        assert c("rmi", f"{host}/bb:1").returncode == 0
        assert c("logout", host).returncode == 0
        assert json.loads((tmp_path / "conf" / "auth.json").read_text()) == {"auths": {}}
        r = c("logout", host)
        assert r.returncode == 125 and "not logged in" in r.stderr
    finally:
        proc.terminate()
        proc.wait(10)
    assert os.listdir(root) == []


def test_cp_both_ways_and_never_out_of_the_container(root, data_root, tmp_path):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "sub" / "f").write_text("hello\n")
    (tmp_path / "one").write_text("top\n")
    r = cli(root, data_root, "run", "-d", "--name", "cpy", "-v", "/vol", "--", "sh", "-c", "ln -s /etc /tmp/link; sleep 60")
    assert r.returncode == 0, r.stderr
    _wait_status(root, data_root, "cpy", "running")
    try:
        assert cli(root, data_root, "cp", str(tmp_path / "d"), "cpy:/tmp").returncode == 0  # into a directory
        assert cli(root, data_root, "cp", str(tmp_path / "one"), "cpy:/renamed").returncode == 0  # as a new name
        r = cli(root, data_root, "exec", "cpy", "sh", "-c", "cat /tmp/d/sub/f /renamed; stat -c %u /renamed")
        assert r.stdout == "hello\ntop\n0\n", r.stderr
        # a symlink in the container resolves in the container, never on the host
        marker = f"pyc-cp-{os.getpid()}"
        assert cli(root, data_root, "cp", str(tmp_path / "one"), f"cpy:/tmp/link/{marker}").returncode == 0
        assert not os.path.exists(f"/etc/{marker}")
        assert cli(root, data_root, "exec", "cpy", "cat", f"/etc/{marker}").stdout == "top\n"
        # and back out
        assert cli(root, data_root, "cp", "cpy:/tmp/d", str(tmp_path / "back")).returncode == 0
        assert (tmp_path / "back" / "sub" / "f").read_text() == "hello\n"
        (tmp_path / "dir").mkdir()
        assert cli(root, data_root, "cp", "cpy:/etc/hostname", str(tmp_path / "dir")).returncode == 0
        assert (tmp_path / "dir" / "hostname").read_text() == "cpy\n"
        # an absolute link comes out as it is (as Docker's), never followed on the way
        assert cli(root, data_root, "cp", "cpy:/tmp/link", str(tmp_path / "dir")).returncode == 0
        assert os.readlink(tmp_path / "dir" / "link") == "/etc"
        r = cli(root, data_root, "exec", "cpy", "sh", "-c",
                "mkdir /tmp/t && ln -s /etc /tmp/t/a && chmod 4755 /bin/busybox && chown -R 1000:1000 /tmp/t")  # fmt: skip
        assert r.returncode == 0, r.stderr
        assert cli(root, data_root, "cp", "cpy:/tmp/t", str(tmp_path / "t")).returncode == 0
        assert os.readlink(tmp_path / "t" / "a") == "/etc"
        assert os.stat(tmp_path / "t").st_uid == 0  # ours, not the owner the container chose
        assert cli(root, data_root, "cp", "cpy:/bin/busybox", str(tmp_path / "bb")).returncode == 0
        assert os.stat(tmp_path / "bb").st_mode & 0o7777 == 0o755  # no setuid file lands on the host
        r = cli(root, data_root, "cp", "cpy:/nope", str(tmp_path / "x"))
        assert r.returncode == 125 and "No such file" in r.stderr
        r = cli(root, data_root, "cp", str(tmp_path / "one"), str(tmp_path / "two"))
        assert r.returncode == 125 and "CONTAINER:PATH" in r.stderr
        # a stopped container: both ways too (its overlay mounted in a mount namespace of the copy's own)
        assert cli(root, data_root, "stop", "-t", "1", "cpy").returncode == 0
        assert cli(root, data_root, "cp", "cpy:/tmp/d/sub/f", str(tmp_path / "after")).returncode == 0
        assert (tmp_path / "after").read_text() == "hello\n"
        assert cli(root, data_root, "cp", str(tmp_path / "one"), "cpy:/while-stopped").returncode == 0
        assert cli(root, data_root, "cp", "cpy:/bin/busybox", str(tmp_path / "bb2")).returncode == 0  # (an image layer's)
        r = cli(root, data_root, "cp", str(tmp_path / "one"), "cpy:/vol/x")
        assert r.returncode == 125 and "volume or bind mount" in r.stderr  # (stopped: no volumes mounted)
        assert cli(root, data_root, "start", "cpy").returncode == 0
        r = cli(root, data_root, "exec", "cpy", "cat", "/while-stopped")
        assert r.stdout == "top\n", r.stderr
    finally:
        assert cli(root, data_root, "rm", "-f", "-v", "cpy").returncode == 0
        if os.path.exists(f"/etc/pyc-cp-{os.getpid()}"):  # (only were the test to fail)
            os.unlink(f"/etc/pyc-cp-{os.getpid()}")
    assert os.listdir(root) == []


def test_named_volumes_outlive_containers_and_are_kept_while_used(root, data_root):
    assert cli(root, data_root, "volume", "create", "--label", "k=v", "keep").stdout == "keep\n"
    r = cli(root, data_root, "run", "--rm", "-v", "keep:/data", "--", "sh", "-c", "echo kept > /data/f")
    assert r.returncode == 0, r.stderr
    # -v NAME makes a missing one; --mount type=volume names one too
    r = cli(root, data_root, "run", "-d", "--name", "user", "-v", "keep:/data", "--mount", "type=volume,src=fresh,dst=/f",
            "--", "sh", "-c", "cat /data/f; ls -A /f | wc -l; sleep 60")  # fmt: skip
    assert r.returncode == 0, r.stderr
    _wait_status(root, data_root, "user", "running")
    import time

    deadline = time.monotonic() + 20
    while cli(root, data_root, "logs", "user").stdout != "kept\n0\n":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    info = json.loads(cli(root, data_root, "volume", "inspect", "keep").stdout)[0]
    assert info["Labels"] == {"k": "v"} and info["UsedBy"] == [os.path.join(root, "user")]
    assert info["Mountpoint"] == os.path.join(data_root, "volumes", "keep", "_data")
    r = cli(root, data_root, "volume", "rm", "keep")
    assert r.returncode == 1 and "in use" in r.stderr
    r = cli(root, data_root, "volume", "rm", "-f", "keep")
    assert r.returncode == 1 and "in use" in r.stderr  # not even with -f, as Docker's
    assert cli(root, data_root, "volume", "prune").stdout == ""  # both in use
    assert cli(root, data_root, "rm", "-f", "user").returncode == 0
    assert sorted(cli(root, data_root, "volume", "prune").stdout.split()) == ["fresh", "keep"]
    assert cli(root, data_root, "volume", "ls").stdout.splitlines()[1:] == []
    assert os.listdir(root) == []


def test_import_a_rootfs_tarball(root, data_root, rootfs, tmp_path):
    tar = subprocess.run(["tar", "-C", rootfs, "-c", "."], capture_output=True, check=True).stdout
    env = {**os.environ, "PYCONTAINER_ROOT": root, "PYCONTAINER_DATA_ROOT": data_root}
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pycontainer",
            "import",
            "-c",
            'CMD ["echo", "imported"]',
            "-c",
            "ENV WHO=me",
            "-",
            "localhost/imp:1",
        ],
        input=tar,
        capture_output=True,
        env=env,
        timeout=60,
    )  # fmt: skip  (from stdin, as bytes)
    assert r.returncode == 0 and r.stdout.startswith(b"sha256:"), r.stderr
    r = cli(root, data_root, "run", "--rm", "localhost/imp:1")
    assert (r.returncode, r.stdout) == (0, "imported\n"), r.stderr
    assert cli(root, data_root, "run", "--rm", "localhost/imp:1", "sh", "-c", "echo $WHO").stdout == "me\n"
    (tmp_path / "fs.tar.gz").write_bytes(__import__("gzip").compress(tar))
    r = cli(root, data_root, "import", str(tmp_path / "fs.tar.gz"), "localhost/imp:2")
    assert r.returncode == 0, r.stderr
    (tmp_path / "not.tar").write_text("hello\n")
    r = cli(root, data_root, "import", str(tmp_path / "not.tar"), "localhost/imp:3")
    assert r.returncode == 125 and "not a tar" in r.stderr
    assert "localhost/imp" in cli(root, data_root, "images").stdout
    for ref in ("localhost/imp:1", "localhost/imp:2"):
        assert cli(root, data_root, "rmi", ref).returncode == 0
    assert os.listdir(root) == []


def test_restart_on_failure_restarts_then_gives_up_and_stop_ends_always(root, data_root):
    import time

    script = "echo run; sleep 100 & exit 3"  # (an orphan each run: its death is no exit of the process)
    r = cli(root, data_root, "run", "-d", "--name", "flaky", "--restart", "on-failure:2", "--", "sh", "-c", script)
    assert r.returncode == 0, r.stderr
    assert cli(root, data_root, "wait", "flaky").stdout == "3\n"  # the last run's status
    assert cli(root, data_root, "logs", "flaky").stdout == "run\nrun\nrun\n"  # 1 + 2 restarts, then it gave up
    info = json.loads(cli(root, data_root, "inspect", "flaky").stdout)[0]
    assert info["RestartCount"] == 2 and info["State"]["ExitCode"] == 3
    # a success ends on-failure; what a run wrote stays for the next (same container)
    script = "n=$(cat /n 2>/dev/null || echo 0); echo $((n+1)) > /n; echo try-$n; [ $n -ge 1 ]"
    r = cli(root, data_root, "run", "-d", "--name", "second", "--restart", "on-failure", "--", "sh", "-c", script)
    assert r.returncode == 0, r.stderr
    assert cli(root, data_root, "wait", "second").stdout == "0\n"
    assert cli(root, data_root, "logs", "second").stdout == "try-0\ntry-1\n"
    # always: restarted whatever the status, until a stop
    r = cli(
        root, data_root, "run", "-d", "--name", "forever", "--restart", "always", "--", "sh", "-c", "echo up; sleep 0.2"
    )
    assert r.returncode == 0, r.stderr
    deadline = time.monotonic() + 20
    while cli(root, data_root, "logs", "forever").stdout.count("up") < 3:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    running = json.loads(cli(root, data_root, "inspect", "forever").stdout)[0]
    assert running["RestartCount"] >= 2 and running["State"]["Running"]  # (counted while it runs)
    assert cli(root, data_root, "stop", "-t", "5", "forever").returncode == 0
    _wait_status(root, data_root, "forever", "stopped")
    ups = cli(root, data_root, "logs", "forever").stdout.count("up")
    time.sleep(0.8)
    assert cli(root, data_root, "logs", "forever").stdout.count("up") == ups  # not started again
    assert cli(root, data_root, "rm", "flaky", "second", "forever").returncode == 0
    assert os.listdir(root) == []


def test_it_is_a_real_terminal_with_ctrl_c_and_window_size(root, data_root):
    """-it: raw mode on our side, the caller's window size, and Ctrl-C
    reaching the container's foreground process, not us."""
    import time

    env = {**os.environ, "PYCONTAINER_ROOT": root, "PYCONTAINER_DATA_ROOT": data_root}
    cmd = f"stty rows 33 cols 99; {sys.executable} -m pycontainer run --rm -it -- sh"
    p = subprocess.Popen(["script", "-qec", cmd, "/dev/null"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, env=env)  # fmt: skip
    assert p.stdin is not None
    try:
        time.sleep(1.5)
        p.stdin.write(b"stty size; sleep 100\n")
        p.stdin.flush()
        time.sleep(1.0)
        p.stdin.write(b"\x03")  # Ctrl-C: ends the sleep in the container
        p.stdin.flush()
        time.sleep(0.5)
        p.stdin.write(b"echo after-$((6*7)); exit 5\n")
        p.stdin.flush()
        out, _ = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    text = out.decode(errors="replace")
    assert "33 99" in text and "after-42" in text, text
    assert p.returncode == 5, text
    assert os.listdir(root) == []


def test_rm_cleans_up_when_we_are_interrupted(root, data_root):
    import signal as _signal
    import time

    env = {**os.environ, "PYCONTAINER_ROOT": root, "PYCONTAINER_DATA_ROOT": data_root}
    # (with --init: a pid 1 without a handler ignores SIGINT, as under Docker)
    p = subprocess.Popen([sys.executable, "-m", "pycontainer", "run", "--rm", "--init", "--name", "intr", "--",
                          "sleep", "100"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 20
    while not os.path.exists(os.path.join(root, "intr")):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.3)
    p.send_signal(_signal.SIGINT)  # forwarded: the container ends, and goes
    p.communicate(timeout=30)
    assert p.returncode == 128 + _signal.SIGINT
    assert os.listdir(root) == []


def test_stats_shows_cpu_percent_memory_and_ends_with_its_container(root, data_root):
    r = cli(root, data_root, "run", "-d", "--name", "busy", "-m", "64m", "--", "sh", "-c", "while :; do :; done")
    assert r.returncode == 0, r.stderr
    _wait_status(root, data_root, "busy", "running")
    lines = cli(root, data_root, "stats", "--no-stream").stdout.splitlines()
    assert lines[0].split()[:3] == ["CONTAINER", "CPU", "%"]
    row = lines[1].split()
    assert row[0] == "busy" and float(row[1].rstrip("%")) > 30 and "64MiB" in lines[1]
    # streaming, for a named container: it ends when the container does
    env = {**os.environ, "PYCONTAINER_ROOT": root, "PYCONTAINER_DATA_ROOT": data_root}
    p = subprocess.Popen([sys.executable, "-m", "pycontainer", "stats", "busy"], stdout=subprocess.PIPE, env=env)
    try:
        import time

        time.sleep(2.5)
        assert cli(root, data_root, "kill", "busy").returncode == 0
        out, _ = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0 and out.decode().count("busy") >= 1
    assert cli(root, data_root, "rm", "busy").returncode == 0


def test_cp_keeps_hard_links_inside_a_renamed_copy(root, data_root, tmp_path):
    r = cli(root, data_root, "run", "-d", "--name", "hl", "--", "sh", "-c",
            "mkdir /d && echo x > /d/a && ln /d/a /d/b && sleep 60")  # fmt: skip
    assert r.returncode == 0, r.stderr
    _wait_status(root, data_root, "hl", "running")
    try:
        (tmp_path / "d").mkdir()
        (tmp_path / "d" / "a").write_text("host file\n")  # what a stray link would reach
        import time

        deadline = time.monotonic() + 20
        while cli(root, data_root, "exec", "hl", "test", "-e", "/d/b").returncode:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        r = cli(root, data_root, "cp", "hl:/d", str(tmp_path / "copy"))
        assert r.returncode == 0, r.stderr
        assert (tmp_path / "copy" / "b").read_text() == "x\n"
        assert os.stat(tmp_path / "copy" / "a").st_ino == os.stat(tmp_path / "copy" / "b").st_ino
        assert (tmp_path / "d" / "a").read_text() == "host file\n"  # untouched
    finally:
        cli(root, data_root, "rm", "-f", "hl")


def test_credentials_for_docker_hub_have_one_name(tmp_path, monkeypatch):
    from pycontainer import auth

    monkeypatch.setenv("PYCONTAINER_AUTH_FILE", str(tmp_path / "auth.json"))
    auth.store("docker.io", "me", "pw")
    assert auth.lookup("registry-1.docker.io") == {"username": "me", "password": "pw"}
    assert auth.lookup("index.docker.io") == auth.lookup("docker.io")
    auth.forget("registry-1.docker.io")
    assert auth.lookup("docker.io") is None


def test_restart_start_again_and_rename_keep_what_docker_keeps(root, data_root):
    """restart and start of a stopped container make it anew with its changes,
    log, volume, address, name and port; rename moves all of it."""
    from pycontainer import _netpool
    from pycontainer.network import NetworkStore

    fd = _netpool.new_netns()
    try:
        NetworkStore(root).create("tlan", subnet="10.133.0.0/24", host_netns=f"/proc/{os.getpid()}/fd/{fd}")
        script = 'echo run >> /runs; echo "$(wc -l < /runs) $(grep -c x /vol/f)"; ip -o -4 addr show eth0 | awk \'{print $4}\'; sleep 60'
        r = cli(root, data_root, "run", "-d", "--name", "svc", "--network", "tlan", "-p", "8081:80", "-v", "data:/vol",
                "--", "sh", "-c", f"echo x >> /vol/f; {script}")  # fmt: skip
        assert r.returncode == 0, r.stderr

        def log_lines(cid: str, n: int) -> list[str]:
            import time

            deadline = time.monotonic() + 20
            while len(lines := cli(root, data_root, "logs", cid).stdout.splitlines()) < n:
                assert time.monotonic() < deadline, lines
                time.sleep(0.05)
            return lines

        assert log_lines("svc", 2) == ["1 1", "10.133.0.2/24"]
        created = json.loads(cli(root, data_root, "inspect", "svc").stdout)[0]["Created"]
        r = cli(root, data_root, "restart", "-t", "1", "svc")
        assert r.returncode == 0 and r.stdout == "svc\n", r.stderr
        # the same writable layer (/runs), volume, address; the log goes on
        assert log_lines("svc", 4) == ["1 1", "10.133.0.2/24", "2 2", "10.133.0.2/24"]
        info = json.loads(cli(root, data_root, "inspect", "svc").stdout)[0]
        assert info["Created"] == created and info["State"]["Running"]
        assert cli(root, data_root, "port", "svc").stdout == "8081:80/tcp\n"
        # rename: the old name is free, the volume and the network follow
        assert cli(root, data_root, "run", "-d", "--name", "other", "--", "sleep", "60").returncode == 0
        r = cli(root, data_root, "rename", "svc", "other")
        assert r.returncode == 125 and "exists" in r.stderr
        assert cli(root, data_root, "rename", "svc", "api").returncode == 0
        assert cli(root, data_root, "logs", "svc").returncode == 125
        vol = json.loads(cli(root, data_root, "volume", "inspect", "data").stdout)[0]
        assert vol["UsedBy"] == [os.path.join(root, "api")]
        members = json.loads(cli(root, data_root, "network", "inspect", "tlan").stdout)["members"]
        assert [m["owner"] for m in members] == ["api"], members
        # start of a stopped container runs it anew (as docker start)
        assert cli(root, data_root, "stop", "-t", "1", "api").returncode == 0
        _wait_status(root, data_root, "api", "stopped")
        r = cli(root, data_root, "start", "api")
        assert r.returncode == 0, r.stderr
        assert log_lines("api", 6)[4:] == ["3 3", "10.133.0.2/24"]
        # network connect / disconnect (a second network, in the same throwaway namespace)
        NetworkStore(root).create("tback", subnet="10.134.0.0/24", host_netns=f"/proc/{os.getpid()}/fd/{fd}")
        assert cli(root, data_root, "network", "connect", "tback", "api").returncode == 0
        r = cli(root, data_root, "exec", "api", "sh", "-c", "ip -o -4 addr show eth1 | awk '{print $4}'")
        assert r.stdout == "10.134.0.2/24\n", r.stderr
        assert json.loads(cli(root, data_root, "inspect", "api").stdout)[0]["NetworkSettings"]["Networks"] == [
            "tlan", "tback"]  # fmt: skip
        r = cli(root, data_root, "network", "connect", "tback", "api")
        assert r.returncode == 125 and "already" in r.stderr
        assert cli(root, data_root, "network", "disconnect", "tback", "api").returncode == 0
        assert cli(root, data_root, "exec", "api", "ip", "link", "show", "eth1").returncode != 0
        assert cli(root, data_root, "network", "rm", "tback").returncode == 0
        # paused: an error, as Docker's
        assert cli(root, data_root, "pause", "api").returncode == 0
        r = cli(root, data_root, "restart", "api")
        assert r.returncode == 1 and "paused" in r.stderr
        assert cli(root, data_root, "rm", "-f", "api", "other").returncode == 0
        assert cli(root, data_root, "volume", "rm", "data").returncode == 0
        assert NetworkStore(root).members("tlan") == []
        assert cli(root, data_root, "network", "rm", "tlan").returncode == 0
    finally:
        os.close(fd)
    assert os.listdir(root) == [".networks"]


def test_anonymous_volumes_and_a_new_volume_filled_from_the_image(root, data_root):
    """-v /path makes an anonymous volume; an empty volume gets what the image
    holds at its path (not with nocopy); rm -v and --rm remove anonymous ones."""

    def volumes() -> list[str]:
        return [line.split()[-1] for line in cli(root, data_root, "volume", "ls").stdout.splitlines()[1:]]

    r = cli(root, data_root, "run", "--name", "a", "-v", "/usr/bin", "-v", "fresh:/etc", "-v", "bare:/usr/sbin:nocopy",
            "--", "sh", "-c", "ls /usr/bin | grep -c . ; cat /etc/passwd | head -1; ls -A /usr/sbin | wc -l; echo x > /usr/bin/new")  # fmt: skip
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert int(lines[0]) > 10 and lines[1].startswith("root:") and lines[2] == "0"
    anon = [v for v in volumes() if v not in ("fresh", "bare")]
    assert len(anon) == 1 and len(anon[0]) == 64
    # a restart keeps the anonymous volume (the same one, with what was written)
    r = cli(root, data_root, "start", "a")
    assert r.returncode == 0, r.stderr
    assert cli(root, data_root, "wait", "a").stdout == "0\n"
    assert [v for v in volumes() if v not in ("fresh", "bare")] == anon
    path = json.loads(cli(root, data_root, "volume", "inspect", anon[0]).stdout)[0]["Mountpoint"]
    assert os.path.exists(os.path.join(path, "new"))
    # a volume with something in it is not filled again
    r = cli(root, data_root, "run", "--rm", "-v", f"{anon[0]}:/usr/sbin", "--", "sh", "-c", "ls /usr/sbin/new")
    assert r.returncode == 0 and r.stdout == "/usr/sbin/new\n", r.stderr
    assert cli(root, data_root, "rm", "-v", "a").returncode == 0
    assert sorted(volumes()) == ["bare", "fresh"]  # named ones stay
    # --rm takes its anonymous volumes with it
    assert cli(root, data_root, "run", "--rm", "-v", "/data", "--", "true").returncode == 0
    assert sorted(volumes()) == ["bare", "fresh"]
    r = cli(root, data_root, "run", "--rm", "-v", "x:/y:bogus", "--", "true")
    assert r.returncode == 125 and "'bogus'" in r.stderr
    assert sorted(cli(root, data_root, "volume", "prune").stdout.split()) == ["bare", "fresh"]
    assert os.listdir(root) == []
