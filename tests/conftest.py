"""Shared fixtures.  Every test runs under a guard that compares the host's
mounts, our child processes, processes in other pid namespaces and the state
root before and after: a test that leaves anything behind fails."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator

import pytest

from pycontainer import Container, ContainerConfig, Process, default_rootfs

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root and the real kernel")


def owned_copy(src: str, dest: str, uid: int, gid: int | None = None) -> str:
    """A copy of the rootfs ``src`` at ``dest``, every file owned by
    ``uid``:``gid`` (as an image unpacked for a user namespace is)."""
    shutil.copytree(src, dest, symlinks=True)
    for dirpath, dirs, files in os.walk(dest):
        for n in [dirpath, *(os.path.join(dirpath, x) for x in dirs + files)]:
            os.lchown(n, uid, uid if gid is None else gid)
    return dest


def read_to_eof(fd: int) -> bytes:
    """Everything from a pty master (EIO once the other side is gone) or a pipe."""
    data = b""
    while True:
        try:
            chunk = os.read(fd, 1024)
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    return data


def _mounts() -> set[str]:
    with open("/proc/self/mountinfo") as f:
        # mount id, parent, dev, root, mount point: stable across reads
        return {" ".join(line.split()[:5]) for line in f}


def _children() -> set[int]:
    me = os.getpid()
    out = set()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        ppid = int(data[data.rindex(b")") + 2 :].split()[1])
        if ppid == me:
            out.add(int(name))
    return out


def _foreign_pidns() -> set[int]:
    mine = os.readlink("/proc/self/ns/pid")
    out = set()
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.readlink(f"/proc/{name}/ns/pid") != mine:
                    out.add(int(name))
            except OSError:
                continue
    return out


@pytest.fixture(scope="session")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="session")
def rootfs(data_root: str) -> str:
    """The built-in busybox rootfs, built once for the session in a temp data root."""
    return default_rootfs(data_root)


@pytest.fixture
def root(tmp_path: os.PathLike[str]) -> Iterator[str]:
    """A fresh state root per test; it must be empty again when the test ends
    (but for the networks' lock: networks and leases must be gone too)."""
    path = os.path.join(str(tmp_path), "state")
    os.mkdir(path)
    yield path
    left = os.listdir(path)
    if left == [".networks"] and os.listdir(os.path.join(path, ".networks")) == ["lock"]:
        left = []
    if left:
        # a failed test's containers go with their cgroups, mounts and veths
        for c in Container.list(path):
            try:
                c.delete(force=True)
            except Exception as e:  # noqa: BLE001 - reported below, the rest still goes
                left.append(f"{c.id} (delete failed: {e})")
        shutil.rmtree(path, ignore_errors=True)
        pytest.fail(f"containers left under the state root: {left}")


def _cgroup_dirs() -> set[str]:
    """Every directory under pycontainer's default cgroup parents (and any
    pctest-* cgroup the tests make themselves), in every hierarchy."""
    from pycontainer import cgroups

    out: set[str] = set()
    try:
        layout = cgroups.detect()
    except Exception:
        return out
    own = cgroups.own_cgroups()
    tops = [f"{m}/{own.get(n, '/').strip('/')}".rstrip("/") for n, m in layout.v1.items()]
    if layout.unified:
        tops.append(f"{layout.unified}/{os.path.dirname(own.get('unified', '/').rstrip('/')).strip('/')}".rstrip("/"))
    # absolute cgroups_path tests put theirs at the roots of the hierarchies
    tops += list(layout.v1.values()) + ([layout.unified] if layout.unified else [])
    for top in set(tops):
        for name in ("pycontainer", *(n for n in _listdir(top) if n.startswith("pctest-"))):
            for dirpath, _dirs, _files in os.walk(f"{top}/{name}"):
                if name != "pycontainer" or dirpath != f"{top}/pycontainer":  # the shared parent stays
                    out.add(dirpath)
    return out


def _shared_parents() -> set[str]:
    from pycontainer import cgroups

    try:
        layout = cgroups.detect()
    except Exception:
        return set()
    own = cgroups.own_cgroups()
    tops = [f"{m}/{own.get(n, '/').strip('/')}".rstrip("/") for n, m in layout.v1.items()]
    if layout.unified:
        tops.append(f"{layout.unified}/{os.path.dirname(own.get('unified', '/').rstrip('/')).strip('/')}".rstrip("/"))
    return {f"{t}/pycontainer" for t in tops if os.path.isdir(f"{t}/pycontainer")}


@pytest.fixture(scope="session", autouse=True)
def shared_cgroup_parents() -> Iterator[None]:
    """The library keeps its shared pycontainer/ cgroup parents (as Docker
    keeps /docker); the parents this session made go at its end."""
    before = _shared_parents()
    yield
    for path in _shared_parents() - before:
        try:
            os.rmdir(path)
        except OSError as e:
            pytest.fail(f"cannot remove the cgroup {path} this test session made: {e}")


# Where skopeo and podman keep caches and locks (tests run them isolated from these).
TOOL_STATE = (
    "/var/lib/containers",
    "/run/containers",
    "/run/libpod",
    "/dev/shm/libpod_lock",
    "/run/containerd",
    "/var/lib/containerd",
)


def _tool_state() -> set[str]:
    return {p for p in TOOL_STATE if os.path.lexists(p)}


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


@pytest.fixture(autouse=True)
def fresh_plan_templates() -> None:
    """A test may replace a step of the plan compiler (monkeypatch): the plan
    templates made by earlier tests must not stand in for its own."""
    from pycontainer import _plan

    _plan._template.cache_clear()


@pytest.fixture(autouse=True)
def host_guard() -> Iterator[None]:
    before_net = _host_network()
    before_tools = _tool_state()
    before_cgroups = _cgroup_dirs()
    before_mounts = _mounts()
    before_children = _children()
    before_foreign = _foreign_pidns()
    yield
    # Give killed processes a moment to be reaped by whoever owns them.
    deadline = time.monotonic() + 5
    while True:
        leaked_children = _children() - before_children
        leaked_foreign = _foreign_pidns() - before_foreign
        if not leaked_children and not leaked_foreign or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    leaked_mounts = _mounts() - before_mounts
    leaked_cgroups = _cgroup_dirs() - before_cgroups
    leaked_tools = _tool_state() - before_tools
    problems = []
    after_net = _host_network()
    if after_net != before_net:
        changed = {k: (before_net[k], after_net[k]) for k in before_net if before_net[k] != after_net[k]}
        problems.append(f"the host's network changed (tests keep to throwaway namespaces): {changed}")
    if leaked_tools:
        problems.append(f"state of skopeo, podman or containerd left on the host: {sorted(leaked_tools)}")
    if leaked_cgroups:
        problems.append(f"cgroups left on the host: {sorted(leaked_cgroups)}")
    if leaked_mounts:
        problems.append(f"mounts left on the host: {sorted(leaked_mounts)}")
    if leaked_children:
        problems.append(f"child processes left: {sorted(leaked_children)}")
    if leaked_foreign:
        problems.append(f"processes left in other pid namespaces: {sorted(leaked_foreign)}")
    if problems:
        for pid in leaked_children | leaked_foreign:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        for pid in leaked_children:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        pytest.fail("; ".join(problems))


def _host_network() -> dict[str, object]:
    """What the tests must never change in our own network namespace: its
    links, nftables tables and the forwarding sysctls bridges need."""
    import subprocess

    def sysctl(key: str) -> str:
        try:
            with open(f"/proc/sys/net/{key}") as f:
                return f.read().strip()
        except OSError:
            return "-"

    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    return {
        "links": sorted(os.listdir("/sys/class/net")),
        "nft tables": sorted(tables.splitlines()),
        "ip_forward": sysctl("ipv4/ip_forward"),
        "ipv6 forwarding": sysctl("ipv6/conf/all/forwarding"),
        "route_localnet": sysctl("ipv4/conf/all/route_localnet"),
    }


@pytest.fixture
def config(rootfs: str):
    """Build a config on the session rootfs: config("sh", "-c", "...", **fields)."""

    def make(*args: str, process: dict | None = None, **fields) -> ContainerConfig:
        return ContainerConfig(process=Process(args=args, **(process or {})), rootfs=rootfs, **fields)

    return make


@pytest.fixture
def public_dir():
    """A directory the mapped root of a user namespace can traverse (pytest's
    tmp dirs are 0700 root), removed at the end."""
    import shutil
    import tempfile

    path = tempfile.mkdtemp(prefix="pyc-test-", dir="/tmp")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path)


@pytest.fixture(scope="session")
def probe() -> Iterator[str]:
    """tests/progs/probe.c built static, in a directory every user can read
    (containers bind it at /probe), removed at the end of the session."""
    import subprocess
    import tempfile

    d = tempfile.mkdtemp(prefix="pyc-probe-", dir="/tmp")
    os.chmod(d, 0o755)
    path = os.path.join(d, "probe")
    src = os.path.join(os.path.dirname(__file__), "progs", "probe.c")
    subprocess.run(["cc", "-static", "-O2", "-Wall", "-o", path, src], check=True)
    yield path
    shutil.rmtree(d)


def _reachable(path: str) -> bool:
    """Can any user read ``path`` (every directory on the way searchable)?"""
    import stat

    path = os.path.realpath(path)
    parts = path.split("/")
    for i in range(2, len(parts) + 1):
        st = os.stat("/".join(parts[:i]) or "/")
        need = stat.S_IXOTH if stat.S_ISDIR(st.st_mode) else stat.S_IROTH
        if not st.st_mode & need:
            return False
    return True


class Rootless:
    """An unprivileged user made for the test session, with subordinate id
    ranges, and the means to run a container as that user (tests/rootless_runner.py
    in a python it can reach)."""

    def __init__(self, name: str, uid: int, gid: int, sub_start: int, sub_count: int, work: str) -> None:
        self.name, self.uid, self.gid = name, uid, gid
        self.sub_start, self.sub_count, self.work = sub_start, sub_count, work
        self.state = os.path.join(work, "state")

    def host_id(self, container_id: int) -> int:
        return self.uid if container_id == 0 else self.sub_start + container_id - 1

    def command(self) -> list[str]:
        import sys

        import pycontainer

        runner = os.path.join(self.work, "rootless_runner.py")
        env = ["env", "-i", f"HOME={self.work}/home", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"]
        pkg_parent = os.path.dirname(os.path.dirname(os.path.realpath(pycontainer.__file__)))
        if _reachable(sys.executable) and _reachable(pkg_parent):
            return ["runuser", "-u", self.name, "--", *env, f"PYTHONPATH={pkg_parent}", sys.executable, runner]
        # The interpreter or the package is in a directory other users cannot
        # enter (pyenv under /root): bind them into the work dir, in a mount
        # namespace of the command's own (gone when it ends).
        base = os.path.realpath(sys.base_prefix)
        exe = os.path.relpath(os.path.realpath(sys.executable), base)
        py, src = os.path.join(self.work, "py"), os.path.join(self.work, "src")
        inner = (
            f"mount --bind {base} {py} && mount --bind {pkg_parent} {src} && "
            f"exec runuser -u {self.name} -- {' '.join(env)} LD_LIBRARY_PATH={py}/lib PYTHONPATH={src} "
            f"{py}/{exe} {runner}"
        )
        return ["unshare", "-m", "--propagation", "private", "sh", "-c", inner]

    def run(self, enter: list[str] | None = None, **spec: object) -> dict:
        """Run the runner as the user; ``enter``: cgroup.procs files the
        runner is moved into first (as systemd starts a user's session in
        the subtree it delegates)."""
        import json
        import subprocess

        spec.setdefault("state", self.state)
        cmd = self.command()
        if enter:
            moves = " && ".join(f"echo $$ > {f}" for f in enter)
            cmd = ["sh", "-c", f'{moves} && exec "$@"', "sh", *cmd]
        r = subprocess.run(cmd, input=json.dumps(spec), capture_output=True, text=True, timeout=120)
        if r.returncode != 0 or not r.stdout:
            raise AssertionError(f"the rootless runner failed ({r.returncode}): {r.stderr}")
        return json.loads(r.stdout)


@pytest.fixture(scope="session")
def rootless(rootfs: str, probe: str) -> Iterator[Rootless]:
    """A throwaway unprivileged user with 65536 subordinate ids, a rootfs
    owned by its mapped ids (root's files by the user, uid 1000's by its
    subordinate 1000) and a state root of its own; all removed at the end."""
    import subprocess
    import tempfile

    for tool in ("useradd", "userdel", "newuidmap", "newgidmap", "runuser", "unshare"):
        if shutil.which(tool) is None and not os.path.exists(f"/usr/sbin/{tool}"):
            pytest.skip(f"{tool} is missing (apt-get install uidmap)")
    name = f"pyct-{os.urandom(3).hex()}"
    taken = [0]
    for path in ("/etc/subuid", "/etc/subgid"):
        with open(path) as f:
            for line in f:
                parts = line.strip().split(":")
                if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
                    taken.append(int(parts[1]) + int(parts[2]))
    start, count = max(max(taken), 1_000_000) + 65536, 65536
    subprocess.run(
        ["useradd", "-M", "-K", "SUB_UID_COUNT=0", "-K", "SUB_GID_COUNT=0", "-s", "/bin/sh", name], check=True
    )
    work = tempfile.mkdtemp(prefix="pyc-rootless-", dir="/tmp")
    try:
        subprocess.run(["usermod", "--add-subuids", f"{start}-{start + count - 1}",
                        "--add-subgids", f"{start}-{start + count - 1}", name], check=True)  # fmt: skip
        import pwd

        pw = pwd.getpwnam(name)
        os.chmod(work, 0o755)
        for d in ("py", "src"):
            os.mkdir(os.path.join(work, d))
        shutil.copy(os.path.join(os.path.dirname(__file__), "rootless_runner.py"), work)
        user = Rootless(name, pw.pw_uid, pw.pw_gid, start, count, work)
        for d in (user.state, os.path.join(work, "home")):
            os.mkdir(d, 0o700)
            os.chown(d, user.uid, user.gid)
        # the rootfs, owned by the ids it maps to: container root -> the user
        fs = owned_copy(rootfs, os.path.join(work, "rootfs"), user.uid, user.gid)
        os.makedirs(os.path.join(fs, "home/user"), exist_ok=True)
        os.chown(os.path.join(fs, "home/user"), user.host_id(1000), user.host_id(1000))
        user.rootfs = fs  # type: ignore[attr-defined]
        yield user
    finally:
        subprocess.run(["pkill", "-KILL", "-u", name], check=False)
        subprocess.run(["userdel", name], check=False)
        shutil.rmtree(work, ignore_errors=True)
