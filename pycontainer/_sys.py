"""Thin wrappers over what the parent reads from /proc and the pidfd calls.

Paths into /proc take a ``proc`` argument so tests can point them at a fake tree.
"""

from __future__ import annotations

import functools
import math
import os
import select
import signal

PROC = "/proc"


@functools.lru_cache(maxsize=256)  # (pure; every create asks for its stop signal)
def signal_number(text: str) -> int:
    """A signal by number, by name with or without ``SIG`` (``TERM``,
    ``sigusr1``), or real-time as ``SIGRTMIN+3``/``RTMAX-1``.  ValueError
    for anything else."""
    name = text.strip().upper()
    if name.isdigit():
        return int(name)
    name = name if name.startswith("SIG") else "SIG" + name
    for base, low, sign in (("SIGRTMIN+", signal.SIGRTMIN, 1), ("SIGRTMAX-", signal.SIGRTMAX, -1)):
        if name.startswith(base) and name[len(base) :].isdigit():
            n = int(low) + sign * int(name[len(base) :])
            if int(signal.SIGRTMIN) <= n <= int(signal.SIGRTMAX):
                return n
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise ValueError(f"unknown signal {text!r}") from None


def _stat_fields(pid: int, proc: str = PROC) -> list[str] | None:
    try:
        fd = os.open(f"{proc}/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
    except (FileNotFoundError, ProcessLookupError):
        return None
    try:
        data = os.read(fd, 4096)  # one read: /proc makes the whole line at once
    except ProcessLookupError:  # the process went away between open and read
        return None
    finally:
        os.close(fd)
    if not data:
        return None
    # comm may hold spaces and parentheses: split after the last ')'.
    rest = data[data.rindex(b")") + 2 :].decode()
    return rest.split()


def pid_start_time(pid: int, proc: str = PROC) -> int | None:
    """The process's start time in clock ticks since boot (stat field 22)."""
    fields = _stat_fields(pid, proc)
    return int(fields[19]) if fields else None


def pid_state(pid: int, proc: str = PROC) -> str | None:
    """The one-letter state (R, S, Z, ...) or None when there is no such process."""
    fields = _stat_fields(pid, proc)
    return fields[0] if fields else None


def is_alive(pid: int, start_time: int, proc: str = PROC) -> bool:
    """True when ``pid`` still names the process that started at ``start_time``
    and has not exited (a zombie has)."""
    fields = _stat_fields(pid, proc)
    if fields is None or int(fields[19]) != start_time:
        return False
    return fields[0] not in ("Z", "X")


def open_pidfd(pid: int, start_time: int, proc: str = PROC) -> int | None:
    """A pidfd for ``pid``, or None if that pid now names another process."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return None
    # Checked after opening: the pidfd pins the process the check saw.
    if pid_start_time(pid, proc) != start_time:
        os.close(fd)
        return None
    return fd


def readable(fds: list[int], timeout: float | None) -> list[int]:
    """The fds of ``fds`` that are readable (or hung up) within ``timeout``
    seconds (None: no limit).  poll(2), not select(2): an embedding program
    may hold more than FD_SETSIZE (1024) fds."""
    p = select.poll()
    for fd in fds:
        p.register(fd, select.POLLIN)
    ms = None if timeout is None else max(0, math.ceil(timeout * 1000))
    return [fd for fd, _ in p.poll(ms)]


def pidfd_wait_exit(pidfd: int, timeout: float | None) -> bool:
    """Wait for the process to exit; False on timeout."""
    return bool(readable([pidfd], timeout))


def pidfd_exited(pidfd: int) -> bool:
    """True once the process has exited (a zombie has)."""
    return bool(readable([pidfd], 0))


def pidfd_signal(pidfd: int, sig: int) -> None:
    signal.pidfd_send_signal(pidfd, sig)
