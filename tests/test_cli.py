"""The first CLI, run as a user would: python -m pycontainer ..."""

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
        root, data_root, "run", "--rootfs", rootfs, "-v", f"{tmp_path / 'vol'}:/vol:ro", "-w", "/work", "-u", "nobody",
        "--init", "--read-only", "--", "sh", "-c", "pwd; id -un; touch /vol/x || echo ro; cat /proc/1/cmdline | head -c 16",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[:3] == ["/work", "nobody", "ro"]
    assert r.stdout.splitlines()[3].startswith("pycontainer-init")


def test_exit_codes_for_errors(root, data_root):
    assert cli(root, data_root, "run", "--", "no-such-cmd").returncode == 127
    r = cli(root, data_root, "run", "--rootfs", "/nonexistent", "--", "true")
    assert r.returncode == 125 and "does not exist" in r.stderr
    r = cli(root, data_root, "run", "--", "sh", "-c", "kill -9 $$; exit 3")
    assert r.returncode == 3  # pid 1 cannot be killed from inside
    r = cli(root, data_root, "state", "ghost")
    assert r.returncode == 125 and "'ghost' does not exist" in r.stderr
    r = cli(root, data_root, "run", "-v", "nocolon", "--", "true")
    assert r.returncode == 125 and "SRC:DST" in r.stderr


def test_list_state_kill_delete(root, data_root, config):
    from pycontainer import Container

    c = Container.run(root, "svc", config("sleep", "60"))
    try:
        r = cli(root, data_root, "list")
        assert r.returncode == 0 and "svc" in r.stdout and "running" in r.stdout
        state = json.loads(cli(root, data_root, "state", "svc").stdout)
        assert state["id"] == "svc" and state["status"] == "running" and state["pid"] == c.pid
        assert cli(root, data_root, "delete", "svc").returncode == 125  # running: needs -f
        assert cli(root, data_root, "kill", "svc", "KILL").returncode == 0
        assert c.wait(timeout=10).signal == 9
        assert cli(root, data_root, "kill", "svc").returncode == 125  # stopped
        assert cli(root, data_root, "delete", "svc").returncode == 0
        assert os.listdir(root) == []
    finally:
        if os.path.exists(os.path.join(root, "svc")):
            c.delete(force=True)
        else:
            c.close()


def test_tty(root, data_root):
    r = subprocess.run(
        ["script", "-qec", f"{sys.executable} -m pycontainer run -t -- sh -c 'tty; echo $TERM'", "/dev/null"],
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
        r = cli(root, data_root, "run", "--name", "web", "--network", "tlan", "-p", "8080:80", "--",
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
