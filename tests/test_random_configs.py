"""Hypothesis: a random config either fails validation with ConfigError, or
validates and runs to an exit status.  Never anything else, and never a leak."""

from __future__ import annotations

import os
import uuid

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from pycontainer import ConfigError, Container, ContainerConfig, Mount, Namespace, Process, User

from .conftest import needs_root

pytestmark = [needs_root, pytest.mark.root]

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
clean = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)
name = st.text(st.sampled_from("abcdefghij0123456789-"), min_size=1, max_size=10)
path_part = st.text(st.sampled_from("abcxyz._-"), min_size=1, max_size=6)
abs_path = st.lists(path_part, max_size=3).map(lambda parts: "/" + "/".join(parts))
any_path = st.one_of(*[abs_path] * 6, path_part, st.sampled_from(["/proc/x", "/sys/y", "/dev/pts/z", "/", "/tmp"]))
args = st.one_of(
    st.just(["true"]),
    st.tuples(st.just("sh"), st.just("-c"), st.sampled_from(["exit 0", "exit 3", "echo hi", "id", "pwd"])).map(list),
    st.lists(clean, max_size=2).map(lambda extra: ["echo", *extra]),
    st.tuples(st.sampled_from(["", "true", "echo", "a\x00b"]), st.lists(text, max_size=2)).map(lambda t: [t[0], *t[1]]),
)
env = st.lists(
    st.one_of(
        *[st.tuples(name, clean).map(lambda kv: f"{kv[0]}={kv[1]}")] * 6,
        text,
    ),
    max_size=3,
)
ids = st.one_of(st.integers(min_value=0, max_value=70000), st.integers(min_value=-2, max_value=2**32))
options = st.lists(
    st.sampled_from(["ro", "rw", "nosuid", "nodev", "noexec", "size=1m", "mode=1777", "bogus,opt", "rslave"]),
    max_size=3,
)
mounts = st.lists(
    st.builds(lambda dest, opts: (dest, opts), any_path, options),
    max_size=3,
)
namespace_sets = st.one_of(
    st.just(None),
    st.lists(st.sampled_from(["pid", "mount", "uts", "ipc", "network", "cgroup", "nope"]), max_size=6),
)


@st.composite
def configs(draw):
    """Build a config from random parts; ConfigError from the builders is a valid outcome."""
    fields = {}
    try:
        process = Process(
            args=draw(args),
            env=draw(env),
            cwd=draw(st.one_of(st.just("/"), any_path)),
            user=User(uid=draw(ids), gid=draw(ids), additional_gids=draw(st.lists(ids, max_size=2))),
            umask=draw(
                st.one_of(st.integers(min_value=0, max_value=0o777), st.integers(min_value=-1, max_value=0o1000))
            ),
        )
        fields["hostname"] = draw(st.one_of(st.none(), name, text))
        ns = draw(namespace_sets)
        if ns is not None:
            fields["namespaces"] = [Namespace(n) for n in ns]
        fields["mounts"] = [Mount(d, None, "tmpfs", o) for d, o in draw(mounts)]
        fields["readonly_rootfs"] = draw(st.booleans())
        fields["init"] = draw(st.booleans())
        fields["rootfs_propagation"] = draw(st.sampled_from(["rprivate", "rslave", "private", "shared", "upside"]))
        return ("config", process, fields)
    except ConfigError as e:
        return ("error", e, None)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(configs())
def test_random_configs_validate_and_run_or_raise_config_error(root, rootfs, built):
    kind, process, fields = built
    if kind == "error":
        event(f"refused while building: {process.field}")
        return  # the builders refused it with a typed error: fine
    try:
        cfg = ContainerConfig(process=process, rootfs=rootfs, **fields)
        c = Container.create(root, uuid.uuid4().hex[:12], cfg)
    except ConfigError:
        event("refused by create")
        assert os.listdir(root) == []
        return
    event("ran")
    with c:
        c.start()
        status = c.wait(timeout=30)
        assert status.code is not None or status.signal is not None
    assert os.listdir(root) == []
