"""Network modes (issue 5, first part): none, host, container:<id>."""

from __future__ import annotations

import os

import pytest

from pycontainer import PIPE, Container, NetworkError


def _netns_and_links(root, config, cid, **kw):
    cfg = config("sh", "-c", "readlink /proc/self/ns/net; tail -n +3 /proc/net/dev | cut -d: -f1")
    c = Container.run(root, cid, cfg, stdout=PIPE, stderr=PIPE, **kw)
    try:
        out, err = c.communicate(timeout=30)
        assert c.wait().code == 0, err
        ns, *links = out.decode().split()
        return ns, [link.strip() for link in links]
    finally:
        c.delete()


def test_none_has_a_namespace_of_its_own_with_only_lo(root, config):
    ns, links = _netns_and_links(root, config, "none", network="none")
    assert ns != os.readlink("/proc/self/ns/net") and links == ["lo"]


def test_host_shares_the_hosts_network(root, config):
    ns, links = _netns_and_links(root, config, "host", network="host")
    with open("/proc/net/dev") as f:
        host_links = [line.split(":")[0].strip() for line in f.readlines()[2:]]
    assert ns == os.readlink("/proc/self/ns/net") and sorted(links) == sorted(host_links)


def test_container_mode_joins_another_containers_namespace(root, config):
    other = Container.run(root, "other", config("sleep", "100"))
    try:
        ns, _ = _netns_and_links(root, config, "joiner", network="container:other")
        assert ns == os.readlink(f"/proc/{other.pid}/ns/net")
    finally:
        other.delete(force=True)


@pytest.mark.parametrize("mode, match", [("container:nobody", "no container"), ("bridge0", "not a network mode")])
def test_bad_modes_are_network_errors_with_nothing_made(root, config, mode, match):
    with pytest.raises(NetworkError, match=match):
        Container.create(root, "x", config("true"), network=mode)
    assert os.listdir(root) == []


def test_joining_a_stopped_container_is_refused(root, config):
    other = Container.run(root, "gone", config("true"))
    try:
        other.wait()
        with pytest.raises(NetworkError, match="not running"):
            Container.create(root, "x", config("true"), network="container:gone")
    finally:
        other.delete()
    assert os.listdir(root) == []
