"""Confinement (issue 6): capabilities, no_new_privs, rlimits, oom_score_adj,
seccomp, and the escape suite: each escape test tries from inside a container
and asserts that it fails, with a positive control where one can show that
the attempt itself works once the confinement in question is lifted.

The attempts are made by tests/progs/probe.c (built static, bound at /probe),
which prints one line per attempt: "ok RET", "err ERRNO" or "sig SIGNAL".
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys

import attrs
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from pycontainer import (
    PIPE,
    Capabilities,
    ConfigError,
    Container,
    ContainerConfig,
    InitError,
    Mount,
    Namespace,
    NamespaceType,
    Process,
    Rlimit,
    SeccompProfile,
    User,
)
from pycontainer import _shim
from pycontainer.config import CAPABILITY_NUMBERS, DEFAULT_CAPABILITIES, held_capabilities
from pycontainer.security import (
    compile_seccomp,
    default_seccomp_profile,
    features,
    load_seccomp_profile,
    seccomp_profile_from_json,
    seccomp_profile_to_json,
)

from .conftest import needs_root, owned_copy

pytestmark = needs_root

SIGSYS = int(signal.SIGSYS)


def nr(name: str) -> int:
    n = _shim.lib.seccomp_syscall_resolve_name(name.encode())
    assert n >= 0, name
    return n


def mask(names) -> int:
    out = 0
    for n in names:
        out |= 1 << CAPABILITY_NUMBERS[n]
    return out


DOCKER_MASK = 0xA80425FB  # Docker's 14 default capabilities


def probe_config(rootfs, probe, *args, process=None, mounts=(), **fields) -> ContainerConfig:
    fields.setdefault("cgroups", False)
    return ContainerConfig(
        process=Process(args=["/probe", *args], **(process or {})),
        rootfs=rootfs,
        mounts=[Mount("/probe", probe, "bind", ["ro"]), *mounts],
        **fields,
    )


def run(root: str, cfg: ContainerConfig) -> tuple[int | None, str, str]:
    with Container.run(root, "sec", cfg, stdout=PIPE, stderr=PIPE) as c:
        out, err = c.communicate(timeout=60)
        return c.wait().code, out.decode(), err.decode()


def probe_lines(root, rootfs, probe, *args, **kw) -> list[str]:
    code, out, err = run(root, probe_config(rootfs, probe, *args, **kw))
    assert code == 0, err
    return out.splitlines()


def status(root, rootfs, **fields) -> dict[str, str]:
    process = fields.pop("process", {})
    cfg = ContainerConfig(
        process=Process(args=["cat", "/proc/self/status"], **process), rootfs=rootfs, cgroups=False, **fields
    )
    code, out, err = run(root, cfg)
    assert code == 0, err
    return dict(line.split(":\t", 1) for line in out.splitlines() if ":\t" in line)


def caps_of(st: dict[str, str]) -> dict[str, int]:
    return {k: int(st[k], 16) for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")}


# ---- capabilities ---------------------------------------------------------------


def after_exec(caps: Capabilities, uid: int) -> dict[str, int]:
    """The kernel's execve rules for a file without capabilities
    (capabilities(7)): root gets its bounding and inheritable sets, everyone
    keeps the ambient set, and a non-root user nothing else."""
    bnd, inh, amb = mask(caps.bounding), mask(caps.inheritable), mask(caps.ambient)
    prm = (bnd | inh | amb) if uid == 0 else amb
    return {"CapInh": inh, "CapPrm": prm, "CapEff": prm, "CapBnd": bnd, "CapAmb": amb}


HELD = set(held_capabilities())
NBS, CHOWN, NET_RAW = "CAP_NET_BIND_SERVICE", "CAP_CHOWN", "CAP_NET_RAW"
CAP_CASES = {
    "docker default": (None, 0),
    "docker default, non-root": (None, 1000),
    "drop ALL": (Capabilities.docker(drop=["ALL"]), 0),
    "drop ALL, add NET_ADMIN": (Capabilities.docker(drop=["ALL"], add=["net_admin"]), 0),
    "add ALL": (Capabilities.docker(add=["ALL"]), 0),
    "add SYS_ADMIN, drop CHOWN and NET_RAW": (Capabilities.docker(add=["SYS_ADMIN"], drop=["CHOWN", "NET_RAW"]), 0),
    "inheritable": (
        Capabilities(bounding=[NBS, CHOWN], effective=[NBS], permitted=[NBS, CHOWN], inheritable=[CHOWN]),
        0,
    ),
    "ambient, non-root": (
        Capabilities(bounding=[NBS, CHOWN], effective=[NBS], permitted=[NBS, CHOWN], inheritable=[NBS], ambient=[NBS]),
        1000,
    ),
    "ambient, root": (
        Capabilities(bounding=[NBS], effective=[NBS], permitted=[NBS], inheritable=[NBS], ambient=[NBS]),
        0,
    ),
    "none at all, non-root": (Capabilities(), 1000),
}


@pytest.mark.parametrize("case", list(CAP_CASES))
def test_capability_sets_as_seen_in_proc_self_status(root, rootfs, case):
    caps, uid = CAP_CASES[case]
    st = status(root, rootfs, process={"capabilities": caps, "user": User(uid, uid)})
    expected = after_exec(caps if caps is not None else Capabilities.of(DEFAULT_CAPABILITIES), uid)
    assert caps_of(st) == expected


def test_the_default_is_dockers_set():
    assert mask(Capabilities.docker().bounding) == DOCKER_MASK
    assert Capabilities.docker(drop=["ALL"]).bounding == ()
    assert set(Capabilities.docker(add=["ALL"], drop=["NET_RAW"]).bounding) == HELD - {NET_RAW}


def test_the_default_as_seen_inside(root, rootfs):
    st = status(root, rootfs)
    assert caps_of(st) == {
        "CapInh": 0,
        "CapPrm": DOCKER_MASK,
        "CapEff": DOCKER_MASK,
        "CapBnd": DOCKER_MASK,
        "CapAmb": 0,
    }
    assert st["NoNewPrivs"].strip() == "0" and st["Seccomp"].strip() == "2"


@pytest.mark.parametrize(
    "make, field",
    [
        (lambda: Capabilities.of(["CAP_FLY"]), "capabilities"),
        (lambda: Capabilities.docker(add=["bogus"]), "capabilities.add"),
        (lambda: Capabilities(effective=[NBS]), "capabilities.effective"),
        (lambda: Capabilities(bounding=[NBS], permitted=[NBS], ambient=[NBS]), "capabilities.ambient"),
        (lambda: Capabilities(inheritable=[NBS]), "capabilities.inheritable"),
        (lambda: Capabilities.of("CAP_CHOWN"), "capabilities"),
        (lambda: Rlimit("RLIMIT_WINGS", 1, 1), "rlimits.type"),
        (lambda: Rlimit("nofile", 10, 5), "rlimits.RLIMIT_NOFILE"),
        (lambda: Process(args=["x"], rlimits=[Rlimit("nofile", 1, 1), Rlimit("NOFILE", 2, 2)]), "rlimits"),
        (lambda: Process(args=["x"], oom_score_adj=1001), "oom_score_adj"),
        (lambda: ContainerConfig(process=Process(args=["x"]), seccomp="strict"), "seccomp"),
    ],
)
def test_bad_security_settings_are_config_errors(make, field):
    with pytest.raises(ConfigError) as e:
        make()
    assert e.value.field == field


def test_a_capability_the_runtime_lacks_is_refused_before_anything_is_made(root, rootfs):
    lacking = sorted(set(CAPABILITY_NUMBERS) - HELD - {n for n in CAPABILITY_NUMBERS if CAPABILITY_NUMBERS[n] > 40})
    if not lacking:
        pytest.skip("the runtime holds every capability here")
    cfg = ContainerConfig(process=Process(args=["true"], capabilities=Capabilities.of([lacking[0]])), rootfs=rootfs)
    with pytest.raises(ConfigError, match=lacking[0]):
        Container.create(root, "x", cfg)
    assert os.listdir(root) == []


# ---- no_new_privs, rlimits, oom_score_adj, AppArmor/SELinux --------------------


def test_no_new_privs(root, rootfs):
    assert status(root, rootfs, process={"no_new_privileges": True})["NoNewPrivs"].strip() == "1"


def test_exec_inherits_the_containers_confinement(root, rootfs):
    caps = Capabilities.docker(drop=["ALL"], add=["KILL"])
    cfg = ContainerConfig(
        process=Process(args=["sleep", "60"], capabilities=caps, no_new_privileges=True), rootfs=rootfs, cgroups=False
    )
    with Container.run(root, "x", cfg) as c:
        with c.exec(["cat", "/proc/self/status"], stdout=PIPE) as p:
            out, _ = p.communicate(timeout=30)
    st = dict(line.split(":\t", 1) for line in out.decode().splitlines() if ":\t" in line)
    assert int(st["CapEff"], 16) == mask(["CAP_KILL"]) and st["NoNewPrivs"].strip() == "1"
    assert st["Seccomp"].strip() == "2"


def test_exec_with_more_capabilities_keeps_the_containers_filter(root, rootfs):
    """As runc exec --cap: an exec may be given capabilities the container
    lacks, but the seccomp filter stays the one compiled for the container
    (Docker's profile without CAP_SYS_ADMIN refuses mount)."""
    cfg = ContainerConfig(
        process=Process(args=["sleep", "60"], capabilities=Capabilities.docker(drop=["ALL"])),
        rootfs=rootfs,
        cgroups=False,
    )
    admin = Capabilities.docker(add=["SYS_ADMIN"])
    script = "grep CapEff /proc/self/status; mkdir -p /tmp/m; mount -t tmpfs none /tmp/m && echo mounted"
    with Container.run(root, "x", cfg) as c:
        with c.exec(Process(args=["sh", "-c", script], capabilities=admin), stdout=PIPE, stderr=PIPE) as p:
            out, err = p.communicate(timeout=30)
    assert int(out.split()[1], 16) == mask(admin.effective)
    assert b"mounted" not in out and b"denied" in err


def test_rlimits_apply_inside(root, rootfs):
    rl = [Rlimit("nofile", 100, 200), Rlimit("RLIMIT_NPROC", 50, 60)]
    cfg = ContainerConfig(
        process=Process(args=["sh", "-c", "ulimit -n; ulimit -Hn; ulimit -u"], rlimits=rl), rootfs=rootfs, cgroups=False
    )
    code, out, err = run(root, cfg)
    assert (code, out.split()) == (0, ["100", "200", "50"]), err


def test_an_rlimit_above_the_hard_limit_fails_create_naming_it(root, rootfs):
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if "CAP_SYS_RESOURCE" in HELD:
        pytest.skip("the runtime may raise hard limits here")
    cfg = ContainerConfig(process=Process(args=["true"], rlimits=[Rlimit("nofile", hard + 1, hard + 1)]), rootfs=rootfs)
    with pytest.raises(ConfigError, match="CAP_SYS_RESOURCE") as e:
        Container.create(root, "x", cfg)
    assert e.value.field == "process.rlimits.RLIMIT_NOFILE"
    assert os.listdir(root) == []


def test_unlimited_and_low_rlimits(root, rootfs):
    import resource

    # -1 is unlimited (where the runtime's own hard limit is, too)
    unlimited = (
        [Rlimit("core", -1, -1)] if resource.getrlimit(resource.RLIMIT_CORE)[1] == resource.RLIM_INFINITY else []
    )
    # a low open-file limit while the runtime holds many fds (its own go high)
    held = [os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC) for _ in range(300)]
    try:
        cfg = ContainerConfig(
            process=Process(args=["sh", "-c", "ulimit -n; ulimit -c"], rlimits=[Rlimit("nofile", 64, 64), *unlimited]),
            rootfs=rootfs,
            cgroups=False,
        )
        code, out, err = run(root, cfg)
    finally:
        for fd in held:
            os.close(fd)
    assert code == 0, err
    assert out.split()[0] == "64" and (not unlimited or out.split()[1] == "unlimited")


def test_oom_score_adj(root, rootfs):
    cfg = ContainerConfig(
        process=Process(args=["cat", "/proc/self/oom_score_adj"], oom_score_adj=500), rootfs=rootfs, cgroups=False
    )
    assert run(root, cfg)[1] == "500\n"
    lower = attrs.evolve(cfg, process=attrs.evolve(cfg.process, oom_score_adj=-500))
    if "CAP_SYS_RESOURCE" in HELD:
        assert run(root, lower)[1] == "-500\n"
    else:  # lowering it needs CAP_SYS_RESOURCE, which this machine's root lacks
        with pytest.raises(InitError) as e:
            Container.create(root, "x", lower)
        assert e.value.step == "write" and e.value.path == "/proc/self/oom_score_adj"
        assert os.listdir(root) == []


def test_apparmor_and_selinux_fields_are_reported_unsupported(root, rootfs):
    apparmor, selinux = features()["apparmor"], features()["selinux"]
    if apparmor or selinux:
        pytest.skip("this host has a security module")
    ok = ContainerConfig(process=Process(args=["true"], apparmor_profile="unconfined"), rootfs=rootfs, cgroups=False)
    assert run(root, ok)[0] == 0
    for field, value in (("apparmor_profile", "docker-default"), ("selinux_label", "system_u:system_r:container_t:s0")):
        cfg = ContainerConfig(process=Process(args=["true"], **{field: value}), rootfs=rootfs)
        with pytest.raises(ConfigError, match="unsupported here") as e:
            Container.create(root, "x", cfg)
        assert e.value.field == f"process.{field}"
    cfg = ContainerConfig(
        process=Process(args=["true"]), rootfs=rootfs, mount_label="system_u:object_r:container_file_t:s0"
    )
    with pytest.raises(ConfigError, match="unsupported here") as e:
        Container.create(root, "x", cfg)
    assert e.value.field == "mount_label"
    assert os.listdir(root) == []


# ---- seccomp --------------------------------------------------------------------


def test_the_default_profile_is_dockers_and_compiles_once():
    p = default_seccomp_profile()
    assert p.default_action == "SCMP_ACT_ERRNO" and p.default_errno == errno.EPERM
    assert "SCMP_ARCH_X86_64" in p.architectures or os.uname().machine != "x86_64"
    bounding = frozenset(DEFAULT_CAPABILITIES)
    first = compile_seccomp(p, bounding)
    assert compile_seccomp(p, bounding) is first  # cached: the BPF is reused
    assert compile_seccomp(p, bounding | {"CAP_SYS_ADMIN"})[0] != first[0]  # caps change the filter
    # the JSON form survives a round trip
    assert seccomp_profile_from_json(json.dumps(seccomp_profile_to_json(p))) == p


def test_a_profile_from_a_file_and_unconfined(root, rootfs, probe, tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 42}],
    }))  # fmt: skip
    prof = load_seccomp_profile(path)
    assert probe_lines(root, rootfs, probe, "sys", str(nr("getppid")), seccomp=prof) == ["err 42"]
    assert probe_lines(root, rootfs, probe, "sys", str(nr("getppid")), seccomp="unconfined")[0].startswith("ok")
    assert status(root, rootfs, seccomp="unconfined")["Seccomp"].strip() == "0"
    # a Docker JSON mapping is accepted as the config value too
    cfg = probe_config(rootfs, probe, "sys", str(nr("getppid")), seccomp=json.loads(path.read_text()))
    assert cfg.seccomp == prof


@pytest.mark.parametrize(
    "raw, field",
    [
        ("{not json", "seccomp"),
        ({"defaultAction": "SCMP_ACT_FLY"}, "default_action"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_NOTIFY"}]},
         "seccomp.syscalls[0].action"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO",
          "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}, "index"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO",
          "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_ALMOST"}]}]}, "op"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO",
          "errnoRet": 70000}]}, "seccomp.syscalls.errnoRet"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"action": "SCMP_ACT_ERRNO"}]}, "seccomp.syscalls[0].names"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/x.sock"}, "seccomp.listenerPath"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "colour": "blue"}, "seccomp"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_FAST"]}, "seccomp.flags"),
    ],
)  # fmt: skip
def test_bad_profiles_are_config_errors(raw, field):
    with pytest.raises(ConfigError) as e:
        seccomp_profile_from_json(raw if isinstance(raw, str) else json.dumps(raw))
    assert e.value.field == field


def test_an_argument_condition_without_index_is_argument_0():
    """As Docker's and runc's readers: "index" left out means 0 (it was an
    index of None, which the compiler met with a bare TypeError)."""
    from pycontainer.security import compile_seccomp

    raw = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ERRNO",
           "args": [{"value": 8, "op": "SCMP_CMP_EQ"}]}]}  # fmt: skip
    prof = seccomp_profile_from_json(json.dumps(raw))
    assert prof.syscalls[0].args[0].index == 0
    explicit = seccomp_profile_from_json(json.dumps({**raw, "syscalls": [{**raw["syscalls"][0],
                                         "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}]}))  # fmt: skip
    assert prof == explicit and compile_seccomp(prof, frozenset()) == compile_seccomp(explicit, frozenset())


def test_an_unknown_architecture_is_a_config_error_at_create(root, rootfs):
    prof = SeccompProfile(default_action="SCMP_ACT_ALLOW", architectures=["SCMP_ARCH_PDP11"])
    with pytest.raises(ConfigError, match="PDP11") as e:
        Container.create(root, "x", ContainerConfig(process=Process(args=["true"]), rootfs=rootfs, seccomp=prof))
    assert e.value.field == "seccomp.architectures" and os.listdir(root) == []


# The hypothesis test: random profiles over a few system calls whose outcome
# is known when they are allowed; every other call the probe and the runtime
# make is allowed by a fixed rule.
PROBES = {
    # name: (what it returns when allowed, given arg0 from FDS)
    "dup": "err 9",
    "fdatasync": "err 9",
    "fchdir": "err 9",
    "getpgid": "err 3",
}
FDS = [100000 + i for i in range(4)]
ACTIONS = ["SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
           "SCMP_ACT_TRAP", "SCMP_ACT_TRACE"]  # fmt: skip
OPS = ["SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ"]


def _all_syscalls() -> list[str]:
    """Every system call name the default profile mentions (a wide list) plus
    what a static glibc program needs; the probes left out."""
    names: set[str] = set()
    for rule in default_seccomp_profile().syscalls:
        names.update(rule.names)
    return sorted(names - set(PROBES))


def _holds(op: str, arg: int, value: int, two: int) -> bool:
    return {
        "SCMP_CMP_NE": arg != value,
        "SCMP_CMP_LT": arg < value,
        "SCMP_CMP_LE": arg <= value,
        "SCMP_CMP_EQ": arg == value,
        "SCMP_CMP_GE": arg >= value,
        "SCMP_CMP_GT": arg > value,
        "SCMP_CMP_MASKED_EQ": arg & value == two,
    }[op]


def _outcome(action: str, ret: int | None, default_ret: int | None, allowed: str) -> str:
    if action in ("SCMP_ACT_ALLOW", "SCMP_ACT_LOG"):
        return allowed
    if action == "SCMP_ACT_ERRNO":
        e = ret if ret is not None else default_ret if default_ret is not None else errno.EPERM
        return f"err {e}" if e else "ok 0"
    if action == "SCMP_ACT_TRACE":
        return f"err {errno.ENOSYS}"  # no tracer attached
    return f"sig {SIGSYS}"


@st.composite
def profiles(draw):
    """(profile JSON, calls, expected lines) or (bad profile JSON, None, None)."""
    default = draw(st.sampled_from(ACTIONS))
    default_ret = draw(st.none() | st.integers(1, 4094))
    rules = [{"names": _all_syscalls(), "action": "SCMP_ACT_ALLOW"}]
    chosen = draw(st.lists(st.sampled_from(sorted(PROBES)), unique=True, max_size=len(PROBES)))
    model = {}
    for name in chosen:
        action = draw(st.sampled_from(ACTIONS))
        ret = draw(st.none() | st.integers(1, 4094))
        conds = []
        for index in draw(st.lists(st.sampled_from([0, 1]), unique=True, max_size=2)):
            op = draw(st.sampled_from(OPS))
            value = draw(st.sampled_from(FDS + [0, 3, 0xFFFF]))
            two = draw(st.sampled_from([0, 1, 2, value & 0xFF]))
            conds.append({"index": index, "value": value, "valueTwo": two, "op": op})
        rule = {"names": [name], "action": action, "args": conds}
        if ret is not None:
            rule["errnoRet"] = ret
        rules.append(rule)
        model[name] = (action, ret, conds)
    raw = {"defaultAction": default, "syscalls": rules}
    if default_ret is not None:
        raw["defaultErrnoRet"] = default_ret
    bad = draw(st.sampled_from([None] * 6 + ["action", "op", "index", "errno", "arch"]))
    if bad is not None and len(rules) > 1:
        r = rules[-1]
        if bad == "action":
            r["action"] = "SCMP_ACT_MAYBE"
        elif bad == "op":
            r["args"] = [{"index": 0, "value": 1, "op": "SCMP_CMP_ROUGHLY"}]
        elif bad == "index":
            r["args"] = [{"index": 7, "value": 1, "op": "SCMP_CMP_EQ"}]
        elif bad == "errno":
            r["errnoRet"] = -1
        else:
            raw["architectures"] = ["SCMP_ARCH_VAX"]
        return raw, None, None, True
    calls, expected = [], []
    for name in sorted(PROBES):
        a0, a1 = draw(st.sampled_from(FDS)), draw(st.sampled_from([0, 1, 3]))
        calls.append(f"{nr(name)},{a0},{a1}")
        if name in model:
            action, ret, conds = model[name]
            args = (a0, a1)
            if all(_holds(c["op"], args[c["index"]], c["value"], c["valueTwo"]) for c in conds):
                # a rule without errnoRet gets EPERM (runc, OCI); only the default action takes defaultErrnoRet
                expected.append(_outcome(action, ret, None, PROBES[name]))
                continue
        expected.append(_outcome(default, None, default_ret, PROBES[name]))
    # with no_new_privs the filter goes in last; without, before the exec fifo
    return raw, calls, expected, draw(st.booleans())


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(case=profiles())
def test_random_profiles_allow_and_deny_exactly_what_they_say(root, rootfs, probe, case):
    raw, calls, expected, nnp = case
    try:
        prof = seccomp_profile_from_json(json.dumps(raw))
        compile_seccomp(prof, frozenset(DEFAULT_CAPABILITIES))
    except ConfigError:
        assert calls is None, raw
        return
    assert calls is not None, f"accepted a bad profile: {raw}"
    assert (
        probe_lines(root, rootfs, probe, "sys", *calls, seccomp=prof, process={"no_new_privileges": True}) == expected
    )


# ---- the escape suite -------------------------------------------------------------
# Each test tries an escape from inside a container with the default
# confinement and asserts it fails; where a control is possible, the same
# attempt is shown to work once the confinement in question is lifted, so the
# test cannot pass for a wrong reason (a missing binary, a typo in the probe).

EPERM, EROFS, ESRCH, EACCES = f"err {errno.EPERM}", f"err {errno.EROFS}", f"err {errno.ESRCH}", f"err {errno.EACCES}"


def test_escape_writing_proc_sys_and_sysrq_trigger_fails(root, rootfs, probe):
    before = open("/proc/sys/kernel/panic").read()
    out = probe_lines(root, rootfs, probe, "open", "/proc/sys/kernel/panic,w", "/proc/sysrq-trigger,w",
                      "/proc/sys/vm/drop_caches,w", "/proc/self/oom_score_adj,w")  # fmt: skip
    # this kernel may have no sysrq-trigger (CONFIG_MAGIC_SYSRQ off): then ENOENT
    sysrq = EROFS if os.path.exists("/proc/sysrq-trigger") else f"err {errno.ENOENT}"
    assert out == [EROFS, sysrq, EROFS, "ok"]  # the last: /proc itself is writable where it should be
    assert open("/proc/sys/kernel/panic").read() == before


def test_escape_mounting_fails(root, rootfs):
    args = ["sh", "-c", "mkdir -p /tmp/m && mount -t tmpfs none /tmp/m && echo mounted"]
    code, out, err = run(root, ContainerConfig(process=Process(args=args), rootfs=rootfs, cgroups=False))
    assert code != 0 and out == "" and "denied" in err
    # control: with CAP_SYS_ADMIN (which the profile then allows too) it mounts
    admin = Process(args=args, capabilities=Capabilities.docker(add=["SYS_ADMIN"]))
    assert run(root, ContainerConfig(process=admin, rootfs=rootfs, cgroups=False))[1] == "mounted\n"


def test_escape_loading_a_kernel_module_fails(root, rootfs, probe):
    calls = [f"{nr('init_module')},0,0,0", f"{nr('finit_module')},-1,0,0", f"{nr('delete_module')},0,0"]
    assert probe_lines(root, rootfs, probe, "sys", *calls) == [EPERM] * 3
    # control: with CAP_SYS_MODULE finit_module gets as far as the bad fd (or,
    # on a kernel built without modules, to the kernel's ENOSYS)
    mod = {"capabilities": Capabilities.docker(add=["SYS_MODULE"])}
    no_modules = not os.path.exists("/proc/modules")
    assert probe_lines(root, rootfs, probe, "sys", calls[1], process=mod) == [
        f"err {errno.ENOSYS if no_modules else errno.EBADF}"
    ]


def test_escape_ptrace_of_a_host_process_fails(root, rootfs, probe):
    target = subprocess.Popen(["sleep", "60"])
    try:
        seize = f"{nr('ptrace')},{0x4206},{target.pid},0,0"  # PTRACE_SEIZE
        # in its own pid namespace the host process does not exist
        assert probe_lines(root, rootfs, probe, "sys", seize) == [ESRCH]
        # in the host's pid namespace it exists, and ptrace is refused
        host_pid = tuple(
            n for n in ContainerConfig(process=Process(args=["x"])).namespaces if n.type is not NamespaceType.PID
        )
        assert probe_lines(root, rootfs, probe, "sys", seize, namespaces=host_pid) == [EPERM]
        # control: with CAP_SYS_PTRACE the same call attaches
        ptrace = {"capabilities": Capabilities.docker(add=["SYS_PTRACE"])}
        assert probe_lines(root, rootfs, probe, "sys", seize, namespaces=host_pid, process=ptrace) == ["ok 0"]
    finally:
        target.kill()
        target.wait()


def test_escape_seeing_host_pids_fails(root, rootfs):
    args = ["sh", "-c", f"ls /proc | grep -E '^[0-9]+$'; kill -0 {os.getpid()} && echo visible"]
    code, out, _ = run(root, ContainerConfig(process=Process(args=args), rootfs=rootfs, cgroups=False))
    pids = [int(p) for p in out.split() if p.isdigit()]
    assert "visible" not in out and str(os.getpid()) not in out.split()
    assert pids and max(pids) < 10  # sh, ls, grep: the container's own few


def test_escape_regaining_dropped_capabilities_fails(root, rootfs, probe, tmp_path):
    # capset cannot raise them, and a new user namespace (where one would be
    # root again) is refused by the default profile
    out = probe_lines(root, rootfs, probe, "capset")
    assert out == [EPERM]
    assert probe_lines(root, rootfs, probe, "sys", f"{nr('unshare')},{0x10000000}") == [EPERM]
    # a setuid-root binary run by a non-root user gets no more than the
    # bounding set (and with no_new_privs nothing at all)
    suid = tmp_path / "suid"
    shutil.copytree(rootfs, suid, symlinks=True)
    shutil.copy(probe, suid / "suid-probe")
    os.chmod(suid / "suid-probe", 0o4755)
    dropped = Capabilities.docker(drop=["CHOWN", "NET_RAW"])
    cfg = ContainerConfig(
        process=Process(args=["/suid-probe", "status"], user=User(1000, 1000), capabilities=dropped),
        rootfs=str(suid),
        cgroups=False,
    )
    code, out, err = run(root, cfg)
    st = dict(line.split(":\t", 1) for line in out.splitlines())
    assert int(st["CapEff"], 16) == mask(dropped.bounding) and st["Uid"].split()[1] == "0"  # euid 0: the control
    cfg = attrs.evolve(cfg, process=attrs.evolve(cfg.process, no_new_privileges=True))
    code, out, err = run(root, cfg)
    st = dict(line.split(":\t", 1) for line in out.splitlines())
    assert int(st["CapEff"], 16) == 0 and st["Uid"].split()[1] == "1000"


def test_escape_keyctl_unshare_bpf_perf_event_open_fail_under_the_default_profile(root, rootfs, probe):
    calls = [
        f"{nr('keyctl')},0,{2**64 - 3},1",  # KEYCTL_GET_KEYRING_ID of the session keyring
        f"{nr('unshare')},{0x10000000}",  # CLONE_NEWUSER
        f"{nr('bpf')},0,0,0",  # BPF_MAP_CREATE
        f"{nr('perf_event_open')},0,0,-1,-1,0",
    ]
    assert probe_lines(root, rootfs, probe, "sys", *calls) == [EPERM] * 4
    # control: unconfined, the first two work and the last reaches the kernel's
    # own checks (bpf stays EPERM without CAP_BPF: shown with it)
    out = probe_lines(root, rootfs, probe, "sys", *calls, seccomp="unconfined")
    assert out[0].startswith("ok") and out[1] == "ok 0" and out[3] == f"err {errno.EFAULT}"
    bpf = {"capabilities": Capabilities.docker(add=["BPF"])}
    assert probe_lines(root, rootfs, probe, "sys", calls[2], seccomp="unconfined", process=bpf) != [EPERM]


def _digest(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_escape_overwriting_the_runtime_through_proc_exe_fails(root, rootfs, probe):
    """CVE-2019-5736: a process in the container opens /proc/PID/exe of a
    runtime process entering it, for writing.  Here container B is created
    (its init waits for start) in A's pid namespace, so A's root sees it."""
    import pycontainer

    runtime_files = [sys.executable, os.path.join(os.path.dirname(pycontainer.__file__), "_pchelper")]
    before = [_digest(p) for p in runtime_files]
    a_cfg = ContainerConfig(process=Process(args=["sleep", "60"]), rootfs=rootfs, cgroups=False,
                            mounts=[Mount("/probe", probe, "bind", ["ro"])])  # fmt: skip
    with Container.run(root, "a", a_cfg) as a:
        spaces = [
            Namespace("pid", f"/proc/{a.pid}/ns/pid"),
            *(n for n in a_cfg.namespaces if n.type is not NamespaceType.PID),
        ]
        b_cfg = ContainerConfig(process=Process(args=["true"]), rootfs=rootfs, cgroups=False, namespaces=spaces)
        with Container.create(root, "b", b_cfg) as b:
            b_pid = _pid_in(b.pid, a.pid)
            # the exe B runs from is a sealed copy, never a host file
            assert os.readlink(f"/proc/{b.pid}/exe").startswith("/memfd:")
            with a.exec(["/probe", "open", f"/proc/{b_pid}/exe,w", f"/proc/{b_pid}/exe,rw"], stdout=PIPE) as p:
                out, _ = p.communicate(timeout=30)
            assert all(line.startswith("err") for line in out.decode().splitlines()) and out, out
            b.kill()
    assert [_digest(p) for p in runtime_files] == before


def _pid_in(host_pid: int, ns_of: int) -> int:
    """host_pid as seen in ns_of's pid namespace (NSpid's last field)."""
    with open(f"/proc/{host_pid}/status") as f:
        for line in f:
            if line.startswith("NSpid:"):
                return int(line.split()[-1])
    raise AssertionError("no NSpid")


def test_escape_through_an_inherited_fd_fails(root, rootfs, probe):
    """Every fd of the runtime but stdio is closed before exec: none of a
    host file, a host directory or the runtime's binary leaks in."""
    leaks = [os.open(p, os.O_RDONLY) for p in ("/", sys.executable, "/etc")]
    for fd in leaks:
        os.set_inheritable(fd, True)
    try:
        out = probe_lines(root, rootfs, probe, "fds")
    finally:
        for fd in leaks:
            os.close(fd)
    assert sorted(out) == ["0", "1", "2"]


def test_escape_host_directory_fd_as_cwd_fails(root, rootfs, tmp_path):
    """CVE-2024-21626: a host directory fd leaked into the container and used
    as its cwd (here through a symlink in the image, /leak -> /proc/self/fd/N)
    would give the process the host's tree."""
    fd = os.open("/etc", os.O_RDONLY | os.O_DIRECTORY)
    os.set_inheritable(fd, True)
    image = tmp_path / "image"
    shutil.copytree(rootfs, image, symlinks=True)
    os.symlink(f"/proc/self/fd/{fd}", image / "leak")
    try:
        cfg = ContainerConfig(process=Process(args=["cat", "shadow"], cwd="/leak"), rootfs=str(image), cgroups=False)
        with pytest.raises(InitError) as e:
            Container.create(root, "x", cfg)
        assert e.value.step == "chdir" and e.value.errno in (errno.ENOENT, errno.ELOOP), e.value
        assert os.listdir(root) == []
        # nor through exec into a running container; and the direct path is refused outright
        with Container.run(root, "y", attrs.evolve(cfg, process=Process(args=["sleep", "60"]))) as c:
            with pytest.raises(InitError) as e:
                c.exec(Process(args=["cat", "shadow"], cwd="/leak"))
            assert e.value.step == "chdir"
            with pytest.raises(ConfigError, match="kernel filesystem"):
                Container.create(
                    root, "z", attrs.evolve(cfg, process=Process(args=["true"], cwd=f"/proc/self/fd/{fd}"))
                )
    finally:
        os.close(fd)


def test_escape_mount_target_symlink_out_of_the_rootfs_stays_inside(root, rootfs, tmp_path):
    evil = tmp_path / "evil"
    shutil.copytree(rootfs, evil, symlinks=True)
    host_dir = tmp_path / "host-dir"
    host_dir.mkdir()
    os.symlink(str(host_dir), evil / "escape")  # absolute: to a host path, if resolved on the host
    os.symlink("../../../../../../../" + str(host_dir).lstrip("/"), evil / "escape2")
    for target in ("/escape", "/escape2"):
        cfg = ContainerConfig(process=Process(args=["true"]), rootfs=str(evil), mounts=[Mount(target, None, "tmpfs")])
        try:
            run(root, cfg)
        except InitError as e:
            assert e.errno in (errno.ELOOP, errno.ENOENT, errno.EXDEV)
        assert os.listdir(host_dir) == []  # and host_guard: no mount appeared on the host


def test_escape_opening_a_device_outside_the_allow_list_fails(root, rootfs, probe):
    args = ["sh", "-c", "mknod /dev/mem2 c 1 1 && /probe open /dev/mem2,r /dev/null,r"]
    cfg = ContainerConfig(process=Process(args=args), rootfs=rootfs, mounts=[Mount("/probe", probe, "bind", ["ro"])])
    code, out, err = run(root, cfg)
    assert out.splitlines() == [EPERM, "ok"], err  # /dev/null, allowed, opens: the control


def test_a_step_failing_between_ready_and_start_is_reported_by_start(root, rootfs, monkeypatch, tmp_path):
    """The default filter goes in after READY, while the parent finishes
    create (see _plan.compile_create): a failure there must still reach the
    caller, from start().  A failing write stands in for the filter."""
    from pycontainer import _plan

    monkeypatch.setattr(_plan, "_seccomp_op", lambda conf: _plan.op(_plan.Op.WRITE, "/no/such/dir/x", "1"))
    out = tmp_path / "out"
    out.mkdir()
    cfg = ContainerConfig(process=Process(args=["touch", "/out/ran"]), rootfs=rootfs, cgroups=False,
                          mounts=[Mount("/out", str(out))])  # fmt: skip
    with Container.create(root, "x", cfg) as c:
        with pytest.raises(InitError) as e:
            c.start()
        assert e.value.step == "write" and e.value.path == "/no/such/dir/x" and e.value.errno == errno.ENOENT
    assert os.listdir(out) == []  # the process never ran


def test_x32_system_calls_do_not_get_through_where_the_kernel_has_none(root, rootfs, probe):
    getppid_x32 = str(0x40000000 | nr("getppid"))
    out = probe_lines(root, rootfs, probe, "sys", getppid_x32)
    from pycontainer.security import _x32

    if _x32():
        assert out[0].startswith("ok")
    else:  # the filter has no x32 branch here: the call is killed as a foreign architecture's
        assert out == [f"sig {SIGSYS}"]


def test_the_init_is_not_dumpable_while_the_runtime_sets_it_up(rootfs, public_dir):
    """A created container's init (waiting for start) is non-dumpable: its
    /proc files belong to root, not to the (mapped) uid it runs as, so
    nothing in the container can ptrace it or read its memory (the kernel
    makes the exec'd process dumpable again at execve)."""
    import attrs as _attrs

    from pycontainer import IDMap

    fs = owned_copy(rootfs, os.path.join(public_dir, "fs"), 200000)
    base = ContainerConfig(process=Process(args=["sleep", "60"]), rootfs=fs, cgroups=False)
    cfg = _attrs.evolve(
        base,
        namespaces=(*base.namespaces, Namespace("user")),
        uid_mappings=[IDMap(0, 200000, 65536)],
        gid_mappings=[IDMap(0, 200000, 65536)],
    )
    root = os.path.join(public_dir, "state")  # the user namespace's root traverses it
    with Container.create(root, "x", cfg) as c:
        uid = int(open(f"/proc/{c.pid}/status").read().split("Uid:")[1].split()[0])
        assert uid == 200000 and os.stat(f"/proc/{c.pid}/environ").st_uid == 0  # non-dumpable: root's
        c.kill()
    assert os.listdir(root) == []


def test_masked_eq_means_what_the_spec_says(root, rootfs, probe):
    """(arg & value) == valueTwo.  libseccomp compares (arg & value) with
    (valueTwo & value): for a valueTwo with bits outside the mask, a condition
    nothing meets, it would match everything.  Found by the random profiles."""

    def rule(mask, two):
        return {"names": ["dup"], "action": "SCMP_ACT_ERRNO", "args": [
            {"index": 0, "value": mask, "valueTwo": two, "op": "SCMP_CMP_MASKED_EQ"}]}  # fmt: skip

    calls = [f"{nr('dup')},100000", f"{nr('dup')},100001"]
    ebadf = f"err {errno.EBADF}"
    for mask, two, expected in (
        (1, 1, [ebadf, EPERM]),
        (0x10, 1, [ebadf, ebadf]),
        (0, 1, [ebadf, ebadf]),
        (0, 0, [EPERM, EPERM]),
    ):
        prof = seccomp_profile_from_json({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule(mask, two)]})
        assert probe_lines(root, rootfs, probe, "sys", *calls, seccomp=prof) == expected, (mask, two)


def test_an_errno_libseccomp_refuses_is_a_config_error():
    for raw, field in (
        ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["dup"], "action": "SCMP_ACT_ERRNO", "errnoRet": 4095}]},
         "seccomp.syscalls[0]"),
        ({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 4095}, "seccomp.defaultAction"),
    ):  # fmt: skip
        with pytest.raises(ConfigError) as e:
            compile_seccomp(seccomp_profile_from_json(raw), frozenset(DEFAULT_CAPABILITIES))
        assert e.value.field == field
