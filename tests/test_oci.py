"""OCI runtime-spec conversion (issue 7, first part): config.json <->
ContainerConfig, table-driven, both directions, against the runtime-spec's
own JSON schema (Debian's golang-github-opencontainers-specs-dev), and a
`runc spec` bundle run end to end."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import warnings

import pytest

from pycontainer import (
    DEFAULT_DEVICE_RULES,
    PIPE,
    STDOUT,
    Capabilities,
    ConfigError,
    Container,
    ContainerConfig,
    Device,
    DeviceRule,
    Hook,
    Hooks,
    HugepageLimit,
    IDMap,
    Mount,
    Namespace,
    Process,
    Resources,
    Rlimit,
    ThrottleDevice,
    User,
    WeightDevice,
)
from pycontainer.oci import config_from_spec, load_bundle, spec_from_config
from pycontainer.security import seccomp_profile_from_json

from .conftest import needs_root

SCHEMA_DIR = pathlib.Path("/usr/share/gocode/src/github.com/opencontainers/runtime-spec/schema")


@pytest.fixture(scope="module")
def validate():
    """The runtime-spec's config schema (draft 4, with relative $refs)."""
    jsonschema = pytest.importorskip("jsonschema")
    referencing = pytest.importorskip("referencing")
    if not (SCHEMA_DIR / "config-schema.json").exists():
        pytest.skip("the runtime-spec schema is missing (apt-get install golang-github-opencontainers-specs-dev)")
    from referencing.jsonschema import DRAFT4

    resources = [(p.name, DRAFT4.create_resource(json.loads(p.read_text()))) for p in SCHEMA_DIR.glob("*.json")]
    registry = referencing.Registry().with_resources(resources)
    schema = json.loads((SCHEMA_DIR / "config-schema.json").read_text())
    validator = jsonschema.Draft4Validator(schema, registry=registry)

    def check(spec: dict) -> None:
        errors = sorted(validator.iter_errors(spec), key=lambda e: list(e.path))
        assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]

    return check


def runc_spec(tmp_path) -> dict:
    subprocess.run(["runc", "spec"], cwd=tmp_path, check=True)
    return json.loads((tmp_path / "config.json").read_text())


BASE = {"ociVersion": "1.0.2", "root": {"path": "rootfs"}, "process": {"args": ["true"], "cwd": "/"}}


def spec_with(**parts) -> dict:
    spec = json.loads(json.dumps(BASE))
    for key, value in parts.items():
        where = spec
        path = key.strip().split("__")
        for p in path[:-1]:
            where = where.setdefault(p, {})
        where[path[-1]] = value
    return spec


# field (as a path into the spec) -> (spec value, what the config must hold)
FIELDS = {
    "process__args": (["sh", "-c", "x"], lambda c: c.process.args == ("sh", "-c", "x")),
    "process__env": (["A=1", "PATH=/bin"], lambda c: c.process.env == ("A=1", "PATH=/bin")),
    "process__cwd": ("/srv", lambda c: c.process.cwd == "/srv"),
    "process__terminal": (True, lambda c: c.process.terminal),
    "process__user": (
        {"uid": 7, "gid": 8, "umask": 0o077, "additionalGids": [9, 10]},
        lambda c: c.process.user == User(7, 8, (9, 10)) and c.process.umask == 0o077,
    ),
    "process__capabilities": (
        {"bounding": ["CAP_KILL", "CAP_CHOWN"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL", "CAP_CHOWN"],
         "inheritable": ["CAP_KILL"], "ambient": ["CAP_KILL"]},
        lambda c: c.process.capabilities == Capabilities(["CAP_KILL", "CAP_CHOWN"], ["CAP_KILL"], ["CAP_KILL", "CAP_CHOWN"],
                                                         ["CAP_KILL"], ["CAP_KILL"]),
    ),
    "process__rlimits": (
        [{"type": "RLIMIT_NOFILE", "soft": 100, "hard": 200}],
        lambda c: c.process.rlimits == (Rlimit("nofile", 100, 200),),
    ),
    "process__noNewPrivileges": (True, lambda c: c.process.no_new_privileges),
    "process__oomScoreAdj": (300, lambda c: c.process.oom_score_adj == 300),
    "process__apparmorProfile": ("unconfined", lambda c: c.process.apparmor_profile == "unconfined"),
    "root__readonly": (True, lambda c: c.readonly_rootfs),
    "hostname": ("box", lambda c: c.hostname == "box"),
    "domainname": ("example.org", lambda c: c.domainname == "example.org"),
    "mounts": (
        [{"destination": "/data", "type": "bind", "source": "/etc", "options": ["rbind", "ro"]},
         {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m", "nosuid"]}],
        lambda c: c.mounts == (Mount("/data", "/etc", "bind", ["rbind", "ro"]), Mount("/tmp", "tmpfs", "tmpfs", ["size=1m", "nosuid"]))
        and not c.docker_defaults,
    ),
    "mounts ": (  # (an idmapped one; the key's space keeps it apart from "mounts")
        [{"destination": "/data", "type": "bind", "source": "/etc", "options": ["rbind", "ro", "ridmap"],
          "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 10}],
          "gidMappings": [{"containerID": 0, "hostID": 2000, "size": 5}]}],
        lambda c: c.mounts == (Mount("/data", "/etc", "bind", ["rbind", "ro", "ridmap"], [IDMap(0, 1000, 10)],
                                     [IDMap(0, 2000, 5)]),),
    ),
    "linux__namespaces": (
        [{"type": "pid"}, {"type": "mount"}, {"type": "network", "path": "/proc/1/ns/net"}],
        lambda c: c.namespaces == (Namespace("pid"), Namespace("mount"), Namespace("network", "/proc/1/ns/net")),
    ),
    "linux__uidMappings": ([{"containerID": 0, "hostID": 1000, "size": 10}], lambda c: c.uid_mappings == (IDMap(0, 1000, 10),)),
    "linux__gidMappings": ([{"containerID": 0, "hostID": 2000, "size": 5}], lambda c: c.gid_mappings == (IDMap(0, 2000, 5),)),
    "linux__cgroupsPath": ("/pctest/x", lambda c: c.cgroups_path == "/pctest/x"),
    "linux__rootfsPropagation": ("slave", lambda c: c.rootfs_propagation == "slave"),
    "linux__maskedPaths": (["/proc/kcore"], lambda c: c.masked_paths == ("/proc/kcore",)),
    "linux__devices": (
        [{"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3, "fileMode": 0o620, "uid": 7, "gid": 5}],
        lambda c: c.devices == (Device("/dev/mynull", "c", 1, 3, 0o620, 7, 5),),
    ),
    "linux__personality": ({"domain": "LINUX32"}, lambda c: c.personality == "LINUX32"),
    "linux__timeOffsets": (
        {"monotonic": {"secs": 10, "nanosecs": 5}, "boottime": {"secs": -3, "nanosecs": 0}},
        lambda c: sorted(c.time_offsets) == [("boottime", -3, 0), ("monotonic", 10, 5)],
        {"linux__namespaces": [{"type": "mount"}, {"type": "time"}]},  # offsets need a new time namespace
    ),
    "linux__sysctl": ({"net.ipv4.ip_forward": "1", "kernel.shmmni": "100"},
                      lambda c: dict(c.sysctl) == {"net.ipv4.ip_forward": "1", "kernel.shmmni": "100"}),
    "linux__readonlyPaths": (["/proc/sys"], lambda c: c.readonly_paths == ("/proc/sys",)),
    "linux__mountLabel": ("system_u:object_r:container_file_t:s0",
                          lambda c: c.mount_label == "system_u:object_r:container_file_t:s0"),
    "linux__resources": (
        {"memory": {"limit": 64 << 20, "reservation": 32 << 20, "swap": 128 << 20, "swappiness": 10, "disableOOMKiller": True},
         "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
         "pids": {"limit": 50},
         "blockIO": {"weight": 300, "weightDevice": [{"major": 8, "minor": 0, "weight": 200}],
                     "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1000}],
                     "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 10}]},
         "hugepageLimits": [{"pageSize": "2MB", "limit": 2 << 20}],
         "devices": [{"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"}]},
        lambda c: c.resources == Resources(
            memory=64 << 20, memory_reservation=32 << 20, memory_swap=128 << 20, memory_swappiness=10, oom_kill_disable=True,
            cpu_shares=512, cpu_quota=50000, cpu_period=100000, cpuset_cpus="0", cpuset_mems="0", pids_limit=50,
            blkio_weight=300, blkio_weight_device=[WeightDevice(8, 0, 200)], blkio_read_bps=[ThrottleDevice(8, 0, 1000)],
            blkio_write_iops=[ThrottleDevice(8, 0, 10)], hugepage_limits=[HugepageLimit("2MB", 2 << 20)],
            # runc's default nodes stay allowed after the bundle's rules
            devices=[DeviceRule(False), DeviceRule(True, "c", 1, 3, "rw"), *DEFAULT_DEVICE_RULES[1:]]),
    ),
    "hooks": (
        {"prestart": [{"path": "/bin/p"}],
         "createRuntime": [{"path": "/bin/cr", "args": ["cr", "-x"], "env": ["A=1"], "timeout": 5}],
         "createContainer": [{"path": "/bin/cc"}], "startContainer": [{"path": "/bin/sc"}, {"path": "/bin/sc2"}],
         "poststart": [{"path": "/bin/ps"}], "poststop": [{"path": "/bin/pst", "timeout": 1}]},
        lambda c: c.hooks == Hooks(prestart=[Hook("/bin/p")], create_runtime=[Hook("/bin/cr", ["cr", "-x"], ["A=1"], 5)],
                                   create_container=[Hook("/bin/cc")], start_container=[Hook("/bin/sc"), Hook("/bin/sc2")],
                                   poststart=[Hook("/bin/ps")], poststop=[Hook("/bin/pst", timeout=1)]),
    ),
    "annotations": ({"org.example.a": "1", "b": ""}, lambda c: dict(c.annotations) == {"org.example.a": "1", "b": ""}),
    "linux__seccomp": (
        {"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"],
         "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"}]},
        lambda c: c.seccomp == seccomp_profile_from_json(
            {"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"],
             "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"}]}),
    ),
}  # fmt: skip


NEWER_THAN_THE_SCHEMA = {"linux__timeOffsets"}


@pytest.mark.parametrize("field", list(FIELDS))
def test_each_field_converts_both_ways(field, validate):
    value, holds, *also = FIELDS[field]
    spec = spec_with(**{field: value}, **(also[0] if also else {}))
    # Debian's schema (runtime-spec 1.0.2) predates time namespaces (1.1)
    check = validate if field not in NEWER_THAN_THE_SCHEMA else (lambda _spec: None)
    check(spec)
    cfg = config_from_spec(spec, "/bundle")
    assert holds(cfg), cfg
    back = spec_from_config(cfg)
    check(back)  # what we write is a valid config.json
    assert config_from_spec(back, "/") == cfg  # and reads back the same


def test_the_specs_own_meanings_of_absent_fields():
    cfg = config_from_spec(BASE, "/bundle")
    assert cfg.rootfs == "/bundle/rootfs"
    assert cfg.process.capabilities == Capabilities()  # none, not Docker's
    assert cfg.seccomp == "unconfined" and cfg.masked_paths == () and cfg.readonly_paths == ()
    assert cfg.namespaces == () and cfg.mounts == () and not cfg.docker_defaults


@pytest.mark.parametrize(
    "spec, field",
    [
        ({**BASE, "ociVersion": "2.0.0"}, "ociVersion"),
        ({**BASE, "ociVersion": "1.0"}, "ociVersion"),
        ({**BASE, "colour": "blue"}, "colour"),
        ({**BASE, "root": {}}, "root.path"),
        (spec_with(hooks={"prestart": [{"path": "bin/true"}]}), "hooks.prestart[0].path"),
        (spec_with(hooks={"poststop": [{"path": "/bin/true", "timeout": 0}]}), "hooks.poststop[0].timeout"),
        (spec_with(hooks={"poststop": [{"path": "/bin/true", "timeout": 1.5}]}), "hooks.poststop[0].timeout"),
        (spec_with(hooks={"prestart": [{"args": ["x"]}]}), "hooks.prestart[0].path"),
        (spec_with(hooks={"prestart": [{"path": "/x", "args": [1]}]}), "hooks.prestart[0].args[0]"),
        (spec_with(hooks={"afterparty": [{"path": "/bin/true"}]}), "hooks.afterparty"),
        (spec_with(annotations={"a": 1}), "annotations"),
        (spec_with(linux__devices=[{"path": "/dev/fuse", "type": "x", "major": 10, "minor": 229}]), "type"),
        (spec_with(linux__sysctl={"net ipv4": "1"}), "sysctl.net ipv4"),
        (spec_with(linux__personality={"domain": "LINUX32", "flags": ["ADDR_NO_RANDOMIZE"]}), "linux.personality.flags"),
        (spec_with(linux__personality={"domain": "SVR4"}), "personality"),
        (spec_with(linux__timeOffsets={"monotonic": {"secs": 1}}), "time_offsets"),  # no time namespace
        (spec_with(linux__timeOffsets={"boottime": {"secs": 1, "nanosecs": 2 * 10**9}},
                   linux__namespaces=[{"type": "time"}]), "time_offsets.boottime"),
        (spec_with(process__ioPriority={"class": "IOPRIO_CLASS_IDLE"}), "process.ioPriority"),
        (spec_with(process__capabilities={"bounding": ["CAP_FLYING"]}), "capabilities"),
        (spec_with(process__rlimits=[{"type": "RLIMIT_WINGS", "soft": 1, "hard": 1}]), "rlimits.type"),
        (spec_with(linux__namespaces=[{"type": "galaxy"}]), "namespaces"),
        (spec_with(mounts=[{"destination": "/x", "type": "bind", "source": "/etc",
                            "uidMappings": [{"containerID": 0, "hostID": 1, "size": 1}]}]), "mounts[0].uid_mappings"),
        (spec_with(mounts=[{"destination": "/x", "type": "tmpfs", "source": "tmpfs",
                            "uidMappings": [{"containerID": 0, "hostID": 1, "size": 1}],
                            "gidMappings": [{"containerID": 0, "hostID": 1, "size": 1}]}]), "mounts[0].uid_mappings"),
        (spec_with(mounts=[{"destination": "/x", "type": "bind", "source": "/etc", "options": ["rbind", "idmap"]}]),
         "mounts[0].options"),  # idmap with no mappings: the container's, and it has none
        (spec_with(linux__seccomp={"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/x"}), "seccomp.listenerPath"),
        (spec_with(process__args=[]), "process.args"),
        ("{not json", "config.json"),
        ("DEEP", "config.json"),  # (made in the test: as a parameter it would swell the test's id)
        ({**BASE, "root": {"path": 1}}, "config.json"),
        (spec_with(process__rlimits=[{"type": [], "soft": 1, "hard": 1}]), "config.json"),
        (spec_with(process__user={"uid": 0, "gid": 0, "additionalGids": -1}), "config.json"),
        (spec_with(linux__resources={"memory": {"swappiness": "10"}}), "config.json"),
        (spec_with(linux__resources={"devices": ["rwm"]}), "config.json"),
        (spec_with(linux__resources={"devices": [{"allow": "false", "access": "rwm"}]}), "linux.resources.devices.allow"),
        (spec_with(process__terminal="yes"), "process.terminal"),
        (spec_with(linux__devices=[{"path": "/dev/x", "type": "c"}]), "devices"),
        (spec_with(linux__devices=[{"path": "/etc/x", "type": "c", "major": 1, "minor": 3}]), "devices.path"),
    ],
)  # fmt: skip
def test_invalid_or_unsupported_fields_name_themselves(spec, field):
    if spec == "DEEP":
        spec = '{"a":' * 100000
    with pytest.raises(ConfigError) as e:
        config_from_spec(spec if isinstance(spec, str) else json.dumps(spec), "/bundle")
    assert e.value.field == field


def test_runc_specs_default_converts_and_validates(tmp_path, validate):
    spec = runc_spec(tmp_path)
    validate(spec)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cfg = config_from_spec(spec, str(tmp_path))
    said = " ".join(str(w.message) for w in caught)
    # runc's spec asks for ambient capabilities it cannot raise (runc warns too)
    assert "ambient" in said
    assert cfg.process.capabilities.bounding == ("CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_AUDIT_WRITE")
    assert cfg.process.no_new_privileges and cfg.process.rlimits == (Rlimit("nofile", 1024, 1024),)
    assert cfg.readonly_rootfs and cfg.hostname == "runc" and len(cfg.masked_paths) > 5
    validate(spec_from_config(cfg))


@needs_root
def test_a_runc_spec_bundle_runs(tmp_path, rootfs):
    spec = runc_spec(tmp_path)
    shutil.copytree(rootfs, tmp_path / "rootfs", symlinks=True)
    spec["process"]["terminal"] = False
    spec["process"]["args"] = ["sh", "-c", "grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status; ulimit -n; hostname; "
                               "echo $HOME; echo x > /dev/null && head -c1 /dev/zero > /dev/null && echo devices-ok; "
                               "cat /proc/mounts | cut -d' ' -f2"]  # fmt: skip
    (tmp_path / "config.json").write_text(json.dumps(spec))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cfg = load_bundle(str(tmp_path))
    state = tmp_path / "state"
    with Container.run(str(state), "bundle", cfg, stdout=PIPE, stderr=STDOUT) as c:
        out, _ = c.communicate(timeout=30)
        assert c.wait().code == 0, out
    lines = out.decode().split("\n")
    assert lines[:6] == ["CapEff:\t0000000020000420", "NoNewPrivs:\t1", "Seccomp:\t0", "1024", "runc", "/root"]
    assert lines[6] == "devices-ok"  # runc's default nodes are allowed after the bundle's deny-all rule
    mounts = lines[7:]
    # exactly the bundle's mounts (no Docker /etc files), and runc's device nodes
    assert {"/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys"} <= set(mounts)
    assert "/etc/hosts" not in mounts and "/etc/hostname" not in mounts
    assert os.listdir(state) == []


def test_a_config_with_dockers_defaults_writes_them_out(validate):
    cfg = ContainerConfig(process=Process(args=["sh"], user=User(0, 0)), rootfs="/srv/rootfs")
    spec = spec_from_config(cfg)
    validate(spec)
    assert [m["destination"] for m in spec["mounts"]][:6] == [
        "/proc",
        "/dev",
        "/dev/pts",
        "/dev/shm",
        "/dev/mqueue",
        "/sys",
    ]
    assert spec["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"  # Docker's profile, written out
    assert set(spec["process"]["capabilities"]["bounding"]) >= {"CAP_CHOWN", "CAP_KILL"}
    with pytest.raises(ConfigError, match="image"):
        spec_from_config(ContainerConfig(process=Process(args=["sh"]), image="localhost/busybox"))


def test_a_bind_without_rbind_is_not_recursive():
    cfg = config_from_spec(
        spec_with(mounts=[{"destination": "/x", "type": "bind", "source": "/etc", "options": ["ro"]}]), "/b"
    )
    assert cfg.mounts[0].options == ("bind", "ro")
