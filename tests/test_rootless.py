"""Rootless containers (issue 6): a non-root user made by the ``rootless``
fixture runs containers in a user namespace with its subordinate ids, and the
escape suite of tests/test_security.py is tried again from inside them."""

from __future__ import annotations

import errno
import os

import pytest

from pycontainer import _shim
from pycontainer.rootless import rootless_mappings, subordinate_ranges

from .conftest import needs_root

pytestmark = needs_root

DOCKER_MASK = 0xA80425FB
EPERM, EACCES, ESRCH = f"err {errno.EPERM}", f"err {errno.EACCES}", f"err {errno.ESRCH}"


def nr(name: str) -> int:
    return _shim.lib.seccomp_syscall_resolve_name(name.encode())


def probe_run(rootless, probe, *args, **spec):
    mounts = [["/probe", probe, "bind", ["ro"]], *spec.pop("mounts", [])]
    r = rootless.run(rootfs=rootless.rootfs, args=["/probe", *args], mounts=mounts, **spec)
    assert r["error"] is None and r["code"] == 0, r
    return r["out"].splitlines()


def test_a_rootless_container_maps_root_to_the_user_and_the_rest_to_its_subordinate_ids(rootless):
    r = rootless.run(rootfs=rootless.rootfs, args=["sh", "-c", "id -u; stat -c %u /home/user /bin/busybox"])
    assert r["error"] is None and r["code"] == 0, r
    # inside: root, and the files of the rootfs owned by the ids they map to
    assert r["out"].split() == ["0", "1000", "0"]
    # newuidmap wrote both ranges: 0 -> the user, 1.. -> the subordinate range
    assert [line.split() for line in r["maps"].splitlines()] == [
        ["0", str(rootless.uid), "1"],
        ["1", str(rootless.sub_start), str(rootless.sub_count)],
    ]
    # no cgroup could be made here (v1, nothing delegated): said, not hidden
    assert any("no cgroup" in w for w in r["warnings"])
    assert os.listdir(rootless.state) == []  # deleted, nothing left


def test_rootless_confinement_is_the_default_one(rootless):
    r = rootless.run(rootfs=rootless.rootfs, args=["cat", "/proc/self/status"])
    st = dict(line.split(":\t", 1) for line in r["out"].splitlines() if ":\t" in line)
    assert int(st["CapEff"], 16) == DOCKER_MASK and int(st["CapBnd"], 16) == DOCKER_MASK
    assert st["Seccomp"].strip() == "2"


def test_limits_without_a_cgroup_are_refused_not_dropped(rootless):
    # limits need a cgroup, which this user cannot make: an error naming why,
    # and nothing left behind
    r = rootless.run(rootfs=rootless.rootfs, args=["true"], resources={"pids_limit": 10})
    assert r["error"]["type"] == "CgroupError" and "Permission denied" in r["error"]["message"], r
    assert os.listdir(rootless.state) == []


def test_mappings_come_from_etc_subuid(tmp_path):
    f = tmp_path / "subuid"
    f.write_text("someone:100000:65536\n4242:300000:1000\n4242:400000:10\n")
    assert subordinate_ranges("uid", 4242, str(f)) == [(300000, 1000), (400000, 10)]
    uids, gids = rootless_mappings(uid=0, gid=0)
    assert (uids[0].container_id, uids[0].host_id, uids[0].size) == (0, 0, 1)
    # then root's ranges, one after the other from container id 1
    expected, nxt = [], 1
    for start, count in subordinate_ranges("uid", 0):
        expected.append((nxt, start, count))
        nxt += count
    assert [(m.container_id, m.host_id, m.size) for m in uids[1:]] == expected


# The escape suite again, rootless: (attempt, expected probe lines).
ESCAPES = {
    # not ours in the user namespace, and read-only besides: EACCES comes first
    "write /proc/sys": (["open", "/proc/sys/kernel/panic,w", "/proc/sys/vm/drop_caches,w"], [EACCES, EACCES]),
    "mount": (["sys", f"{nr('mount')},0,0,0,0,0"], [EPERM]),
    "load a kernel module": (["sys", f"{nr('init_module')},0,0,0", f"{nr('finit_module')},-1,0,0"], [EPERM, EPERM]),
    "ptrace a host process": (["sys", f"{nr('ptrace')},{0x4206},{os.getpid()},0,0"], [ESRCH]),
    "regain capabilities": (["capset"], [EPERM]),
    "unshare a user namespace": (["sys", f"{nr('unshare')},{0x10000000}"], [EPERM]),
    "keyctl, bpf, perf_event_open": (
        ["sys", f"{nr('keyctl')},0,{2**64 - 3},1", f"{nr('bpf')},0,0,0", f"{nr('perf_event_open')},0,0,-1,-1,0"],
        [EPERM] * 3,
    ),
    "inherited fds": (["fds"], ["0", "1", "2"]),
}


@pytest.mark.parametrize("attempt", list(ESCAPES))
def test_escape_suite_rootless(rootless, probe, attempt):
    args, expected = ESCAPES[attempt]
    assert probe_run(rootless, probe, *args) == expected


def test_escape_rootless_host_pids_are_invisible(rootless):
    r = rootless.run(rootfs=rootless.rootfs, args=["sh", "-c", "ls /proc | grep -E '^[0-9]+$'"])
    assert str(os.getpid()) not in r["out"].split() and max(int(p) for p in r["out"].split()) < 10


def test_escape_rootless_mount_target_symlink_stays_inside(rootless, tmp_path):
    host_dir = tmp_path / "host"
    host_dir.mkdir()
    link = os.path.join(rootless.rootfs, "escape")
    os.symlink(str(host_dir), link)
    os.lchown(link, rootless.uid, rootless.gid)
    try:
        r = rootless.run(rootfs=rootless.rootfs, args=["true"], mounts=[["/escape", None, "tmpfs", []]])
        assert r["error"] is None or r["error"]["errno"] in (errno.ELOOP, errno.ENOENT), r
        assert os.listdir(host_dir) == []
    finally:
        os.unlink(link)


def test_escape_rootless_devices_cannot_be_made_or_reached(rootless, probe):
    # no device node can be made in a user namespace, and /dev holds only
    # the runtime's binds of the harmless ones
    r = rootless.run(rootfs=rootless.rootfs, args=["sh", "-c", "mknod /tmp/mem c 1 1 || echo refused; ls /dev"])
    assert r["out"].splitlines()[0] == "refused" and "Operation not permitted" in r["err"], r
    assert "mem" not in r["out"].split() and "sda" not in r["out"].split()


def test_escape_rootless_host_directory_fd_as_cwd_fails(rootless):
    """CVE-2024-21626, rootless: the runner holds fd 100 open on a host
    directory; the image's /leak points at /proc/self/fd/100."""
    link = os.path.join(rootless.rootfs, "leak")
    os.symlink("/proc/self/fd/100", link)
    os.lchown(link, rootless.uid, rootless.gid)
    try:
        r = rootless.run(rootfs=rootless.rootfs, args=["ls"], cwd="/leak", leak="/etc")
        assert r["error"] and r["error"]["type"] == "InitError" and r["error"]["step"] == "chdir", r
        assert os.listdir(rootless.state) == []
    finally:
        os.unlink(link)


def test_rootless_with_the_built_in_rootfs(rootless):
    """No rootfs and no image: the built-in busybox, built by the user under
    its data root, with an overlay upper of the container's own (mounted in
    the user namespace, userxattr) so containers never share writes."""
    # a file of another container id (a subordinate id on the host) too: delete removes it
    script = (
        "echo hi > /root/f && rm /bin/ls && mkdir -p /home/x && touch /home/x/y && "
        "chown -R 1000 /home/x && chmod 700 /home/x && "
        "cat /root/f && id -u && test ! -e /bin/ls && echo ok"
    )
    for cid in ("one", "two"):  # the second sees none of the first's changes
        r = rootless.run(rootfs=None, id=cid, args=["sh", "-c", script])
        assert r["error"] is None and r["code"] == 0 and r["out"].split() == ["hi", "0", "ok"], r
    assert os.listdir(rootless.state) == []


@pytest.fixture
def delegated(rootless):
    """A cgroup in every hierarchy handed to the rootless user (as systemd
    delegates one): the directory and, on cgroup2, its delegation files are
    the user's.  Removed at the end."""
    from pycontainer import cgroups

    layout = cgroups.detect()
    name = f"pctest-{os.urandom(3).hex()}"
    made = []
    tops = list(layout.v1.values()) + ([layout.unified] if layout.unified else [])
    try:
        for top in dict.fromkeys(tops):
            d = os.path.join(top, name)
            os.mkdir(d)
            made.append(d)
            for f in ("cpuset.cpus", "cpuset.mems"):  # a v1 cpuset starts empty: as a delegator, fill it
                if os.path.exists(os.path.join(d, f)):
                    with open(os.path.join(top, f)) as src, open(os.path.join(d, f), "w") as dst:
                        dst.write(src.read())
            for f in ["", "cgroup.procs", "tasks", "cgroup.subtree_control", "cgroup.threads"]:
                if os.path.exists(os.path.join(d, f)):
                    os.chown(os.path.join(d, f), rootless.uid, rootless.gid)
        yield name, [os.path.join(d, "cgroup.procs") for d in made]
    finally:
        left = [e.path for d in made for e in os.scandir(d) if e.is_dir()]
        for sub in sorted(left, reverse=True):
            os.rmdir(sub)
        for d in reversed(made):
            os.rmdir(d)
        assert not left, f"the container's cgroups stayed: {left}"


def test_rootless_uses_a_delegated_cgroup(rootless, delegated):
    name, procs = delegated
    # and its pids limit holds: 30 sleeps cannot all start under a limit of 20
    script = "grep -E ':pids:' /proc/self/cgroup; for i in $(seq 30); do sleep 3 & done; echo started"
    r = rootless.run(
        enter=procs,  # the user's processes live in the subtree delegated to it
        rootfs=rootless.rootfs,
        args=["sh", "-c", script],
        cgroups_path=f"/{name}/rl",
        resources={"pids_limit": 20},
    )
    assert r["error"] is None, r
    assert not any("no cgroup" in w for w in r["warnings"]), r["warnings"]
    assert f"/{name}/rl" in r["out"]  # the container ran in the delegated cgroup
    assert "can't fork" in r["err"] or "Resource temporarily unavailable" in r["err"], r
    assert os.listdir(rootless.state) == []


def test_a_delegated_cgroup_used_from_outside_is_a_typed_error(rootless, delegated):
    # the creator outside the subtree: cgroup2 refuses the move, said so
    name, _ = delegated
    r = rootless.run(rootfs=rootless.rootfs, args=["true"], cgroups_path=f"/{name}/rl")
    from pycontainer import cgroups

    if not cgroups.detect().unified:
        pytest.skip("no cgroup2 tree here")
    assert r["error"] and r["error"]["type"] == "CgroupError" and "delegated" in r["error"]["message"], r
    assert os.listdir(rootless.state) == []


def test_rootless_without_cgroups(rootless):
    r = rootless.run(rootfs=rootless.rootfs, args=["true"], cgroups=False)
    assert r["error"] is None and r["code"] == 0 and not r["warnings"], r


def test_delete_removes_files_of_the_highest_mapped_id(rootless):
    """Files of container uid 65536 (the last of the range) in a 0700
    directory: only a user namespace with the container's own mappings can
    remove them; the id is free again afterwards."""
    script = "mkdir /x && touch /x/y && chown -R 65536:65536 /x && chmod 700 /x"
    for _ in range(2):
        r = rootless.run(rootfs=None, id="e1", args=["sh", "-c", script])
        assert r["error"] is None and r["code"] == 0, r
        assert not any("could not be removed" in w for w in r["warnings"]), r["warnings"]
        assert os.listdir(rootless.state) == []
