"""Progress of pulls and pushes: events from the registry client, and
Docker's way of showing them (a line per blob, each with a bar, redrawn in
place on a terminal; only the status changes otherwise)."""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import IO

import attrs


@attrs.frozen
class Progress:
    """One blob's progress.  ``status`` is Docker's word for it: ``Waiting``,
    ``Downloading``, ``Pull complete``, ``Already exists`` (pull);
    ``Preparing``, ``Pushing``, ``Pushed``, ``Layer already exists``
    (push).  ``current`` and ``total`` are bytes (``total`` 0: unknown)."""

    blob: str  # its digest
    status: str
    current: int = 0
    total: int = 0

    @property
    def short(self) -> str:
        """The blob's id as Docker shows it: 12 hex digits."""
        return self.blob.partition(":")[2][:12] or self.blob[:12]


ProgressCallback = Callable[[Progress], None]


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f}{unit}"
    return f"{n}B"


def bar(current: int, total: int, width: int = 50) -> str:
    """Docker's bar: ``[=====>      ] 12.3MB/45.6MB``."""
    if total <= 0:
        return _size(current)
    filled = min(width, width * current // total)
    arrow = ">" if filled < width else ""
    return f"[{'=' * filled}{arrow}{' ' * (width - filled - len(arrow))}] {_size(current)}/{_size(total)}"


class ProgressBars:
    """Shows :class:`Progress` events on ``stream`` as Docker does: on a
    terminal, a line per blob redrawn in place (at most every ``interval``
    seconds, and at every change of status); elsewhere (a pipe, a file) a
    line per change of status only.  Safe to call from several threads
    (blobs come in parallel)."""

    def __init__(self, stream: IO[str] | None = None, *, tty: bool | None = None, interval: float = 0.1) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.interval = interval
        self._lines: dict[str, Progress] = {}
        self._drawn = 0  # lines on the screen that are ours
        self._last = 0.0
        self._lock = threading.Lock()

    def __call__(self, event: Progress) -> None:
        with self._lock:
            before = self._lines.get(event.blob)
            self._lines[event.blob] = event
            changed = before is None or before.status != event.status
            if not self.tty:
                if changed:
                    self.stream.write(f"{event.short}: {event.status}\n")
                    self.stream.flush()
                return
            now = time.monotonic()
            if changed or now - self._last >= self.interval:
                self._last = now
                self._draw()

    @staticmethod
    def _text(p: Progress) -> str:
        if p.status in ("Downloading", "Pushing"):
            return f"{p.short}: {p.status} {bar(p.current, p.total)}"
        return f"{p.short}: {p.status}"

    def _draw(self) -> None:
        out = [f"\x1b[{self._drawn}A"] if self._drawn else []  # back to our first line
        out += [f"\x1b[2K{self._text(p)}\n" for p in self._lines.values()]
        self._drawn = len(self._lines)
        self.stream.write("".join(out))
        self.stream.flush()

    def close(self) -> None:
        """The final state of every line (on a terminal)."""
        with self._lock:
            if self.tty and self._lines:
                self._draw()


@contextlib.contextmanager
def reporting(progress: bool | None | ProgressCallback) -> Iterator[ProgressCallback | None]:
    """A registry call's ``progress`` argument as the callback to give each
    event to (None: none), the bars' last state drawn at the end: a
    callable is used as it is; True shows bars on stderr, None does where
    stderr is a terminal, False shows nothing."""
    if callable(progress):
        yield progress
    elif progress is False or (progress is None and not sys.stderr.isatty()):
        yield None
    else:
        bars = ProgressBars()
        try:
            yield bars
        finally:
            bars.close()
