"""Networks.  Modes, as ``docker run --network``: ``none`` (a network
namespace of its own with only ``lo``, up), ``host`` (no network namespace:
the host's), and ``container:<id>`` (the network namespace of another,
running container under the same state root).  Named networks and their
address leases (IPAM) for the bridge networks that come next (issue 5)."""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import functools
import hashlib
import ipaddress
import json
import os
import re
import socket
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import attrs

from .config import ContainerConfig, Namespace, NamespaceType
from .errors import ContainerNotFound, NetworkError

if TYPE_CHECKING:
    from .container import Container


def apply_network_mode(config: ContainerConfig, mode: str, root: str) -> tuple[ContainerConfig, int | None]:
    """The config with its network namespace set as ``mode`` says, and for
    ``container:<id>`` a pidfd of that container's init: the caller checks,
    once its own child has joined, that the init is still there (had it gone
    and its pid been reused meanwhile, the path would have named another
    process's namespace)."""
    if not isinstance(mode, str):
        raise NetworkError(f"a network mode is a string (none, host, container:<id>), not {type(mode).__name__}")
    if mode.startswith("container:"):
        from .container import Container, Status
        from .errors import ConfigError

        cid = mode.partition(":")[2]
        try:
            other = Container.load(root, cid)
        except ContainerNotFound:
            raise NetworkError(f"network {mode!r}: no container {cid!r} under {root}") from None
        except ConfigError as e:
            raise NetworkError(f"network {mode!r}: {e.reason}") from None
        try:
            if other.status not in (Status.CREATED, Status.RUNNING, Status.PAUSED) or not other.pid:
                raise NetworkError(f"network {mode!r}: container {cid!r} is not running")
            guard = os.pidfd_open(other.pid)
            path = f"/proc/{other.pid}/ns/net"
        except ProcessLookupError:
            raise NetworkError(f"network {mode!r}: container {cid!r} is not running") from None
        finally:
            other.close()
        others = [n for n in config.namespaces if n.type is not NamespaceType.NETWORK]
        return attrs.evolve(config, namespaces=[*others, Namespace(NamespaceType.NETWORK, path=path)]), guard
    if mode not in ("none", "host") and not (
        _NAME_RE.fullmatch(mode) and (mode == DEFAULT_NETWORK or _network_exists(root, mode))
    ):
        raise NetworkError(f"{mode!r} is not a network mode (none, host, container:<id>) nor a network")
    return _with_netns(config, own=mode != "host"), None


def _with_netns(config: ContainerConfig, own: bool) -> ContainerConfig:
    """``config`` with a network namespace of its own (``own``) or none (the
    host's).  The same config asked for again is the same object: it keeps
    what is cached on it (its checks, its JSON, its compiled plan blocks),
    which a new copy per container would make anew every time."""
    key = (config, own)
    evolved = _evolved.get(key)
    if evolved is None:
        others = [n for n in config.namespaces if n.type is not NamespaceType.NETWORK]
        evolved = attrs.evolve(config, namespaces=[*others, Namespace(NamespaceType.NETWORK)] if own else others)
        if len(_evolved) >= 64:
            _evolved.clear()
        _evolved[key] = evolved
    return evolved


def is_bridge_mode(mode: str) -> bool:
    return mode not in ("none", "host") and not mode.startswith("container:")


def _network_exists(root: str, name: str) -> bool:
    from .container import state_root

    return os.path.exists(os.path.join(state_root(root), ".networks", f"{name}.json"))


_evolved: dict[tuple[ContainerConfig, bool], ContainerConfig] = {}  # see _with_netns
_NAME_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}")
# Default subnets: /24s out of it (not 10.88 or 10.89, podman's; nor one the host routes)
DEFAULT_POOL = ipaddress.ip_network("10.77.0.0/16")
DEFAULT_NETWORK = "bridge"  # made on first use, as Docker's default network
_PROTOCOLS = ("tcp", "udp")


@attrs.frozen
class Network:
    """A named bridge network: its subnet, the gateway (the bridge's own
    address, the subnet's first), the bridge's name, the MTU of its links,
    the network namespace the bridge lives in (a path; None: the runtime's
    own), and an IPv6 subnet and gateway where asked for."""

    name: str
    subnet: str
    gateway: str
    bridge: str
    mtu: int = 1500
    host_netns: str | None = None
    subnet6: str | None = None
    gateway6: str | None = None


@attrs.frozen
class PortMapping:
    """A published port: ``host_port`` on the host (on ``host_ip`` only, or on
    every local address, 127.0.0.1 included) forwarded to ``container_port``.
    ``host_port`` 0 asks for a free one, picked when the container joins
    its network (as ``docker run -p 80``); the container's state and its
    :class:`Member` hold the port picked."""

    host_port: int
    container_port: int
    protocol: str = "tcp"
    host_ip: str | None = None

    @classmethod
    def parse(cls, spec: str) -> PortMapping:
        """Docker's ``-p`` syntax: ``[[host_ip:]host_port:]container_port[/proto]``;
        ``80`` and ``127.0.0.1::80`` (or a host port 0) publish on a free port."""
        if not isinstance(spec, str):
            raise NetworkError(f"a published port is a string such as '8080:80/tcp', not {type(spec).__name__}")
        body, _, proto = spec.partition("/")
        parts = body.rsplit(":", 2)
        if len(parts) == 1:
            ip, hp, cp = None, "0", parts[0]
        elif len(parts) == 2:
            ip, (hp, cp) = None, parts
        else:
            ip, hp, cp = parts
            hp = hp or "0"  # ip::port
        try:
            return cls(int(hp), int(cp), proto or "tcp", ip or None).checked()
        except ValueError:
            raise NetworkError(
                f"published port {spec!r}: write [[host_ip:]host_port:]container_port[/tcp|udp] with numbers"
            ) from None

    def checked(self) -> PortMapping:
        for what, port, low in (("host port", self.host_port, 0), ("container port", self.container_port, 1)):
            if not isinstance(port, int) or isinstance(port, bool) or not low <= port <= 65535:
                raise NetworkError(f"published port {self}: {what} {port!r} is not in {low}..65535")
        if self.protocol not in _PROTOCOLS:
            raise NetworkError(f"published port {self}: protocol {self.protocol!r} is not tcp or udp")
        if self.host_ip is not None:
            try:
                ip = ipaddress.ip_address(self.host_ip)
            except ValueError:
                raise NetworkError(f"published port {self}: {self.host_ip!r} is not an address") from None
            if not isinstance(ip, ipaddress.IPv4Address):
                raise NetworkError(f"published port {self}: IPv4 host addresses only, for now")
            if ip.is_unspecified:
                return attrs.evolve(self, host_ip=None)
        return self

    def clashes(self, other: PortMapping) -> bool:
        """Do both hold one host port?  (One still to be picked clashes with none.)"""
        return (
            self.protocol == other.protocol
            and self.host_port == other.host_port != 0
            and (self.host_ip is None or other.host_ip is None or self.host_ip == other.host_ip)
        )

    def __str__(self) -> str:
        if self.host_port == 0:  # (as written to ask for a free one)
            ip = f"{self.host_ip}::" if self.host_ip else ""
            return f"{ip}{self.container_port}/{self.protocol}"
        ip = f"{self.host_ip}:" if self.host_ip else ""
        return f"{ip}{self.host_port}:{self.container_port}/{self.protocol}"


def _ports(value: object) -> tuple[PortMapping, ...]:
    if value is None:
        return ()
    if isinstance(value, (str, PortMapping)):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise NetworkError(f"published ports are a list such as ['8080:80'], not {type(value).__name__}")
    out = []
    for p in value:
        out.append(p.checked() if isinstance(p, PortMapping) else PortMapping.parse(p))
    for i, p in enumerate(out):
        for q in out[:i]:
            if p.clashes(q):
                raise NetworkError(f"port {p} is published twice ({q})")
    return tuple(out)


@attrs.frozen
class Member:
    """A container on a network, as its lease records it."""

    owner: str
    address: str
    hostname: str
    ports: tuple[PortMapping, ...] = ()
    address6: str | None = None
    veth: str | None = None  # the host end of its veth pair


@attrs.frozen
class Attachment:
    """Where a container sits on its bridge network, as its state records
    it (see :func:`attachment`): the network's name, the container's
    addresses, the gateway, the namespace the bridge lives in (None: the
    runtime's own) and its published ports, host ports picked for it
    (``-p 80``) included."""

    network: str
    address: str
    gateway: str
    host_netns: str | None = None
    ports: tuple[PortMapping, ...] = ()
    address6: str | None = None

    def host_port(self, container_port: int, protocol: str = "tcp") -> int:
        """The host port ``container_port`` is published on (the first, if
        several); NetworkError if it is not published."""
        for p in self.ports:
            if p.container_port == container_port and p.protocol == protocol:
                return p.host_port
        raise NetworkError(f"port {container_port}/{protocol} is not published (network {self.network!r})")


def attachment(container: Container) -> Attachment | None:
    """The container's place on its bridge network (None for any other
    network mode)."""
    net = container._data.get("network")
    if not net:
        return None
    return Attachment(
        network=net["name"],
        address=net["address"],
        gateway=net["gateway"],
        host_netns=net.get("host_netns"),
        ports=_ports(net.get("ports")),
        address6=net.get("address6"),
    )


def endpoint(
    container: Container, port: int, *, published: bool = True, host: str | None = None
) -> tuple[str, int, str | None]:
    """Where a client reaches the container's TCP ``port``: (address, port,
    the network namespace the client sits in, a path; None: ours).  On a
    bridge network the client is on the network's host side
    (``host_netns``): it goes through the host port ``port`` is published on
    (with ``published``, if it is published: to its host address, or
    127.0.0.1 when it is published on every address), or else to the
    container's address.  With any other network mode (none, host,
    container:<id>) it is inside the container's network namespace, going
    to 127.0.0.1.  ``host`` replaces the address (not the namespace)."""
    att = attachment(container)
    if att is None:
        return host or "127.0.0.1", port, f"/proc/{container.pid}/ns/net"
    if published:
        for p in att.ports:
            if p.container_port == port and p.protocol == "tcp":
                return host or p.host_ip or "127.0.0.1", p.host_port, att.host_netns
    return host or att.address, port, att.host_netns


def connect(
    container: Container, port: int, *, timeout: float = 10.0, published: bool = True, host: str | None = None
) -> socket.socket:
    """A TCP connection to the container's ``port``, made from where
    :func:`endpoint` says a client sits (the socket is made in that
    namespace, then used from the calling thread).  OSError if it cannot
    connect within ``timeout`` seconds (one try)."""
    from ._netlink import in_netns

    address, where, netns = endpoint(container, port, published=published, host=host)
    family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
    sock = in_netns(netns, lambda: socket.socket(family, socket.SOCK_STREAM))
    try:
        sock.settimeout(timeout)
        sock.connect((address, where))
    except BaseException:
        sock.close()
        raise
    return sock


@contextlib.contextmanager
def private_netns() -> Iterator[str]:
    """A new, empty network namespace (only ``lo``, up) for a bridge
    network's host side, held by an fd of this process for the duration of
    the ``with``: its path (``/proc/PID/fd/N``) is what
    ``NetworkStore.create(..., host_netns=...)`` takes.  Its bridge, veths
    and nftables rules never touch the host's network, and go with it.
    Unlike ``ip netns add``, it leaves nothing in ``/run/netns``: what test
    suites want (see docs/embedding.md).  The path names the namespace only
    while the ``with`` lasts (the fd number is reused after): remove the
    networks made on it before the end."""
    from . import _netpool

    try:
        fd = _netpool.new_netns()
    except OSError as e:
        raise NetworkError(f"cannot make a network namespace: {e.strerror or e}") from None
    try:
        yield f"/proc/{os.getpid()}/fd/{fd}"
    finally:
        os.close(fd)


class NetworkStore:
    """Named networks and their members (address leases, names, published
    ports), kept under a state root (``<root>/.networks/<name>.json``, the
    network and its leases in one file), safe for several processes at
    once: every change holds one flock and replaces the file atomically,
    so a network is never half made and an address never given twice.  A lease whose owner is gone (a process that died while creating
    a container, a container directory removed by hand) is reclaimed the
    next time the network is joined: address, veth and port rules."""

    def __init__(self, root: str | None = None) -> None:
        from .container import state_root

        self.root = state_root(root)
        self.dir = os.path.join(self.root, ".networks")
        os.makedirs(self.dir, mode=0o700, exist_ok=True)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(os.path.join(self.dir, "lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _path(self, name: str) -> str:
        if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
            raise NetworkError(f"{name!r} is not a network name")
        return os.path.join(self.dir, f"{name}.json")

    def _write(self, path: str, data: object) -> None:
        # Replaced atomically (readers never see half a file), not fsync'd:
        # this is runtime state, on tmpfs by default, and after a crash of
        # the machine its containers are gone too (their leases are reclaimed).
        # Every writer holds the store's lock: _replace_json's fixed temporary
        # name does (mkstemp's search for a free random one was a third of it).
        from .container import _replace_json

        _replace_json(path, data)

    def _load(self, name: str) -> tuple[Network, dict[str, dict[str, Any]]]:
        path = self._path(name)
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
            leases = {str(a): dict(v) for a, v in data["leases"].items()}
            for v in leases.values():
                str(v["owner"])
            return Network(**data["network"]), leases
        except FileNotFoundError:
            raise NetworkError(f"no network {name!r}") from None
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as e:
            raise NetworkError(f"network {name!r}: its file {path} is damaged ({e})") from None

    def _save(self, network: Network, leases: dict[str, dict[str, Any]]) -> None:
        self._write(self._path(network.name), {"network": attrs.asdict(network), "leases": leases})

    # ---- networks --------------------------------------------------------------------

    def create(
        self,
        name: str,
        subnet: str | None = None,
        *,
        subnet6: str | None = None,
        mtu: int = 1500,
        host_netns: str | None = None,
    ) -> Network:
        """A new network; without ``subnet``, the first free /24 of 10.77.0.0/16 that neither
        another network nor a route of the host overlaps.
        ``subnet6`` (a ULA range such as fd00:1::/64) gives its containers
        IPv6 addresses and a default route too.
        NetworkError for a name taken, a subnet overlapping another network's,
        one that is no private IPv4 range one can route (loopback, multicast,
        link-local...), or one too small for a gateway and a container.
        ``host_netns`` puts the bridge in another network namespace than
        ours (a path such as /run/netns/NAME; tests use a throwaway one).
        The bridge itself is made when the first container joins."""
        path = self._path(name)
        if not isinstance(mtu, int) or isinstance(mtu, bool) or not 68 <= mtu <= 65535:
            raise NetworkError(f"network {name!r}: mtu {mtu!r} is not in 68..65535")
        if host_netns is not None and not os.path.exists(host_netns):
            raise NetworkError(f"network {name!r}: no network namespace at {host_netns}")
        with self._locked():
            if os.path.exists(path):
                raise NetworkError(f"network {name!r} exists already")
            return self._create(name, subnet, mtu, host_netns, subnet6)

    def _create(
        self, name: str, subnet: str | None, mtu: int, host_netns: str | None, subnet6: str | None = None
    ) -> Network:
        from . import _bridge

        others = self._list()
        taken = [ipaddress.ip_network(n.subnet) for n in others]
        try:
            # what the host routes already: another runtime's bridge, a VPN, the LAN
            routes = _bridge.routed(host_netns)
        except OSError as e:
            raise NetworkError(f"network {name!r}: cannot read the host's routes: {e}") from None
        if subnet is None:
            net = next(
                (
                    s
                    for s in DEFAULT_POOL.subnets(new_prefix=24)
                    if not any(s.overlaps(t) for t in taken) and not any(s.overlaps(r) for r, _ in routes)
                ),
                None,
            )
            if net is None:
                raise NetworkError(f"no free /24 left in {DEFAULT_POOL} for network {name!r}")
        else:
            net = _check_subnet(name, subnet)
            clash = next((n for n in others if ipaddress.ip_network(n.subnet).overlaps(net)), None)
            if clash is not None:
                raise NetworkError(f"subnet {net} of network {name!r} overlaps network {clash.name!r} ({clash.subnet})")
            route = next(((r, dev) for r, dev in routes if r.overlaps(net)), None)
            if route is not None:
                raise NetworkError(
                    f"subnet {net} of network {name!r} overlaps a route of the host ({route[0]} dev {route[1]})"
                )
        net6 = None
        if subnet6 is not None:
            net6 = _check_subnet6(name, subnet6)
            clash = next((n for n in others if n.subnet6 and ipaddress.ip_network(n.subnet6).overlaps(net6)), None)
            if clash is not None:
                raise NetworkError(
                    f"subnet {net6} of network {name!r} overlaps network {clash.name!r} ({clash.subnet6})"
                )
            route = next(((r, dev) for r, dev in routes if r.overlaps(net6)), None)
            if route is not None:
                raise NetworkError(
                    f"subnet {net6} of network {name!r} overlaps a route of the host ({route[0]} dev {route[1]})"
                )
        network = Network(
            name=name,
            subnet=str(net),
            gateway=str(next(net.hosts())),
            bridge="pcbr-" + hashlib.sha256(f"{self.dir}/{name}".encode()).hexdigest()[:8],
            mtu=mtu,
            host_netns=host_netns,
            subnet6=None if net6 is None else str(net6),
            gateway6=None if net6 is None else str(net6.network_address + 1),
        )
        self._save(network, {})
        return network

    def _list(self) -> list[Network]:
        """Every network; a damaged file is an error (its subnet must not be
        handed out again)."""
        return [self._load(e[: -len(".json")])[0] for e in sorted(os.listdir(self.dir)) if e.endswith(".json")]

    def list(self) -> list[Network]:
        with self._locked():
            return self._list()

    def get(self, name: str) -> Network:
        """The network ``name``; the default one (``bridge``) is made on first use."""
        with self._locked():
            if name == DEFAULT_NETWORK and not os.path.exists(self._path(name)):
                return self._create(name, None, 1500, None)
            return self._load(name)[0]

    def leases(self, name: str) -> dict[str, str]:
        """address -> owner (a container's id) on the network."""
        with self._locked():
            return {a: v["owner"] for a, v in self._load(name)[1].items() if not v.get("draining")}

    def members(self, name: str) -> builtins.list[Member]:  # (list: the method above, in this class)
        with self._locked():
            leases = self._load(name)[1]
            return [
                _member(a, leases[a]) for a in sorted(leases, key=ipaddress.ip_address) if not leases[a].get("draining")
            ]

    def remove(self, name: str, wait: float = 5.0) -> None:
        """Remove a network no container uses: its file, its bridge and its
        elements in the nftables table.  Addresses of containers just
        deleted, whose veth the kernel has not removed yet, are waited for
        (up to ``wait`` seconds)."""
        deadline = time.monotonic() + wait
        while True:
            with self._locked():
                network, leases = self._load(name)
                if self._settle(network, leases, budget=None):
                    self._save(network, leases)
                live = sorted(v["owner"] for v in leases.values() if not v.get("draining"))
                if live:
                    raise NetworkError(f"network {name!r} is in use by {', '.join(live)}")
                if not leases or time.monotonic() > deadline:
                    if leases:
                        veths = ", ".join(sorted(str(v.get("veth")) for v in leases.values()))
                        raise NetworkError(f"network {name!r}: links of deleted containers are still there ({veths})")
                    from . import _bridge

                    _bridge.remove_bridge(network)
                    os.unlink(self._path(name))
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(self._path(name) + ".new")  # (a writer that died left it)
                    return
            time.sleep(0.02)

    # ---- members ---------------------------------------------------------------------

    def allocate(self, name: str, owner: str) -> str:
        """The lowest free address of the network for ``owner`` (a container's
        id; the same address again if it holds one already), with no name,
        ports or link.  NetworkError when none is left."""
        return self.join(name, owner)[1].address

    def join(
        self,
        name: str,
        owner: str,
        hostname: str | None = None,
        hosts_file: str | None = None,
        ports: object = None,
    ) -> tuple[Network, Member]:
        """Make ``owner`` a member: the lowest free address, the name of its
        veth, its ports published (NetworkError if a live member of a
        network on the same host holds one), and ``hosts_file`` (the
        container's /etc/hosts, a path in its state directory) written with
        every member's name, as every other member's is with this one's.
        Leases of owners that are gone are reclaimed first.  Returns the
        network as it was read for it too (a container being made wires its
        veth from that: no second read), and the member."""
        from .errors import ConfigError
        from .validate import container_id

        try:
            container_id(owner)
        except ConfigError as e:
            raise NetworkError(f"an address on network {name!r} for {owner!r}: {e.reason}") from None
        wanted = _ports(ports)
        with self._locked():
            network, leases = self._load(name)
            settled = self._settle(network, leases)
            try:
                member = self._join(network, leases, owner, hostname, hosts_file, wanted)
            except BaseException:
                if settled:
                    self._save(network, leases)
                raise
            return network, member

    def _join(
        self,
        network: Network,
        leases: dict[str, dict[str, Any]],
        owner: str,
        hostname: str | None,
        hosts_file: str | None,
        wanted: tuple[PortMapping, ...],
    ) -> Member:
        from . import _nft

        asked = wanted
        for addr, v in leases.items():
            if v["owner"] == owner and not v.get("draining"):
                if hosts_file is None and "hosts" not in v:
                    return _member(addr, v)  # allocate() again
                raise NetworkError(f"container {owner!r} is on network {network.name!r} already ({addr})")
        wanted = self._check_ports(network, leases, wanted)
        address = _free4(network, leases)
        if address is None and self._settle(network, leases, budget=None):
            address = _free4(network, leases)
        if address is None:
            raise NetworkError(f"network {network.name!r} has no free address left ({network.subnet})")
        lease: dict[str, Any] = {"owner": owner, "hostname": hostname or owner[:12], "ports": [str(p) for p in wanted]}
        if network.subnet6 is not None:
            lease["address6"] = _free6(network, leases)
        if hosts_file is not None:
            # The container's mark, in its state directory: a file named by a
            # random token (device and inode numbers come back on disks).
            token = os.urandom(8).hex()
            mark = os.path.join(os.path.dirname(hosts_file), f"network-{token}")
            os.close(os.open(mark, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
            lease.update(hosts=hosts_file, token=token, veth="pcv" + os.urandom(5).hex())
        # A bare allocation (no link, no ports: IPAM only) needs no table, and
        # makes none; a member about to be wired does.
        if (hosts_file is not None or wanted) and self._table_checked(network):
            self._restore(network.host_netns)
        try:
            for attempt in range(3):
                try:
                    if _nft.add_ports(network.host_netns, _nft_ports(address, wanted)):
                        self._restore(network.host_netns)  # the table went in between
                    break
                except NetworkError:
                    if attempt == 2 or not any(p.host_port == 0 for p in asked):
                        raise
                    # a port picked here was published meanwhile from another
                    # state root (whose lock is not ours): pick again
                    wanted = self._check_ports(network, leases, asked)
                    lease["ports"] = [str(p) for p in wanted]
            try:
                leases[address] = lease
                self._save(network, leases)
            except BaseException:
                _nft.remove_ports(network.host_netns, _nft_ports(address, wanted))
                raise
        except BaseException:
            leases.pop(address, None)
            if hosts_file is not None:
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(os.path.dirname(hosts_file), f"network-{lease['token']}"))
            raise
        self._write_hosts(leases, network.name)
        return _member(address, lease)

    def _table_checked(self, network: Network) -> bool:
        """Are this network's elements in pycontainer's nftables table?  Looked
        at once a second per network (a flushed ruleset, a firewall reload, a
        table of an older pycontainer replaced); True when they were not and
        this store's networks and ports must be put back."""
        from . import _nft

        try:
            key = (_nft.ns_id(network.host_netns), network.bridge)
        except OSError:
            return False
        now = time.monotonic()
        if now - _table_seen.get(key, -1e9) < 1.0:
            return False
        present = _nft.has_bridge(network.host_netns, network.bridge)
        _table_seen[key] = now
        return not present

    def leave(self, name: str, owner: str, veth: str | None = None, *, removed: bool = False) -> None:
        """``owner`` leaves: its published ports go, and its name from the
        other members' /etc/hosts.  Its address stays reserved until its
        veth is gone (the kernel removes the pair with the container's
        network namespace; a namespace another container still uses keeps
        it, and the address with it).  ``veth`` picks the lease of that link
        only (undoing a creation must not touch another's lease of the same
        id).  ``removed``: the caller removed the veth; once it is seen gone
        the address is free at once (a restart takes it again).  No error
        if there is none, or the network is gone."""
        with self._locked():
            try:
                network, leases = self._load(name)
            except NetworkError:
                return
            mine = {
                a: v
                for a, v in leases.items()
                if v["owner"] == owner and not v.get("draining") and (veth is None or v.get("veth") == veth)
            }
            if mine:
                self._drain(network, leases, mine)
                if removed:
                    from . import _bridge

                    for addr, v in mine.items():
                        if v.get("veth") and not _bridge.exists(v["veth"], network.host_netns):
                            del leases[addr]
                self._save(network, leases)
                self._write_hosts(leases, network.name)

    def release(self, name: str, owner: str) -> None:
        self.leave(name, owner)

    def rename_member(self, owner: str, new_owner: str, hosts_file: str, move: Callable[[], None]) -> None:
        """A member container is renamed: ``move`` (which moves its state
        directory) runs under the networks' lock, so that no other user of
        them takes a lease for a gone container's meanwhile; then its
        leases on every network are ``new_owner``'s, its /etc/hosts
        (``hosts_file``, the path of its state directory's file now) kept
        current from there.  Its addresses, ports and names stay."""
        with self._locked():
            move()
            for network in self._list():
                try:
                    network, leases = self._load(network.name)
                except NetworkError:
                    continue
                mine = [v for v in leases.values() if v["owner"] == owner and not v.get("draining")]
                for v in mine:
                    v["owner"] = new_owner
                    if "hosts" in v:
                        v["hosts"] = hosts_file
                if mine:
                    self._save(network, leases)
                    self._write_hosts(leases, network.name)  # (the other members know it by its new name)

    def _drain(self, network: Network, leases: dict[str, dict[str, Any]], gone: dict[str, dict[str, Any]]) -> None:
        from . import _nft

        for addr, v in gone.items():
            with contextlib.suppress(OSError, NetworkError):
                _nft.remove_ports(network.host_netns, _nft_ports(addr, _ports(v.get("ports"))))
            d = self._dir_of(v) if "hosts" in v else None
            if d is not None and os.path.isdir(os.path.join(d, HOSTS_PARTS)):
                with contextlib.suppress(OSError):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(os.path.join(d, HOSTS_PARTS, network.name))
                    _assemble_hosts(d)
            if v.get("veth"):
                kept = {"owner": v["owner"], "veth": v["veth"], "draining": True, "checked": time.time()}
                if v.get("address6"):
                    kept["address6"] = v["address6"]  # reserved as long as the IPv4 one
                leases[addr] = kept
            else:
                del leases[addr]

    def _settle(self, network: Network, leases: dict[str, dict[str, Any]], budget: int | None = 1) -> bool:
        """Leases of owners that are gone drained; drained leases whose veth
        is gone dropped, looking at ``budget`` of them (the least recently
        looked at first, none looked at in the last 20 ms; None: all).  Whether anything changed (the caller
        saves)."""
        from . import _bridge

        stale = {a: v for a, v in leases.items() if not v.get("draining") and not self._alive(v)}
        if stale:
            self._drain(network, leases, stale)
        # The kernel removes a namespace's links a few milliseconds after its
        # last process went: looking sooner would mostly be wasted.
        ripe = time.time() - 0.02
        draining = sorted(
            (v.get("checked", 0), a)
            for a, v in leases.items()
            if v.get("draining") and (budget is None or v.get("checked", 0) < ripe)
        )
        done = []
        for _, a in draining if budget is None else draining[:budget]:
            if _bridge.exists(leases[a]["veth"], network.host_netns):
                leases[a]["checked"] = time.time()  # still in use: the others' turn next time
            else:
                done.append(a)
        for a in done:
            del leases[a]
        if stale:
            self._write_hosts(leases, network.name)
        return bool(stale or done)

    def _alive(self, lease: dict[str, Any]) -> bool:
        """Does the lease's container still exist?  Its mark (a file named by
        the lease's token, made in its state directory at join, removed with
        it) is how it is recognised: in its state directory, or in the
        directory a live process is making it in."""
        if "hosts" not in lease:
            return True  # an address taken by allocate(): only leave() gives it back
        d = self._dir_of(lease)
        if d is None:
            return False
        parent = os.path.basename(d)
        if parent.startswith(".creating-"):
            pid = parent.rsplit("-", 2)[-2]
            return pid.isdigit() and os.path.exists(f"/proc/{pid}")
        return True

    def _dir_of(self, lease: dict[str, Any]) -> str | None:
        """The lease's container's directory: its state directory, or still
        the one it is being made in."""
        token = lease.get("token")
        if not token:
            return None
        # The directory it is being made in first: it is renamed to the state
        # directory (never back), so looked at in this order one of the two
        # has the mark even while the rename happens.
        for d in (os.path.dirname(lease.get("hosts") or ""), os.path.join(self.root, lease["owner"])):
            if d and os.path.lexists(os.path.join(d, f"network-{token}")):
                return d
        return None

    def refresh_hosts(self, name: str) -> None:
        """Write every member's /etc/hosts of network ``name`` again."""
        with self._locked():
            network, leases = self._load(name)
            self._write_hosts(leases, network.name)

    def _write_hosts(self, leases: dict[str, dict[str, Any]], name: str) -> None:
        """Every member's /etc/hosts: the usual header, then each member's
        address and names (its own first).  Rewritten in place: the file is
        bind-mounted into the container, so its inode must stay.  A member
        on several networks (``Container.connect``) keeps each network's
        part in its ``hosts.d/``: its /etc/hosts is all of them."""
        from .rootfs import HOSTS_HEADER

        live = {a: v for a, v in leases.items() if not v.get("draining")}

        def entries(addr: str, lease: dict[str, Any]) -> list[str]:
            names = _names(lease)
            v6 = lease.get("address6")
            return [f"{addr}\t{names}\n"] + ([f"{v6}\t{names}\n"] if v6 else [])

        ordered = sorted(live, key=ipaddress.ip_address) if len(live) > 1 else list(live)
        for addr, lease in live.items():
            body = entries(addr, lease)
            for a in ordered:
                if a != addr:
                    body += entries(a, live[a])
            # Twice: the directory may be renamed (made -> state directory)
            # between finding it and opening the file in it.
            for _ in range(2):
                d = self._dir_of(lease)
                if d is None:
                    break
                parts = os.path.join(d, HOSTS_PARTS)
                if os.path.isdir(parts):
                    with contextlib.suppress(OSError):
                        _replace_text(os.path.join(parts, name), "".join(body))
                        _assemble_hosts(d)
                    break
                try:
                    fd = os.open(os.path.join(d, "hosts"), os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
                except FileNotFoundError:
                    continue
                except OSError:
                    break
                with contextlib.suppress(OSError):
                    _overwrite(fd, HOSTS_HEADER + "".join(body))
                break

    def _restore(self, host_netns: str | None) -> None:
        """The table had to be made again (someone flushed the ruleset): put
        back the elements of this store's networks on that host, and the
        ports of their live members."""
        from . import _nft

        for other in self._list():
            if other.host_netns != host_netns:
                continue
            _nft.add_network(host_netns, other.bridge, other.subnet, other.subnet6)
            for addr, v in self._load(other.name)[1].items():
                if not v.get("draining"):
                    _nft.add_ports(host_netns, _nft_ports(addr, _ports(v.get("ports"))), verb="add")

    def _check_ports(
        self, network: Network, mine: dict[str, dict[str, Any]], wanted: tuple[PortMapping, ...]
    ) -> tuple[PortMapping, ...]:
        """``wanted`` with a free host port given to each one that asks for
        one (host port 0); NetworkError if a live member of a network on the
        same host holds one of them.  A gone owner's ports are taken back
        first (its network's file saved: the lock is the whole store's)."""
        if not wanted:
            return wanted
        held: list[tuple[PortMapping, str, str]] = []  # port, owner, network
        for other in self._list():
            if other.host_netns != network.host_netns:
                continue
            if other.name == network.name:
                leases = mine  # (settled already, not saved yet)
            else:
                _, leases = self._load(other.name)
                if self._settle(other, leases, budget=0):
                    self._save(other, leases)
            for v in leases.values():
                if not v.get("draining"):
                    held += [(p, v["owner"], other.name) for p in _ports(v.get("ports"))]
        for p in wanted:
            for h, owner, name in held:
                if p.clashes(h):
                    raise NetworkError(f"port {p} is published already by container {owner!r} ({h}, network {name!r})")
        if all(p.host_port for p in wanted):
            return wanted
        from . import _nft

        taken = {(h.host_ip, h.protocol, h.host_port) for h, _, _ in held}
        taken |= {(p.host_ip, p.protocol, p.host_port) for p in wanted if p.host_port}
        taken |= _nft.published(network.host_netns)  # other state roots' too
        return _pick_ports(network, wanted, taken)


def _pick_ports(
    network: Network, wanted: tuple[PortMapping, ...], taken: set[tuple[str | None, str, int]]
) -> tuple[PortMapping, ...]:
    """A free host port for each port of ``wanted`` that asks for one, from
    the host namespace's ephemeral range (``net.ipv4.ip_local_port_range``,
    as Docker's allocator), starting at a random one: not in ``taken`` (ip or
    None, proto, port) on any address it would share, and one that no
    process of the host namespace is bound to (a listener there would be
    shadowed by the DNAT rule)."""
    import random
    import socket

    def pick() -> tuple[PortMapping, ...]:
        try:
            with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
                low, high = (int(x) for x in f.read().split())
        except (OSError, ValueError):
            low, high = 32768, 60999
        used: dict[tuple[str, int], set[str | None]] = {}
        for ip, proto, port in taken:
            used.setdefault((proto, port), set()).add(ip)
        out = []
        for p in wanted:
            if p.host_port:
                out.append(p)
                continue
            start = random.randrange(low, high + 1)
            for i in range(high - low + 1):
                port = low + (start - low + i) % (high - low + 1)
                ips = used.get((p.protocol, port), set())
                if ips and (p.host_ip is None or None in ips or p.host_ip in ips):
                    continue
                if _bindable(p.protocol, port):
                    break
            else:
                raise NetworkError(f"published port {p}: no free host port left in {low}..{high}")
            used.setdefault((p.protocol, port), set()).add(p.host_ip)
            out.append(attrs.evolve(p, host_port=port))
        return tuple(out)

    def _bindable(proto: str, port: int) -> bool:
        kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
        with socket.socket(socket.AF_INET, kind) as s:
            if kind == socket.SOCK_STREAM:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # (a TIME_WAIT is no listener)
            try:
                # the wildcard address conflicts with a listener on any address
                s.bind(("0.0.0.0", port))
            except OSError:
                return False
        return True

    from ._netlink import in_netns

    try:
        return in_netns(network.host_netns, pick)
    except OSError as e:
        raise NetworkError(f"network {network.name!r}: picking a free host port: {e}") from None


HOSTS_PARTS = "hosts.d"  # in a container's state directory: its /etc/hosts per network


def _replace_text(path: str, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _assemble_hosts(directory: str) -> None:
    """A container's /etc/hosts (``directory/hosts``, rewritten in place: it
    is bind-mounted) from its networks' parts, in the order it joined them
    (``.order``; its own name resolves to its first network's address)."""
    from .rootfs import HOSTS_HEADER

    parts = os.path.join(directory, HOSTS_PARTS)
    try:
        with open(os.path.join(parts, ".order"), encoding="utf-8") as f:
            order = [line.strip() for line in f if line.strip()]
    except FileNotFoundError:
        order = []
    present = sorted(n for n in os.listdir(parts) if not n.startswith("."))
    body = []
    for name in dict.fromkeys([*(n for n in order if n in present), *present]):
        with contextlib.suppress(FileNotFoundError), open(os.path.join(parts, name), encoding="utf-8") as f:
            body.append(f.read())
    fd = os.open(os.path.join(directory, "hosts"), os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    _overwrite(fd, HOSTS_HEADER + "".join(body))


def _overwrite(fd: int, text: str) -> None:
    """A bind-mounted file (``fd``, closed here) rewritten in place: its
    inode must stay.  One that is not a regular file is left alone."""
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            os.ftruncate(fd, 0)
            os.write(fd, text.encode())
    finally:
        os.close(fd)


def _names(lease: dict[str, Any]) -> str:
    names = [lease.get("hostname") or "", lease["owner"]]
    return " ".join(dict.fromkeys(n for n in names if n))


def _member(address: str, lease: dict[str, Any]) -> Member:
    hostname = lease.get("hostname") or lease["owner"][:12]
    return Member(
        lease["owner"], address, hostname, _ports(lease.get("ports")), lease.get("address6"), lease.get("veth")
    )


def _nft_ports(address: str, ports: tuple[PortMapping, ...]) -> list[tuple[str | None, str, int, str, int]]:
    return [(p.host_ip, p.protocol, p.host_port, address, p.container_port) for p in ports]


_table_seen: dict[tuple[tuple[int, int] | None, str], float] = {}


def _free4(network: Network, leases: dict[str, dict[str, Any]]) -> str | None:
    """The lowest address of the subnet's hosts that is neither the gateway's nor leased."""
    net = _subnet4(network.subnet)
    if net.prefixlen >= 31:  # (hosts() of a /31 or /32 is every address)
        hosts = range(int(net.network_address), int(net.broadcast_address) + 1)
    else:
        hosts = range(int(net.network_address) + 1, int(net.broadcast_address))
    for n in hosts:
        # (inet_ntoa: a hundred times faster than an IPv4Address per candidate)
        a = socket.inet_ntoa(n.to_bytes(4, "big"))
        if a != network.gateway and a not in leases:
            return a
    return None


@functools.lru_cache(maxsize=64)
def _subnet4(subnet: str) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network(subnet)


def _free6(network: Network, leases: dict[str, dict[str, Any]]) -> str:
    net = ipaddress.IPv6Network(network.subnet6)
    used = {ipaddress.IPv6Address(v["address6"]) for v in leases.values() if v.get("address6")}
    addr = net.network_address + 2  # +1 is the gateway
    while addr in used:
        addr += 1
    if addr not in net or addr == net.broadcast_address:
        raise NetworkError(f"network {network.name!r} has no free IPv6 address left ({network.subnet6})")
    return str(addr)


def _check_subnet6(name: str, subnet: str) -> ipaddress.IPv6Network:
    try:
        net = ipaddress.ip_network(subnet)
    except (ValueError, TypeError) as e:
        raise NetworkError(f"subnet {subnet!r} of network {name!r}: {e}") from None
    if not isinstance(net, ipaddress.IPv6Network):
        raise NetworkError(f"subnet6 {net} of network {name!r} is no IPv6 range")
    if net.is_loopback or net.is_multicast or net.is_link_local or net.is_unspecified or net.prefixlen > 126:
        raise NetworkError(
            f"subnet {net} of network {name!r} is no range a bridge can route (loopback, multicast, ...)"
        )
    return net


def _check_subnet(name: str, subnet: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.ip_network(subnet)
    except (ValueError, TypeError) as e:
        raise NetworkError(f"subnet {subnet!r} of network {name!r}: {e}") from None
    if not isinstance(net, ipaddress.IPv4Network):
        raise NetworkError(f"subnet {net} of network {name!r}: IPv4 only, for now")
    bad = net.is_loopback or net.is_multicast or net.is_link_local or net.is_unspecified or net.is_reserved
    if bad:
        raise NetworkError(
            f"subnet {net} of network {name!r} is no range a bridge can route (loopback, multicast, ...)"
        )
    if net.num_addresses < 4:
        raise NetworkError(f"subnet {net} of network {name!r} has no room for a gateway and a container")
    return net


__all__ = [
    "DEFAULT_NETWORK",
    "DEFAULT_POOL",
    "Attachment",
    "Member",
    "Network",
    "NetworkStore",
    "PortMapping",
    "apply_network_mode",
    "attachment",
    "connect",
    "endpoint",
]
