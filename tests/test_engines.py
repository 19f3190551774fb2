"""podman and containerd drive pycontainer-runc end to end (issue 7).

Each engine runs in a private mount namespace with fresh tmpfs over /run,
/var/lib and /dev/shm, where the engines keep their state, locks and
sockets; everything there goes with the namespace.  Containers get cgroups
under a pctest-* parent, removed at the end, and no network (podman's
``--network none``; ctr makes none by default): nothing is left on the host.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from .conftest import _listdir, needs_root

pytestmark = needs_root

PRIVATE = (
    "mount -t tmpfs tmpfs /var/lib && mount -t tmpfs tmpfs /run && mount -t tmpfs tmpfs /dev/shm"
    " && mkdir -p /var/lib/containers /run/lock"
)


class Namespace:
    """A private mount namespace, held open by a process of its own."""

    def __init__(self) -> None:
        self.holder = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", PRIVATE + " && echo ready && exec sleep 1d"],
            stdout=subprocess.PIPE,
            start_new_session=True,
        )
        assert self.holder.stdout is not None
        if self.holder.stdout.readline() != b"ready\n":
            self.holder.kill()
            self.holder.wait()
            raise RuntimeError("could not make a private mount namespace")

    def cmd(self, *argv: str) -> list[str]:
        return ["nsenter", f"--target={self.holder.pid}", "--mount", "--", *argv]

    def close(self) -> None:
        self.holder.kill()
        self.holder.wait()


def runtime_wrapper(directory: str) -> tuple[str, str]:
    """An executable that runs this checkout's pycontainer-runc with this
    Python, logging each command line (engines clear PATH and the
    environment, so a console-script shim would not do)."""
    log = os.path.join(directory, "runtime.log")
    path = os.path.join(directory, "pycontainer-runc")
    with open(path, "w") as f:
        f.write(f'#!/bin/sh\necho "$*" >> {log}\nexec {sys.executable} -m pycontainer.oci.runc "$@"\n')
    os.chmod(path, 0o755)
    return path, log


def commands(log: str) -> list[str]:
    """The runtime commands an engine ran, global options left out."""
    out = []
    with open(log) as f:
        for line in f:
            words = line.split()
            while words and words[0].startswith("--"):
                words = words[2:] if words[0] in ("--root", "--log", "--log-format") else words[1:]
            out.append(words[0] if words else "")
    return out


def remove_cgroups(parent: str) -> None:
    """rmdir the test's cgroup parent, deepest first, in every hierarchy."""
    for top in ["/sys/fs/cgroup", *(f"/sys/fs/cgroup/{n}" for n in _listdir("/sys/fs/cgroup"))]:
        base = os.path.join(top, parent)
        if not os.path.isdir(base):
            continue
        for dirpath, _dirs, _files in sorted(os.walk(base), key=lambda w: -w[0].count("/")):
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)


def kill_all_in(parent: str) -> None:
    """SIGKILL every process still in the test's cgroups (only ours are there)."""
    for _ in range(50):
        pids = _pids_in(parent)
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        time.sleep(0.1)


def wait_for(predicate, timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def copy_rootfs(rootfs: str, dest: str) -> str:
    shutil.copytree(rootfs, dest, symlinks=True)
    return dest


# ---- podman --------------------------------------------------------------------------------------


class Podman:
    def __init__(self, tmp: str, rootfs: str) -> None:
        self.tmp = tmp
        self.ns = Namespace()
        self.runtime, self.log = runtime_wrapper(tmp)
        self.parent = f"pctest-podman-{os.getpid()}-{os.urandom(3).hex()}"
        conf = os.path.join(tmp, "containers.conf")
        with open(conf, "w") as f:
            f.write('[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n')
        self.env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": tmp, "CONTAINERS_CONF": conf}
        self.base = ["podman", "--root", os.path.join(tmp, "storage"), "--runtime", self.runtime,
                     "--cgroup-manager", "cgroupfs", "--events-backend", "file"]  # fmt: skip
        try:
            r = self.run("import", "-", "localhost/bb:latest", input=_tar(rootfs))
            assert r.returncode == 0, r.stderr
        except BaseException:
            self.ns.close()
            raise

    def argv(self, *args: str) -> list[str]:
        return self.ns.cmd(*self.base, *args)

    def run(self, *args: str, input: bytes | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(self.argv(*args), input=input, capture_output=True, env=self.env, timeout=timeout)

    def container_args(self) -> list[str]:
        # no network; rlimits within ours (raising them is refused here, as it is to runc)
        return ["--network", "none", "--cgroup-parent", "/" + self.parent,
                "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]  # fmt: skip

    def close(self) -> None:
        try:
            self.run("rm", "--all", "--force", "--time", "0", timeout=60)
            # conmon outlives podman briefly; the namespace goes with the last of them
            wait_for(lambda: not _pids_in(self.parent), 30, "podman's processes to leave the test cgroup")
        finally:
            kill_all_in(self.parent)  # whatever a failed clean-up left running
            self.ns.close()
            remove_cgroups(self.parent)


def _tar(directory: str) -> bytes:
    return subprocess.run(["tar", "-C", directory, "-c", "."], capture_output=True, check=True).stdout


def _pids_in(parent: str) -> list[str]:
    out = []
    for top in ("/sys/fs/cgroup/pids", "/sys/fs/cgroup"):  # v1 (or hybrid), pure v2
        for dirpath, _dirs, files in os.walk(os.path.join(top, parent)):
            if "cgroup.procs" in files:
                with contextlib.suppress(OSError), open(os.path.join(dirpath, "cgroup.procs")) as f:
                    out += f.read().split()
    return out


@pytest.fixture
def podman(tmp_path, rootfs) -> Iterator[Podman]:
    if shutil.which("podman") is None or shutil.which("conmon") is None:
        pytest.skip("podman and conmon are not installed (README's apt-get line installs them)")
    p = Podman(str(tmp_path), rootfs)
    try:
        yield p
    finally:
        p.close()


def test_podman_run_passes_output_and_exit_code(podman):
    r = podman.run("run", "--rm", *podman.container_args(), "localhost/bb", "sh", "-c", "echo hi; hostname; exit 3")
    assert r.returncode == 3, r.stderr
    assert r.stdout.decode().split()[0] == "hi"
    assert commands(podman.log)[:2] == ["create", "start"] and "delete" in commands(podman.log)


def test_podman_run_detached_exec_logs_stop(podman):
    script = 'echo started; trap "echo bye; exit 0" TERM; while :; do sleep 0.1; done'
    r = podman.run("run", "-d", "--name", "d1", *podman.container_args(), "localhost/bb", "sh", "-c", script)
    assert r.returncode == 0, r.stderr
    r = podman.run("exec", "d1", "sh", "-c", "echo in-exec $(cat /proc/1/cmdline | tr '\\0' ' '); exit 5")
    assert r.returncode == 5 and r.stdout.decode().startswith("in-exec"), r.stderr
    wait_for(lambda: b"started" in podman.run("logs", "d1").stdout, 30, "the log line")
    r = podman.run("stop", "--time", "10", "d1")
    assert r.returncode == 0, r.stderr
    logs = podman.run("logs", "d1").stdout.decode().split()
    assert logs == ["started", "bye"]
    state = json.loads(podman.run("inspect", "d1").stdout)[0]["State"]
    assert state["Status"] == "exited" and state["ExitCode"] == 0
    assert {"exec", "kill"} <= set(commands(podman.log))
    assert podman.run("rm", "d1").returncode == 0


def test_podman_run_interactive_under_a_pty(podman):
    cmd = " ".join(podman.argv("run", "--rm", "-it", *podman.container_args(), "localhost/bb", "sh"))
    r = subprocess.run(["script", "-qec", f"stty rows 30 cols 100; {cmd}", "/dev/null"],
                       input=b"tty; stty size; exit 4\n", capture_output=True, env=podman.env, timeout=120)  # fmt: skip
    out = r.stdout.decode(errors="replace")
    assert r.returncode == 4, out + r.stderr.decode()
    assert "/dev/pts/0" in out and "30 100" in out
    assert any("--console-socket" in line for line in open(podman.log))


@pytest.mark.parametrize("argv, code", [(["/nonexistent"], 127), (["/etc/passwd"], 126)])
def test_podman_exit_codes_of_a_command_that_cannot_run(podman, argv, code):
    r = podman.run("run", "--rm", *podman.container_args(), "localhost/bb", *argv)
    assert r.returncode == code, r.stderr


# ---- containerd ----------------------------------------------------------------------------------


class Containerd:
    def __init__(self, tmp: str) -> None:
        self.tmp = tmp
        self.sock = os.path.join(tmp, "containerd.sock")
        self.namespace = f"pctest-ctr-{os.getpid()}-{os.urandom(3).hex()}"  # also its cgroup parent
        config = os.path.join(tmp, "config.toml")
        with open(config, "w") as f:
            f.write(
                f'version = 2\nroot = "{tmp}/root"\nstate = "{tmp}/state"\n'
                'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
                f'[grpc]\n  address = "{self.sock}"\n[ttrpc]\n  address = "{self.sock}.ttrpc"\n'
            )
        self.runtime, self.log = runtime_wrapper(tmp)
        self.daemon_log = open(os.path.join(tmp, "containerd.log"), "wb")  # noqa: SIM115 - closed in close()
        self.ns = Namespace()
        try:
            self.daemon = subprocess.Popen(self.ns.cmd("containerd", "--config", config),
                                           stdout=self.daemon_log, stderr=self.daemon_log)  # fmt: skip
        except BaseException:
            self.ns.close()
            self.daemon_log.close()
            raise
        try:
            wait_for(lambda: self.ctr("version").returncode == 0, 30, "containerd to serve")
        except BaseException:
            self.close()
            raise

    def ctr(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        # (in the namespace too: ctr makes the stdio fifos under /run/containerd)
        return subprocess.run(self.ns.cmd("ctr", "--address", self.sock, "--namespace", self.namespace, *args),
                              capture_output=True, timeout=timeout)  # fmt: skip

    def close(self) -> None:
        try:
            if self.daemon.poll() is None:
                for task in self.ctr("task", "ls", "--quiet").stdout.decode().split():
                    self.ctr("task", "kill", "--signal", "SIGKILL", task)
                    wait_for(lambda t=task: b"STOPPED" in self.ctr("task", "ls").stdout
                             or t not in self.ctr("task", "ls").stdout.decode(), 30, "the task to stop")  # fmt: skip
                    self.ctr("task", "delete", task)
                for c in self.ctr("containers", "ls", "--quiet").stdout.decode().split():
                    self.ctr("containers", "rm", c)
                self.daemon.send_signal(signal.SIGTERM)
                self.daemon.wait(30)
            # the shims leave when their tasks are deleted
            wait_for(lambda: not _pids_in(self.namespace), 30, "containerd's processes to leave the test cgroup")
        finally:
            kill_all_in(self.namespace)
            if self.daemon.poll() is None:
                self.daemon.kill()
                self.daemon.wait()
            self.daemon_log.close()
            self.ns.close()
            remove_cgroups(self.namespace)


@pytest.fixture
def containerd(tmp_path) -> Iterator[Containerd]:
    if shutil.which("containerd") is None or shutil.which("containerd-shim-runc-v2") is None:
        pytest.skip("containerd is not installed (README's apt-get line installs it)")
    d = Containerd(str(tmp_path))
    try:
        yield d
    finally:
        d.close()


def test_ctr_run_exec_kill_and_exit_codes(containerd, tmp_path, rootfs):
    fs = copy_rootfs(rootfs, str(tmp_path / "rootfs"))
    run = ["run", "--runc-binary", containerd.runtime, "--rootfs"]  # (a flag: the rootfs comes before the id)
    r = containerd.ctr(*run, "--rm", fs, "c1", "/bin/sh", "-c", "echo hi; exit 3")
    assert (r.returncode, r.stdout) == (3, b"hi\n"), r.stderr
    assert commands(containerd.log)[:3] == ["create", "start", "delete"]

    script = 'trap "echo bye; exit 7" TERM; while :; do sleep 0.1; done'
    r = containerd.ctr(*run, "--detach", fs, "c2", "/bin/sh", "-c", script)
    assert r.returncode == 0, r.stderr
    r = containerd.ctr("task", "exec", "--exec-id", "e1", "c2", "/bin/sh", "-c", "echo in-exec; exit 5")
    assert (r.returncode, r.stdout) == (5, b"in-exec\n"), r.stderr
    assert b"RUNNING" in containerd.ctr("task", "ls").stdout
    assert containerd.ctr("task", "kill", "c2").returncode == 0  # SIGTERM
    wait_for(lambda: b"STOPPED" in containerd.ctr("task", "ls").stdout, 30, "c2 to stop")
    r = containerd.ctr("task", "delete", "c2")
    assert r.returncode == 0 and b"exit code 7" in r.stderr, r.stderr
    assert containerd.ctr("containers", "rm", "c2").returncode == 0
    assert {"exec", "kill"} <= set(commands(containerd.log))
