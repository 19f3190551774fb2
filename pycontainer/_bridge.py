"""Bridges and veth pairs, over netlink (``_netlink``), from the parent side
before the container's process starts: the host end on the network's bridge,
the other end made directly in the container's network namespace as eth0
with its address, MTU and a default route through the bridge.

The "host" is the network namespace a Network names (``host_netns``, a path:
tests make a throwaway one), or ours."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import ipaddress

from . import _netlink, _nft
from .errors import NetworkError


def veth_name(network: str, owner: str) -> str:
    return "pcv" + hashlib.sha256(f"{network}/{owner}".encode()).hexdigest()[:10]


def ensure_bridge(bridge: str, gateway: str, subnet: str, mtu: int, host_netns: str | None) -> None:
    """The bridge up with the gateway address, forwarding on, and the
    network's NAT and isolation elements in pycontainer's nftables table
    (whatever is missing is made; all of it is idempotent)."""
    prefix = ipaddress.ip_network(subnet).prefixlen
    try:
        h = _netlink.host(host_netns)
        link = h.link(bridge)
        if link is None or not link[1]:
            # Made (or finished, after a creator that died half-way) here; it
            # is set up last, so a bridge that is up is complete.
            if link is None:
                with contextlib.suppress(FileExistsError):  # a race with another creator is fine
                    h.add_bridge(bridge, mtu)
                link = h.link(bridge)
                if link is None:
                    raise NetworkError(f"bridge {bridge} vanished as it was made")
            h.add_address(link[0], gateway, prefix)
            _nft.sysctl(host_netns, {"ipv4/ip_forward": "1", f"ipv4/conf/{bridge}/route_localnet": "1"})
            _nft.add_network(host_netns, bridge, subnet)
            h.set_up(link[0])
    except NetworkError:
        raise
    except OSError as e:
        raise NetworkError(f"bridge {bridge}: {e.strerror or e}") from None


def remove_bridge(bridge: str, subnet: str, host_netns: str | None) -> None:
    with contextlib.suppress(OSError, NetworkError):
        _nft.remove_network(host_netns, bridge, subnet)
    with contextlib.suppress(OSError):
        h = _netlink.host(host_netns)
        idx = h.index(bridge)
        if idx is not None:
            h.delete(idx)


def attach(
    bridge: str,
    gateway: str,
    subnet: str,
    mtu: int,
    host_netns: str | None,
    host_veth: str,
    address: str,
    netns_fd: int,
) -> None:
    """A veth pair: ``host_veth`` on the bridge, its peer made in the
    namespace ``netns_fd`` as eth0 with ``address`` and a default route via
    the gateway.  On failure nothing is left."""
    prefix = ipaddress.ip_network(subnet).prefixlen
    try:
        h = _netlink.host(host_netns)
        master = h.index(bridge)
        if master is None:
            raise NetworkError(f"bridge {bridge} is missing")
        try:
            h.add_veth(host_veth, "eth0", netns_fd, mtu, master)
        except FileExistsError:
            # left by a container of the same id and network whose namespace
            # has not gone yet (or a crashed owner's): it is stale, replace it
            detach(host_veth, host_netns)
            h.add_veth(host_veth, "eth0", netns_fd, mtu, master)
        try:
            with _netlink.Rtnl.in_netns_fd(netns_fd) as c:
                idx = c.index("eth0")
                if idx is None:
                    raise NetworkError("eth0 did not appear in the container's network namespace")
                c.add_address(idx, address, prefix)
                c.set_up(idx)
                c.add_default_route(gateway, idx)
        except BaseException:
            detach(host_veth, host_netns)
            raise
    except NetworkError:
        raise
    except OSError as e:
        raise NetworkError(f"attaching {address} to {bridge}: {e.strerror or e}") from None


def detach(host_veth: str, host_netns: str | None) -> None:
    """Remove the veth pair now (its peer goes with it, wherever it is).
    This waits for an RCU grace period in the kernel (some 20 ms); where the
    container's namespace is going away anyway, leaving the pair to go with
    it costs nothing."""
    with contextlib.suppress(OSError):
        h = _netlink.host(host_netns)
        idx = h.index(host_veth)
        if idx is not None:
            try:
                h.delete(idx)
            except OSError as e:
                if e.errno != errno.ENODEV:
                    raise


def exists(host_veth: str, host_netns: str | None) -> bool:
    try:
        return _netlink.host(host_netns).index(host_veth) is not None
    except OSError:
        return False


def links(host_netns: str | None) -> list[str]:
    return _netlink.host(host_netns).links()


__all__ = ["attach", "detach", "ensure_bridge", "exists", "links", "remove_bridge", "veth_name"]
