"""Network modes, as ``docker run --network``: ``none`` (a network
namespace of its own with only ``lo``, up), ``host`` (no network namespace:
the host's), and ``container:<id>`` (the network namespace of another,
running container under the same state root).  Bridge networks come next
(issue 5)."""

from __future__ import annotations

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


__all__ = ["apply_network_mode"]
