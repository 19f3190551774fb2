"""Networks.  Modes, as ``docker run --network``: ``none`` (a network
namespace of its own with only ``lo``, up), ``host`` (no network namespace:
the host's), and ``container:<id>`` (the network namespace of another,
running container under the same state root).  Named networks and their
address leases (IPAM) for the bridge networks that come next (issue 5)."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import ipaddress
import json
import os
import re
import tempfile
from collections.abc import Iterator

import attrs

from .config import ContainerConfig, Namespace, NamespaceType
from .errors import ContainerNotFound, NetworkError


def apply_network_mode(config: ContainerConfig, mode: str, root: str) -> tuple[ContainerConfig, int | None]:
    """The config with its network namespace set as ``mode`` says, and for
    ``container:<id>`` a pidfd of that container's init: the caller checks,
    once its own child has joined, that the init is still there (had it gone
    and its pid been reused meanwhile, the path would have named another
    process's namespace)."""
    if not isinstance(mode, str):
        raise NetworkError(f"a network mode is a string (none, host, container:<id>), not {type(mode).__name__}")
    others = [n for n in config.namespaces if n.type is not NamespaceType.NETWORK]
    if mode == "none":
        return attrs.evolve(config, namespaces=[*others, Namespace(NamespaceType.NETWORK)]), None
    if mode == "host":
        return attrs.evolve(config, namespaces=others), None
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
        return attrs.evolve(config, namespaces=[*others, Namespace(NamespaceType.NETWORK, path=path)]), guard
    raise NetworkError(f"{mode!r} is not a network mode (none, host, container:<id>)")


_NAME_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}")
DEFAULT_POOL = ipaddress.ip_network("10.89.0.0/16")  # default subnets: /24s out of it


@attrs.frozen
class Network:
    """A named bridge network: its subnet, the gateway (the bridge's own
    address, the subnet's first) and the bridge's name."""

    name: str
    subnet: str
    gateway: str
    bridge: str


class NetworkStore:
    """Named networks and their address leases, kept under a state root
    (``<root>/.networks/<name>.json``, the network and its leases in one
    file), safe for several processes at once: every change holds one flock
    and replaces the file atomically (fsync'd), so a network is never half
    made."""

    def __init__(self, root: str | None = None) -> None:
        from .container import state_root

        self.dir = os.path.join(state_root(root), ".networks")
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
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".tmp-")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(data, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        dfd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def _load(self, name: str) -> tuple[Network, dict[str, str]]:
        path = self._path(name)
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
            return Network(**data["network"]), {str(a): str(o) for a, o in data["leases"].items()}
        except FileNotFoundError:
            raise NetworkError(f"no network {name!r}") from None
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as e:
            raise NetworkError(f"network {name!r}: its file {path} is damaged ({e})") from None

    def _save(self, network: Network, leases: dict[str, str]) -> None:
        self._write(self._path(network.name), {"network": attrs.asdict(network), "leases": leases})

    # ---- networks --------------------------------------------------------------------

    def create(self, name: str, subnet: str | None = None) -> Network:
        """A new network; without ``subnet``, the first free /24 of 10.89.0.0/16.
        NetworkError for a name taken, a subnet overlapping another network's,
        one that is no private IPv4 range one can route (loopback, multicast,
        link-local...), or one too small for a gateway and a container."""
        path = self._path(name)
        with self._locked():
            if os.path.exists(path):
                raise NetworkError(f"network {name!r} exists already")
            others = self._list()
            taken = [ipaddress.ip_network(n.subnet) for n in others]
            if subnet is None:
                net = next(
                    (s for s in DEFAULT_POOL.subnets(new_prefix=24) if not any(s.overlaps(t) for t in taken)), None
                )
                if net is None:
                    raise NetworkError(f"no free /24 left in {DEFAULT_POOL} for network {name!r}")
            else:
                net = _check_subnet(name, subnet)
                clash = next((n for n in others if ipaddress.ip_network(n.subnet).overlaps(net)), None)
                if clash is not None:
                    raise NetworkError(
                        f"subnet {net} of network {name!r} overlaps network {clash.name!r} ({clash.subnet})"
                    )
            network = Network(
                name=name,
                subnet=str(net),
                gateway=str(next(net.hosts())),
                bridge="pcbr-" + hashlib.sha256(f"{self.dir}/{name}".encode()).hexdigest()[:8],
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
        with self._locked():
            return self._load(name)[0]

    def leases(self, name: str) -> dict[str, str]:
        """address -> owner (a container's id) on the network."""
        with self._locked():
            return self._load(name)[1]

    def remove(self, name: str) -> None:
        """Remove a network no container uses."""
        with self._locked():
            _, leases = self._load(name)
            if leases:
                raise NetworkError(f"network {name!r} is in use by {', '.join(sorted(leases.values()))}")
            os.unlink(self._path(name))

    # ---- addresses --------------------------------------------------------------------

    def allocate(self, name: str, owner: str) -> str:
        """The lowest free address of the network for ``owner`` (a container's
        id; the same address again if it holds one already).  NetworkError
        when none is left."""
        from .errors import ConfigError
        from .validate import container_id

        try:
            container_id(owner)
        except ConfigError as e:
            raise NetworkError(f"an address on network {name!r} for {owner!r}: {e.reason}") from None
        with self._locked():
            network, leases = self._load(name)
            for addr, who in leases.items():
                if who == owner:
                    return addr
            for host in ipaddress.ip_network(network.subnet).hosts():
                addr = str(host)
                if addr != network.gateway and addr not in leases:
                    leases[addr] = owner
                    self._save(network, leases)
                    return addr
            raise NetworkError(f"network {name!r} has no free address left ({network.subnet})")

    def release(self, name: str, owner: str) -> None:
        """Give back ``owner``'s address (no error if it holds none, or the
        network is gone)."""
        with self._locked():
            try:
                network, leases = self._load(name)
            except NetworkError:
                return
            kept = {a: w for a, w in leases.items() if w != owner}
            if kept != leases:
                self._save(network, kept)


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


__all__ = ["DEFAULT_POOL", "Network", "NetworkStore", "apply_network_mode"]
