"""Config classes and validators, plan compilation and host-side helpers: no root needed."""

from __future__ import annotations

import errno
import os
import struct

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pycontainer import ConfigError, ContainerConfig, IDMap, Mount, Namespace, NamespaceType, Process, User
from pycontainer import _plan
from pycontainer.rootfs import hosts_file, is_file_in_root, lookup_user, open_in_root, resolv_conf


def cfg(**fields) -> ContainerConfig:
    return ContainerConfig(**{"process": Process(args=["true"]), "rootfs": "/r", **fields})


# ---- config ------------------------------------------------------------------


def test_defaults_are_dockers():
    c = cfg()
    assert {n.type for n in c.namespaces} == {
        NamespaceType.PID, NamespaceType.MOUNT, NamespaceType.UTS, NamespaceType.IPC, NamespaceType.NETWORK,
    }  # fmt: skip
    assert c.process.env[0].startswith("PATH=")
    assert "/proc/kcore" in c.masked_paths and "/proc/sys" in c.readonly_paths
    assert c.rootfs_propagation == "rprivate"


def test_configs_are_frozen_and_evolve():
    c = cfg()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        c.hostname = "x"  # type: ignore[misc]
    assert attrs.evolve(c, hostname="x").hostname == "x"


def test_env_from_a_mapping():
    assert Process(args=["x"], env={"A": "1", "B": "2"}).env == ("A=1", "B=2")


@pytest.mark.parametrize(
    "build, field",
    [
        (lambda: ContainerConfig(process=Process(args=[])), "process.args"),
        (lambda: Process(args="echo hi"), "args"),
        (lambda: Process(args=["a\0b"]), "args[0]"),
        (lambda: Process(args=["x"], env=["NOEQUALS"]), "env[0]"),
        (lambda: Process(args=["x"], env=["=v"]), "env[0]"),
        (lambda: Process(args=["x"], cwd="relative"), "cwd"),
        (lambda: Process(args=["x"], umask=0o1000), "umask"),
        (lambda: Process(args=["x"], user=-1), "uid"),
        (lambda: Process(args=["x"], user=True), "user"),
        (lambda: User(uid=2**32), "uid"),
        (lambda: User(additional_gids=[1, -2]), "additional_gids[1]"),
        (lambda: IDMap(0, 100000, 0), "size"),
        (lambda: Mount("relative"), "destination"),
        (lambda: Mount("/x", "relative/src"), "mounts.source"),
        (lambda: Mount("/x", None, "tmpfs", ["size=1m,mode=1777"]), "mounts.options[0]"),
        (lambda: Mount("/x", None, "t m p"), "mounts.type"),
        (lambda: Namespace("nope"), "namespaces"),
        (lambda: Namespace("net", "relative"), "namespaces"),
        (lambda: cfg(hostname="-leading-dash"), "hostname"),
        (lambda: cfg(hostname="x" * 65), "hostname"),
        (lambda: cfg(rootfs_propagation="weird"), "rootfs_propagation"),
        (lambda: cfg(masked_paths=["relative"]), "paths[0]"),
        (lambda: ContainerConfig(process="true"), "process"),  # type: ignore[arg-type]
    ],
)
def test_field_validators_name_the_field(build, field):
    with pytest.raises(ConfigError) as e:
        build()
    assert e.value.field == field
    assert str(e.value).startswith(field + ": ")


# ---- plan ----------------------------------------------------------------------


def inputs(**kw):
    base = dict(rootfs="/r", state_dir="/s", hostname="h", user=User(), env=("PATH=/bin",))
    base.update(kw)
    return _plan.CreateInputs(**base)


def kinds(ops):
    return [o.kind for o in ops]


def test_plan_order_for_a_default_container():
    ops = _plan.compile_create(cfg(), inputs())
    k = kinds(ops)
    assert k[0] is _plan.Op.LOOPBACK  # a fresh network namespace gets lo up
    assert k[1] is _plan.Op.PROPAGATION and ops[1].v[0] == _plan.MS_REC | _plan.MS_PRIVATE
    assert k[2] is _plan.Op.ROOTFS and ops[2].s[0] == "/r"
    # every mount into the rootfs happens before pivot_root, masks after it
    pivot = k.index(_plan.Op.PIVOT)
    assert all(i < pivot for i, x in enumerate(k) if x in (_plan.Op.MOUNT, _plan.Op.MKNOD, _plan.Op.SYMLINK))
    assert all(i > pivot for i, x in enumerate(k) if x in (_plan.Op.MASK, _plan.Op.READONLY))
    # the child leaves the parent's memory after the mounts, before it can be seen
    assert k.index(_plan.Op.HANDOFF) > k.index(_plan.Op.MASK) and k.count(_plan.Op.HANDOFF) == 1
    # the tail: ready, wait for start, then drop to the user, close fds, exec
    assert k[-6:] == [
        _plan.Op.RESOLVE, _plan.Op.READY, _plan.Op.WAIT_START, _plan.Op.USER, _plan.Op.CLOSE_FDS, _plan.Op.EXEC,
    ]  # fmt: skip
    mounts = [o.s[1] for o in ops if o.kind is _plan.Op.MOUNT]
    assert mounts[:6] == ["/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys"]
    assert mounts[-3:] == ["/etc/hostname", "/etc/hosts", "/etc/resolv.conf"]
    assert _plan.clone_flags(cfg()) == (
        _plan.CLONE_NEWPID | _plan.CLONE_NEWNS | _plan.CLONE_NEWUTS | _plan.CLONE_NEWIPC | _plan.CLONE_NEWNET
    )


@pytest.mark.parametrize("nnp", [False, True])
def test_plan_for_run_has_no_exec_fifo_and_waits_for_go_right_before_the_exec(nnp):
    """run (CreateInputs.start_now): READY tells the child the parent keeps
    listening; every confinement step, the seccomp filter in either of its
    places too, comes before the wait for GO, and only the exec after it."""
    from pycontainer.security import Confinement

    conf = Confinement(bounding=1, effective=1, permitted=1, inheritable=0, ambient=0, last_cap=40,
                       no_new_privs=nnp, seccomp=b"\0" * 8, rlimits=(("RLIMIT_NOFILE", 7, 64, 64),))  # fmt: skip
    k = kinds(_plan.compile_create(cfg(), inputs(confinement=conf)))
    assert _plan.Op.OPEN_FIFO in k and _plan.Op.WAIT_START in k and _plan.Op.WAIT_GO not in k  # (create)
    ops = _plan.compile_create(cfg(), inputs(confinement=conf, start_now=True))
    k = kinds(ops)
    assert _plan.Op.OPEN_FIFO not in k and _plan.Op.WAIT_START not in k
    ready = k.index(_plan.Op.READY)
    assert ops[ready].v[0] == 1
    assert k[-2:] == [_plan.Op.WAIT_GO, _plan.Op.EXEC] and k.count(_plan.Op.WAIT_GO) == 1
    confining = (_plan.Op.SECCOMP, _plan.Op.RLIMIT, _plan.Op.BOUNDING, _plan.Op.USER, _plan.Op.CAPS, _plan.Op.NNP,
                 _plan.Op.CLOSE_FDS)  # fmt: skip
    assert {x for x in k[ready:] if x in confining} == set(confining) - ({_plan.Op.NNP} if not nnp else set())
    seccomp = k.index(_plan.Op.SECCOMP)
    assert seccomp == (len(k) - 3 if nnp else ready + 1)
    created = _plan.compile_create(cfg(), inputs())
    assert created[kinds(created).index(_plan.Op.READY)].v[0] == 0


def test_plan_with_a_cgroup_leaves_our_memory_then_joins_it_before_anything_else():
    ops = _plan.compile_create(cfg(), inputs(cgroup_files=("/cg/a/tasks", "/cg/b/tasks"), in_cgroup=True))
    k = kinds(ops)
    assert k[:3] == [_plan.Op.HANDOFF, _plan.Op.CGROUP_JOIN, _plan.Op.CGROUP_JOIN]
    assert [o.s[0] for o in ops[1:3]] == ["/cg/a/tasks", "/cg/b/tasks"] and k.count(_plan.Op.HANDOFF) == 1
    # cloned into a cgroup2 cgroup (no fds): the hand-off still comes first
    k = kinds(_plan.compile_create(cfg(), inputs(in_cgroup=True)))
    assert k[0] is _plan.Op.HANDOFF and _plan.Op.CGROUP_JOIN not in k and k.count(_plan.Op.HANDOFF) == 1
    # exec: the same
    k = kinds(_plan.compile_exec([], args=["true"], env=[], cwd="/", user=User(), umask=0o22, terminal=False,
                                 cgroup_files=["/cg/tasks"]))  # fmt: skip
    assert k[:2] == [_plan.Op.HANDOFF, _plan.Op.CGROUP_JOIN]


def test_plan_with_a_pooled_network_namespace_joins_it():
    ops = _plan.compile_create(cfg(), inputs(netns_fd=9))
    assert ops[0].kind is _plan.Op.SETNS and ops[0].v[:2] == (_plan.CLONE_NEWNET, 9)
    assert _plan.Op.LOOPBACK not in kinds(ops)
    assert not _plan.clone_flags(cfg(), pooled_netns=True) & _plan.CLONE_NEWNET


def test_plan_for_options():
    c = cfg(
        readonly_rootfs=True,
        rootfs_propagation="rslave",
        domainname="example",
        mounts=[
            Mount("/data", "/srv", options=["rbind", "ro", "nosuid"]),
            Mount("/t", None, "tmpfs", ["size=1m", "noexec"]),
        ],
        namespaces=["mount", "pid", Namespace("network", "/proc/1/ns/net")],
        process=Process(args=["sh"], terminal=True, umask=0o27),
    )
    ops = _plan.compile_create(c, inputs())
    k = kinds(ops)
    assert k[0] is _plan.Op.SETNS and ops[0].v[0] == _plan.CLONE_NEWNET and ops[0].s[0] == "/proc/1/ns/net"
    assert ops[1].kind is _plan.Op.PROPAGATION and ops[1].v[0] == _plan.MS_REC | _plan.MS_SLAVE
    assert _plan.Op.REMOUNT_RO in k and _plan.Op.PTY in k and _plan.Op.SETSID not in k
    assert _plan.Op.HOSTNAME not in k  # no own uts namespace
    data = next(o for o in ops if o.kind is _plan.Op.MOUNT and o.s[1] == "/data")
    assert data.v[0] == _plan.MS_BIND | _plan.MS_REC and data.v[3] == _plan.ATTR_RDONLY | _plan.ATTR_NOSUID
    tmp = next(o for o in ops if o.kind is _plan.Op.MOUNT and o.s[1] == "/t")
    assert tmp.s[2] == "tmpfs" and tmp.s[3] == "size=1m" and tmp.v[0] == _plan.MS_NOEXEC
    assert next(o for o in ops if o.kind is _plan.Op.UMASK).v[0] == 0o27
    assert _plan.clone_flags(c) == _plan.CLONE_NEWNS | _plan.CLONE_NEWPID
    assert ops[-1].kind is _plan.Op.EXEC


def test_plan_joining_a_pid_namespace_reclones():
    c = cfg(namespaces=["mount", Namespace("pid", "/proc/1/ns/pid")])
    ops = _plan.compile_create(c, inputs())
    k = kinds(ops)
    # leave the parent's memory first (the joined pid namespace can see us),
    # join, make the new namespaces in the helper, and re-clone
    assert k[:4] == [_plan.Op.HANDOFF, _plan.Op.SETNS, _plan.Op.UNSHARE, _plan.Op.FORK]
    assert ops[2].v[0] == _plan.CLONE_NEWNS
    assert k.count(_plan.Op.HANDOFF) == 1
    assert _plan.spawn_flags(c) == 0


def test_plan_user_namespace_becomes_root_first_and_skips_unmapped_tty_gid():
    c = cfg(
        namespaces=["mount", "user"],
        uid_mappings=[IDMap(0, 100000, 5)],
        gid_mappings=[IDMap(0, 100000, 5)],
    )
    ops = _plan.compile_create(c, inputs())
    # Leave the parent's memory before any change of credentials, make the user
    # namespace, have the maps written, become its root, then make the rest
    # (owned by it) and re-clone into the new pid namespace.
    assert kinds(ops)[:6] == [
        _plan.Op.HANDOFF, _plan.Op.UNSHARE, _plan.Op.SYNC, _plan.Op.USER, _plan.Op.UNSHARE, _plan.Op.FORK,
    ]  # fmt: skip
    assert ops[1].v[0] == _plan.CLONE_NEWUSER and ops[3].v[:2] == (0, 0)
    assert ops[4].v[0] == _plan.CLONE_NEWNS
    assert _plan.spawn_flags(c) == 0
    pts = next(o for o in ops if o.kind is _plan.Op.MOUNT and o.s[1] == "/dev/pts")
    assert "gid=5" not in pts.s[3]


def test_exec_plan_joins_user_first_and_mount_last():
    ops = _plan.compile_exec(
        [(NamespaceType.MOUNT, 10), (NamespaceType.PID, 11), (NamespaceType.USER, 12)],
        args=["ls"], env=["PATH=/bin"], cwd="/", user=User(), umask=0o22, terminal=False,
    )  # fmt: skip
    setns = [o.v for o in ops if o.kind is _plan.Op.SETNS]
    assert [v[1] for v in setns] == [12, 11, 10]
    assert kinds(ops)[0] is _plan.Op.HANDOFF and kinds(ops)[4] is _plan.Op.FORK


def test_encode_packs_structs_and_nul_terminated_strings():
    ops = [_plan.op(_plan.Op.MOUNT, "src", "/dst", None, b"a\0b", v=(1, 2, 3, 4))]
    packed, blob = _plan.encode(ops)
    fields = struct.unpack("@i4I4I4q", packed)
    assert fields[0] == _plan.Op.MOUNT
    offs, lens, ints = fields[1:5], fields[5:9], fields[9:]
    assert offs[2] == _plan.NONE and lens[:2] == (3, 4) and ints == (1, 2, 3, 4)
    assert blob[offs[0] : offs[0] + 4] == b"src\0" and blob[offs[3] : offs[3] + 4] == b"a\0b\0"


def test_encode_packs_each_op_alike_wherever_it_stands():
    # an op's string offsets count from its own strings (pc_spawn makes them
    # absolute): its bytes do not depend on what comes before it
    a = _plan.op(_plan.Op.SYMLINK, "target", "/link")
    b = _plan.op(_plan.Op.MKNOD, None, "/dev/x", v=(0o20666, 0, 0, 0))
    packed, blob = _plan.encode([a, b, a])
    size = _plan._OP_STRUCT.size
    assert packed[:size] == packed[2 * size :] == _plan.encode([a])[0]
    assert packed[size : 2 * size] == _plan.encode([b])[0]
    assert blob == b"target\0/link\0/dev/x\0target\0/link\0"


def test_spawn_refuses_a_plan_whose_strings_leave_the_blob():
    from pycontainer._spawn import ffi, lib

    packed, blob = _plan.encode([_plan.op(_plan.Op.HOSTNAME, "name")])
    # the NUL, then the whole string, outside the blob; no NUL where it ends
    for cut in (blob[:-1], b"", blob[:-1] + b"x"):
        args = ffi.new("struct pc_spawn_args *")
        ops = ffi.from_buffer("struct pc_op[]", packed)
        data = ffi.from_buffer("char[]", cut or b"\0")
        args.ops, args.nops, args.blob, args.blob_len = ops, 1, data, len(cut)
        args.sync_fd, args.cgroup_fd, args.fd_base = -1, -1, 3
        res = ffi.new("struct pc_spawn_result *")
        assert lib.pc_spawn(args, res) == -1  # refused before any clone
        assert (res.pid, res.err) == (-1, errno.EINVAL)


def test_host_checks_run_at_every_create_the_pure_ones_once_per_config(tmp_path, monkeypatch):
    from pycontainer import validate

    rootfs, src = tmp_path / "rootfs", tmp_path / "src"
    rootfs.mkdir()
    src.mkdir()
    cfg = ContainerConfig(process=Process(args=["true"]), rootfs=str(rootfs),
                          mounts=[Mount(destination="/data", source=str(src))])  # fmt: skip
    validate.check_config(cfg)
    src.rmdir()  # the host changed; the config did not
    with pytest.raises(ConfigError, match="mounts.0..source"):
        validate.check_config(cfg)
    rootfs.rmdir()
    with pytest.raises(ConfigError, match="rootfs"):
        validate.check_config(cfg)
    rootfs.mkdir()
    src.mkdir()
    calls = []
    monkeypatch.setattr(validate, "PURE_CHECKS", (*validate.PURE_CHECKS, calls.append))
    validate._pure_checks.cache_clear()
    validate.check_config(cfg)
    validate.check_config(cfg)
    assert calls == [cfg]
    # a failing pure check is not remembered: it fails every time
    bad = attrs.evolve(cfg, sysctl={"kernel.panic": "1"})
    for _ in range(2):
        with pytest.raises(ConfigError, match="sysctl.kernel.panic"):
            validate.check_config(bad)


def test_a_containers_confinement_is_compiled_once_its_rlimits_checked_each_time(monkeypatch):
    import resource

    from pycontainer import Rlimit, security

    cfg = ContainerConfig(process=Process(args=["true"], rlimits=[Rlimit("nofile", 64, 64)]))
    first = security.confinement(cfg.process, cfg)
    assert security.confinement(cfg.process, cfg) is first
    # an exec's own process is compiled each time (it has a base)
    assert security.confinement(cfg.process, cfg, base=cfg.process) == first
    assert security.confinement(cfg.process, cfg, base=cfg.process) is not first
    # the runtime's own hard limit fell below the container's meanwhile
    monkeypatch.setattr(resource, "getrlimit", lambda _res: (32, 32))
    monkeypatch.setattr(security, "_held", lambda: frozenset())
    with pytest.raises(ConfigError, match="rlimits.RLIMIT_NOFILE"):
        security.confinement(cfg.process, cfg)


def test_state_dirs_are_removed_flat_or_deep(tmp_path):
    from pycontainer.container import _rmtree

    outside = tmp_path / "outside"
    outside.write_text("stays")
    flat = tmp_path / "flat"
    flat.mkdir()
    for name in ("state.json", "hosts", "lock-x"):
        (flat / name).write_text(name)
    (flat / "link").symlink_to(outside)
    (flat / "dirlink").symlink_to(tmp_path)
    _rmtree(str(flat))
    assert not flat.exists() and outside.read_text() == "stays"
    deep = tmp_path / "deep"
    (deep / "rootfs" / "etc").mkdir(parents=True)
    (deep / "a").write_text("a")
    (deep / "rootfs" / "etc" / "hosts").write_text("x")
    (deep / "z").write_text("z")
    _rmtree(str(deep))
    assert not deep.exists()
    _rmtree(str(deep))  # (gone already: nothing to do)


_PLAN_CONFIGS = {
    "default": lambda: cfg(),
    "read-only, terminal, named host, no keyring": lambda: cfg(readonly_rootfs=True, hostname="named",
                                                               process=Process(args=["sh"], terminal=True),
                                                               new_keyring=False),  # fmt: skip
    "user namespace": lambda: cfg(namespaces=["pid", "mount", "network", "user", "uts", "ipc"],
                                  uid_mappings=[IDMap(0, 100000, 65536)], gid_mappings=[IDMap(0, 100000, 65536)]),
    "bundle-like": lambda: cfg(docker_defaults=False, namespaces=["pid", "mount"], hostname="b"),
    "mounts and init": lambda: cfg(mounts=[Mount("/data", "/srv"), Mount("/t", type="tmpfs")], init=True),
}
_SOURCE_DIRS = {"mounts and init": (True, False)}


@pytest.mark.parametrize("name", sorted(_PLAN_CONFIGS))
@given(
    host=st.text(alphabet="abch-.0s/", max_size=12),
    cid=st.text(alphabet="abch-.0s", min_size=1, max_size=12),
    image=st.booleans(),
    start=st.booleans(),
    netns=st.sampled_from([-1, 7]),
)
@settings(max_examples=40, deadline=None)
def test_a_plan_from_the_configs_template_is_the_plan_compiled_anew(name, host, cid, image, start, netns):
    """plan_create reuses a plan per config, with tokens for the container's
    state dir, hostname and id: for any of these (one a part of another, or
    of the config's own strings) it is exactly compile_create's, packed."""
    config = _PLAN_CONFIGS[name]()
    state = f"/run/pc/.creating-{cid}-1-{host or 'x'}"
    kw = dict(state_dir=state, hostname=host, container_id=cid, start_now=start, netns_fd=netns,
              env=("PATH=/bin:/sbin", f"HOSTNAME={host}", f"X={host}{cid}", f"S={state}"),
              source_dirs=_SOURCE_DIRS.get(name, ()))  # fmt: skip
    if image:
        kw.update(rootfs=f"{state}/rootfs", lower_rootfs="/layers/a:/layers/b", lower_base=None)
    for _ in range(2):  # (the template made, then reused)
        ops, packed, blob, kinds = _plan.plan_create(config, inputs(**kw))
        want = _plan.compile_create(config, inputs(**kw))
        assert ops == want and (packed, blob) == _plan.encode(want) and kinds == {o.kind for o in want}
        kw["hostname"] = kw["hostname"] + "2" if kw["hostname"] else ""
        kw["container_id"] += "9"


def test_a_bind_sources_kind_is_part_of_the_templates_key(tmp_path):
    """A bind's mountpoint is made a directory or a file as its source is:
    the caller looks (source_dirs), and a source that changed kind gets
    another template (the review's case: a directory replaced by a file)."""
    src = tmp_path / "src"
    src.mkdir()
    config = cfg(mounts=[Mount("/data", str(src))])

    def mflags() -> int:
        inp = inputs(container_id="c", source_dirs=(os.path.isdir(src),))
        [mount] = [o for o in _plan.plan_create(config, inp).ops if o.kind is _plan.Op.MOUNT and o.s[1] == "/data"]
        assert mount == [o for o in _plan.compile_create(config, inp) if o.kind is _plan.Op.MOUNT and o.s[1] == "/data"][0]
        return int(mount.v[1])

    assert mflags() & _plan.M_MKDIR
    src.rmdir()
    src.write_text("now a file")
    assert mflags() & _plan.M_MKFILE and not mflags() & _plan.M_MKDIR
    # without the caller's look there is no template: compiled (and looked at) anew
    assert _plan._tokenized(config, inputs(container_id="c")) is None


def test_a_plan_that_reads_the_host_or_names_cgroups_is_compiled_anew(monkeypatch):
    calls = []
    real = _plan.compile_create
    monkeypatch.setattr(_plan, "compile_create", lambda c, i: calls.append(1) or real(c, i))
    _plan._template.cache_clear()
    for config, inp in ((cfg(no_pivot_root=True), inputs()), (cfg(), inputs(cgroup_files=("/cg/x/c1/tasks",)))):
        for _ in range(2):
            _plan.plan_create(config, inp)
    assert len(calls) == 4
    _plan.plan_create(cfg(), inputs(container_id="c"))
    _plan.plan_create(cfg(), inputs(state_dir="/other", hostname="o", container_id="o"))
    assert len(calls) == 5  # (one template for both)


def test_mount_flags():
    flags, prop, attrs_, data = _plan.mount_flags(["ro", "nosuid", "rshared", "mode=755", "rw"])
    assert flags == _plan.MS_NOSUID and prop == _plan.MS_SHARED | _plan.MS_REC and data == ["mode=755"]
    assert attrs_ == _plan.ATTR_NOSUID


# ---- host-side helpers ------------------------------------------------------------


def test_open_in_root_never_leaves_the_root(tmp_path):
    r = tmp_path / "root"
    (r / "etc").mkdir(parents=True)
    (r / "etc/passwd").write_text("inside")
    os.symlink("/etc", r / "abs")
    os.symlink("../../../../..", r / "up")
    os.symlink("loop2", r / "loop1")
    os.symlink("loop1", r / "loop2")
    os.mkfifo(r / "etc/fifo")

    def read(path: str) -> str:
        with os.fdopen(open_in_root(str(r), path)) as f:
            return f.read()

    assert read("/abs/passwd") == "inside"  # an absolute link restarts at the root
    assert read("/up/etc/passwd") == "inside"  # ".." stops at the root
    assert read("/../../etc/passwd") == "inside"
    with pytest.raises(OSError):
        open_in_root(str(r), "/loop1")
    with pytest.raises(IsADirectoryError):  # a fifo would block a reader: refused
        open_in_root(str(r), "/etc/fifo")
    assert is_file_in_root(str(r), "/abs/passwd") and not is_file_in_root(str(r), "/etc")
    assert not is_file_in_root(str(r), "/nope")


def test_lookup_user(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n")
    (tmp_path / "etc/group").write_text("root:x:0:\napp:x:1000:\nwheel:x:10:app\n")
    r = str(tmp_path)
    assert lookup_user(r, "app") == (User(1000, 1000, (10,)), "/home/app")
    assert lookup_user(r, "app:wheel") == (User(1000, 10, ()), "/home/app")
    assert lookup_user(r, "1234:5") == (User(1234, 5), "/")
    assert lookup_user(r, User(0, 0)) == (User(0, 0), "/root")
    with pytest.raises(ConfigError, match="no user 'ghost'"):
        lookup_user(r, "ghost")
    with pytest.raises(ConfigError, match="no group 'ghosts'"):
        lookup_user(r, "app:ghosts")


def test_etc_files(tmp_path):
    host = tmp_path / "resolv.conf"
    host.write_text("search example.com\nnameserver 127.0.0.53\nnameserver 10.0.0.2\n")
    assert resolv_conf(own_netns=True, host_file=str(host)) == "search example.com\nnameserver 10.0.0.2\n"
    host.write_text("nameserver 127.0.0.53\n")
    assert resolv_conf(own_netns=True, host_file=str(host)) == "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"
    assert resolv_conf(own_netns=False, host_file=str(host)) == "nameserver 127.0.0.53\n"
    assert resolv_conf(own_netns=True, servers=("1.1.1.1",)) == "nameserver 1.1.1.1\n"
    assert hosts_file("web", ("10.1.0.2",)).endswith("10.1.0.2\tweb\n")
    assert hosts_file("web").startswith("127.0.0.1\tlocalhost\n")


def test_restart_policies_are_the_inits():
    from pycontainer import ConfigError, ContainerConfig, Process

    for policy in ("no", "always", "unless-stopped", "on-failure", "on-failure:3"):
        ContainerConfig(process=Process(args=["true"]), init=True, restart=policy)
    with pytest.raises(ConfigError, match="give init=True"):
        ContainerConfig(process=Process(args=["true"]), restart="always")
    for bad in ("sometimes", "on-failure:", "on-failure:-1", 3):
        with pytest.raises(ConfigError, match="restart policy"):
            ContainerConfig(process=Process(args=["true"]), init=True, restart=bad)


def test_one_signal_parser_for_the_clis_and_stop_signals():
    import signal

    from pycontainer._sys import signal_number

    assert signal_number("TERM") == signal_number("sigterm") == signal_number("15") == signal.SIGTERM
    assert signal_number("SIGRTMIN+3") == signal.SIGRTMIN + 3 and signal_number("RTMAX-1") == signal.SIGRTMAX - 1
    for bad in ("SIGWHATEVER", "SIGRTMIN+99", ""):
        with pytest.raises(ValueError, match="unknown signal"):
            signal_number(bad)
