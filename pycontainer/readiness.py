"""Waiting until a container is ready to be used.

A *probe* says what ready means, each with its own timeout (None: the one
:func:`wait_ready` is given, 30 s by default):

- :class:`TCPPort`: a TCP port accepts a connection.  On a bridge network
  the connection goes to the container's address from the network's host
  side (its ``host_netns``, the namespace its bridge lives in: a throwaway
  one in tests); with any other network mode, to 127.0.0.1 inside the
  container's own network namespace.
- :class:`LogLine`: a line of the container's log (``log=LogConfig(...)``)
  matches a regular expression.
- :class:`Command`: a command run inside (:meth:`Container.exec`) exits 0.

:func:`wait_ready` waits for each probe in turn.  When a probe's timeout
passes, or the container exits first, it raises
:class:`~pycontainer.errors.ReadinessError`, which names what was waited
for, why waiting ended, and the container's last log lines.

Probing a port from outside is not free for every server: a ``nc -l``
serves one connection and exits; give it a loop, or probe with a
:class:`Command` or a :class:`LogLine` instead.
"""

from __future__ import annotations

import abc
import ipaddress
import re
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import attrs

from ._process import DEVNULL, PIPE, STDOUT, ExitStatus
from .errors import ConfigError, InitError, InvalidStateTransition, PyContainerError, ReadinessError

if TYPE_CHECKING:
    from .container import Container

LOG_TAIL = 20  # log lines a ReadinessError shows
DEFAULT_TIMEOUT = 30.0  # seconds, for a probe that gives none


def _timeout(_inst: object, attribute: attrs.Attribute[float | None], value: float | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigError(f"ready.{attribute.name}", f"{value!r} is not a number of seconds > 0")


class Probe(abc.ABC):
    """What ready means; subclasses are :class:`TCPPort`, :class:`LogLine`
    and :class:`Command`."""

    timeout: float | None  # None: wait_ready's default

    @abc.abstractmethod
    def describe(self, container: Container) -> str:
        """What is waited for, in words (for errors)."""

    @abc.abstractmethod
    def poll(self, container: Container, deadline: float) -> tuple[bool, str]:
        """One look (which may take until ``deadline``, a time.monotonic()
        value): is the container ready, and what the look saw if it is
        worth telling ("" if not)."""


@attrs.frozen
class TCPPort(Probe):
    """``port`` accepts a TCP connection.  ``host``: the address to connect
    to instead of the container's own (on a bridge network the connection
    still starts in the network's host namespace; otherwise in the
    container's network namespace)."""

    port: int = attrs.field()
    timeout: float | None = attrs.field(default=None, validator=_timeout)
    host: str | None = attrs.field(default=None)

    @port.validator
    def _port(self, _attribute: object, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
            raise ConfigError("ready.port", f"{value!r} is not a port (1..65535)")

    @host.validator
    def _host(self, _attribute: object, value: str | None) -> None:
        if value is not None:
            try:
                ipaddress.ip_address(value)
            except ValueError:
                raise ConfigError("ready.host", f"{value!r} is not an IP address") from None

    def describe(self, container: Container) -> str:
        from .network import attachment, endpoint

        host, _, netns = endpoint(container, self.port, published=False, host=self.host)
        if attachment(container) is None:
            where = " in the container's network namespace"
        else:
            where = "" if netns is None else f" (from the network namespace {netns})"
        return f"TCP port {self.port} on {host} to accept a connection{where}"

    def poll(self, container: Container, deadline: float) -> tuple[bool, str]:
        from .network import connect

        try:
            # Straight to the container's address: its published port, if
            # any, is a rule of the host's that needs no waiting for.
            timeout = max(0.05, min(1.0, deadline - time.monotonic()))
            connect(container, self.port, timeout=timeout, published=False, host=self.host).close()
        except (FileNotFoundError, ProcessLookupError):
            return False, ""  # its network namespace is gone with it (wait_ready tells)
        except OSError as e:
            return False, f"the last try: {e.strerror or e}"
        return True, ""


@attrs.frozen
class LogLine(Probe):
    """A line of the container's log matches ``pattern`` (a regular
    expression, searched in each line's text, or a compiled one);
    ``stream``: ``"stdout"`` or ``"stderr"`` only.  The container must have
    been created with ``log=LogConfig(...)``."""

    pattern: str | re.Pattern[str] = attrs.field()
    timeout: float | None = attrs.field(default=None, validator=_timeout)
    stream: str | None = attrs.field(default=None)

    @pattern.validator
    def _pattern(self, _attribute: object, value: str | re.Pattern[str]) -> None:
        if isinstance(value, str):
            try:
                re.compile(value)
            except re.error as e:
                raise ConfigError("ready.pattern", f"{value!r} is not a regular expression: {e}") from None
        elif not isinstance(value, re.Pattern):
            raise ConfigError("ready.pattern", f"a regular expression, not {type(value).__name__}")

    @property
    def regex(self) -> re.Pattern[str]:
        return self.pattern if isinstance(self.pattern, re.Pattern) else re.compile(self.pattern)

    @stream.validator
    def _stream(self, _attribute: object, value: str | None) -> None:
        if value not in (None, "stdout", "stderr"):
            raise ConfigError("ready.stream", f"{value!r} is not stdout or stderr")

    def describe(self, container: Container) -> str:
        where = f" {self.stream}" if self.stream else ""
        return f"a line of its{where} log to match {self.regex.pattern!r}"

    def poll(self, container: Container, deadline: float) -> tuple[bool, str]:
        from . import logs

        # Followed until a line matches, the deadline passes, or the output
        # ends (the container exited, or closed its stdout and stderr).
        for entry in logs.read(container.dir, follow=True, stop=lambda: time.monotonic() >= deadline):
            if self.stream is not None and entry.stream != self.stream:
                continue
            if self.regex.search(entry.data.decode("utf-8", "replace").rstrip("\n")):
                return True, ""
        return False, ""


def _args_tuple(value: Iterable[str]) -> tuple[str, ...]:
    # (a named converter: mypy's attrs support reads its type, not tuple's)
    return tuple(value)


@attrs.frozen
class Command(Probe):
    """``args`` run inside the container (:meth:`Container.exec`, with the
    container's environment) exit 0; tried again until then, each try
    killed at the deadline."""

    args: tuple[str, ...] = attrs.field(converter=_args_tuple)
    timeout: float | None = attrs.field(default=None, validator=_timeout)

    @args.validator
    def _args(self, _attribute: object, value: tuple[str, ...]) -> None:
        if not value or not all(isinstance(a, str) for a in value):
            raise ConfigError("ready.args", f"a command is a non-empty list of strings, not {value!r}")

    def describe(self, container: Container) -> str:
        return f"the command {list(self.args)!r} to exit 0"

    def poll(self, container: Container, deadline: float) -> tuple[bool, str]:
        try:
            p = container.exec(list(self.args), stdin=DEVNULL, stdout=PIPE, stderr=STDOUT)
        except InvalidStateTransition:
            return False, ""  # it stopped (wait_ready tells)
        except InitError as e:
            return False, f"the command could not run: {e}"
        with p:
            try:
                out, _ = p.communicate(timeout=max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                return False, "the last try did not finish in time"
            status = p.wait()
        if status.code == 0:
            return True, ""
        text = (out or b"").decode("utf-8", "replace").strip()
        return False, f"the last try ended with {_status_words(status)}" + (f": {text[-500:]}" if text else "")


def _status_words(status: ExitStatus) -> str:
    if status.code is None and status.signal is None:
        return "a status only its creator knows"
    if status.signal is not None:
        return f"signal {status.signal}" + (" (OOM-killed)" if status.oom_killed else "")
    return f"code {status.code}"


def log_tail(container: Container, lines: int = LOG_TAIL) -> list[str]:
    """The last ``lines`` lines of the container's log, as ``stream: text``
    (one line saying so when it has no log)."""
    try:
        return [f"{e.stream}: {e.data.decode('utf-8', 'replace').rstrip()}" for e in container.logs(tail=lines)]
    except PyContainerError:
        return ["(no log: the container was created without log=LogConfig(...))"]


def wait_ready(
    container: Container,
    probes: Probe | Sequence[Probe],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    interval: float = 0.05,
) -> None:
    """Wait for each probe in turn, each up to its own timeout (``timeout``
    seconds for a probe that gives none).  Raises
    :class:`~pycontainer.errors.ReadinessError` when a timeout passes or
    the container exits first; ``ConfigError`` for a log probe on a
    container without a log."""
    if isinstance(probes, Probe):
        probes = [probes]
    for probe in probes:
        if not isinstance(probe, Probe):
            raise ConfigError("ready", f"{probe!r} is not a readiness probe (TCPPort, LogLine, Command)")
        if isinstance(probe, LogLine):
            try:
                next(iter(container.logs(tail=0)), None)
            except PyContainerError:
                raise ConfigError("ready", "a LogLine probe needs a container made with log=LogConfig(...)") from None
        _wait(container, probe, timeout if probe.timeout is None else probe.timeout, interval)


def _wait(container: Container, probe: Probe, timeout: float, interval: float) -> None:
    from .container import Status

    deadline = time.monotonic() + timeout
    note = ""
    while True:
        ready, seen = probe.poll(container, deadline)
        if ready:
            return
        left = deadline - time.monotonic()
        if seen and (left > 0 or not note):  # (a try cut short by the deadline tells little)
            note = seen
        stopped = container.status is Status.STOPPED
        if stopped or left <= 0:
            break
        time.sleep(min(interval, left))
    status = None
    if stopped:
        status = container.wait()
        reason = f"it exited first, with {_status_words(status)}"
    else:
        reason = f"not within {timeout:g} s"
    if note:
        reason += f" ({note})"
    raise ReadinessError(container.id, probe.describe(container), reason, log_tail(container), status)


__all__ = [
    "DEFAULT_TIMEOUT",
    "LOG_TAIL",
    "Command",
    "LogLine",
    "Probe",
    "ReadinessError",
    "TCPPort",
    "log_tail",
    "wait_ready",
]
