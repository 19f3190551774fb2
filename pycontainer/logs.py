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
from collections.abc import Callable, Generator, Iterator, Sequence
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
    """One entry of a json-file log: its ``stream``, its ``data`` (a line, or part of a long one) and its ``time``."""

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


def _snapshot(directory: str) -> list[tuple[str, int]]:
    """The log files, oldest first (``container.log`` last), with their
    inodes.  Listed until two listings agree: the logger renames the files
    one by one as it rotates, and a listing taken meanwhile may miss one or
    give two in the wrong order."""

    def listing() -> list[tuple[str, int]]:
        out: list[tuple[str, int]] = []
        try:
            paths = _files_oldest_first(directory)
        except FileNotFoundError:
            return out  # the container was deleted
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                out.append((path, os.stat(path).st_ino))
        return out

    last = listing()
    for _ in range(100):
        again = listing()
        if again == last:
            break
        last = again
    return last


def _open_inode(directory: str, path: str, ino: int) -> Any:
    """The log file with inode ``ino``, listed at ``path``, open (it may
    have rotated on to another name since); None once it is gone (rotated
    out of max_files)."""
    for _ in range(100):
        try:
            f = open(path, "rb")  # noqa: SIM115 - the caller's to close
        except FileNotFoundError:
            f = None
        if f is not None:
            if os.fstat(f.fileno()).st_ino == ino:
                return f
            f.close()
        found = [p for p, i in _snapshot(directory) if i == ino]
        if not found:
            return None
        path = found[0]
    return None


def _whole(directory: str, path: str, ino: int) -> list[bytes]:
    """The lines of a rotated (complete) log file."""
    f = _open_inode(directory, path, ino)
    if f is None:
        return []
    with f:
        lines: list[bytes] = f.read().splitlines()
        return lines


def _successor(directory: str, f: Any) -> Any:
    """The log file after ``f``, open, once ``f`` has rotated; None while
    ``f`` is the newest (or the directory went)."""
    ino = os.fstat(f.fileno()).st_ino
    with contextlib.suppress(FileNotFoundError):
        if os.stat(os.path.join(directory, LOG_NAME)).st_ino == ino:
            return None  # (the usual case: one stat)
    for _ in range(100):
        files = _snapshot(directory)
        inodes = [i for _, i in files]
        if ino in inodes:
            k = inodes.index(ino) + 1
            if k == len(files):
                return None  # renamed, but container.log is not made anew yet
        elif os.fstat(f.fileno()).st_nlink == 0 and files:
            k = 0  # itself rotated out of max_files (we were far behind): all there is is newer
        else:
            return None
        nxt = _open_inode(directory, *files[k])
        if nxt is not None:
            return nxt
    return None


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
    with contextlib.closing(_entries(directory, follow=follow, tail=tail, stop=stop)) as it:
        for entry in it:
            if entry is None:
                time.sleep(poll)
            else:
                yield entry


def _entries(
    directory: str,
    *,
    follow: bool = False,
    tail: int | None = None,
    stop: Callable[[], bool] | None = None,
) -> Generator[LogEntry | None, None, None]:
    """:func:`read` without its waiting: None where a follower has read all
    there is and must wait for the logger to write more (or finish) before
    it asks for the next item.  ``read`` sleeps there; ``pycontainer.aio``
    waits for an inotify event."""
    if not os.path.exists(os.path.join(directory, LOCK_NAME)):
        raise PyContainerError(f"no log in {directory}: the container was created without log=LogConfig(...)")
    # Files are found by inode: the logger may rotate them (rename each
    # to the next number) at any moment, between any two of our calls.
    files = _snapshot(directory)
    f: Any = _open_inode(directory, *files[-1]) if files else None  # the newest: followed
    try:
        *lines, partial = (f.read() if f is not None else b"").split(b"\n")
        older = files[:-1]
        if tail is None:
            for path, ino in older:
                yield from filter(None, map(_entry, _whole(directory, path, ino)))
        else:
            for path, ino in reversed(older):
                if len(lines) >= tail:
                    break
                lines = _whole(directory, path, ino) + lines
            lines = lines[len(lines) - tail :] if tail > 0 else []
        yield from filter(None, map(_entry, lines))
        while follow:
            done = not writing(directory) or (stop is not None and stop())
            if f is None:
                files = _snapshot(directory)
                if files:
                    f, partial = _open_inode(directory, *files[0]), b""
                    if f is not None:
                        continue
            else:
                if os.fstat(f.fileno()).st_size < f.tell():  # truncated in place (max_files=1)
                    f.seek(0)
                    partial = b""
                *whole, partial = (partial + f.read()).split(b"\n")
                yield from filter(None, map(_entry, whole))
                nxt = _successor(directory, f)
                if nxt is not None:
                    # Rotated: the logger closed it first, so what it holds
                    # now is all it will: its rest, then on to the next file.
                    yield from filter(None, map(_entry, (partial + f.read()).split(b"\n")))
                    f.close()
                    f, partial = nxt, b""
                    continue
            if done:
                return
            yield None
    finally:
        if f is not None:
            f.close()


__all__ = ["LogConfig", "LogEntry", "parse_size", "read"]
