"""Container logs, as Docker's json-file driver keeps them.

A container created with ``log=LogConfig(...)`` has its stdout and stderr
(or its terminal) read by a small logger of its own (``pycontainer/_pclog``,
csrc/logger.c), a host process that needs no Python while the container
runs and outlives its creator.  It writes ``container.log`` in the
container's state directory, one JSON object per line::

    {"log": "text\\n", "stream": "stdout", "time": "2026-11-28T07:00:00.123456789Z"}

and rotates it by size (``container.log.1`` ... as Docker's ``max-size`` and
``max-file``).  :func:`read` gives the entries back, oldest first, and can
follow them until the container's output ends.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import attrs

from .errors import ConfigError, PyContainerError

LOG_NAME = "container.log"
LOCK_NAME = LOG_NAME + ".lock"
LOGGER = os.path.join(os.path.dirname(__file__), "_pclog")


def _size(_inst: object, attribute: attrs.Attribute[int], value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigError(f"log.{attribute.name}", f"{value!r} is not a whole number >= 0")


def _files(_inst: object, _attribute: object, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 1000:
        raise ConfigError("log.max_files", f"{value!r} is not a count from 1 to 1000")


@attrs.frozen
class LogConfig:
    """``max_size`` bytes per file before it rotates (0: never, as Docker's
    default), ``max_files`` files kept in all (1: the file is truncated)."""

    max_size: int = attrs.field(default=0, validator=_size)
    max_files: int = attrs.field(default=1, validator=_files)


@attrs.frozen
class LogEntry:
    stream: str  # "stdout" or "stderr"
    data: bytes  # a line with its "\n", or a part of a long one
    time: str  # RFC 3339 with nanoseconds, UTC


def parse_size(text: str) -> int:
    """Docker's ``--log-opt max-size``: 100, 10k, 20m, 1g (binary units)."""
    units = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "m": 1 << 20, "mb": 1 << 20, "g": 1 << 30, "gb": 1 << 30}
    t = text.strip().lower()
    digits = t.rstrip("kmgb")
    if not digits.isdigit() or t[len(digits) :] not in units:
        raise ConfigError("log.max_size", f"{text!r} is not a size such as 100, 10k, 20m or 1g")
    return int(digits) * units[t[len(digits) :]]


def start(directory: str, config: LogConfig, stdout_fd: int, stderr_fd: int = -1, *, then: Sequence[str] = ()) -> None:
    """Start the logger on ``stdout_fd`` (and ``stderr_fd``), writing into
    ``directory``.  Returns once it holds its lock; it runs on by itself
    (it forks and its first process exits) until both streams end, then
    execs ``then`` if given (its lock gone first).  Our copies of the fds
    stay ours to close."""
    if not os.path.exists(LOGGER):
        raise PyContainerError(f"the logger {LOGGER} is missing; reinstall pycontainer")
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        # fds 3, 4, 5 in the logger; posix_spawn's file actions dup2 them
        # into place (first up out of the way, so none clobbers another)
        sources = [stdout_fd, stderr_fd, dir_fd]
        high = 100 + max(sources)
        actions: list[tuple[int, ...]] = [
            (os.POSIX_SPAWN_DUP2, fd, high + i) for i, fd in enumerate(sources) if fd >= 0
        ]
        actions += [(os.POSIX_SPAWN_DUP2, high + i, 3 + i) for i, fd in enumerate(sources) if fd >= 0]
        actions += [(os.POSIX_SPAWN_CLOSE, high + i) for i, fd in enumerate(sources) if fd >= 0]
        devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        try:
            # (and nothing of the caller's: a pipe on our stderr would not see EOF while it runs)
            actions += [(os.POSIX_SPAWN_DUP2, devnull, n) for n in (0, 1, 2)]
            if stderr_fd < 0:
                actions.append((os.POSIX_SPAWN_CLOSE, 4))
            argv = [LOGGER, str(config.max_size), str(config.max_files), *then]
            pid = os.posix_spawn(LOGGER, argv, dict(os.environ) if then else {}, file_actions=actions)
        finally:
            os.close(devnull)
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise PyContainerError(f"the logger could not start in {directory} (status {status})")
    finally:
        os.close(dir_fd)


def writing(directory: str) -> bool:
    """Is a logger still writing to ``directory``?"""
    try:
        fd = os.open(os.path.join(directory, LOCK_NAME), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _files_oldest_first(directory: str) -> list[str]:
    rotated = []
    for name in os.listdir(directory):
        if name.startswith(LOG_NAME + ".") and name[len(LOG_NAME) + 1 :].isdigit():
            rotated.append((int(name[len(LOG_NAME) + 1 :]), name))
    names = [name for _, name in sorted(rotated, reverse=True)]
    if os.path.exists(os.path.join(directory, LOG_NAME)):
        names.append(LOG_NAME)
    return [os.path.join(directory, n) for n in names]


def _rotated_with_inodes(directory: str) -> list[tuple[str, int]]:
    out = []
    for path in _files_oldest_first(directory):
        if os.path.basename(path) != LOG_NAME:
            with contextlib.suppress(FileNotFoundError):
                out.append((path, os.stat(path).st_ino))
    return out


def _older_than(directory: str, f: Any) -> list[str]:
    """Rotated files older than the open file ``f`` (all of them if None)."""
    files = _rotated_with_inodes(directory)
    if f is None:
        return [p for p, _ in files]
    ino = os.fstat(f.fileno()).st_ino
    inodes = [i for _, i in files]
    return [p for p, _ in files[: inodes.index(ino)]] if ino in inodes else [p for p, _ in files]


def _newer_than(directory: str, f: Any) -> list[str]:
    """Rotated files newer than the open file ``f``, which has rotated."""
    files = _rotated_with_inodes(directory)
    ino = os.fstat(f.fileno()).st_ino
    inodes = [i for _, i in files]
    return [p for p, _ in files[inodes.index(ino) + 1 :]] if ino in inodes else [p for p, _ in files]


def _entry(line: bytes) -> LogEntry | None:
    try:
        # the logger passes bytes through as they came: what is not UTF-8
        # comes back as it went in, through surrogate escapes
        obj = json.loads(line.decode("utf-8", "surrogateescape"))
        return LogEntry(obj["stream"], obj["log"].encode("utf-8", "surrogateescape"), obj["time"])
    except (ValueError, KeyError, TypeError, AttributeError):
        return None  # a torn last line (a full disk): skipped, as Docker does


def read(
    directory: str,
    *,
    follow: bool = False,
    tail: int | None = None,
    poll: float = 0.05,
    stop: Callable[[], bool] | None = None,
) -> Iterator[LogEntry]:
    """The log entries in ``directory``, oldest first; ``tail``: only the
    last ones.  With ``follow``, wait for more until the logger is done (the
    container's output ended) or ``stop()`` says so, following rotation."""
    if not os.path.exists(os.path.join(directory, LOCK_NAME)):
        raise PyContainerError(f"no log in {directory}: the container was created without log=LogConfig(...)")
    current = os.path.join(directory, LOG_NAME)
    try:
        f: Any = open(current, "rb")  # noqa: SIM115 - kept open to follow
    except FileNotFoundError:
        f = None
    # the rotated files older than the one we opened (it may have rotated meanwhile)
    rotated = _older_than(directory, f)
    try:
        *lines, partial = (f.read() if f is not None else b"").split(b"\n")
        if tail is None:
            for path in rotated:
                with contextlib.suppress(FileNotFoundError), open(path, "rb") as old:
                    yield from filter(None, map(_entry, old.read().splitlines()))
        else:
            for path in reversed(rotated):
                if len(lines) >= tail:
                    break
                with contextlib.suppress(FileNotFoundError), open(path, "rb") as old:
                    lines = old.read().splitlines() + lines
            lines = lines[len(lines) - tail :] if tail > 0 else []
        yield from filter(None, map(_entry, lines))
        while follow:
            done = not writing(directory) or (stop is not None and stop())
            if f is not None:
                if os.fstat(f.fileno()).st_size < f.tell():  # truncated in place (max_files=1)
                    f.seek(0)
                    partial = b""
                *whole, partial = (partial + f.read()).split(b"\n")
                yield from filter(None, map(_entry, whole))
                with contextlib.suppress(FileNotFoundError):
                    if os.stat(current).st_ino != os.fstat(f.fileno()).st_ino:
                        # rotated: ours was read to its end; the files rotated
                        # after it (when it rotated more than once since we
                        # looked), then the new one
                        for path in _newer_than(directory, f):
                            with contextlib.suppress(FileNotFoundError), open(path, "rb") as mid:
                                yield from filter(None, map(_entry, mid.read().splitlines()))
                        f.close()
                        f, partial = open(current, "rb"), b""  # noqa: SIM115
                        continue
            elif os.path.exists(current):
                f = open(current, "rb")  # noqa: SIM115
                continue
            if done:
                return
            time.sleep(poll)
    finally:
        if f is not None:
            f.close()


__all__ = ["LogConfig", "LogEntry", "parse_size", "read"]
