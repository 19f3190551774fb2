"""pycontainer: Docker's engine room as an importable Python library.

>>> from pycontainer import Container, ContainerConfig, Process, PIPE
>>> cfg = ContainerConfig(process=Process(args=["echo", "hello"]))
>>> with Container.run("/tmp/pyc-doc", "demo", cfg, stdout=PIPE) as c:
...     out, _ = c.communicate()
>>> out
b'hello\\n'
"""

from ._process import DEVNULL, PIPE, STDOUT, ExecProcess, ExitStatus
from .config import (
    DEFAULT_MASKED_PATHS,
    DEFAULT_NAMESPACES,
    DEFAULT_READONLY_PATHS,
    ContainerConfig,
    IDMap,
    Mount,
    Namespace,
    NamespaceType,
    Process,
    User,
)
from .container import Container, State, Status, list_containers, state_root
from .errors import (
    CgroupError,
    ConfigError,
    ContainerExists,
    ContainerNotFound,
    ImageError,
    InitError,
    InvalidStateTransition,
    MountError,
    NetworkError,
    PyContainerError,
)
from .rootfs import default_rootfs

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_MASKED_PATHS",
    "DEFAULT_NAMESPACES",
    "DEFAULT_READONLY_PATHS",
    "DEVNULL",
    "PIPE",
    "STDOUT",
    "CgroupError",
    "ConfigError",
    "Container",
    "ContainerConfig",
    "ContainerExists",
    "ContainerNotFound",
    "ExecProcess",
    "ExitStatus",
    "IDMap",
    "ImageError",
    "InitError",
    "InvalidStateTransition",
    "Mount",
    "MountError",
    "Namespace",
    "NamespaceType",
    "NetworkError",
    "Process",
    "PyContainerError",
    "State",
    "Status",
    "User",
    "default_rootfs",
    "list_containers",
    "state_root",
]
