"""Bridges and veth pairs, over netlink (``_netlink``), from the parent side
before the container's process starts: the host end on the network's bridge,
the other end made directly in the container's network namespace as eth0
with its address, MTU and a default route through the bridge.

The "host" is the network namespace a Network names (``host_netns``, a path:
tests make a throwaway one), or ours."""

from __future__ import annotations

import contextlib
import errno
import ipaddress

from . import _netlink, _nft
from .errors import NetworkError
from .network import Network


def mac_for(address: str) -> str:
    """The container's MAC, made from its IPv4 address (as Docker's were):
    an address given again after a container left comes with the same MAC,
    so neighbour caches on the bridge stay right."""
    return "02:42:" + ":".join(f"{b:02x}" for b in ipaddress.IPv4Address(address).packed)


# (host namespace, bridge) -> the bridge's index and the table's generation,
# for bridges known complete: the next container skips the lookup.  Should
# the bridge go meanwhile, attaching to it fails and the entry is dropped (see
# attach); should this process have had to make the table again (someone
# flushed the ruleset), the network's elements are put back.
_ready: dict[tuple[tuple[int, int] | None, str], tuple[int, int]] = {}


def ensure_bridge(network: Network) -> int:
    """The bridge up with the gateway address(es), forwarding on, and the
    network's NAT and isolation elements in pycontainer's nftables table
    (whatever is missing is made; all of it is idempotent); its index."""
    ns, bridge = network.host_netns, network.bridge
    try:
        key = (_netlink.ns_key(ns), bridge)
        known = _ready.get(key)
        if known is not None:
            if known[1] == _nft.generation:
                return known[0]
            _nft.add_network(ns, bridge, network.subnet, network.subnet6)
            _ready[key] = (known[0], _nft.generation)
            return known[0]
        with _netlink.host(ns) as h:
            return _make_bridge(network, h, key)
    except NetworkError:
        raise
    except OSError as e:
        raise NetworkError(f"bridge {bridge}: {e.strerror or e}") from None


def _make_bridge(network: Network, h: _netlink.Rtnl, key: tuple[tuple[int, int] | None, str]) -> int:
    ns, bridge = network.host_netns, network.bridge
    link = h.link(bridge)
    if link is not None and link[1]:
        _nft.add_network(ns, bridge, network.subnet, network.subnet6)  # (idempotent: made by another process)
        _ready[key] = (link[0], _nft.generation)
        return link[0]
    # Made (or finished, after a creator that died half-way) here; it is
    # set up last, so a bridge that is up is complete.
    if link is None:
        with contextlib.suppress(FileExistsError):  # a race with another creator is fine
            h.add_bridge(bridge, network.mtu)
        link = h.link(bridge)
        if link is None:
            raise NetworkError(f"bridge {bridge} vanished as it was made")
    h.add_address(link[0], network.gateway, ipaddress.ip_network(network.subnet).prefixlen)
    sysctls = {"ipv4/ip_forward": "1", f"ipv4/conf/{bridge}/route_localnet": "1"}
    if network.subnet6 and network.gateway6:
        sysctls[f"ipv6/conf/{bridge}/disable_ipv6"] = "0"
        h.add_address(link[0], network.gateway6, ipaddress.ip_network(network.subnet6).prefixlen)
        sysctls["ipv6/conf/all/forwarding"] = "1"
    _nft.sysctl(ns, sysctls)
    _nft.add_network(ns, bridge, network.subnet, network.subnet6)
    h.set_up(link[0])
    _ready[key] = (link[0], _nft.generation)
    return link[0]


def remove_bridge(network: Network) -> None:
    with contextlib.suppress(OSError):
        _ready.pop((_netlink.ns_key(network.host_netns), network.bridge), None)
    with contextlib.suppress(OSError, NetworkError):
        _nft.remove_network(network.host_netns, network.bridge, network.subnet, network.subnet6)
    with contextlib.suppress(OSError), _netlink.host(network.host_netns) as h:
        idx = h.index(network.bridge)
        if idx is not None:
            h.delete(idx)


def attach(
    network: Network,
    host_veth: str,
    address: str,
    address6: str | None,
    netns_fd: int,
    ifname: str = "eth0",
    default_route: bool = True,
) -> None:
    """A veth pair: ``host_veth`` on the bridge, its peer made in the
    namespace ``netns_fd`` as ``ifname`` with ``address`` (and ``address6``)
    and (``default_route``) default routes via the gateways.  On failure
    nothing is left."""
    ns = network.host_netns
    try:
        mac = mac_for(address)
        peer_index = None
        for attempt in (1, 2):
            master = ensure_bridge(network)
            try:
                with _netlink.host(ns) as h:
                    peer_index = h.add_veth(host_veth, ifname, netns_fd, network.mtu, master, mac)
                break
            except FileExistsError:
                # the names are random: this link is someone else's, never ours to replace
                raise NetworkError(f"a link named {host_veth} exists already") from None
            except OSError as e:
                if e.errno not in (errno.ENODEV, errno.EINVAL, errno.EPERM, errno.EOPNOTSUPP) or attempt == 2:
                    raise
                # the bridge we knew is gone (or another link has its index now)
                _ready.pop((_netlink.ns_key(ns), network.bridge), None)
        try:
            with _netlink.Rtnl.in_netns_fd(netns_fd) as c:
                idx = peer_index or c.index(ifname)
                if idx is None:
                    raise NetworkError(f"{ifname} did not appear in the container's network namespace")
                c.add_address(idx, address, ipaddress.ip_network(network.subnet).prefixlen)
                if address6 is not None and network.subnet6 and network.gateway6:
                    c.add_address(idx, address6, ipaddress.ip_network(network.subnet6).prefixlen)
                c.set_up(idx)  # (not at creation: veth cannot open a peer not yet paired)
                if default_route:
                    c.add_default_route(network.gateway, idx)
                    if address6 is not None and network.gateway6:
                        c.add_default_route(network.gateway6, idx)
        except BaseException:
            detach(host_veth, ns)
            raise
    except NetworkError:
        raise
    except OSError as e:
        raise NetworkError(f"attaching {address} to {network.bridge}: {e.strerror or e}") from None


def detach(host_veth: str, host_netns: str | None) -> None:
    """Remove the veth pair now (its peer goes with it, wherever it is).
    This waits for an RCU grace period in the kernel (some 20 ms); where the
    container's namespace is going away anyway, leaving the pair to go with
    it costs nothing."""
    with contextlib.suppress(OSError), _netlink.host(host_netns) as h:
        idx = h.index(host_veth)
        if idx is not None:
            try:
                h.delete(idx)
            except OSError as e:
                if e.errno != errno.ENODEV:
                    raise


def exists(host_veth: str, host_netns: str | None) -> bool:
    """Is the link there?  (A namespace that is gone has none.)  When it
    cannot tell (out of fds, buffers...), it says yes: an address is
    released only once its link is known to be gone."""
    try:
        with _netlink.host(host_netns) as h:
            return h.index(host_veth) is not None
    except FileNotFoundError:
        return False  # the namespace itself is gone
    except OSError:
        return True


def links(host_netns: str | None) -> list[str]:
    with _netlink.host(host_netns) as h:
        return h.links()


def routed(host_netns: str | None) -> list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str]]:
    """The destinations the host's main routing table reaches through a
    link (its connected and static routes; not the default route), with the
    link's name: a new network's subnet must not overlap any of them."""
    with _netlink.host(host_netns) as h:
        return h.routes()


__all__ = ["attach", "detach", "ensure_bridge", "exists", "links", "mac_for", "remove_bridge", "routed"]
