"""The exception tree.  Everything pycontainer raises derives from PyContainerError."""

from __future__ import annotations

import errno as _errno
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._process import ExitStatus


class PyContainerError(Exception):
    """Root of every error pycontainer raises."""


class ConfigError(PyContainerError, ValueError):
    """A configuration value is invalid; names the field and the reason."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


class ContainerNotFound(PyContainerError, LookupError):
    """No container ``id`` under the state root ``root``."""

    def __init__(self, container_id: str, root: str) -> None:
        self.id = container_id
        self.root = root
        super().__init__(f"container {container_id!r} does not exist under {root}")


class ContainerExists(PyContainerError):
    """A container ``id`` exists under ``root`` already (create, rename)."""

    def __init__(self, container_id: str, root: str) -> None:
        self.id = container_id
        self.root = root
        super().__init__(f"container {container_id!r} already exists under {root}")


class InvalidStateTransition(PyContainerError):
    """An operation is not allowed in the container's current status."""

    def __init__(self, container_id: str, from_: str, to: str, action: str) -> None:
        self.id = container_id
        self.from_ = from_
        self.to = to
        self.action = action
        super().__init__(f"cannot {action} container {container_id!r}: it is {from_}")


class InitError(PyContainerError):
    """A step of the container's setup failed inside the child.

    ``step`` names the plan operation (``mount``, ``exec``, ...), ``path`` the
    file or name it worked on, ``errno`` the kernel's error number.
    """

    def __init__(self, step: str, path: str, errno: int, index: int = -1) -> None:
        self.step = step
        self.path = path
        self.errno = errno
        self.index = index
        name = _errno.errorcode.get(errno, str(errno))
        where = f" {path!r}" if path else ""
        super().__init__(f"container setup failed at {step}{where}: {name} ({os.strerror(errno)})")


class HookError(PyContainerError):
    """A hook failed: ``kind`` (``create_runtime``, ...), its ``index`` in
    that list, its ``path``, why (``reason``: an exit status, a signal, a
    timeout, or that it could not be run) and what it wrote (``output``,
    the last 4 KiB of its stdout and stderr)."""

    def __init__(self, kind: str, index: int, path: str, reason: str, output: str = "") -> None:
        self.kind = kind
        self.index = index
        self.path = path
        self.reason = reason
        self.output = output
        tail = f": {output.strip()}" if output.strip() else ""
        super().__init__(f"hooks.{kind}[{index}] {path!r} {reason}{tail}")


class MountError(PyContainerError):
    """A mount of the container's set-up failed: ``op``, ``source``, ``target`` and ``errno``."""

    def __init__(self, op: str, source: str, target: str, errno: int) -> None:
        self.op = op
        self.source = source
        self.target = target
        self.errno = errno
        super().__init__(f"{op} {source!r} on {target!r}: {os.strerror(errno)}")


class CgroupError(PyContainerError):
    """A cgroup could not be made, changed, read or removed."""


class ImageError(PyContainerError):
    """An image, a layer, an archive or a registry was bad or refused."""


class NetworkError(PyContainerError):
    """A network mode, a bridge network, an address or a published port was bad or refused."""


class ReadinessError(PyContainerError):
    """A container did not become ready (see :mod:`pycontainer.readiness`):
    ``container_id``, what was waited for (``waited_for``), why waiting
    ended (``reason``: the timeout, or the container's exit), its
    ``exit_status`` if it exited first (else None) and the last lines of
    its log (``log_tail``)."""

    def __init__(
        self,
        container_id: str,
        waited_for: str,
        reason: str,
        log_tail: Sequence[str] = (),
        exit_status: ExitStatus | None = None,
    ) -> None:
        self.container_id = container_id
        self.waited_for = waited_for
        self.reason = reason
        self.log_tail = tuple(log_tail)
        self.exit_status = exit_status
        lines = "".join(f"\n  {line}" for line in self.log_tail)
        tail = f"\nits last {len(self.log_tail)} log lines:{lines}" if self.log_tail else "\nits log is empty"
        super().__init__(f"container {container_id!r} is not ready: waited for {waited_for}: {reason}{tail}")


__all__ = [
    "CgroupError",
    "ConfigError",
    "ContainerExists",
    "ContainerNotFound",
    "HookError",
    "ImageError",
    "InitError",
    "InvalidStateTransition",
    "MountError",
    "NetworkError",
    "PyContainerError",
    "ReadinessError",
]
