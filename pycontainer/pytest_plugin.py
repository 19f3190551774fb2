"""The pytest plugin: throwaway containers as fixtures, with no daemon.

Registered through the ``pytest11`` entry point ``pycontainer``, so
installing pycontainer is enough (``-p no:pycontainer`` turns it off).  It
gives four fixtures, one per scope, each a :class:`ContainerFactory`:

- ``pycontainer``: containers removed at the end of the test;
- ``pycontainer_class``, ``pycontainer_module``, ``pycontainer_session``:
  at the end of the class, module or session (per xdist worker);

and ``pycontainer_settings``, the session's :class:`Settings` (state root,
data root, default network, readiness timeout) from the command line and
the ini file::

    def test_web(pycontainer):
        web = pycontainer(command=["httpd", "-f", "-p", "80"], network="lan",
                          ports=[80], ready=TCPPort(80))
        with web.connect(80) as s:
            ...

A factory call creates and starts a container (from an image, a rootfs
directory, or the built-in busybox image), waits until it is ready (see
:mod:`pycontainer.readiness`) and returns a :class:`RunningContainer`.  At
the end of the scope, whatever the outcome, every container the factory made
is deleted by force (its processes, cgroup, veth, lease, published ports and
state directory go; the library's ``Container.delete``).  A container that
fails to become ready is deleted at once, and the ``ReadinessError`` shows
its last log lines.

Everything here is the library's: this module only turns fixtures and
options into its calls.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs
import pytest

from .readiness import DEFAULT_TIMEOUT

if TYPE_CHECKING:
    from .config import ContainerConfig, Mount
    from .container import Container
    from .logs import LogConfig
    from .network import Attachment, PortMapping
    from .readiness import Probe

_OPTIONS = (
    # option, ini name, metavar, help
    ("--pycontainer-root", "pycontainer_root", "DIR", "state root of the fixtures' containers and networks "
     "(default: $PYCONTAINER_ROOT or /run/pycontainer)"),
    ("--pycontainer-data-root", "pycontainer_data_root", "DIR", "images, layers and volumes "
     "(default: $PYCONTAINER_DATA_ROOT or /var/lib/pycontainer)"),
    ("--pycontainer-network", "pycontainer_network", "NAME", "the network containers join unless a call names one "
     "(none, host, container:<id>, or a bridge network's name; default: a network namespace of their own)"),
    ("--pycontainer-timeout", "pycontainer_timeout", "SECONDS", "seconds a readiness probe waits unless it says (default 30)"),
)  # fmt: skip


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pycontainer", "pycontainer fixtures (pycontainer, pycontainer_module, ...)")
    for option, ini, metavar, text in _OPTIONS:
        group.addoption(option, dest=ini, default=None, metavar=metavar, help=text)
        parser.addini(ini, text, default=None)


@attrs.frozen
class Settings:
    """What the fixtures use: ``root`` (state root; None: the library's
    default), ``data_root`` (image store and volumes; None: default),
    ``network`` (the network of containers whose call names none; None: a
    network namespace of their own with only ``lo``), ``timeout`` (seconds
    for a readiness probe that gives none) and ``worker`` (the xdist worker
    id, ``gw0``...; "" without xdist), which container ids carry."""

    root: str | None = None
    data_root: str | None = None
    network: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    worker: str = ""


def settings_from(config: pytest.Config) -> Settings:
    """The settings of a pytest run: command-line options first, then the
    ini file; ``ConfigError`` for a timeout that is not a number > 0."""
    from .errors import ConfigError

    values: dict[str, str | None] = {}
    for _, ini, _, _ in _OPTIONS:
        value = config.getoption(ini)
        if value is None:
            value = config.getini(ini)
        values[ini] = str(value) if value else None
    timeout = DEFAULT_TIMEOUT
    if values["pycontainer_timeout"] is not None:
        try:
            timeout = float(values["pycontainer_timeout"])
        except ValueError:
            timeout = -1.0
        if not timeout > 0:
            raise ConfigError(
                "pycontainer_timeout", f"{values['pycontainer_timeout']!r} is not a number of seconds > 0"
            )
    return Settings(
        root=values["pycontainer_root"],
        data_root=values["pycontainer_data_root"],
        network=values["pycontainer_network"],
        timeout=timeout,
        worker=os.environ.get("PYTEST_XDIST_WORKER", ""),
    )


@attrs.frozen
class ExecResult:
    """What :meth:`RunningContainer.exec` gives: the exit code (None when a
    signal ended it: see ``signal``), and its stdout and stderr."""

    exit_code: int | None
    stdout: bytes
    stderr: bytes
    signal: int | None = None


class RunningContainer:
    """A container a factory started and will remove: the library's
    :class:`~pycontainer.Container` (``container``) with what a test wants
    at hand: its network place (``address``, ``host_port()``, ``endpoint()``,
    ``connect()``), ``exec()``, ``logs()``, and ``remove()``."""

    def __init__(self, container: Container, name: str | None) -> None:
        self.container = container
        self.name = name

    def __repr__(self) -> str:
        return f"<RunningContainer {self.id!r}>"

    @property
    def id(self) -> str:
        return self.container.id

    @property
    def attachment(self) -> Attachment | None:
        """Its place on a bridge network (None for other network modes)."""
        from .network import attachment

        return attachment(self.container)

    def _attached(self) -> Attachment:
        from .errors import NetworkError

        att = self.attachment
        if att is None:
            raise NetworkError(f"container {self.id!r} is on no bridge network")
        return att

    @property
    def network(self) -> str | None:
        """Its bridge network's name (None: another network mode)."""
        att = self.attachment
        return None if att is None else att.network

    @property
    def address(self) -> str:
        """Its IPv4 address on its bridge network (NetworkError if it is on none)."""
        return self._attached().address

    @property
    def host_netns(self) -> str | None:
        """The network namespace its bridge lives in (None: ours), where its
        published ports answer."""
        return self._attached().host_netns

    @property
    def ports(self) -> tuple[PortMapping, ...]:
        """Its published ports, with the host ports picked for it."""
        att = self.attachment
        return () if att is None else att.ports

    def host_port(self, port: int, protocol: str = "tcp") -> int:
        """The host port its ``port`` is published on (NetworkError if it is not)."""
        return self._attached().host_port(port, protocol)

    def endpoint(self, port: int, *, published: bool = True) -> tuple[str, int]:
        """(address, port) a client on the network's host side connects to
        for its TCP ``port``: the published host port where there is one
        (see :func:`pycontainer.network.endpoint`)."""
        from .network import endpoint

        address, where, _ = endpoint(self.container, port, published=published)
        return address, where

    def connect(self, port: int, *, timeout: float = 10.0, published: bool = True) -> socket.socket:
        """A TCP connection to its ``port`` from the network's host side (the
        throwaway namespace of a network made with ``host_netns``, too)."""
        from .network import connect

        return connect(self.container, port, timeout=timeout, published=published)

    def exec(self, args: Sequence[str], *, timeout: float = 30.0, input: bytes | None = None) -> ExecResult:
        """Run ``args`` inside (``Container.exec``), wait up to ``timeout``
        seconds (TimeoutError after killing it), and give its result."""
        from ._process import DEVNULL, PIPE

        with self.container.exec(list(args), stdin=PIPE if input else DEVNULL, stdout=PIPE, stderr=PIPE) as p:
            out, err = p.communicate(input, timeout=timeout)
            status = p.wait()
        return ExecResult(status.code, out or b"", err or b"", status.signal)

    def logs(self, *, tail: int | None = None, stream: str | None = None) -> str:
        """Its log as text (stdout and stderr in order; ``stream`` only one
        of them), the last ``tail`` entries only if given."""
        return "".join(
            e.data.decode("utf-8", "replace")
            for e in self.container.logs(tail=tail)
            if stream is None or e.stream == stream
        )

    def wait_ready(self, ready: Probe | Sequence[Probe], *, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Wait again (see :func:`pycontainer.readiness.wait_ready`)."""
        from .readiness import wait_ready

        wait_ready(self.container, ready, timeout=timeout)

    @property
    def removed(self) -> bool:
        return not os.path.exists(os.path.join(self.container.dir, "state.json"))

    def remove(self) -> None:
        """Delete it now, by force (the factory does at the end of its scope).
        Removing it again does nothing."""
        from .errors import ContainerNotFound

        try:
            with contextlib.suppress(ContainerNotFound):  # (removed already)
                self.container.delete(force=True, volumes=True)  # (its anonymous volumes are the test's too)
        finally:
            self.container.close()


class ContainerFactory:
    """Call it to start a container; every one it started is removed by
    :meth:`close` (the fixture's teardown).  ``root`` and ``data_root`` are
    where (make networks with ``NetworkStore(factory.root)``)."""

    def __init__(self, settings: Settings, scope: str = "function") -> None:
        self.settings = settings
        self.scope = scope
        self._made: list[RunningContainer] = []

    @property
    def root(self) -> str:
        from .container import state_root

        return state_root(self.settings.root)

    @property
    def data_root(self) -> str | None:
        return self.settings.data_root

    def new_id(self, name: str | None = None) -> str:
        """An id no other worker or run takes: ``name`` (or ``pyc``), the
        xdist worker's id, and 8 random hex digits."""
        parts = [name or "pyc", self.settings.worker, os.urandom(4).hex()]
        return "-".join(p for p in parts if p)

    def __call__(
        self,
        image: str | None = None,
        command: Sequence[str] | None = None,
        *,
        rootfs: str | None = None,
        name: str | None = None,
        env: Mapping[str, str] | Sequence[str] | None = None,
        ports: Sequence[int | str | PortMapping] = (),
        volumes: Mapping[str, str] | None = None,
        mounts: Sequence[Mount] = (),
        memory: int | str | None = None,
        pids: int | None = None,
        cpus: float | None = None,
        network: str | None = None,
        ready: Probe | Sequence[Probe] = (),
        timeout: float | None = None,
        hostname: str | None = None,
        workdir: str | None = None,
        user: str | int | None = None,
        entrypoint: Sequence[str] | None = None,
        config: ContainerConfig | None = None,
        log: LogConfig | None = None,
    ) -> RunningContainer:
        """Create and start a container, wait until it is ready, return it.

        ``image`` (a reference in the store under the data root) or
        ``rootfs`` (a directory); neither: the built-in busybox image.
        ``command`` replaces the image's Cmd (``entrypoint`` its
        Entrypoint).  ``name``: the start of its id (then the xdist worker
        and a random part) and its hostname, by which the other members of
        its network reach it.  ``env``: a mapping or ``K=V`` strings.
        ``ports``: published ports on a bridge ``network``: a number (a free
        host port, on every host address, as ``docker run -p 80``), Docker's
        ``-p`` strings (``"127.0.0.1::80"``, ``"8080:80"``) or PortMappings.
        ``volumes``: ``{source: "dest[:ro]"}``, a source being an absolute
        host path (bound) or a named volume.  ``mounts``: more ``Mount``\\ s.
        ``memory`` (bytes or ``"64m"``), ``pids`` and ``cpus``: limits.
        ``network``: as ``Container.create``'s (default: the
        ``--pycontainer-network`` option).  ``ready``: probes waited for in
        turn, each up to its timeout or ``timeout`` (default: the
        ``--pycontainer-timeout`` option).  ``config``: a base config the
        other arguments change.  ``log``: the json-file log's rotation
        (every container has a log: readiness errors show it).

        Bad arguments raise the library's typed errors (ConfigError,
        NetworkError, ImageError...), with nothing left behind; so does a
        container that is not ready (ReadinessError), which is removed."""
        from ._process import DEVNULL
        from .container import Container
        from .logs import LogConfig
        from .readiness import wait_ready

        if hostname is None and (config is None or config.hostname is None):
            hostname = name
        cfg = _config(
            config, image, rootfs, command, env, volumes, mounts, memory, pids, cpus, hostname, workdir, user,
            entrypoint,
        )  # fmt: skip
        net = network if network is not None else self.settings.network
        container = Container.create(
            self.settings.root,
            self.new_id(name),
            cfg,
            stdin=DEVNULL,
            data_root=self.settings.data_root,
            network=net,
            ports=[_port(p) for p in ports],
            log=log if log is not None else LogConfig(),
        )
        running = RunningContainer(container, name)
        self._made.append(running)
        try:
            container.start()
            wait_ready(container, ready, timeout=self.settings.timeout if timeout is None else timeout)
        except BaseException:
            try:
                running.remove()
            except Exception:  # noqa: BLE001 - the first error is the one to see
                pass  # (it stays listed: close() tries again, and raises then)
            else:
                self._made.remove(running)
            raise
        return running

    def close(self) -> None:
        """Remove every container this factory started, the last first; the
        first error is raised once all were tried."""
        from .errors import PyContainerError

        errors: list[tuple[str, Exception]] = []
        while self._made:
            running = self._made.pop()
            try:
                running.remove()
            except Exception as e:  # noqa: BLE001 - the others still go; raised below
                errors.append((running.id, e))
        if len(errors) == 1:
            raise errors[0][1]
        if errors:
            text = "; ".join(f"{cid}: {e}" for cid, e in errors)
            raise PyContainerError(f"{len(errors)} containers could not be removed: {text}") from errors[0][1]


def _port(spec: int | str | PortMapping) -> str | PortMapping:
    from .network import PortMapping

    if isinstance(spec, int) and not isinstance(spec, bool):
        return PortMapping(0, spec).checked()  # -p N: a free host port
    if isinstance(spec, (str, PortMapping)):
        return spec
    from .errors import NetworkError

    raise NetworkError(f"a published port is a number, a '-p' string or a PortMapping, not {type(spec).__name__}")


def _config(
    base: ContainerConfig | None,
    image: str | None,
    rootfs: str | None,
    command: Sequence[str] | None,
    env: Mapping[str, str] | Sequence[str] | None,
    volumes: Mapping[str, str] | None,
    mounts: Sequence[Mount],
    memory: int | str | None,
    pids: int | None,
    cpus: float | None,
    hostname: str | None,
    workdir: str | None,
    user: str | int | None,
    entrypoint: Sequence[str] | None,
) -> ContainerConfig:
    """The ContainerConfig the factory's arguments describe."""
    from .config import ContainerConfig, Mount, Process, Resources
    from .errors import ConfigError
    from .logs import parse_size

    if image is not None and rootfs is not None:
        raise ConfigError("image", "give an image or a rootfs, not both")
    if base is not None and not isinstance(base, ContainerConfig):
        raise ConfigError("config", f"a ContainerConfig, not {type(base).__name__}")
    proc: dict[str, Any] = {}
    if command is not None:
        if isinstance(command, str):
            raise ConfigError("command", f"a list of strings, not the string {command!r}")
        proc["args"] = tuple(command)
    if env is not None:
        proc["env"] = env
    if workdir is not None:
        proc["cwd"] = workdir
    if user is not None:
        proc["user"] = user
    if entrypoint is not None:
        proc["entrypoint"] = tuple(entrypoint)
    fields: dict[str, Any] = {}
    if image is not None:
        fields.update(image=image, rootfs=None)
    if rootfs is not None:
        fields.update(rootfs=rootfs, image=None)
    if hostname is not None:
        fields["hostname"] = hostname
    new_mounts = list(mounts)
    for source, spec in (volumes or {}).items():
        dest, _, mode = spec.partition(":")
        if mode not in ("", "ro", "rw"):
            raise ConfigError("volumes", f"{source!r}: {spec!r} is not DEST[:ro|rw]")
        options = (mode,) if mode else ()
        if source.startswith("/"):  # a host directory (or file)
            new_mounts.append(Mount(destination=dest, source=source, type="bind", options=("rbind", *options)))
        else:  # a named volume, made if missing
            new_mounts.append(Mount(destination=dest, source=source, type="volume", options=options))
    limits: dict[str, Any] = {}
    if memory is not None:
        if isinstance(memory, str):
            try:
                memory = parse_size(memory)
            except ConfigError as e:
                raise ConfigError("memory", e.reason) from None
        limits["memory"] = memory
    if pids is not None:
        limits["pids_limit"] = pids
    if cpus is not None:
        limits["cpus"] = cpus
    if base is None:
        # (made whole: its checks see the image and the args together)
        return ContainerConfig(
            process=Process(**{"args": (), **proc}),
            mounts=new_mounts,
            resources=Resources(**limits),
            **fields,
        )
    return attrs.evolve(
        base,
        process=attrs.evolve(base.process, **proc),
        mounts=[*base.mounts, *new_mounts],
        resources=attrs.evolve(base.resources, **limits),
        **fields,
    )


@pytest.fixture(scope="session")
def pycontainer_settings(pytestconfig: pytest.Config) -> Settings:
    """The session's settings (options ``--pycontainer-root``,
    ``--pycontainer-data-root``, ``--pycontainer-network``,
    ``--pycontainer-timeout`` and their ini names).  Override this fixture
    in a conftest to set them in code."""
    return settings_from(pytestconfig)


def _factory(settings: Settings, scope: str) -> Iterator[ContainerFactory]:
    factory = ContainerFactory(settings, scope)
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture
def pycontainer(pycontainer_settings: Settings) -> Iterator[ContainerFactory]:
    """Start containers that are removed at the end of the test."""
    yield from _factory(pycontainer_settings, "function")


@pytest.fixture(scope="class")
def pycontainer_class(pycontainer_settings: Settings) -> Iterator[ContainerFactory]:
    """Start containers that are removed at the end of the test class."""
    yield from _factory(pycontainer_settings, "class")


@pytest.fixture(scope="module")
def pycontainer_module(pycontainer_settings: Settings) -> Iterator[ContainerFactory]:
    """Start containers that are removed at the end of the test module."""
    yield from _factory(pycontainer_settings, "module")


@pytest.fixture(scope="session")
def pycontainer_session(pycontainer_settings: Settings) -> Iterator[ContainerFactory]:
    """Start containers that are removed at the end of the session (of each
    xdist worker)."""
    yield from _factory(pycontainer_settings, "session")


__all__ = [
    "ContainerFactory",
    "ExecResult",
    "RunningContainer",
    "Settings",
    "settings_from",
]
