"""Cgroups: real on this host (v1 controllers, hybrid's unified cgroup2 tree
used as a v2 root), and a fake v2 tree for the controllers the host lacks.

The guard in conftest.py fails any test that leaves a cgroup behind."""

from __future__ import annotations

import os
import signal
import struct
import time

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pycontainer import PIPE, CgroupError, ConfigError, Container, InvalidStateTransition, Status, cgroups
from pycontainer.cgroups import _devices
from pycontainer.config import DEFAULT_DEVICE_RULES, DeviceRule, HugepageLimit, Resources, ThrottleDevice

LAYOUT = cgroups.detect()
UNIFIED = LAYOUT.unified  # a real cgroup2 tree (hybrid hosts) or the v2 root
needs_v1 = pytest.mark.skipif(LAYOUT.mode == "v2", reason="this host has no cgroup v1 controllers")
needs_unified = pytest.mark.skipif(UNIFIED is None, reason="this host has no cgroup2 tree")
MiB = 1 << 20

rule_st = st.builds(
    DeviceRule,
    allow=st.booleans(),
    type=st.sampled_from(["a", "b", "c"]),
    major=st.one_of(st.none(), st.integers(0, 3), st.just(4095)),
    minor=st.one_of(st.none(), st.integers(0, 3)),
    access=st.sampled_from(["r", "w", "m", "rw", "rm", "wm", "rwm"]),
)


def _memory_controller() -> bool:
    return "memory" in LAYOUT.v1 or "memory" in LAYOUT.controllers


def _run(root, config, *args, resources=None, cgroup_root=None, cid="cg", **fields):
    cfg = config(*args, resources=resources or Resources(), **fields)
    return Container.run(root, cid, cfg, stdout=PIPE, stderr=PIPE, cgroup_root=cgroup_root)


def _own_cgroup(pid: int) -> dict[str, str]:
    return cgroups.own_cgroups(pid=str(pid))


# ---- limits, for real -----------------------------------------------------------


@pytest.mark.skipif(not _memory_controller(), reason="no memory controller")
def test_allocating_past_the_memory_limit_is_oom_killed_and_wait_says_so(root, config):
    c = _run(root, config, "dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1",
             resources=Resources(memory=16 * MiB, memory_swap=16 * MiB))  # fmt: skip
    try:
        c.communicate(timeout=30)
        status = c.wait()
        assert status.signal == signal.SIGKILL and status.oom_killed
        assert c.stats().oom_kills >= 1
        # another process of this root sees it too
        assert Container.load(root, "cg").wait().oom_killed
    finally:
        c.delete()


@pytest.mark.skipif(not _memory_controller(), reason="no memory controller")
@pytest.mark.parametrize("where", ["host", "v2"])
def test_the_oom_watcher_wakes_on_an_oom_kill(root, config, where):
    cgroup_root = None if where == "host" else UNIFIED
    if where == "v2" and (UNIFIED is None or "memory" not in cgroups.detect(UNIFIED).controllers):
        pytest.skip("no cgroup2 tree with a memory controller here")
    cfg = config("sh", "-c", "read x; dd if=/dev/zero of=/dev/null bs=64M count=1",
                 resources=Resources(memory=16 * MiB, memory_swap=16 * MiB))  # fmt: skip
    c = Container.run(root, "cg", cfg, stdin=PIPE, stdout=PIPE, stderr=PIPE, cgroup_root=cgroup_root)
    try:
        with c.oom_watcher() as w:
            assert not w.wait(0.1)
            c.stdin.write(b"go\n")
            c.stdin.flush()
            assert w.wait(30)
            assert w.kills() >= 1
    finally:
        c.delete(force=True)


def test_a_plain_sigkill_is_not_an_oom_kill(root, config):
    c = _run(root, config, "sleep", "100", resources=Resources(memory=64 * MiB))
    try:
        c.kill(signal.SIGKILL)
        status = c.wait()
        assert status.signal == signal.SIGKILL and not status.oom_killed
    finally:
        c.delete()


def test_a_pids_limit_makes_fork_fail_inside(root, config):
    c = _run(root, config, "sh", "-c", "for i in 1 2 3 4 5 6; do sleep 1 & done; wait",
             resources=Resources(pids_limit=3))  # fmt: skip
    try:
        _, err = c.communicate(timeout=30)
        assert b"can't fork" in err
        assert c.wait().code != 0
    finally:
        c.delete()


def test_a_fifth_of_a_cpu_keeps_a_busy_loop_near_20_percent(root, config):
    c = _run(root, config, "sh", "-c", "while :; do :; done", resources=Resources(cpus=0.2))
    try:
        time.sleep(0.3)
        before, t0 = c.stats().cpu.total_ns, time.monotonic()
        time.sleep(1.5)
        after, t1 = c.stats().cpu.total_ns, time.monotonic()
        assert before is not None and after is not None
        share = (after - before) / ((t1 - t0) * 1e9)
        assert 0.08 < share < 0.35, share
        assert (c.stats().cpu.throttled_periods or 0) > 0
    finally:
        c.delete(force=True)


def _counter(c: Container) -> int:
    with open(f"/proc/{c.pid}/root/dev/shm/n") as f:
        text = f.read().strip()
    return int(text or 0)


COUNT = "i=0; while :; do i=$((i+1)); echo $i > /dev/shm/n.new; mv /dev/shm/n.new /dev/shm/n; done"


def _pause_resume(c: Container) -> None:
    deadline = time.monotonic() + 10
    while not os.path.exists(f"/proc/{c.pid}/root/dev/shm/n"):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    c.pause()
    assert c.status is Status.PAUSED
    first = _counter(c)
    time.sleep(0.3)
    assert _counter(c) == first, "the counter moved while paused"
    with pytest.raises(InvalidStateTransition):
        c.pause()
    with pytest.raises(InvalidStateTransition):
        c.exec(["true"])
    c.resume()
    assert c.status is Status.RUNNING
    time.sleep(0.3)
    assert _counter(c) > first, "the counter did not go on after resume"


def test_pause_stops_a_counter_and_resume_lets_it_go_on(root, config):
    c = _run(root, config, "sh", "-c", COUNT)
    try:
        _pause_resume(c)
    finally:
        c.delete(force=True)


def test_a_paused_container_can_be_force_deleted(root, config):
    c = _run(root, config, "sleep", "100")
    c.pause()
    assert Container.load(root, "cg").status is Status.PAUSED
    c.delete(force=True)
    assert all(not os.path.exists(d) for d in c.cgroup.dirs())


DENY_FULL = DEFAULT_DEVICE_RULES + (DeviceRule(allow=False, type="c", major=1, minor=7, access="rw"),)


def test_a_denied_device_cannot_be_opened(root, config):
    c = _run(root, config, "sh", "-c", "echo x > /dev/full; echo x > /dev/null && echo null-ok",
             resources=Resources(devices=DENY_FULL))  # fmt: skip
    try:
        out, err = c.communicate(timeout=30)
        assert b"Operation not permitted" in err and out == b"null-ok\n"
    finally:
        c.delete()


def test_the_default_rules_allow_mknod_but_not_opening_a_disk(root, config):
    c = _run(root, config, "sh", "-c", "mknod /dev/loop99 b 7 99 && echo made; head -c1 /dev/loop99")
    try:
        out, err = c.communicate(timeout=30)
        assert out == b"made\n" and b"Operation not permitted" in err
    finally:
        c.delete()


def test_stats_move_as_the_container_works(root, config):
    c = _run(root, config, "sh", "-c", "head -c 20000000 /dev/zero > /dev/shm/x; sleep 100",
             resources=Resources(memory=256 * MiB, pids_limit=50))  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while (c.stats().memory.usage or 0) < 15 * MiB:
            assert time.monotonic() < deadline, c.stats()
            time.sleep(0.02)
        s = c.stats()
        assert s.memory.limit == 256 * MiB and s.memory.peak >= s.memory.usage
        assert s.pids.limit == 50 and s.pids.current >= 1
        assert s.cpu.total_ns and s.cpu.total_ns > 0
        assert set(c.processes()) >= {c.pid}
    finally:
        c.delete(force=True)


@pytest.mark.skipif(not _memory_controller(), reason="no memory controller")
def test_update_raises_the_memory_limit_of_a_running_container(root, config):
    c = _run(root, config, "sleep", "100", resources=Resources(memory=24 * MiB))
    try:
        grab = ["dd", "if=/dev/zero", "of=/dev/null", "bs=40M", "count=1"]
        assert c.exec(grab, stdout=PIPE, stderr=PIPE).wait().signal == signal.SIGKILL
        c.update(Resources(memory=128 * MiB))
        assert c.stats().memory.limit == 128 * MiB
        assert c.exec(grab, stdout=PIPE, stderr=PIPE).wait().code == 0
        assert Container.load(root, "cg").config.resources.memory == 128 * MiB
        with pytest.raises(ConfigError):
            c.update(Resources(cpuset_cpus="999"))
    finally:
        c.delete(force=True)


def test_exec_joins_the_containers_cgroup(root, config):
    c = _run(root, config, "sleep", "100")
    try:
        p = c.exec(["sleep", "100"])
        try:
            assert p.pid in c.processes()
            assert _own_cgroup(p.pid) == _own_cgroup(c.pid)
        finally:
            p.kill(signal.SIGKILL)
            p.wait()
    finally:
        c.delete(force=True)


@needs_v1
def test_the_init_is_in_every_hierarchy_before_it_runs_anything(root, config):
    c = Container.create(root, "cg", config("sleep", "100"))
    try:
        own = _own_cgroup(c.pid)
        for name, path in c.cgroup.paths().items():
            mount = LAYOUT.unified if name == "unified" else LAYOUT.v1[name]
            assert own[name] == path[len(mount) :], name
    finally:
        c.delete()


def test_delete_kills_what_an_init_without_a_pid_namespace_left(root, config):
    c = _run(root, config, "sh", "-c", "sleep 100 & sleep 100 & wait",
             namespaces=["mount", "uts", "ipc", "network"])  # fmt: skip
    deadline = time.monotonic() + 10
    while len(c.processes()) < 3:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    pids = c.processes()
    c.kill(signal.SIGKILL)
    c.wait()
    assert any(os.path.exists(f"/proc/{p}") for p in pids if p != c.pid)  # orphans live on...
    c.delete()
    for p in pids:  # ...until delete
        assert not os.path.exists(f"/proc/{p}") or open(f"/proc/{p}/stat").read().split()[2] == "Z"
    assert all(not os.path.exists(d) for d in c.cgroup.dirs())


def test_no_cgroup_when_asked_for_none(root, config):
    c = _run(root, config, "true", cgroups=False)
    try:
        c.wait()
        assert c.cgroup is None
        with pytest.raises(CgroupError, match="cgroups=False"):
            c.stats()
    finally:
        c.delete()


def test_an_absolute_cgroups_path_is_used_as_given(root, config):
    path = f"/pctest-{os.getpid()}/web"
    c = _run(root, config, "sleep", "100", cgroups_path=path)
    try:
        assert all(d.endswith(path) for d in c.cgroup.dirs())
        assert _own_cgroup(c.pid)["pids" if "pids" in LAYOUT.v1 else "unified"] == path
        with pytest.raises(CgroupError, match="already exists"):
            _run(root, config, "true", cgroups_path=path, cid="cg2")
        assert not os.path.exists(os.path.join(root, "cg2"))
        # the failed create left the other container's cgroup, and its init, alone
        assert c.status is Status.RUNNING and c.pid in c.processes()
    finally:
        c.delete(force=True)
    assert not any(os.path.exists(os.path.dirname(d)) for d in c.cgroup.dirs())


def test_a_cgroup_namespace_is_rooted_at_the_containers_cgroup(root, config):
    from pycontainer import DEFAULT_NAMESPACES

    c = _run(root, config, "cat", "/proc/self/cgroup", namespaces=[*DEFAULT_NAMESPACES, "cgroup"])
    try:
        out, _ = c.communicate(timeout=30)
        lines = out.decode().split()
        assert lines and all(line.endswith(":/") for line in lines), lines
    finally:
        c.delete()


def test_sigkill_ends_a_paused_container(root, config):
    c = _run(root, config, "sleep", "100")
    try:
        c.pause()
        c.kill(signal.SIGKILL)
        assert c.wait(timeout=10).signal == signal.SIGKILL
        assert c.status is Status.STOPPED
    finally:
        c.delete()


def _hugetlb_settable() -> bool:
    return "hugetlb" in LAYOUT.v1 or LAYOUT.mode == "v2" and "hugetlb" in LAYOUT.controllers


@pytest.mark.skipif(_hugetlb_settable(), reason="hugetlb limits work here: no write fails")
def test_update_is_rolled_back_when_a_write_fails(root, config):
    """hugetlb is written last and fails here (not mounted, or not delegated):
    the memory and pids limits written before it go back."""
    c = _run(root, config, "sleep", "100", resources=Resources(memory=64 * MiB))
    try:
        with pytest.raises(CgroupError, match="hugetlb"):
            c.update(Resources(memory=128 * MiB, pids_limit=40, hugepage_limits=[HugepageLimit("2MB", 2 * MiB)]))
        s = c.stats()
        assert s.memory.limit == 64 * MiB and s.pids.limit is None, s
        assert Container.load(root, "cg").config.resources.pids_limit is None
    finally:
        c.delete(force=True)


def test_update_keeps_what_it_does_not_name_and_reads_what_is_in_force(root, config):
    c = _run(root, config, "sleep", "100", resources=Resources(memory=64 * MiB, pids_limit=20))
    try:
        Container.load(root, "cg").update(Resources(pids_limit=30))  # another handle updates first
        c.update(Resources(memory=96 * MiB))  # ours is stale: pids must stay at 30
        s = c.stats()
        assert s.memory.limit == 96 * MiB and s.pids.limit == 30, s
        assert c.config.resources.pids_limit == 30
        assert Container.load(root, "cg").config.resources == Resources(memory=96 * MiB, pids_limit=30)
    finally:
        c.delete(force=True)


@needs_v1
@settings(max_examples=40, deadline=None)
@given(st.lists(rule_st, max_size=5), st.lists(rule_st, max_size=5), st.booleans(), st.booleans())
def test_v1_updates_reach_the_new_rules(old, new, old_deny, new_deny):
    """From any expressible rule list to any other, on the kernel: the
    cgroup ends up where a fresh one with the new rules would be."""
    if "devices" not in LAYOUT.v1:
        pytest.skip("no devices hierarchy")
    old = tuple(([DeviceRule(allow=False)] if old_deny else []) + old)
    new = tuple(([DeviceRule(allow=False)] if new_deny else []) + new)
    for rules in (old, new):
        try:
            _devices.check_v1_expressible(rules)
        except CgroupError:
            return
    d = f"{_devices_dir()}/pctest-{os.getpid()}-update"
    fresh = f"{_devices_dir()}/pctest-{os.getpid()}-fresh"
    os.mkdir(d)
    os.mkdir(fresh)
    try:
        for path, writes in ((d, _devices.v1_writes(old)), (d, _devices.v1_update_writes(old, new)),
                             (fresh, _devices.v1_writes(new))):  # fmt: skip
            for file, line in writes:
                with open(f"{path}/{file}", "w") as f:
                    f.write(line)
        with open(f"{d}/devices.list") as f1, open(f"{fresh}/devices.list") as f2:
            assert set(f1.read().split("\n")) == set(f2.read().split("\n"))
    finally:
        os.rmdir(d)
        os.rmdir(fresh)


@needs_v1
def test_v1_refuses_rules_its_files_cannot_express(root, config):
    rules = (
        DeviceRule(allow=False),
        DeviceRule(allow=True, type="c"),
        DeviceRule(allow=False, type="c", major=1, minor=7),
    )
    with pytest.raises(CgroupError, match="device rule 2"):
        Container.create(root, "cg", config("true", resources=Resources(devices=rules)))
    assert os.listdir(root) == []


def _devices_dir() -> str:
    own = cgroups.own_cgroups().get("devices", "/")
    return f"{LAYOUT.v1['devices']}/{own.strip('/')}".rstrip("/")


@needs_v1
@settings(max_examples=60, deadline=None)
@given(st.lists(rule_st, max_size=6))
def test_the_v1_model_matches_the_kernel(rules):
    """Our model of v1's devices files against the kernel's devices.list."""
    if "devices" not in LAYOUT.v1:
        pytest.skip("no devices hierarchy")
    rules = [DeviceRule(allow=False), *rules]  # deny-all first: devices.list then shows every exception
    d = f"{_devices_dir()}/pctest-{os.getpid()}-devices"
    os.mkdir(d)
    try:
        for file, line in _devices.v1_writes(tuple(rules)):
            with open(f"{d}/{file}", "w") as f:
                f.write(line)
        with open(f"{d}/devices.list") as f:
            listed = set(f.read().split("\n")) - {""}
    finally:
        os.rmdir(d)
    allow_default, exceptions = _devices.v1_state(_devices.v1_writes(tuple(rules)))
    acc = lambda m: "".join(ch for ch, bit in (("r", 2), ("w", 4), ("m", 1)) if m & bit)  # noqa: E731
    num = lambda n: "*" if n is None else str(n)  # noqa: E731
    if allow_default:  # the kernel lists no exceptions then
        assert listed == {"a *:* rwm"}
    else:
        assert listed == {f"{k} {num(ma)}:{num(mi)} {acc(a)}" for k, ma, mi, a in exceptions}


# ---- cgroup2 for real: hybrid's unified tree as a v2 root --------------------------


@needs_unified
def test_v2_clone_into_cgroup_freeze_and_device_program(root, config):
    assert UNIFIED is not None
    c = _run(root, config, "sh", "-c", COUNT, cgroup_root=UNIFIED, resources=Resources(devices=DENY_FULL))
    try:
        assert c.cgroup.mode == "v2"
        assert _own_cgroup(c.pid)["unified"] == c.cgroup.paths()["unified"][len(UNIFIED) :]
        _pause_resume(c)
        p = c.exec(["sh", "-c", "echo x > /dev/full; echo x > /dev/zero && echo zero-ok"], stdout=PIPE, stderr=PIPE)
        out, err = p.communicate(timeout=30)
        assert b"Operation not permitted" in err and out == b"zero-ok\n"
        # updating the rules swaps the program: /dev/full answers again (ENOSPC, not EPERM)
        c.update(Resources(devices=DEFAULT_DEVICE_RULES))
        p = c.exec(["sh", "-c", "echo x > /dev/full"], stdout=PIPE, stderr=PIPE)
        _, err = p.communicate(timeout=30)
        assert b"No space left on device" in err
    finally:
        c.delete(force=True)


@needs_unified
def test_v2_delete_kills_everything_with_cgroup_kill(root, config):
    assert UNIFIED is not None
    c = _run(root, config, "sh", "-c", "sleep 100 & sleep 100 & wait", cgroup_root=UNIFIED,
             namespaces=["mount", "uts", "ipc", "network"])  # fmt: skip
    deadline = time.monotonic() + 10
    while len(c.processes()) < 3:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    pids = c.processes()
    c.delete(force=True)
    for p in pids:
        assert not os.path.exists(f"/proc/{p}") or open(f"/proc/{p}/stat").read().split()[2] == "Z"


# ---- bad input: ConfigError before anything is made ----------------------------------


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"memory": -5}, "memory"),
        ({"memory": 0}, "memory"),
        ({"memory": 5 * MiB}, "memory"),
        ({"cpu_shares": 1}, "cpu_shares"),
        ({"cpu_quota": 10}, "cpu_quota"),
        ({"cpus": 0}, "cpus"),
        ({"cpus": 0.5, "cpu_quota": 50000}, "cpus"),
        ({"pids_limit": -7}, "pids_limit"),
        ({"blkio_weight": 5}, "blkio_weight"),
        ({"memory": 10 * MiB, "memory_swap": 8 * MiB}, "memory_swap"),
        ({"memory_swappiness": 101}, "memory_swappiness"),
        ({"cpuset_cpus": "3-1"}, "cpuset_cpus"),
        ({"cpuset_cpus": "zero"}, "cpuset_cpus"),
    ],
)
def test_impossible_limits_are_config_errors(kwargs, field):
    with pytest.raises(ConfigError) as e:
        Resources(**kwargs)
    assert e.value.field == field


@pytest.mark.parametrize(
    "make, field",
    [
        (lambda: DeviceRule(allow=True, type="x"), "type"),
        (lambda: DeviceRule(allow=True, access="rwx"), "devices.access"),
        (lambda: DeviceRule(allow=True, access=""), "devices.access"),
        (lambda: DeviceRule(allow=True, major=-1), "major"),
        (lambda: HugepageLimit("2XB", 0), "hugepage_limits.page_size"),
        (lambda: ThrottleDevice(8, 0, -1), "rate"),
        (lambda: Resources(devices=["c 1:3 rwm"]), "devices"),
    ],
)
def test_bad_rules_and_devices_are_config_errors(make, field):
    with pytest.raises(ConfigError) as e:
        make()
    assert e.value.field == field


@pytest.mark.parametrize(
    "resources, field",
    [
        (Resources(cpuset_cpus="0-999"), "resources.cpuset_cpus"),
        (Resources(cpuset_mems="7"), "resources.cpuset_mems"),
        (Resources(cpus=1000), "resources.cpus"),
        (Resources(blkio_read_bps=[ThrottleDevice(999, 999, 1)]), "resources.blkio_read_bps[0]"),
        (Resources(hugepage_limits=[HugepageLimit("64KB", 0)]), "resources.hugepage_limits[0]"),
    ],
)
def test_limits_this_host_cannot_meet_are_config_errors_before_anything_is_made(root, config, resources, field):
    with pytest.raises(ConfigError) as e:
        Container.create(root, "bad", config("true", resources=resources))
    assert e.value.field == field
    assert os.listdir(root) == []


@pytest.mark.parametrize("path", ["../../escape", "/a/../../b", "a/./b", "/", "system.slice:docker:x"])
def test_a_cgroups_path_that_escapes_is_refused(config, path):
    with pytest.raises(ConfigError) as e:
        config("true", cgroups_path=path)
    assert e.value.field == "cgroups_path"


def test_limits_without_a_cgroup_are_refused(config):
    with pytest.raises(ConfigError, match="need a cgroup"):
        config("true", cgroups=False, resources=Resources(memory=8 * MiB))


# ---- conversions --------------------------------------------------------------------------


def test_conversions_match_runc():
    assert cgroups.shares_to_weight(2) == 1
    assert cgroups.shares_to_weight(1024) == 39
    assert cgroups.shares_to_weight(262144) == 10000
    assert cgroups.weight_to_shares(1) == 2 and cgroups.weight_to_shares(10000) == 262144
    assert cgroups.blkio_to_io_weight(10) == 1 and cgroups.blkio_to_io_weight(1000) == 10000
    assert cgroups.blkio_to_io_weight(500) == 4950
    assert cgroups.swap_to_v2(100, 300) == "200" and cgroups.swap_to_v2(100, -1) == "max"
    with pytest.raises(CgroupError):
        cgroups.swap_to_v2(None, 300)


@given(st.integers(2, 262144))
def test_shares_survive_a_round_trip_through_weight_closely(shares):
    back = cgroups.weight_to_shares(cgroups.shares_to_weight(shares))
    assert abs(back - shares) <= 262144 // 9999 + 1


# ---- the device program, against a model --------------------------------------------------


def _bpf_eval(code: bytes, access: int, dev_type: int, major: int, minor: int) -> int:
    """A tiny interpreter for the instructions _devices.program emits."""
    insns = [struct.unpack("<BBhi", code[i : i + 8]) for i in range(0, len(code), 8)]
    ctx = struct.pack("<III", (access << 16) | dev_type, major, minor)
    regs = [0] * 11
    pc = 0
    while True:
        op, r, off, imm = insns[pc]
        dst, src = r & 0xF, r >> 4
        pc += 1
        if op == 0x61:
            assert src == 1
            regs[dst] = struct.unpack_from("<I", ctx, off)[0]
        elif op == 0x54:
            regs[dst] = (regs[dst] & imm) & 0xFFFFFFFF
        elif op == 0x74:
            regs[dst] = (regs[dst] & 0xFFFFFFFF) >> imm
        elif op == 0xB4:
            regs[dst] = imm & 0xFFFFFFFF
        elif op == 0xBC:
            regs[dst] = regs[src] & 0xFFFFFFFF
        elif op == 0x56:
            if (regs[dst] & 0xFFFFFFFF) != (imm & 0xFFFFFFFF):
                pc += off
        elif op == 0x16:
            if (regs[dst] & 0xFFFFFFFF) == (imm & 0xFFFFFFFF):
                pc += off
        elif op == 0x95:
            return regs[0]
        else:  # pragma: no cover
            raise AssertionError(f"unknown op {op:#x}")


def _model(rules, access: int, dev_type: str, major: int, minor: int) -> int:
    """OCI order, v1 semantics: later rules win; allow needs every access asked
    for, deny hits on any; no rule -> allowed."""
    for r in reversed(rules):
        if r.type not in ("a", dev_type) or r.major not in (None, major) or r.minor not in (None, minor):
            continue
        mask = sum({"m": 1, "r": 2, "w": 4}[ch] for ch in r.access)
        if r.allow and access & ~mask == 0:
            return 1
        if not r.allow and access & mask:
            return 0
    return 1


@settings(max_examples=300)
@given(
    st.lists(rule_st, max_size=6),
    st.integers(1, 7),
    st.sampled_from(["b", "c"]),
    st.one_of(st.integers(0, 3), st.just(4095)),
    st.integers(0, 3),
)
def test_the_device_program_decides_as_the_rules_say(rules, access, dev_type, major, minor):
    code = _devices.program(tuple(rules))
    got = _bpf_eval(code, access, {"b": 1, "c": 2}[dev_type], major, minor)
    assert got == _model(rules, access, dev_type, major, minor)


def test_v1_rule_lines():
    lines = _devices.v1_writes(
        (
            DeviceRule(allow=False),
            DeviceRule(allow=True, type="c", major=1, minor=3),
            DeviceRule(allow=True, access="m"),
        )
    )
    assert lines == [
        ("devices.deny", "a"),
        ("devices.allow", "c 1:3 rwm"),
        ("devices.allow", "c *:* m"),
        ("devices.allow", "b *:* m"),
    ]


# ---- v2 against a fake tree -----------------------------------------------------------------

V2_FILES = {
    "cgroup.procs": "",
    "cgroup.events": "populated 0\nfrozen 0\n",
    "cgroup.freeze": "0",
    "cgroup.subtree_control": "",
    "memory.max": "max",
    "memory.low": "0",
    "memory.swap.max": "max",
    "memory.current": "123",
    "memory.peak": "456",
    "memory.events": "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n",
    "cpu.weight": "100",
    "cpu.max": "max 100000",
    "cpu.stat": "usage_usec 7\nuser_usec 5\nsystem_usec 2\nnr_periods 4\nnr_throttled 1\nthrottled_usec 9\n",
    "cpuset.cpus": "",
    "cpuset.mems": "",
    "pids.max": "max",
    "pids.current": "2",
    "io.weight": "default 100",
    "io.max": "",
    "io.stat": "8:0 rbytes=10 wbytes=20 rios=1 wios=2\n",
    "hugetlb.2MB.max": "max",
}
CONTROLLERS = "cpuset cpu io memory hugetlb pids"


class FakeV2(cgroups.V2Manager):
    @staticmethod
    def _mkdir(path: str) -> None:
        os.mkdir(path)
        with open(f"{path}/cgroup.controllers", "w") as f:
            f.write(CONTROLLERS)
        for name, text in V2_FILES.items():
            with open(f"{path}/{name}", "w") as f:
                f.write(text)


@pytest.fixture
def fake_v2(tmp_path):
    (tmp_path / "cgroup.controllers").write_text(CONTROLLERS)
    (tmp_path / "cgroup.subtree_control").write_text("")
    return str(tmp_path)


def _fake_manager(fake_root: str, path: str | None = "/pods/web") -> FakeV2:
    layout = cgroups.detect(fake_root)
    assert layout.mode == "v2"
    m = cgroups.new_manager(layout, path, "web")
    return FakeV2(layout, m.paths(), plan=m._plan)


def test_v2_writes_the_converted_values(fake_v2):
    m = _fake_manager(fake_v2)
    m.create_dirs()
    d = m.paths()["unified"]
    assert d == f"{fake_v2}/pods/web"
    r = Resources(
        memory=64 * MiB,
        memory_swap=96 * MiB,
        memory_reservation=32 * MiB,
        cpu_shares=1024,
        cpus=0.5,
        cpuset_cpus="0",
        pids_limit=10,
        blkio_weight=500,
        blkio_read_bps=[ThrottleDevice(8, 0, 1000)],
        blkio_write_iops=[ThrottleDevice(8, 0, 50)],
        hugepage_limits=[HugepageLimit("2MB", 4 * MiB)],
        devices=(),
    )
    m.create(r)

    def f(name: str) -> str:
        with open(f"{d}/{name}") as fh:
            return fh.read()

    assert f("memory.max") == str(64 * MiB)
    assert f("memory.swap.max") == str(32 * MiB)  # swap alone: total minus memory
    assert f("memory.low") == str(32 * MiB)
    assert f("cpu.weight") == "39"
    assert f("cpu.max") == "50000 100000"
    assert f("cpuset.cpus") == "0" and f("pids.max") == "10"
    assert f("io.weight") == "default 4950"
    assert f("io.max") == "8:0 rbps=1000 wiops=50"
    assert f("hugetlb.2MB.max") == str(4 * MiB)
    # controllers handed down through the levels above the container that are
    # ours; the root (not ours) is never written to
    with open(f"{fake_v2}/cgroup.subtree_control") as fh:
        assert fh.read() == ""
    with open(f"{fake_v2}/pods/cgroup.subtree_control") as fh:
        handed = fh.read().split()
    assert {"+pids", "+memory", "+cpu", "+io"} <= set(handed)
    # update: only the period changes, the quota stays
    m.update(attrs.evolve(r, cpus=None, cpu_period=50000))
    assert f("cpu.max") == "50000 50000"
    m.update(Resources(pids_limit=-1, devices=()))
    assert f("pids.max") == "max"


def test_v2_reads_stats_from_its_files(fake_v2):
    m = _fake_manager(fake_v2)
    m.create_dirs()
    s = m.stats()
    assert s.memory == cgroups.MemoryStats(usage=123, peak=456, limit=None, failcnt=3, swap_usage=None)
    assert s.cpu == cgroups.CPUStats(7000, 5000, 2000, 4, 1, 9000)
    assert s.pids == cgroups.PidsStats(current=2, limit=None)
    assert s.io == cgroups.IOStats(read_bytes=10, write_bytes=20)
    assert s.oom_kills == 1


def test_v2_refuses_what_it_cannot_do(fake_v2):
    m = _fake_manager(fake_v2)
    m.create_dirs()
    with pytest.raises(CgroupError, match="realtime"):
        m.set(Resources(cpu_rt_runtime=1000, devices=()))


def test_v2_default_path_is_under_the_parent_of_our_own_cgroup(fake_v2):
    layout = cgroups.detect(fake_v2)
    m = cgroups.new_manager(layout, None, "web")
    own = cgroups.own_cgroups().get("unified", "/")
    parent = os.path.dirname(own.rstrip("/")).strip("/")
    (path,) = m.paths().values()
    assert path.startswith(f"{fake_v2}/{parent}/pycontainer/web-".replace("//", "/"))


def test_v2_create_dirs_never_adopts_an_existing_cgroup(fake_v2):
    os.makedirs(f"{fake_v2}/pods/web")
    m = _fake_manager(fake_v2)
    with pytest.raises(CgroupError, match="already exists"):
        m.create_dirs()
    assert os.path.isdir(f"{fake_v2}/pods/web")  # someone else's: left alone


def test_detect_reads_a_fake_v1_tree(tmp_path):
    for name in ("cpu,cpuacct", "memory", "pids"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "cgroup.procs").write_text("")
    (tmp_path / "cpu").symlink_to("cpu,cpuacct")
    (tmp_path / "unified").mkdir()
    (tmp_path / "unified" / "cgroup.controllers").write_text("hugetlb\n")
    layout = cgroups.detect(str(tmp_path))
    assert layout.mode == "hybrid" and layout.controllers == {"hugetlb"}
    assert layout.v1["cpu"] == layout.v1["cpuacct"] == f"{tmp_path}/cpu,cpuacct"
    assert len(layout.hierarchies()) == 3


def test_detect_this_host():
    assert LAYOUT.mode in ("v1", "hybrid", "v2")
    if LAYOUT.mode != "v2":
        assert "memory" in LAYOUT.v1 or "pids" in LAYOUT.v1


def test_apply_moves_a_process_in_from_outside_and_destroy_kills_it():
    import subprocess

    mgr = cgroups.new_manager(LAYOUT, None, "apply")
    mgr.create_dirs()
    proc = subprocess.Popen(["sleep", "100"])
    try:
        mgr.create(Resources(pids_limit=10, devices=()))
        mgr.apply(proc.pid)
        assert mgr.pids() == [proc.pid]
        own = _own_cgroup(proc.pid)
        for name, path in mgr.paths().items():
            mount = LAYOUT.unified if name == "unified" else LAYOUT.v1[name]
            assert own[name] == path[len(mount) :]
        mgr.destroy()
        assert proc.wait(10) == -signal.SIGKILL and not mgr.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_shared_parents_do_not_outlive_a_container_its_creator_left(root, rootfs):
    """The creator keeps the shared pycontainer/ parents while it runs and
    tries them at exit; one that exits while its container runs cannot.
    The process that later deletes the container removes them (when empty)."""
    import subprocess
    import sys

    from .conftest import _shared_parents

    def python(code: str) -> None:
        subprocess.run(
            [sys.executable, "-c", "import sys\nfrom pycontainer import *\n" + code, root, rootfs], check=True
        )

    python(
        "Container.create(sys.argv[1], 'left', ContainerConfig(process=Process(args=['sleep', '60']), rootfs=sys.argv[2])).start()"
    )
    assert _shared_parents()  # the container is in them
    python("Container.load(sys.argv[1], 'left').delete(force=True)")
    assert _shared_parents() == set()
