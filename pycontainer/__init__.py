"""pycontainer: Docker's engine room as an importable Python library.

>>> from pycontainer import Container, ContainerConfig, Process, PIPE
>>> cfg = ContainerConfig(process=Process(args=["echo", "hello"]))
>>> with Container.run("/tmp/pyc-doc", "demo", cfg, stdout=PIPE) as c:
...     out, _ = c.communicate()
>>> out
b'hello\\n'
"""

import typing as _typing

from ._process import DEVNULL, PIPE, STDOUT, ExecProcess, ExitStatus
from . import cgroups
from .cgroups import Stats
from .config import (
    DEFAULT_CAPABILITIES,
    DEFAULT_DEVICE_RULES,
    DEFAULT_MASKED_PATHS,
    DEFAULT_NAMESPACES,
    DEFAULT_READONLY_PATHS,
    Capabilities,
    ContainerConfig,
    Device,
    DeviceRule,
    Hook,
    Hooks,
    HugepageLimit,
    IDMap,
    Mount,
    Namespace,
    NamespaceType,
    Process,
    Resources,
    Rlimit,
    SeccompProfile,
    SyscallArg,
    SyscallRule,
    ThrottleDevice,
    User,
    WeightDevice,
)
from .container import Container, State, Status, list_containers, state_root
from .errors import (
    CgroupError,
    ConfigError,
    ContainerExists,
    ContainerNotFound,
    HookError,
    ImageError,
    InitError,
    InvalidStateTransition,
    MountError,
    NetworkError,
    PyContainerError,
    ReadinessError,
)
from .logs import LogConfig
from .rootfs import default_rootfs

if _typing.TYPE_CHECKING:
    from . import aio

__version__ = "0.1.0"


def __getattr__(name: str) -> _typing.Any:
    # pycontainer.aio is imported on first use: asyncio costs every
    # importer some 20 ms (the CLIs among them) that most never need.
    if name == "aio":
        import importlib

        return importlib.import_module(".aio", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_CAPABILITIES",
    "DEFAULT_DEVICE_RULES",
    "DEFAULT_MASKED_PATHS",
    "DEFAULT_NAMESPACES",
    "DEFAULT_READONLY_PATHS",
    "DEVNULL",
    "PIPE",
    "STDOUT",
    "Capabilities",
    "CgroupError",
    "ConfigError",
    "Container",
    "ContainerConfig",
    "ContainerExists",
    "ContainerNotFound",
    "Device",
    "DeviceRule",
    "ExecProcess",
    "ExitStatus",
    "Hook",
    "Hooks",
    "HookError",
    "HugepageLimit",
    "IDMap",
    "ImageError",
    "InitError",
    "InvalidStateTransition",
    "LogConfig",
    "Mount",
    "MountError",
    "Namespace",
    "NamespaceType",
    "NetworkError",
    "Process",
    "PyContainerError",
    "ReadinessError",
    "Resources",
    "Rlimit",
    "SeccompProfile",
    "State",
    "Stats",
    "Status",
    "SyscallArg",
    "SyscallRule",
    "ThrottleDevice",
    "User",
    "WeightDevice",
    "aio",
    "cgroups",
    "default_rootfs",
    "list_containers",
    "state_root",
]
