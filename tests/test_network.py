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


# ---- named networks and addresses (IPAM) ------------------------------------------


def test_networks_are_made_listed_and_removed(root):
    from pycontainer.network import NetworkStore

    store = NetworkStore(root)
    a = store.create("front")
    b = store.create("back", subnet="192.168.77.0/24")
    assert a.subnet == "10.89.0.0/24" and a.gateway == "10.89.0.1" and a.bridge.startswith("pcbr-")
    assert [n.name for n in store.list()] == ["back", "front"] and store.get("back") == b
    assert store.create("third").subnet == "10.89.1.0/24"  # the next free /24
    for name in ("front", "back", "third"):
        store.remove(name)
    assert store.list() == []
    with pytest.raises(NetworkError, match="no network"):
        store.get("front")


@pytest.mark.parametrize(
    "name, subnet, match",
    [
        ("dup", None, "exists already"),
        ("over", "10.89.0.128/25", "overlaps network 'dup'"),
        ("tiny", "10.1.2.0/31", "no room"),
        ("junk", "10.1.2.300/24", "subnet"),
        ("bad name!", None, "not a network name"),
    ],
)
def test_bad_networks_are_network_errors(root, name, subnet, match):
    from pycontainer.network import NetworkStore

    store = NetworkStore(root)
    store.create("dup")
    with pytest.raises(NetworkError, match=match):
        store.create(name, subnet=subnet)
    assert [n.name for n in store.list()] == ["dup"]
    store.remove("dup")


def test_addresses_are_leased_released_and_run_out(root):
    from pycontainer.network import NetworkStore

    store = NetworkStore(root)
    store.create("small", subnet="10.99.0.0/29")  # .1 is the gateway: .2 to .6 for containers
    got = [store.allocate("small", f"c{i}") for i in range(5)]
    assert got == [f"10.99.0.{i}" for i in range(2, 7)]
    assert store.allocate("small", "c3") == "10.99.0.5"  # the same owner keeps its address
    with pytest.raises(NetworkError, match="no free address"):
        store.allocate("small", "c5")
    with pytest.raises(NetworkError, match="in use by"):
        store.remove("small")
    store.release("small", "c1")
    assert store.allocate("small", "new") == "10.99.0.3"
    for owner in ("c0", "c2", "c3", "c4", "new"):
        store.release("small", owner)
    store.remove("small")


def test_twenty_processes_get_twenty_distinct_addresses(root):
    import subprocess
    import sys

    from pycontainer.network import NetworkStore

    store = NetworkStore(root)
    store.create("busy")
    script = (
        "import sys\n"
        "from pycontainer.network import NetworkStore\n"
        "print(NetworkStore(sys.argv[1]).allocate('busy', sys.argv[2]))\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script, root, f"c{i}"], stdout=subprocess.PIPE, text=True)
        for i in range(20)
    ]
    addresses = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert len(set(addresses)) == 20 and store.leases("busy") == {a: f"c{i}" for i, a in enumerate(addresses)}
    for i in range(20):
        store.release("busy", f"c{i}")
    store.remove("busy")


def test_more_bad_input_is_a_network_error(root, config):
    from pycontainer.network import NetworkStore

    store = NetworkStore(root)
    for subnet in ("127.0.0.0/24", "224.0.0.0/24", "169.254.0.0/24", "fd00::/64"):
        with pytest.raises(NetworkError, match="subnet"):
            store.create("n", subnet=subnet)
    with pytest.raises(NetworkError, match="not a network name"):
        store.create("foo\n")
    store.create("n")
    for owner in ("", "../x", 5):
        with pytest.raises(NetworkError, match="an address on network"):
            store.allocate("n", owner)  # type: ignore[arg-type]
    assert store.leases("n") == {} and [f for f in os.listdir(store.dir) if f.startswith(".tmp")] == []
    with open(os.path.join(store.dir, "n.json"), "w") as f:
        f.write("{broken")
    with pytest.raises(NetworkError, match="damaged"):
        store.get("n")
    with pytest.raises(NetworkError, match="damaged"):
        store.create("other")  # its subnet could overlap the damaged one's: refused
    os.unlink(os.path.join(store.dir, "n.json"))
    for mode in (5, "container:", "container:../x"):
        with pytest.raises(NetworkError):
            Container.create(root, "x", config("true"), network=mode)  # type: ignore[arg-type]
    assert os.listdir(root) == [".networks"]
