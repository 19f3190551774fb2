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
from typing import Any

import attrs

from .config import ContainerConfig, Namespace, NamespaceType
from .errors import ContainerNotFound, NetworkError


def apply_network_mode(config: ContainerConfig, mode: str, root: str) -> ContainerConfig:
    """The config with its network namespace set as ``mode`` says."""
    others = [n for n in config.namespaces if n.type is not NamespaceType.NETWORK]
    if mode == "none":
        return attrs.evolve(config, namespaces=[*others, Namespace(NamespaceType.NETWORK)])
    if mode == "host":
        return attrs.evolve(config, namespaces=others)
    if mode.startswith("container:"):
        from .container import Container, Status

        cid = mode.partition(":")[2]
        try:
            other = Container.load(root, cid)
        except ContainerNotFound:
            raise NetworkError(f"network {mode!r}: no container {cid!r} under {root}") from None
        try:
            if other.status not in (Status.CREATED, Status.RUNNING, Status.PAUSED) or not other.pid:
                raise NetworkError(f"network {mode!r}: container {cid!r} is not running")
            path = f"/proc/{other.pid}/ns/net"
        finally:
            other.close()
        return attrs.evolve(config, namespaces=[*others, Namespace(NamespaceType.NETWORK, path=path)])
    raise NetworkError(f"{mode!r} is not a network mode (none, host, container:<id>)")


# ---- named networks and their addresses (IPAM) --------------------------------------

_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$")
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
    (``<root>/.networks/``), safe for several processes at once: every
    change holds one flock and files are replaced atomically."""

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

    def _path(self, name: str, suffix: str) -> str:
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise NetworkError(f"{name!r} is not a network name")
        return os.path.join(self.dir, f"{name}.{suffix}")

    def _write(self, path: str, data: object) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".tmp-")
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
        os.replace(tmp, path)

    def _read(self, path: str) -> Any:
        with open(path, encoding="utf-8") as f:
            return json.load(f)

    # ---- networks --------------------------------------------------------------------

    def create(self, name: str, subnet: str | None = None) -> Network:
        """A new network; without ``subnet``, the first free /24 of 10.89.0.0/16.
        NetworkError for a name taken, a subnet overlapping another network's,
        or one too small for a gateway and a container."""
        path = self._path(name, "json")
        with self._locked():
            if os.path.exists(path):
                raise NetworkError(f"network {name!r} exists already")
            taken = [ipaddress.ip_network(n.subnet) for n in self._list()]
            if subnet is None:
                net = next(
                    (s for s in DEFAULT_POOL.subnets(new_prefix=24) if not any(s.overlaps(t) for t in taken)), None
                )
                if net is None:
                    raise NetworkError(f"no free /24 left in {DEFAULT_POOL} for network {name!r}")
            else:
                try:
                    net = ipaddress.ip_network(subnet)
                except ValueError as e:
                    raise NetworkError(f"subnet {subnet!r} of network {name!r}: {e}") from None
                clash = next((n for n in self._list() if ipaddress.ip_network(n.subnet).overlaps(net)), None)
                if clash is not None:
                    raise NetworkError(
                        f"subnet {net} of network {name!r} overlaps network {clash.name!r} ({clash.subnet})"
                    )
                if net.num_addresses < 4:
                    raise NetworkError(f"subnet {net} of network {name!r} has no room for a gateway and a container")
            network = Network(
                name=name,
                subnet=str(net),
                gateway=str(next(net.hosts())),
                bridge="pcbr-" + hashlib.sha256(f"{self.dir}/{name}".encode()).hexdigest()[:8],
            )
            self._write(path, attrs.asdict(network))
            self._write(self._path(name, "leases"), {})
        return network

    def _list(self) -> list[Network]:
        out = []
        for entry in sorted(os.listdir(self.dir)):
            if entry.endswith(".json") and not entry.startswith("."):
                with contextlib.suppress(OSError, ValueError, TypeError):
                    out.append(Network(**self._read(os.path.join(self.dir, entry))))
        return out

    def list(self) -> list[Network]:
        return self._list()

    def get(self, name: str) -> Network:
        try:
            return Network(**self._read(self._path(name, "json")))
        except FileNotFoundError:
            raise NetworkError(f"no network {name!r}") from None

    def leases(self, name: str) -> dict[str, str]:
        """address -> owner (a container's id) on the network."""
        self.get(name)
        return dict(self._read(self._path(name, "leases")))

    def remove(self, name: str) -> None:
        """Remove a network no container uses."""
        with self._locked():
            self.get(name)
            leases = self._read(self._path(name, "leases"))
            if leases:
                raise NetworkError(f"network {name!r} is in use by {', '.join(sorted(leases.values()))}")
            os.unlink(self._path(name, "json"))
            os.unlink(self._path(name, "leases"))

    # ---- addresses --------------------------------------------------------------------

    def allocate(self, name: str, owner: str) -> str:
        """The lowest free address of the network for ``owner`` (the same one
        again if it holds one already).  NetworkError when none is left."""
        with self._locked():
            network = self.get(name)
            leases: dict[str, str] = self._read(self._path(name, "leases"))
            for addr, who in leases.items():
                if who == owner:
                    return addr
            net = ipaddress.ip_network(network.subnet)
            for host in net.hosts():
                addr = str(host)
                if addr != network.gateway and addr not in leases:
                    leases[addr] = owner
                    self._write(self._path(name, "leases"), leases)
                    return addr
            raise NetworkError(f"network {name!r} has no free address left ({network.subnet})")

    def release(self, name: str, owner: str) -> None:
        """Give back ``owner``'s address (no error if it holds none)."""
        with self._locked():
            path = self._path(name, "leases")
            try:
                leases = self._read(path)
            except FileNotFoundError:
                return
            kept = {a: w for a, w in leases.items() if w != owner}
            if kept != leases:
                self._write(path, kept)


__all__ = ["DEFAULT_POOL", "Network", "NetworkStore", "apply_network_mode"]
