"""Thin wrappers over what the parent reads from /proc and the pidfd calls.

Paths into /proc take a ``proc`` argument so tests can point them at a fake tree.
"""

from __future__ import annotations

import os
import select
import signal

PROC = "/proc"


def _stat_fields(pid: int, proc: str = PROC) -> list[str] | None:
    try:
        with open(f"{proc}/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
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


def pidfd_wait_exit(pidfd: int, timeout: float | None) -> bool:
    """Wait for the process to exit; False on timeout."""
    r, _, _ = select.select([pidfd], [], [], timeout)
    return bool(r)


def pidfd_signal(pidfd: int, sig: int) -> None:
    signal.pidfd_send_signal(pidfd, sig)
