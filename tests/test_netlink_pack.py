"""The rtnetlink requests ``_netlink`` packs by hand (the hot path of a
bridge network's set-up) are byte for byte what pyroute2, the library made
for the job, encodes for the same request.  No kernel needed: this checks
the encoding; tests/test_network.py checks that the kernel acts on it."""

from __future__ import annotations

import ipaddress
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg

from pycontainer import _netlink


class _Capture(_netlink.Rtnl):
    """An Rtnl whose requests are kept instead of sent."""

    def __init__(self) -> None:  # (no socket)
        self.sent: list[tuple[bytes, int, int]] = []

    def _call(self, body: bytes, kind: int, flags: int) -> list[bytes]:
        self.sent.append((body, kind, flags))
        return []


def _sent(call: Any) -> tuple[bytes, int, int]:
    c = _Capture()
    call(c)
    [one] = c.sent
    return one


def _pyroute2(msg: Any, kind: int, flags: int) -> tuple[bytes, int, int]:
    msg["header"]["type"] = kind
    msg["header"]["flags"] = flags
    msg["header"]["sequence_number"] = 1
    msg["header"]["pid"] = 0
    msg.encode()
    return bytes(msg.data[16:]), kind, flags  # (after the netlink header, which _call packs)


names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=15)
mtus = st.integers(68, 65535)
indexes = st.integers(1, 2**31 - 1)
v4 = st.builds(ipaddress.IPv4Address, st.integers(1, 2**32 - 2)).map(str)
v6 = st.builds(ipaddress.IPv6Address, st.integers(1, 2**128 - 2)).map(str)
macs = st.binary(min_size=6, max_size=6).map(lambda b: ":".join(f"{x:02x}" for x in b))


@settings(max_examples=200, deadline=None)
@given(name=names, peer=names, fd=st.integers(0, 4096), mtu=mtus, master=indexes, mac=st.none() | macs)
def test_veth_request(name: str, peer: str, fd: int, mtu: int, master: int, mac: str | None) -> None:
    ours = _sent(lambda c: c.add_veth(name, peer, fd, mtu, master, mac))
    peer_attrs: list[tuple[str, Any]] = [("IFLA_IFNAME", peer), ("IFLA_MTU", mtu), ("IFLA_NET_NS_FD", fd)]
    if mac is not None:
        peer_attrs.append(("IFLA_ADDRESS", mac))
    msg = ifinfmsg()
    msg["flags"] = msg["change"] = _netlink.IFF_UP
    msg["attrs"] = [
        ("IFLA_IFNAME", name),
        ("IFLA_MTU", mtu),
        ("IFLA_MASTER", master),
        (
            "IFLA_LINKINFO",
            {
                "attrs": [
                    ("IFLA_INFO_KIND", "veth"),
                    ("IFLA_INFO_DATA", {"attrs": [("VETH_INFO_PEER", {"attrs": peer_attrs})]}),
                ]
            },
        ),
    ]
    assert ours == _pyroute2(msg, _netlink.RTM_NEWLINK, ours[2])


@settings(max_examples=100, deadline=None)
@given(name=names, mtu=mtus)
def test_bridge_request(name: str, mtu: int) -> None:
    ours = _sent(lambda c: c.add_bridge(name, mtu))
    msg = ifinfmsg()
    msg["attrs"] = [("IFLA_IFNAME", name), ("IFLA_MTU", mtu), ("IFLA_LINKINFO", {"attrs": [("IFLA_INFO_KIND", "bridge")]})]
    assert ours == _pyroute2(msg, _netlink.RTM_NEWLINK, ours[2])


@settings(max_examples=100, deadline=None)
@given(name=names)
def test_link_lookup_request(name: str) -> None:
    ours = _sent(lambda c: c.link(name))
    msg = ifinfmsg()
    msg["attrs"] = [("IFLA_IFNAME", name)]
    assert ours == _pyroute2(msg, _netlink.RTM_GETLINK, ours[2])


@settings(max_examples=100, deadline=None)
@given(index=indexes)
def test_link_up_and_delete_requests(index: int) -> None:
    ours = _sent(lambda c: c.set_up(index))
    msg = ifinfmsg()
    msg["index"] = index
    msg["flags"] = msg["change"] = _netlink.IFF_UP
    assert ours == _pyroute2(msg, _netlink.RTM_NEWLINK, ours[2])
    ours = _sent(lambda c: c.delete(index))
    msg = ifinfmsg()
    msg["index"] = index
    assert ours == _pyroute2(msg, _netlink.RTM_DELLINK, ours[2])


@settings(max_examples=200, deadline=None)
@given(index=indexes, address=v4 | v6, data=st.data())
def test_address_request(index: int, address: str, data: st.DataObject) -> None:
    six = ":" in address
    prefixlen = data.draw(st.integers(0, 128 if six else 32))
    ours = _sent(lambda c: c.add_address(index, address, prefixlen))
    msg = ifaddrmsg()
    msg["family"] = 10 if six else 2
    msg["prefixlen"] = prefixlen
    msg["index"] = index
    msg["attrs"] = [("IFA_LOCAL", address), ("IFA_ADDRESS", address)]
    if six:
        msg["flags"] = 0x2
    assert ours == _pyroute2(msg, _netlink.RTM_NEWADDR, ours[2])


@settings(max_examples=200, deadline=None)
@given(index=indexes, gateway=v4 | v6)
def test_default_route_request(index: int, gateway: str) -> None:
    ours = _sent(lambda c: c.add_default_route(gateway, index))
    msg = rtmsg()
    msg["family"] = 10 if ":" in gateway else 2
    msg["table"] = 254
    msg["proto"] = 4
    msg["scope"] = 0
    msg["type"] = 1
    msg["attrs"] = [("RTA_GATEWAY", gateway), ("RTA_OIF", index)]
    assert ours == _pyroute2(msg, _netlink.RTM_NEWROUTE, ours[2])


def test_requests_carry_the_flags_they_did() -> None:
    """Create requests are exclusive (a link of that name is never someone
    else's replaced); the veth's asks for the new link back (its peer's index)."""
    body, kind, flags = _sent(lambda c: c.add_veth("pcv0", "eth0", 3, 1500, 7, None))
    assert flags == _netlink.NLM_F_CREATE | _netlink.NLM_F_EXCL | _netlink.NLM_F_ECHO
    assert _sent(lambda c: c.add_address(3, "10.0.0.2", 24))[2] == _netlink.NLM_F_CREATE | _netlink.NLM_F_EXCL
    assert _sent(lambda c: c.add_default_route("10.0.0.1", 3))[2] == _netlink.NLM_F_CREATE | _netlink.NLM_F_EXCL
