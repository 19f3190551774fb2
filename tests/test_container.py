"""Containers on the real kernel: isolation seen from inside, lifecycle, exec, init."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import threading
import uuid

import attrs
import pytest

from pycontainer import (
    PIPE,
    Capabilities,
    STDOUT,
    ConfigError,
    Container,
    ContainerConfig,
    ContainerNotFound,
    ExitStatus,
    IDMap,
    InitError,
    Mount,
    MountError,
    Namespace,
    Process,
    PyContainerError,
    Status,
    User,
)

from .conftest import needs_root, owned_copy, read_to_eof

pytestmark = [needs_root, pytest.mark.root]


def run(root: str, cfg: ContainerConfig, cid: str | None = None, **kw):
    """Run to completion; (status, stdout, stderr)."""
    with Container.run(root, cid or uuid.uuid4().hex[:12], cfg, stdout=PIPE, stderr=PIPE, **kw) as c:
        out, err = c.communicate(timeout=30)
        status = c.wait()
    return status, out.decode(), err.decode()


def sh(root: str, config, script: str, **fields):
    status, out, err = run(root, config("sh", "-c", script, **fields))
    assert status.code == 0, (status, out, err)
    return out


# ---- isolation, seen from inside ----------------------------------------------


def test_is_pid_1_and_sees_no_host_process(root, config):
    out = sh(root, config, "echo $$; ls /proc | grep -E '^[0-9]+$' | wc -l")
    pid, count = out.split()
    assert pid == "1"
    # sh itself, plus ls/grep/wc of the pipeline at most
    assert int(count) <= 4


def test_hostname_is_its_own(root, config):
    out = sh(root, config, "hostname; cat /etc/hostname", hostname="box-1")
    assert out.split() == ["box-1", "box-1"]
    assert os.uname().nodename != "box-1"


def test_default_hostname_is_the_id_prefix(root, config):
    status, out, _ = run(root, config("hostname"), cid="abcdef0123456789")
    assert status.code == 0 and out.strip() == "abcdef012345"


def test_mount_table_holds_only_its_mounts(root, config):
    out = sh(root, config, "cat /proc/self/mountinfo")
    points = [line.split()[4] for line in out.splitlines()]
    assert points[0] == "/"
    for expected in ("/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/etc/hosts"):
        assert expected in points
    host_only = {line.split()[4] for line in open("/proc/self/mountinfo")} - set(points)
    assert "/boot" not in points and "/run" not in points
    assert host_only  # the host has mounts the container does not see


def test_new_net_namespace_has_only_lo(root, config):
    out = sh(root, config, "ls /sys/class/net")
    assert out.split() == ["lo"]


def test_dev_has_the_standard_nodes(root, config):
    out = sh(
        root, config, "ls /dev; stat -c '%n %t:%T %a' /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty"
    )
    names = set(out.split())
    for node in (
        "null",
        "zero",
        "full",
        "random",
        "urandom",
        "tty",
        "ptmx",
        "pts",
        "shm",
        "mqueue",
        "fd",
        "stdin",
        "stdout",
        "stderr",
    ):
        assert node in names
    assert "/dev/null 1:3 666" in out and "/dev/urandom 1:9 666" in out and "/dev/tty 5:0 666" in out
    assert "sda" not in names and "vda" not in names


def test_sys_is_read_only_and_masked_paths_are_hidden(root, config):
    out = sh(
        root,
        config,
        "touch /sys/x 2>&1; echo 1 > /proc/sys/kernel/hostname 2>&1; echo t > /proc/sysrq-trigger 2>&1;"
        "cat /proc/kcore | wc -c; ls /proc/acpi 2>/dev/null | wc -l; echo done",
    )
    assert "Read-only file system" in out
    lines = out.split("\n")
    assert "0" in lines  # /proc/kcore reads as /dev/null
    assert out.strip().endswith("done")


def test_etc_files_as_docker_writes_them(root, config):
    out = sh(root, config, "cat /etc/hosts; echo ---; cat /etc/resolv.conf", hostname="web")
    hosts, resolv = out.split("---\n")
    assert "127.0.0.1\tlocalhost" in hosts
    assert "nameserver" in resolv
    assert "127.0.0.53" not in resolv  # host-local resolvers are dropped in an own netns


def test_readonly_rootfs(root, config):
    status, out, _ = run(
        root, config("sh", "-c", "touch /newfile 2>&1; touch /tmp/x 2>&1; echo ok", readonly_rootfs=True)
    )
    assert status.code == 0
    assert out.count("Read-only file system") == 2


def test_bind_mounts_ro_rw_and_tmpfs(root, config, tmp_path):
    (tmp_path / "rw").mkdir()
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro" / "data").write_text("hello")
    cfg = config(
        "sh",
        "-c",
        "cat /ro/data; echo w > /rw/out; touch /ro/nope 2>&1; echo x > /scratch/y && grep -c tmpfs /proc/mounts",
        mounts=[
            Mount("/rw", str(tmp_path / "rw")),
            Mount("/ro", str(tmp_path / "ro"), options=("rbind", "ro")),
            Mount("/scratch", None, "tmpfs", ("nosuid", "size=1m")),
        ],
    )
    status, out, _ = run(root, cfg)
    assert status.code == 0, out
    assert out.startswith("hello")
    assert "Read-only file system" in out
    assert (tmp_path / "rw" / "out").read_text() == "w\n"
    assert not (tmp_path / "ro" / "nope").exists()


def test_user_namespace_maps_root_to_an_unprivileged_host_uid(public_dir, rootfs):
    import pathlib

    base = pathlib.Path(public_dir)
    # A user-namespaced rootfs belongs to the mapped ids, as an unpacked image would.
    owned_copy(rootfs, str(base / "rootfs"), 100000)
    root = str(base / "state")
    host = base / "shared"
    host.mkdir()
    os.chown(host, 100000, 100000)
    cfg = ContainerConfig(
        process=Process(args=("sh", "-c", "id -u; cat /proc/self/uid_map; touch /shared/f; stat -c %u /shared/f")),
        rootfs=str(base / "rootfs"),
        namespaces=[*(Namespace(t) for t in ("pid", "mount", "uts", "ipc", "network")), Namespace("user")],
        uid_mappings=[IDMap(0, 100000, 65536)],
        gid_mappings=[IDMap(0, 100000, 65536)],
        mounts=[Mount("/shared", str(host))],
    )
    status, out, err = run(root, cfg)
    assert status.code == 0, err
    uid, mapline, owner = out.split("\n")[0], out.split("\n")[1].split(), out.split("\n")[2]
    assert uid == "0"
    assert mapline == ["0", "100000", "65536"]
    assert owner == "0"  # owned by root inside ...
    assert os.stat(host / "f").st_uid == 100000  # ... and by the mapped uid on the host
    assert os.listdir(root) == []


def test_user_and_groups_and_umask_and_cwd(root, config):
    out = sh(
        root,
        config,
        "id; pwd; umask",
        process={"user": User(uid=1000, gid=1000, additional_gids=(5, 7)), "cwd": "/made/here", "umask": 0o077},
    )
    assert "uid=1000" in out and "gid=1000" in out and "groups=5(tty),7,1000" not in out
    assert ",7" in out or " 7" in out or "7" in out.split("groups=")[1]
    assert "/made/here" in out
    assert "0077" in out


def test_user_by_name_from_the_rootfs(root, config):
    out = sh(root, config, "id -un", process={"user": "nobody"})
    assert out.strip() == "nobody"


def test_env_and_home(root, config):
    out = sh(
        root,
        config,
        "echo $FOO; echo $HOME; echo $HOSTNAME",
        process={"env": {"PATH": "/bin", "FOO": "bar"}},
        hostname="h1",
    )
    assert out.split() == ["bar", "/root", "h1"]


# ---- exit codes, signals, stdio -----------------------------------------------


def test_exit_code_reaches_the_caller(root, config):
    status, _, _ = run(root, config("sh", "-c", "exit 42"))
    assert status.code == 42 and status.returncode == 42


def test_death_by_signal_reaches_the_caller(root, config):
    # In the host's pid namespace the process is not an init, so it can kill itself.
    no_pidns = [n for n in ("mount", "uts", "ipc", "network")]
    status, _, _ = run(root, config("sh", "-c", "kill -9 $$", namespaces=no_pidns))
    assert status.signal == signal.SIGKILL and status.code is None and status.returncode == -9


def test_an_init_cannot_be_killed_from_inside_but_from_outside(root, config):
    with Container.run(root, "pid1", config("sh", "-c", "kill -9 $$; echo survived; sleep 60"), stdout=PIPE) as c:
        assert c.stdout.readline() == b"survived\n"
        c.kill(signal.SIGKILL)
        assert c.wait(timeout=10).signal == signal.SIGKILL


def test_kill_a_running_container(root, config):
    with Container.run(root, "sleeper", config("sleep", "60")) as c:
        assert c.status is Status.RUNNING
        c.kill(signal.SIGKILL)
        assert c.wait(timeout=10).signal == signal.SIGKILL
        assert c.status is Status.STOPPED


def test_stdin_pipe_and_stderr_to_stdout(root, config):
    cfg = config("sh", "-c", "read x; echo got $x; echo oops >&2")
    with Container.run(root, "io", cfg, stdin=PIPE, stdout=PIPE, stderr=STDOUT) as c:
        out, err = c.communicate(b"hello\n", timeout=30)
    assert out == b"got hello\noops\n" and err is None


def test_given_fds_and_pass_fds(root, config, tmp_path):
    target = open(tmp_path / "out", "wb")
    r, w = os.pipe()
    try:
        cfg = config("sh", "-c", "echo to-file; echo to-fd3 >&3")
        with Container.run(root, "fds", cfg, stdout=target, pass_fds=[w]) as c:
            os.close(w)
            w = -1
            assert c.wait(timeout=30).code == 0
        assert os.read(r, 100) == b"to-fd3\n"
    finally:
        target.close()
        os.close(r)
        if w >= 0:
            os.close(w)
    assert (tmp_path / "out").read_bytes() == b"to-file\n"


def test_only_stdio_and_passed_fds_are_open(root, config):
    leak = os.open("/etc/hostname", os.O_RDONLY)  # not close-on-exec on purpose
    os.set_inheritable(leak, True)
    try:
        out = sh(root, config, "ls /proc/self/fd")
    finally:
        os.close(leak)
    # 0 1 2 and the fd ls opened to read the directory
    assert set(out.split()) <= {"0", "1", "2", "3"}


def test_pty_gives_a_terminal(root, config):
    cfg = config("sh", "-c", "tty; echo $TERM", process={"terminal": True})
    with Container.run(root, "tty", cfg) as c:
        assert c.pty is not None
        data = read_to_eof(c.pty)
        assert c.wait(timeout=30).code == 0
    assert b"/dev/pts/0" in data and b"xterm" in data


# ---- lifecycle ------------------------------------------------------------------


def test_create_leaves_init_blocked_until_start(root, config, tmp_path):
    marker = tmp_path / "m"
    marker.mkdir()
    cfg = config("sh", "-c", "touch /m/started", mounts=[Mount("/m", str(marker))])
    c = Container.create(root, "blocked", cfg)
    try:
        assert c.status is Status.CREATED
        assert c.state().status is Status.CREATED
        import time

        time.sleep(0.2)
        assert not (marker / "started").exists()
        with open(f"/proc/{c.pid}/stat") as f:
            assert f.read().split(") ")[1][0] == "S"  # sleeping in the fifo open
        c.start()
        assert c.wait(timeout=30).code == 0
        assert (marker / "started").exists()
        assert c.status is Status.STOPPED
    finally:
        c.delete(force=True)


def test_load_state_and_list_from_another_object(root, config):
    c = Container.create(root, "one", config("sleep", "30"))
    try:
        other = Container.load(root, "one")
        st = other.state()
        assert st.status is Status.CREATED and st.pid == c.pid and st.id == "one"
        assert st.to_oci()["status"] == "created"
        assert [x.id for x in Container.list(root)] == ["one"]
        c.start()
        assert Container.load(root, "one").status is Status.RUNNING
        other.close()
    finally:
        c.delete(force=True)
    assert Container.list(root) == []


def test_delete_forced_of_a_running_container_kills_everything(root, config):
    c = Container.run(root, "busy", config("sh", "-c", "sleep 100 & sleep 100 & wait"))
    assert c.status is Status.RUNNING
    pid = c.pid
    c.delete(force=True)
    assert not os.path.exists(os.path.join(root, "busy"))
    assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split(") ")[1][0] in "ZX"


def test_delete_of_a_created_container(root, config):
    c = Container.create(root, "c", config("true"))
    c.delete()
    assert os.listdir(root) == []


def test_context_manager_deletes(root, config):
    with Container.create(root, "ctx", config("true")) as c:
        assert c.status is Status.CREATED
    assert os.listdir(root) == []


def test_builtin_rootfs_gives_each_container_its_own_writable_layer(root, data_root):
    cfg = ContainerConfig(
        process=Process(args=("sh", "-c", "cat /tmp/mark 2>/dev/null; echo $$ > /tmp/mark; cat /tmp/mark"))
    )
    outs = []
    for i in range(2):
        with Container.run(root, f"b{i}", cfg, stdout=PIPE, data_root=data_root) as c:
            out, _ = c.communicate(timeout=30)
            outs.append(out)
    assert outs == [b"1\n", b"1\n"]  # the second container does not see the first one's file


# ---- exec -----------------------------------------------------------------------


def test_exec_joins_the_pid_namespace_and_sees_the_same_files(root, config):
    with Container.run(root, "ex", config("sh", "-c", "echo hi > /dev/shm/f; sleep 60")) as c:
        import time

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with c.exec(["cat", "/dev/shm/f"], stdout=PIPE) as p:
                out, _ = p.communicate(timeout=10)
            if out:
                break
            time.sleep(0.02)
        assert out == b"hi\n"
        with c.exec(["sh", "-c", "echo $$; ps -o pid,comm"], stdout=PIPE) as p:
            out, _ = p.communicate(timeout=10)
            assert p.wait().code == 0
        lines = out.decode().split("\n")
        assert int(lines[0]) > 1  # not pid 1, but in the container's pid namespace
        assert any(line.split()[:2] == ["1", "sleep"] for line in lines[1:] if line.strip())
        with c.exec(Process(args=("hostname",), user="nobody"), stdout=PIPE) as p:
            assert p.communicate(timeout=10)[0] == b"ex\n"
        c.kill(signal.SIGKILL)
        c.wait(timeout=10)


def test_exec_exit_code_and_missing_binary(root, config):
    from pycontainer import InitError

    with Container.run(root, "ex2", config("sleep", "60")) as c:
        with c.exec(["sh", "-c", "exit 7"]) as p:
            assert p.wait(timeout=10).code == 7
        with pytest.raises(InitError) as e:
            c.exec(["no-such-binary"])
        assert e.value.errno == 2 and "no-such-binary" in str(e.value)


# ---- init -------------------------------------------------------------------------


def test_init_reaps_zombies_and_forwards_signals(root, config):
    # The shell orphans a child that exits: under our init it is reaped.
    cfg = config(
        "sh",
        "-c",
        "(sleep 0.1 &) ; trap 'echo got TERM; exit 5' TERM; sleep 0.5; ps -o stat,comm; while :; do sleep 0.05; done",
        init=True,
    )
    with Container.run(root, "init", cfg, stdout=PIPE) as c:
        import time

        time.sleep(1.0)
        c.kill(signal.SIGTERM)
        out, _ = c.communicate(timeout=30)
        status = c.wait()
    text = out.decode()
    assert "Z" not in [line.split()[0] for line in text.splitlines()[1:] if line.split() and line.split()[0] != "STAT"]
    assert "got TERM" in text
    assert status.code == 5


def test_init_is_pid_1_and_exits_with_the_childs_status(root, config):
    status, out, _ = run(root, config("sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; exit 9", init=True))
    assert out.startswith("pycontainer-init")
    assert status.code == 9


# ---- threads ----------------------------------------------------------------------


def test_many_threads_create_and_run_at_once(root, config):
    results: dict[int, object] = {}

    def work(i: int) -> None:
        try:
            results[i] = run(root, config("sh", "-c", f"echo {i}"), cid=f"t{i}")
        except Exception as e:  # pragma: no cover - reported below
            results[i] = e

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for i in range(16):
        assert not isinstance(results[i], Exception), results[i]
        status, out, _ = results[i]  # type: ignore[misc]
        assert status.code == 0 and out == f"{i}\n"


# ---- more namespaces --------------------------------------------------------------


def test_join_another_containers_namespaces_by_path(root, config):
    with Container.run(
        root,
        "owner",
        config("sleep", "60"),
    ) as a:
        cfg = config(
            "sh", "-c", "hostname; readlink /proc/self/ns/uts; readlink /proc/self/ns/net",
            namespaces=[
                Namespace("mount"), Namespace("pid"),
                Namespace("uts", f"/proc/{a.pid}/ns/uts"), Namespace("network", f"/proc/{a.pid}/ns/net"),
            ],
        )  # fmt: skip
        status, out, err = run(root, cfg)
        assert status.code == 0, err
        lines = out.split()
        assert lines[0] == "owner"  # the hostname of the namespace it joined
        assert lines[1] == os.readlink(f"/proc/{a.pid}/ns/uts")
        assert lines[2] == os.readlink(f"/proc/{a.pid}/ns/net")
        a.kill(signal.SIGKILL)
        a.wait(timeout=10)


def test_join_a_pid_and_user_namespace_with_new_ones_beside(root, config):
    """Joined pid/user namespaces plus new mount, uts, ipc and network ones:
    the helper makes the new ones after joining, so they have the right owner."""
    with Container.run(root, "host1", config("sleep", "60")) as a:
        cfg = config(
            "sh", "-c", "readlink /proc/self/ns/pid; readlink /proc/self/ns/user; ls /sys/class/net; hostname",
            namespaces=[
                Namespace("pid", f"/proc/{a.pid}/ns/pid"), Namespace("user", f"/proc/{a.pid}/ns/user"),
                Namespace("mount"), Namespace("uts"), Namespace("ipc"), Namespace("network"),
            ],
            hostname="guest",
        )  # fmt: skip
        status, out, err = run(root, cfg)
        assert status.code == 0, err
        pidns, userns, net, host = out.split()
        assert pidns == os.readlink(f"/proc/{a.pid}/ns/pid") and userns == os.readlink(f"/proc/{a.pid}/ns/user")
        assert net == "lo" and host == "guest"
        a.kill(signal.SIGKILL)
        a.wait(timeout=10)


@pytest.mark.skipif(not os.path.exists("/proc/self/ns/time"), reason="this kernel has no time namespaces")
def test_time_and_cgroup_namespaces(root, config):
    cfg = config(
        "sh", "-c", "readlink /proc/self/ns/time; readlink /proc/self/ns/cgroup",
        namespaces=["pid", "mount", "uts", "ipc", "network", "time", "cgroup"],
    )  # fmt: skip
    status, out, _ = run(root, cfg)
    assert status.code == 0
    time_ns, cgroup_ns = out.split()
    assert time_ns != os.readlink("/proc/self/ns/time")
    assert cgroup_ns != os.readlink("/proc/self/ns/cgroup")


def test_loopback_is_up_in_a_new_network_namespace(root, config):
    out = sh(root, config, "cat /sys/class/net/lo/operstate; cat /sys/class/net/lo/flags")
    assert int(out.split()[1], 16) & 1  # IFF_UP


def test_propagation_of_a_shared_bind_mount(root, config, tmp_path):
    vol = tmp_path / "vol"
    vol.mkdir()
    cfg = config(
        "sh", "-c", "grep ' /vol ' /proc/self/mountinfo",
        mounts=[Mount("/vol", str(vol), options=("rbind", "rslave"))], rootfs_propagation="rslave",
    )  # fmt: skip
    status, out, _ = run(root, cfg)
    assert status.code == 0
    host_shared = any(line.split()[4] == "/" and "shared:" in line for line in open("/proc/self/mountinfo"))
    # A slave of the host's shared mount: host mounts under it reach the container.
    assert ("master:" in out) == host_shared


# ---- leaks ----------------------------------------------------------------------------


def _fds_and_maps() -> tuple[int, int]:
    with open("/proc/self/maps") as f:
        maps = sum(1 for _ in f)
    return len(os.listdir("/proc/self/fd")), maps


def test_no_fd_or_arena_leak(root, config):
    """Run, exec and abandon containers many times: fds and mappings do not grow
    (each child's arena is unmapped once it has handed off to the helper or died)."""
    cfg = config("sh", "-c", "echo x")

    def cycle(i: int) -> None:
        with Container.run(root, f"l{i}", cfg, stdout=PIPE) as c:
            c.communicate(timeout=30)
        with Container.create(root, f"n{i}", cfg):  # created, never started
            pass

    for i in range(10):
        cycle(i)
    before = _fds_and_maps()
    for i in range(10, 110):
        cycle(i)
    after = _fds_and_maps()
    assert after[0] <= before[0]
    assert after[1] <= before[1] + 4  # the allocator may map a little; 200 arenas would be 200 maps


# ---- several processes on one root ----------------------------------------------------

_WORKER = """
import sys
from pycontainer import Container, ContainerConfig, ContainerExists, Process
root, rootfs, me = sys.argv[1], sys.argv[2], sys.argv[3]
cfg = ContainerConfig(process=Process(args=["true"]), rootfs=rootfs)
won = 0
for i in range(8):
    with Container.run(root, f"{me}-{i}", cfg) as c:
        assert c.wait(timeout=30).code == 0
    try:
        c = Container.create(root, "contended", cfg)  # every worker tries the same id
    except ContainerExists:
        continue
    won += 1
    c.delete()
print(won)
"""


def test_several_processes_share_one_root(root, rootfs):
    import subprocess
    import sys

    procs = [
        subprocess.Popen([sys.executable, "-c", _WORKER, root, rootfs, f"w{n}"], stdout=PIPE, stderr=PIPE)
        for n in range(4)
    ]
    wins = 0
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()  # only ContainerExists may stop a create
        wins += int(out)
    assert wins >= 8  # each round somebody got the contended id (creates are serialised by mkdir)
    assert os.listdir(root) == []


# ---- the child leaves our memory before the container can see it ---------------------


def _dumpable() -> int:
    import ctypes

    return ctypes.CDLL(None, use_errno=True).prctl(3, 0, 0, 0, 0)  # PR_GET_DUMPABLE


def test_created_init_runs_in_its_own_memory(root, config):
    with Container.create(root, "own-mm", config("true")) as c:
        # Blocked for start in the static helper, not in a clone of this process.
        assert os.readlink(f"/proc/{c.pid}/exe").startswith("/memfd:pycontainer-helper")
        with open(f"/proc/{c.pid}/maps") as f:
            assert "libpython" not in f.read() and "python3" not in os.readlink(f"/proc/{c.pid}/exe")
        with open(f"/proc/{c.pid}/status") as f:
            status = f.read()
        assert "\nNoNewPrivs:" in status


def test_the_runtime_process_stays_dumpable(public_dir, rootfs):
    """A child that changed credentials while sharing our memory would have made
    this process non-dumpable: user namespace containers and exec must not."""
    import pathlib

    assert _dumpable() == 1
    base = pathlib.Path(public_dir)
    owned_copy(rootfs, str(base / "rootfs"), 100000)
    cfg = ContainerConfig(
        process=Process(args=("sleep", "30")),
        rootfs=str(base / "rootfs"),
        namespaces=["pid", "mount", "uts", "ipc", "network", "user"],
        uid_mappings=[IDMap(0, 100000, 65536)],
        gid_mappings=[IDMap(0, 100000, 65536)],
    )
    with Container.run(str(base / "state"), "dump", cfg) as c:
        with c.exec(Process(args=("id", "-u"), user="nobody"), stdout=PIPE) as p:
            assert p.communicate(timeout=10)[0] == b"65534\n"
        c.kill(signal.SIGKILL)
        c.wait(timeout=10)
    assert _dumpable() == 1


# ---- review findings, each pinned by a test -----------------------------------------


def test_kill_of_a_created_container_stops_it(root, config):
    with Container.create(root, "made", config("true")) as c:
        c.kill(signal.SIGTERM)
        assert c.wait(timeout=10).code == 128 + signal.SIGTERM
        assert c.status is Status.STOPPED


def test_a_stale_handle_does_not_touch_a_recreated_container(root, config):
    old = Container.create(root, "same", config("sleep", "30"))
    stale = Container.load(root, "same")
    old.delete()
    new = Container.create(root, "same", config("sleep", "30"))
    try:
        from pycontainer import ContainerNotFound

        with pytest.raises(ContainerNotFound):
            stale.delete(force=True)
        with pytest.raises(ContainerNotFound):
            stale.start()
        assert new.status is Status.CREATED
        new.start()
        assert new.status is Status.RUNNING
    finally:
        stale.close()
        new.delete(force=True)


def test_terminal_keeps_passed_fds(root, config):
    r, w = os.pipe()
    try:
        cfg = config("sh", "-c", "echo via-fd3 >&3", process={"terminal": True})
        with Container.run(root, "ttyfd", cfg, pass_fds=[w]) as c:
            os.close(w)
            w = -1
            assert c.wait(timeout=10).code == 0
        assert os.read(r, 100) == b"via-fd3\n"
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)


def test_a_hostile_etc_passwd_does_not_hang_exec(root, config):
    # mounting inside needs CAP_SYS_ADMIN, which Docker's default set leaves out
    admin = {"capabilities": Capabilities.docker(add=["SYS_ADMIN"])}
    with Container.run(root, "fifo", config("sleep", "60", mounts=[Mount("/tmp", None, "tmpfs")], process=admin)) as c:
        # The session's rootfs is shared by the tests: the fifo lives on the
        # container's own tmpfs and is bound over /etc/passwd in its mount namespace.
        with c.exec(["sh", "-c", "mkfifo /tmp/p && mount --bind /tmp/p /etc/passwd"]) as p:
            assert p.wait(timeout=10).code == 0
        import time

        t = time.monotonic()
        with c.exec(["echo", "ok"], stdout=PIPE) as p:  # not id: it would read the fifo itself
            assert p.communicate(timeout=10)[0] == b"ok\n"
        assert time.monotonic() - t < 5
        c.kill(signal.SIGKILL)
        c.wait(timeout=10)


def test_modes_do_not_depend_on_the_umask(root, data_root):
    old = os.umask(0o077)
    try:
        cfg = ContainerConfig(process=Process(args=("true",)))
        with Container.create(root, "um", cfg, data_root=data_root) as c:
            assert os.stat(c.dir).st_mode & 0o777 == 0o711
            assert os.stat(os.path.join(c.dir, "hosts")).st_mode & 0o777 == 0o644
            assert os.stat(os.path.join(data_root, "rootfs")).st_mode & 0o777 == 0o711
    finally:
        os.umask(old)


_BIG_ENV = """
import resource, sys
from pycontainer import PIPE, Container, ContainerConfig, Process
resource.setrlimit(resource.RLIMIT_STACK, (1 << 20, resource.getrlimit(resource.RLIMIT_STACK)[1]))
root, rootfs = sys.argv[1], sys.argv[2]
cfg = ContainerConfig(process=Process(args=["sh", "-c", "echo ${#BIG}"], env={"PATH": "/bin", "BIG": "x" * 120000}),
                      rootfs=rootfs)
with Container.run(root, "big", cfg, stdout=PIPE) as c:
    out, _ = c.communicate(timeout=30)
    print(c.wait(), out.decode().strip())
"""


def test_a_large_environment_under_a_small_stack(root, rootfs):
    """The freestanding helper handles a 120 KB environment with a 1 MiB stack
    (gcc once turned its strlen into a recursion one frame per character)."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", _BIG_ENV, root, rootfs], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ExitStatus(code=0, signal=None, oom_killed=False) 120000"


def test_an_orphaned_creating_dir_has_its_init_killed(root, config):
    """A creator killed between the init's READY and the rename leaves a
    .creating-* dir and a waiting init: list() kills it and removes the dir."""
    import subprocess
    import sys
    import time

    script = (
        "import os, sys\n"
        "from pycontainer import container as C, DEVNULL, ContainerConfig, Process\n"
        "def die(a, b):\n"
        "    print(a, flush=True); os._exit(0)  # dies right before the rename\n"
        "C.os.rename = die\n"
        "cfg = ContainerConfig(process=Process(args=['true']), rootfs=sys.argv[2])\n"
        "C.Container.create(sys.argv[1], 'orphan', cfg, stdin=DEVNULL, stdout=DEVNULL, stderr=DEVNULL)\n"
    )
    rootfs = config("true").rootfs
    r = subprocess.run([sys.executable, "-c", script, root, rootfs], capture_output=True, text=True, timeout=60)
    debris = r.stdout.strip()
    assert os.path.basename(debris).startswith(".creating-orphan-")
    import json

    with open(os.path.join(debris, "state.json")) as f:
        pid = json.load(f)["pid"]
    assert os.path.exists(f"/proc/{pid}")  # the init waits for a start that never comes
    assert Container.list(root) == []
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not os.path.exists(f"/proc/{pid}")
    assert os.listdir(root) == []


def test_sysctls_are_set_in_the_containers_namespaces_only(root, config):
    keys = {"net.ipv4.ip_forward": "1", "kernel.shmmni": "1234", "net.ipv4.ip_unprivileged_port_start": "80"}
    before = {k: open("/proc/sys/" + k.replace(".", "/")).read() for k in keys}
    script = "; ".join(f"cat /proc/sys/{k.replace('.', '/')}" for k in keys)
    with Container.run(root, "s", config("sh", "-c", script, sysctl=keys), stdout=PIPE) as c:
        out, _ = c.communicate(timeout=30)
    assert out.decode().split() == list(keys.values())
    assert {k: open("/proc/sys/" + k.replace(".", "/")).read() for k in keys} == before  # the host's untouched


@pytest.mark.parametrize(
    "sysctl, namespaces, match",
    [
        ({"kernel.panic": "1"}, None, "not a namespaced parameter"),
        ({"vm.swappiness": "1"}, None, "not a namespaced parameter"),
        ({"net.ipv4.ip_forward": "1"}, ("pid", "mount", "uts", "ipc"), "new network namespace"),
        ({"kernel.shmmni": "1"}, ("pid", "mount", "uts", "network"), "new ipc namespace"),
    ],
)
def test_sysctls_that_would_change_the_host_are_refused(root, config, sysctl, namespaces, match):
    fields = {"sysctl": sysctl} if namespaces is None else {"sysctl": sysctl, "namespaces": namespaces}
    with pytest.raises(ConfigError, match=match):
        Container.create(root, "x", config("true", **fields))
    assert os.listdir(root) == []


def test_a_sysctl_goes_only_into_a_procfs(root, rootfs, tmp_path):
    """Without the runtime's /proc (a bundle that mounts none), the path is
    the rootfs's own file: refused, not written."""
    fs = tmp_path / "fs"
    shutil.copytree(rootfs, fs, symlinks=True)
    fake = fs / "proc/sys/net/ipv4"
    fake.mkdir(parents=True)
    (fake / "ip_forward").write_text("0\n")
    cfg = ContainerConfig(process=Process(args=["true"]), rootfs=str(fs), docker_defaults=False,
                          namespaces=["pid", "mount", "network"], sysctl={"net.ipv4.ip_forward": "1"})  # fmt: skip
    with pytest.raises(InitError) as e:
        Container.create(root, "x", cfg)
    assert e.value.step == "write" and e.value.errno == errno.EXDEV
    assert (fake / "ip_forward").read_text() == "0\n" and os.listdir(root) == []


def test_extra_devices_are_made_owned_and_allowed(root, config):
    """A device outside runc's allow-list (tun, 10:200: opening it alone does
    nothing) is made with its mode and owner, and the cgroup lets the
    container open it; the control makes the same node itself and is refused."""
    from pycontainer import Device

    devices = [Device("/dev/mytun", "c", 10, 200, 0o620, 1000, 5), Device("/dev/pipe", "p", file_mode=0o600)]
    script = "stat -c '%t:%T %a %u %g %F' /dev/mytun /dev/pipe; exec 3<>/dev/mytun && echo opened"
    with Container.run(root, "d", config("sh", "-c", script, devices=devices), stdout=PIPE, stderr=STDOUT) as c:
        out, _ = c.communicate(timeout=30)
    assert out.decode().split("\n")[:3] == ["a:c8 620 1000 5 character special file", "0:0 600 0 0 fifo", "opened"], out
    control = "mknod /dev/mytun c 10 200 && exec 3<>/dev/mytun && echo opened"
    with Container.run(root, "e", config("sh", "-c", control), stdout=PIPE, stderr=STDOUT) as c:
        out, _ = c.communicate(timeout=30)
    assert b"opened" not in out and b"Operation not permitted" in out, out


def test_personality_and_time_offsets(root, config):
    from pycontainer import DEFAULT_NAMESPACES

    year = 365 * 86400
    cfg = config("sh", "-c", "uname -m; cut -d. -f1 /proc/uptime", personality="LINUX32",
                 namespaces=[*DEFAULT_NAMESPACES, Namespace("time")], time_offsets={"boottime": (year, 0)})  # fmt: skip
    with Container.run(root, "t", cfg, stdout=PIPE) as c:
        out, _ = c.communicate(timeout=30)
    machine, uptime = out.decode().split()
    host = float(open("/proc/uptime").read().split()[0])
    assert machine in ("i686", "i386") and year - 5 < int(uptime) - host < year + 5
    with pytest.raises(ConfigError, match="new time namespace"):
        config("true", time_offsets={"monotonic": (1, 0)})


def test_a_container_with_sysctls_and_devices_loads_and_updates(root, config):
    from pycontainer import Device, Resources

    cfg = config("sleep", "60", sysctl={"net.ipv4.ip_forward": "1"}, devices=[Device("/dev/net/tun", "c", 10, 200)],
                 time_offsets=(), personality="LINUX")  # fmt: skip
    with Container.run(root, "sd", cfg) as c:
        again = Container.load(root, "sd")
        assert again.config == c.config  # what state.json keeps reads back whole
        assert [x.id for x in Container.list(root)] == ["sd"]
        again.update(Resources(pids_limit=100))
        with c.exec(["sh", "-c", "test -c /dev/net/tun && exec 3<>/dev/net/tun && echo ok"], stdout=PIPE) as p:
            assert p.communicate(timeout=30)[0] == b"ok\n"  # nested, made, and still allowed after the update


def test_dockers_network_defaults_let_any_user_bind_a_low_port(root, config):
    """As Docker's: with a network namespace of its own, port 80 is anyone's
    to bind and ICMP echo sockets anyone's to open; not with the host's
    network, and not where the config sets its own value."""
    script = "cat /proc/sys/net/ipv4/ip_unprivileged_port_start /proc/sys/net/ipv4/ping_group_range; nc -l -p 80 & sleep 0.2; kill $!"
    cfg = attrs.evolve(config("sh", "-c", script), process=Process(args=["sh", "-c", script], user="nobody"))
    with Container.run(root, "low", cfg, stdout=PIPE, stderr=PIPE) as c:
        out, err = c.communicate(timeout=30)
        assert out.split(b"\n")[:2] == [b"0", b"0\t2147483647"] and b"Permission denied" not in err, (out, err)
    own = attrs.evolve(cfg, sysctl={"net.ipv4.ip_unprivileged_port_start": "1024"})
    with Container.run(root, "own", own, stdout=PIPE, stderr=PIPE) as c:
        out, err = c.communicate(timeout=30)
        assert out.split(b"\n")[0] == b"1024" and b"Permission denied" in err, (out, err)
    with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
        host = f.read()
    with Container.run(root, "hostnet", cfg, network="host", stdout=PIPE, stderr=PIPE) as c:
        out, err = c.communicate(timeout=30)
        assert out.split(b"\n")[0] == host.strip().encode()  # the host's, untouched


def test_devices_in_a_bound_dev_are_refused_and_none_land_there(root, rootfs, tmp_path):
    from pycontainer import Device

    host_dir = tmp_path / "host-dev"
    host_dir.mkdir()
    bound = [Mount("/proc", "proc", "proc"), Mount("/dev", str(host_dir), "bind", ["rbind"])]
    base = dict(rootfs=rootfs, docker_defaults=False, namespaces=["pid", "mount"], mounts=bound, cgroups=False,
                masked_paths=(), readonly_paths=())  # (masking binds /dev/null, which this /dev has not)  # fmt: skip
    with pytest.raises(ConfigError, match="devices"):
        Container.create(
            root, "x", ContainerConfig(process=Process(args=["true"]), devices=[Device("/dev/x", "c", 1, 3)], **base)
        )
    with Container.run(root, "y", ContainerConfig(process=Process(args=["true"]), **base)) as c:
        c.wait()
    assert os.listdir(host_dir) == []  # no default nodes or links made in it either


def test_a_config_device_wins_over_a_default_one(root, config):
    from pycontainer import Device

    cfg = config("stat", "-c", "%t:%T %a", "/dev/null", devices=[Device("/dev/null", "c", 1, 5, 0o600)])
    with Container.run(root, "n", cfg, stdout=PIPE) as c:
        assert c.communicate(timeout=30)[0] == b"1:5 600\n"


def test_a_sysctl_cannot_be_sent_through_a_rootfs_symlink(root, rootfs, tmp_path):
    """Without a /proc mount, a rootfs symlink inside /proc/sys could lead to
    a host procfs bound elsewhere: the write goes only beneath a procfs /proc."""
    fs = tmp_path / "fs"
    shutil.copytree(rootfs, fs, symlinks=True)
    (fs / "proc/sys/net/ipv4/conf").mkdir(parents=True)
    sleeper = __import__("subprocess").Popen(["sleep", "60"])
    try:
        os.symlink(f"/hostproc/{sleeper.pid}", fs / "proc/sys/net/ipv4/conf/all")
        cfg = ContainerConfig(process=Process(args=["true"]), rootfs=str(fs), docker_defaults=False,
                              namespaces=["pid", "mount", "network"], cgroups=False,
                              mounts=[Mount("/hostproc", "/proc", "bind", ["rbind"])],
                              sysctl={"net.ipv4.conf.all.oom_score_adj": "777"})  # fmt: skip
        with pytest.raises(InitError) as e:
            Container.create(root, "x", cfg)
        assert e.value.step == "write" and e.value.errno == errno.EXDEV
        assert open(f"/proc/{sleeper.pid}/oom_score_adj").read().strip() == "0"
    finally:
        sleeper.kill()
        sleeper.wait()
    assert os.listdir(root) == []


def test_with_init_the_exit_status_outlives_the_creating_process(root, rootfs):
    """The --init records the status in the state directory itself: a process
    that loads the container after its creator has gone still learns it
    (without --init it cannot: nobody is left to reap the init for it)."""
    import subprocess
    import sys
    import time

    def create_and_leave(cid: str, init: bool) -> None:
        script = (
            "import sys\nfrom pycontainer import *\n"
            f"c = Container.create(sys.argv[1], {cid!r}, ContainerConfig(process=Process(args=['sh', '-c', "
            f"'sleep 0.3; kill -TERM $$ ; exit 7']), rootfs=sys.argv[2], init={init}, cgroups=False))\n"
            "c.start()\n"
        )
        subprocess.run([sys.executable, "-c", script, root, rootfs], check=True)

    create_and_leave("with", True)
    create_and_leave("without", False)
    deadline = time.monotonic() + 20
    while {Container.load(root, cid).state().status for cid in ("with", "without")} != {Status.STOPPED}:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert Container.load(root, "with").wait(timeout=5) == ExitStatus(code=128 + signal.SIGTERM)
    assert Container.load(root, "without").wait(timeout=5) == ExitStatus()
    for cid in ("with", "without"):
        Container.load(root, cid).delete()


def test_the_inits_exit_fd_is_out_of_the_containers_reach(root, config):
    script = "ls /proc/self/fd; echo ---; (echo forged > /proc/1/fd/3) 2>&1; echo done"
    with Container.run(root, "i", config("sh", "-c", script, init=True), stdout=PIPE, stderr=STDOUT) as c:
        out, _ = c.communicate(timeout=30)
        status = c.wait()
    lines = out.decode().split("\n")
    assert set(lines[: lines.index("---")]) <= {"0", "1", "2", "3"}, out  # (3: the dir ls reads)
    # the init is non-dumpable: its fds are not the container's to open
    assert "Permission denied" in lines[lines.index("---") + 1], out
    assert status.code == 0


def _keyrings() -> set[str]:
    """Descriptions of the keyrings root can see (/proc/keys)."""
    with open("/proc/keys") as f:
        return {line.split(":", 1)[0].split()[-1] for line in f if " keyring " in line}


@pytest.mark.parametrize("new_keyring", [True, False])
def test_a_session_keyring_of_its_own_unless_asked_not_to(root, config, new_keyring):
    cid = f"kr-{os.urandom(4).hex()}"

    def users() -> list[int]:
        with open("/proc/keys") as f:
            return [int(line.split()[2]) for line in f if line.rstrip().endswith(f" _ses.{cid}: empty")]

    c = Container.run(root, cid, config("sleep", "30", new_keyring=new_keyring))
    try:
        before = users()
        assert len(before) == (1 if new_keyring else 0)  # runc's name for it
        # an exec'd process joins it, as runc's exec does
        p = c.exec(Process(args=["sleep", "30"]))
        try:
            after = users()
            assert len(after) == len(before) and (not new_keyring or after[0] > before[0])
        finally:
            p.kill(9)
            p.wait()
    finally:
        c.delete(force=True)


PROC_SUPER_MAGIC, SYSFS_MAGIC = 0x9FA0, 0x62656572


def _mounts_in_namespace_of(pid: int) -> list[int]:
    """The superblock magic of every mount in ``pid``'s mount namespace,
    reachable from its root or not (listmount(2) and statmount(2), Linux
    6.11+ for another namespace's)."""
    import ctypes
    import fcntl
    import struct

    libc = ctypes.CDLL(None, use_errno=True)
    sys_statmount, sys_listmount = 457, 458  # x86_64
    ns_get_mntns_id = (2 << 30) | (8 << 16) | (0xB7 << 8) | 5  # _IOR(0xb7, 5, __u64)
    fd = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY)
    try:
        buf = bytearray(8)
        fcntl.ioctl(fd, ns_get_mntns_id, buf)
        (ns_id,) = struct.unpack("Q", buf)
    except OSError as e:
        pytest.skip(f"the kernel cannot name a mount namespace (NS_GET_MNTNS_ID): {e}")
    finally:
        os.close(fd)
    ids = (ctypes.c_uint64 * 4096)()
    # struct mnt_id_req {size, spare, mnt_id (LSMT_ROOT: all), param, mnt_ns_id}
    n = libc.syscall(sys_listmount, struct.pack("IIQQQ", 32, 0, 2**64 - 1, 0, ns_id), ids, 4096, 0)
    if n < 0:
        pytest.skip(f"no listmount(2) for another namespace here: {os.strerror(ctypes.get_errno())}")
    magics = []
    for mnt in ids[:n]:
        sm = ctypes.create_string_buffer(512)
        req = struct.pack("IIQQQ", 32, 0, mnt, 1, ns_id)  # STATMOUNT_SB_BASIC
        assert libc.syscall(sys_statmount, req, sm, 512, 0) == 0, os.strerror(ctypes.get_errno())
        magics.append(struct.unpack_from("Q", sm.raw, 24)[0])  # struct statmount.sb_magic
    return magics


def test_no_pivot_root_moves_the_rootfs_and_hides_the_hosts_proc_and_sys(root, config):
    """runc --no-pivot: the rootfs is moved onto "/" and chroot'ed into, so
    the old root stays in the namespace, out of reach; its procfs and sysfs
    mounts (the host's) are detached first, as runc does."""
    seen = {}
    for no_pivot in (False, True):
        cmd = "ls -d /bin/busybox; sleep 30"  # (not `ls /`: other tests may make mountpoints in the shared rootfs)
        c = Container.run(root, "pivot", config("sh", "-c", cmd, no_pivot_root=no_pivot), stdout=PIPE)
        try:
            assert c.stdout.readline() == b"/bin/busybox\n"  # the container's rootfs at /
            with open(f"/proc/{c.pid}/mountinfo") as f:
                visible = len(f.readlines())
            seen[no_pivot] = (visible, _mounts_in_namespace_of(c.pid))
        finally:
            c.delete(force=True)
    (visible, pivoted), (_, moved) = seen[False], seen[True]
    assert len(pivoted) == visible  # pivot_root detached the old root
    assert len(moved) > visible  # moved: the old root is still there, beneath
    for magic in (PROC_SUPER_MAGIC, SYSFS_MAGIC):
        assert moved.count(magic) == pivoted.count(magic)  # but not the host's /proc and /sys


def _userns_rootfs(rootfs: str, base: str) -> str:
    """A copy of the rootfs owned by the ids 0.. map to (100000..)."""
    return owned_copy(rootfs, os.path.join(base, "rootfs"), 100000)


@pytest.mark.parametrize("idmap", [False, True])
def test_an_idmapped_mount_shows_host_files_as_the_containers_own(rootfs, public_dir, idmap):
    """In a user namespace (0 -> 100000), a host directory owned by root is
    nobody's and closed; idmapped with the container's maps (the ``idmap``
    option) it is the container root's, and what it writes there is owned
    by root on disk."""
    shared = os.path.join(public_dir, "shared")
    os.mkdir(shared)
    with open(os.path.join(shared, "f"), "w") as f:
        f.write("x")
    maps = [IDMap(0, 100000, 65536)]
    cfg = ContainerConfig(
        process=Process(args=["sh", "-c", "stat -c %u:%g /shared/f; touch /shared/new && stat -c %u /shared/new"]),
        rootfs=_userns_rootfs(rootfs, public_dir),
        namespaces=[*(Namespace(t) for t in ("pid", "mount", "uts", "ipc")), Namespace("user")],
        uid_mappings=maps,
        gid_mappings=maps,
        mounts=[Mount("/shared", shared, options=["idmap"] if idmap else [])],
    )
    root = os.path.join(public_dir, "state")
    status, out, err = run(root, cfg)
    if idmap:
        assert (status.code, out.split()) == (0, ["0:0", "0"]), err
        assert os.stat(os.path.join(shared, "new")).st_uid == 0  # root's on disk
    else:
        assert status.code != 0 and out.split() == ["65534:65534"] and "Permission denied" in err
    assert os.listdir(root) == []


def test_an_idmapped_mount_with_maps_of_its_own(root, config, tmp_path):
    """Without a user namespace: the mount's own maps (0 -> 1000) show a
    file root owns on disk as uid 1000's, read-only as asked; the rest of
    the rootfs is untouched."""
    d = tmp_path / "data"
    d.mkdir()
    (d / "f").write_text("x")
    m = Mount("/data", str(d), options=["ro"], uid_mappings=[IDMap(0, 1000, 1)], gid_mappings=[IDMap(0, 2000, 1)])
    out = sh(root, config, "stat -c %u:%g /data/f; stat -c %u /bin/busybox; touch /data/g 2>&1 || true", mounts=[m])
    lines = out.splitlines()
    assert lines[:2] == ["1000:2000", "0"]
    assert "Read-only file system" in lines[2]


def test_an_idmapped_mount_the_filesystem_refuses_names_it(root, config, tmp_path):
    # procfs cannot be idmapped; a missing source is a ConfigError before anything is made
    maps = {"uid_mappings": [IDMap(0, 1000, 1)], "gid_mappings": [IDMap(0, 1000, 1)]}
    with pytest.raises(MountError) as e:
        Container.create(root, "idm-proc", config("true", mounts=[Mount("/data", "/proc/sys", **maps)]))
    assert "'/proc/sys'" in str(e.value) and "Invalid argument" in str(e.value)
    with pytest.raises(ConfigError, match="does not exist"):
        Container.create(root, "idm-missing", config("true", mounts=[Mount("/data", str(tmp_path / "no"), **maps)]))
    assert os.listdir(root) == []


@pytest.mark.parametrize("option", ["idmap", "ridmap"])
def test_idmap_maps_the_top_mount_and_ridmap_the_submounts_too(root, config, tmp_path, option):
    """rbind copies the submount either way; only ridmap idmaps it (the
    spec's words).  With an init and a passed fd too, whose fd numbers the
    child's stdio steps dup onto: the idmapped trees are made above them."""
    from pycontainer import container as _container
    import subprocess

    d = tmp_path / "data"
    (d / "sub").mkdir(parents=True)
    (d / "f").write_text("x")
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(d / "sub")], check=True)
    try:
        (d / "sub" / "g").write_text("y")
        maps = {"uid_mappings": [IDMap(0, 1000, 1)], "gid_mappings": [IDMap(0, 1000, 1)]}
        m = Mount("/data", str(d), options=["rbind", option], **maps)
        r, w = os.pipe()
        try:
            cfg = config("sh", "-c", "stat -c %u /data/f /data/sub/g; echo ok >&3", mounts=[m], init=True)
            status, out, err = run(root, cfg, pass_fds=[w])
        finally:
            os.close(w)
        with os.fdopen(r) as f:
            assert f.read() == "ok\n"
        assert status.code == 0, err
        assert out.split() == (["1000", "0"] if option == "idmap" else ["1000", "1000"])
        trees = _container._idmap_fds(cfg, 40)
        try:
            assert trees and all(fd >= 40 for fd in trees)
        finally:
            for fd in trees:
                os.close(fd)
    finally:
        subprocess.run(["umount", str(d / "sub")], check=True)


# ---- run: create + start without the exec fifo -------------------------------------------


@pytest.fixture
def plans(monkeypatch):
    """The op kinds of every plan spawned, in order."""
    from pycontainer import _spawn

    seen: list[list[object]] = []
    real = _spawn.spawn

    def spawn(ops, *args, **kwargs):
        seen.append([o.kind for o in ops])
        return real(ops, *args, **kwargs)

    monkeypatch.setattr(_spawn, "spawn", spawn)
    return seen


def _is_run_plan(kinds: list[object]) -> bool:
    from pycontainer import _plan

    return _plan.Op.OPEN_FIFO not in kinds and _plan.Op.WAIT_START not in kinds and kinds[-2:] == [
        _plan.Op.WAIT_GO, _plan.Op.EXEC,
    ]  # fmt: skip


def test_run_claims_the_id_then_execs_without_the_exec_fifo(root, config, plans, monkeypatch):
    """run makes no exec fifo: its container is never seen created.  The GO
    comes once the state is in place, and the init has not exec'd before it."""
    from pycontainer import _spawn

    at_go = []
    real_go = _spawn.Child.send_go

    def send_go(child):
        seen = Container.load(root, "fast")  # (in place already: the id is claimed)
        try:
            at_go.append((seen.status, sorted(os.listdir(seen.dir)), os.readlink(f"/proc/{child.pid}/exe")))
        finally:
            seen.close()
        real_go(child)

    monkeypatch.setattr(_spawn.Child, "send_go", send_go)
    with Container.run(root, "fast", config("sleep", "30")) as c:
        assert c.status is Status.RUNNING and c.state().status is Status.RUNNING
        assert not os.path.exists(os.path.join(c.dir, "exec.fifo"))
        assert os.readlink(f"/proc/{c.pid}/exe") == "/bin/busybox"  # exec'd when run returns
    [kinds] = plans
    assert _is_run_plan(kinds)
    [(status, files, exe)] = at_go
    assert status is Status.RUNNING and "exec.fifo" not in files and "state.json" in files
    assert exe.startswith("/memfd:pycontainer-helper")  # waiting for the GO, not exec'd


def test_a_run_deleted_by_another_process_before_its_exec_raises_and_leaks_nothing(root, config, monkeypatch):
    """Another process deletes the container between the rename and the GO:
    run says the container died before it could start (not that it is not
    found), and keeps no fd, pipe or zombie of it (the review's case)."""
    from pycontainer import _spawn

    real_go = _spawn.Child.send_go
    pids = []

    def send_go(child):
        pids.append(child.pid)
        other = Container.load(root, "raced")
        other.delete(force=True)  # (as another process would: SIGKILL, state removed)
        real_go(child)

    with Container.run(root, "warm", config("true")) as c:  # (the helper's memfd, the pool: kept for good)
        c.wait()
    monkeypatch.setattr(_spawn.Child, "send_go", send_go)
    before = set(os.listdir("/proc/self/fd"))
    with pytest.raises(PyContainerError) as e:
        Container.run(root, "raced", config("true"), stdout=PIPE, stderr=PIPE)
    assert not isinstance(e.value, ContainerNotFound)
    extra = [os.readlink(f"/proc/self/fd/{fd}") for fd in set(os.listdir("/proc/self/fd")) - before]
    assert [x for x in extra if not x.startswith("net:[")] == []  # (the network namespace pool's fill up)
    assert os.listdir(root) == []
    [pid] = pids
    assert not os.path.exists(f"/proc/{pid}")  # reaped, no zombie


def test_the_error_of_a_child_that_died_with_our_go_unread_is_not_lost():
    """A step fails after READY: the child sends its ERROR and exits, while
    our GO sits unread in its queue.  The kernel then reports a reset ahead
    of the ERROR; recv reads on and returns the ERROR."""
    import socket
    import struct
    import time

    from pycontainer import _spawn

    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    child = _spawn.Child(pid=0, sock=ours, arena=None, arena_size=0)
    text = b"/no/such/dir/x".ljust(512, b"\0")
    theirs.send(struct.pack("@iiiiq512s", _spawn.MSG_ERROR, 3, 7, errno.ENOENT, 0, text))
    child.send_go()  # (unread: the child is gone before it reads)
    theirs.close()
    msg = child.recv(time.monotonic() + 5)
    assert msg is not None and (msg.type, msg.step, msg.err, msg.text) == (_spawn.MSG_ERROR, 3, errno.ENOENT, "/no/such/dir/x")
    assert child.recv(time.monotonic() + 5) is None  # then EOF
    ours.close()


def test_eof_after_a_reset_is_a_death_before_the_exec_not_an_exec():
    """The child died (killed, say) with our GO unread and nothing sent: EOF
    alone would read as "exec'd"; the reset says the GO was never read."""
    import socket

    from pycontainer import _spawn

    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    child = _spawn.Child(pid=0, sock=ours, arena=None, arena_size=0)
    child.send_go()
    theirs.close()
    with pytest.raises(PyContainerError, match="died before it could start"):
        child.wait_for(0)
    ours.close()


@pytest.mark.parametrize("how", ["missing", "interpreter"])
def test_run_of_a_missing_executable_raises_naming_it_and_leaves_nothing(root, config, tmp_path, how):
    """Missing on the PATH: found out before READY; a script whose
    interpreter is missing: by the execve itself, after the GO."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "script"
    script.write_text("#!/no/such/interpreter\n")
    script.chmod(0o755)
    args = ("no-such-binary",) if how == "missing" else ("/b/script",)
    with pytest.raises(InitError) as e:
        Container.run(root, "gone", config(*args, mounts=[Mount("/b", str(bin_dir))]), stdout=PIPE)
    assert e.value.step == "exec" and e.value.errno == errno.ENOENT
    assert e.value.path == ("no-such-binary" if how == "missing" else "/b/script")
    assert args[0] in str(e.value) and "ENOENT" in str(e.value)
    assert os.listdir(root) == []


@pytest.mark.parametrize("where", ["seccomp", "seccomp with no_new_privs", "rlimit"])
def test_run_raises_a_step_failing_after_ready_and_the_process_never_runs(
    root, config, tmp_path, plans, monkeypatch, where
):
    """After READY the run's parent goes on listening: a failing step is
    reported at once (not held for a start).  A failing write stands in for
    the filter, in either of its places; an rlimit above our hard limit is
    refused by the kernel (without CAP_SYS_RESOURCE) after READY."""
    import resource

    from pycontainer import _plan
    from pycontainer.config import held_capabilities

    out = tmp_path / "out"
    out.mkdir()
    if where == "rlimit":
        if "CAP_SYS_RESOURCE" in held_capabilities():
            pytest.skip("the runtime may raise hard limits here")
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        # (the parent refuses what the kernel would: the plan is given it anyway)
        refused = _plan.op(_plan.Op.RLIMIT, "RLIMIT_NOFILE", v=(resource.RLIMIT_NOFILE, hard + 1, hard + 1))
        monkeypatch.setattr(_plan, "_rlimit_ops", lambda conf: [refused])
    else:
        monkeypatch.setattr(_plan, "_seccomp_op", lambda conf: _plan.op(_plan.Op.WRITE, "/no/such/dir/x", "1"))
    process = {"no_new_privileges": where == "seccomp with no_new_privs"}
    cfg = config("touch", "/out/ran", mounts=[Mount("/out", str(out))], process=process)
    with pytest.raises(InitError) as e:
        Container.run(root, "late", cfg)
    if where == "rlimit":
        assert e.value.step == "rlimit" and e.value.errno == errno.EPERM
    else:
        assert e.value.step == "write" and e.value.path == "/no/such/dir/x" and e.value.errno == errno.ENOENT
    [kinds] = plans
    assert _is_run_plan(kinds)
    assert os.listdir(out) == []  # the process never ran
    assert os.listdir(root) == []


@pytest.mark.parametrize("nnp", [False, True])
def test_run_hears_of_a_failing_exec_under_a_profile_that_refuses_sendto(root, config, tmp_path, nnp):
    """run has no fifo to carry an error that comes after the seccomp filter:
    the child's report falls back to write(2) on the sync socket."""
    from pycontainer.security import seccomp_profile_from_json

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "script").write_text("#!/no/such/interpreter\n")
    (bin_dir / "script").chmod(0o755)
    profile = seccomp_profile_from_json(
        {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["sendto"], "action": "SCMP_ACT_ERRNO"}]}
    )
    cfg = config("/b/script", mounts=[Mount("/b", str(bin_dir))], seccomp=profile,
                 process={"no_new_privileges": nnp})  # fmt: skip
    with pytest.raises(InitError) as e:
        Container.run(root, "no-sendto", cfg)
    assert e.value.step == "exec" and e.value.path == "/b/script" and e.value.errno == errno.ENOENT
    assert os.listdir(root) == []


def test_a_run_that_loses_its_id_never_runs_its_process(root, config, tmp_path, plans, monkeypatch):
    """Another creator takes the id while the run's init is READY: the
    init waits for a GO that never comes, and the run gets ContainerExists."""
    import time

    from pycontainer import ContainerExists

    out = tmp_path / "out"
    out.mkdir()
    real = Container._setup.__func__  # type: ignore[attr-defined]
    winner: list[Container] = []
    loser_pid: list[int] = []

    def racing(cls, root_, cid, *args, **kwargs):
        made = real(cls, root_, cid, *args, **kwargs)
        if not loser_pid:  # the run's: READY; the other creator comes now
            loser_pid.append(made[1].pid)
            winner.append(Container.create(root_, cid, config("true")))
            time.sleep(0.2)  # the loser's init gets as far as it can meanwhile
            assert os.readlink(f"/proc/{made[1].pid}/exe").startswith("/memfd:pycontainer-helper")
        return made

    monkeypatch.setattr(Container, "_setup", classmethod(racing))
    try:
        with pytest.raises(ContainerExists):
            Container.run(root, "contended", config("touch", "/out/ran", mounts=[Mount("/out", str(out))]))
        assert winner and winner[0].status is Status.CREATED  # untouched
        assert not os.path.exists(f"/proc/{loser_pid[0]}")  # killed and reaped
        time.sleep(0.1)
        assert os.listdir(out) == []  # the loser's process never ran
        assert _is_run_plan(plans[0])
    finally:
        for c in winner:
            c.delete(force=True)
    assert os.listdir(root) == []


def test_a_run_init_that_gets_eof_instead_of_go_exits_without_its_exec(root, config, tmp_path, monkeypatch):
    """Should the parent give up (or die) before the GO, the init ends at
    EOF on the sync socket without running anything of the container's."""
    import socket
    import time

    out = tmp_path / "out"
    out.mkdir()
    real = Container._setup.__func__  # type: ignore[attr-defined]
    codes = []

    def giving_up(cls, *args, **kwargs):
        made = real(cls, *args, **kwargs)
        child = made[1]
        child.sock.shutdown(socket.SHUT_WR)  # the child reads EOF where it waits for GO
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            info = os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)  # (abandon reaps it)
            if info is not None:
                codes.append((info.si_code, info.si_status))
                break
            time.sleep(0.01)
        raise RuntimeError("gave up")  # (the undo kills what still waits)

    monkeypatch.setattr(Container, "_setup", classmethod(giving_up))
    with pytest.raises(RuntimeError, match="gave up"):
        Container.run(root, "eof", config("touch", "/out/ran", mounts=[Mount("/out", str(out))]))
    assert codes == [(os.CLD_EXITED, 1)]
    assert os.listdir(out) == [] and os.listdir(root) == []


@pytest.mark.parametrize("mode", ["init", "terminal", "init and terminal", "user namespace", "joined pid namespace"])
def test_run_takes_the_fast_path_in_every_mode(root, config, plans, public_dir, rootfs, mode):
    args = ("sh", "-c", "echo $$; tty >/dev/null && echo tty; exit 3")
    fields: dict[str, object] = {}
    if "init" in mode:
        fields["init"] = True
    if "terminal" in mode:
        fields["process"] = {"terminal": True}
    other = None
    state_root = root
    if mode == "user namespace":
        # a rootfs the mapped root owns, under a root it can traverse
        fs = owned_copy(rootfs, os.path.join(public_dir, "fs"), 100000)
        state_root = os.path.join(public_dir, "state")
        cfg = attrs.evolve(
            config(*args),
            rootfs=fs,
            namespaces=[Namespace(n) for n in ("pid", "mount", "uts", "ipc", "network", "user")],
            uid_mappings=[IDMap(0, 100000, 65536)],
            gid_mappings=[IDMap(0, 100000, 65536)],
        )
    elif mode == "joined pid namespace":
        other = Container.run(root, "host", config("sleep", "60"))
        cfg = config(*args, namespaces=[Namespace("pid", f"/proc/{other.pid}/ns/pid"), Namespace("mount")])
    else:
        cfg = config(*args, **fields)
    try:
        with Container.run(state_root, "modes", cfg, stdout=PIPE, stderr=PIPE) as c:
            if c.pty is not None:
                text = read_to_eof(c.pty).decode().replace("\r", "")
            else:
                text = c.communicate(timeout=30)[0].decode()
            status = c.wait(timeout=30)
        assert status.code == 3, text
        lines = text.split()
        if mode == "joined pid namespace":
            assert lines[0] != "1"  # (the other's sleep is pid 1 there)
        else:
            assert lines[0] == ("2" if "init" in mode else "1")
        assert ("tty" in lines) == ("terminal" in mode)
    finally:
        if other is not None:
            other.delete(force=True)
    assert _is_run_plan(plans[-1])
