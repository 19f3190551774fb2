"""Shared fixtures.  Every test runs under a guard that compares the host's
mounts, our child processes, processes in other pid namespaces and the state
root before and after: a test that leaves anything behind fails."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator

import pytest

from pycontainer import ContainerConfig, Process, default_rootfs

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root and the real kernel")


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
TOOL_STATE = ("/var/lib/containers", "/run/containers", "/run/libpod", "/dev/shm/libpod_lock")


def _tool_state() -> set[str]:
    return {p for p in TOOL_STATE if os.path.lexists(p)}


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


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
        problems.append(f"state of skopeo or podman left on the host: {sorted(leaked_tools)}")
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
