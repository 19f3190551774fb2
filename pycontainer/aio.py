"""An asyncio API beside the blocking one.

:class:`AsyncContainer` wraps a :class:`~pycontainer.Container`;
``await c.wait()`` waits on the init's pidfd with ``loop.add_reader`` (a
pidfd becomes readable when its process exits), so any number of
containers are awaited by one event loop, with no thread per container and no
polling.  The exit status is the blocking API's: once the pidfd is
readable, the blocking ``wait(0)`` reaps the init (``waitid`` on the pidfd,
as :class:`~pycontainer._process.ProcessHandle` does) without blocking.

What is async and what is not (see docs/asyncio.md):

- ``wait``, ``stop`` (the time it gives the container), ``delete`` of a
  live container (the wait for the killed init), log following and the
  stdio streams await events;
- ``create``, ``start``, ``load``, ``kill``, ``exec`` (the spawn) and the
  rest of ``delete`` run inline, on the loop's thread: each is a few
  milliseconds of syscalls.  They are never sent to an executor: a thread
  pool is threads, and a create cancelled while it ran in one would leave
  a container that nobody holds.

Cancelling an await (``task.cancel()``, ``asyncio.wait_for``) removes the
readers it registered and closes nothing else; the container (or exec'd
process) keeps running, and the caller deletes it (``async with`` does).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal as _signal
import struct
import weakref
from asyncio.streams import FlowControlMixin
from collections.abc import Callable, Generator, Sequence
from types import TracebackType
from typing import IO, Any

from . import _sys, logs as _logs
from ._process import ExecProcess, ExitStatus, ProcessHandle, StdioArg
from .config import ContainerConfig, Process
from .container import Container, State, Status, stop_signal
from .errors import ContainerNotFound, InvalidStateTransition
from .logs import LogEntry

__all__ = ["AsyncContainer", "AsyncExecProcess", "LogStream"]


def _resolve(fut: asyncio.Future[bool], value: bool) -> None:
    if not fut.done():
        fut.set_result(value)


async def _readable(fd: int, timeout: float | None) -> bool:
    """Wait until ``fd`` is readable (True) or ``timeout`` passed (False).
    The reader is removed whatever happens, cancellation included."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[bool] = loop.create_future()
    loop.add_reader(fd, _resolve, fut, True)
    timer = None if timeout is None else loop.call_later(max(0.0, timeout), _resolve, fut, False)
    try:
        return await fut
    finally:
        if timer is not None:
            timer.cancel()
        loop.remove_reader(fd)


class _ExitWatch:
    """One reader on a process's pidfd for every coroutine awaiting its end.

    ``loop.add_reader`` keeps one callback per fd (a second call replaces
    the first), so concurrent waiters share this one; the reader is there
    only while somebody waits."""

    def __init__(self) -> None:
        self._waiters: set[asyncio.Future[bool]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._fd = -1

    async def wait(self, pidfd: int, timeout: float | None) -> bool:
        """True once ``pidfd``'s process has exited, False when ``timeout`` passed first."""
        if _sys.pidfd_exited(pidfd):
            return True
        if timeout is not None and timeout <= 0:
            return False
        loop = asyncio.get_running_loop()
        if self._loop is not None and self._loop.is_closed():
            self._loop, self._waiters = None, set()  # left behind by a loop closed under its waiters
        if self._loop is None:
            loop.add_reader(pidfd, self._fire)
            self._loop, self._fd = loop, pidfd
        elif self._loop is not loop or self._fd != pidfd:
            raise RuntimeError("the process is awaited from another event loop (or was replaced while awaited)")
        fut: asyncio.Future[bool] = loop.create_future()
        self._waiters.add(fut)
        timer = None if timeout is None else loop.call_later(timeout, _resolve, fut, False)
        try:
            return await fut
        finally:
            if timer is not None:
                timer.cancel()
            self._waiters.discard(fut)
            if not self._waiters:
                self._unregister()

    def _fire(self) -> None:
        # level-triggered: the reader goes at once, or it would fire on every turn of the loop
        self._unregister()
        for fut in self._waiters:
            _resolve(fut, True)

    def _unregister(self) -> None:
        if self._loop is not None:
            self._loop.remove_reader(self._fd)
            self._loop, self._fd = None, -1


# One watch per process handle, however many wrappers it has (AsyncContainer(c) twice).
_WATCHES: weakref.WeakKeyDictionary[ProcessHandle, _ExitWatch] = weakref.WeakKeyDictionary()


def _watch(handle: ProcessHandle) -> _ExitWatch:
    watch = _WATCHES.get(handle)
    if watch is None:
        watch = _WATCHES[handle] = _ExitWatch()
    return watch


class _WriteProtocol(FlowControlMixin):
    """The protocol under a stdin :class:`asyncio.StreamWriter`:
    FlowControlMixin gives ``drain()``; this adds what ``wait_closed()`` needs."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self._closed: asyncio.Future[None] = loop.create_future()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if not self._closed.done():
            self._closed.set_result(None)

    def _get_close_waiter(self, stream: asyncio.StreamWriter) -> asyncio.Future[None]:
        return self._closed


class _AsyncHandle:
    """What an async container and an async exec'd process share: the
    stdio pipes as asyncio streams, ``wait`` on the pidfd, ``communicate``."""

    stdin: asyncio.StreamWriter | None
    """The process's stdin (``stdin=PIPE``): ``write``, ``await drain()``, ``close()``."""
    stdout: asyncio.StreamReader | None
    """Its stdout (``stdout=PIPE``)."""
    stderr: asyncio.StreamReader | None
    """Its stderr (``stderr=PIPE``)."""

    def __init__(self, handle: ProcessHandle, blocking_wait: Callable[[float | None], ExitStatus], what: str) -> None:
        self._handle = handle
        self._blocking_wait = blocking_wait
        self._what = what
        self._watch = _watch(handle)
        self._transports: list[asyncio.BaseTransport] = []
        self.stdin = self.stdout = self.stderr = None

    async def _connect(self) -> None:
        """The handle's pipes as streams.  On failure (cancellation too) the
        transports made so far are closed, and with them the pipes."""
        loop = asyncio.get_running_loop()
        h = self._handle
        try:
            if h.stdin is not None:
                wt, wp = await loop.connect_write_pipe(lambda: _WriteProtocol(loop), h.stdin)
                self._transports.append(wt)
                self.stdin = asyncio.StreamWriter(wt, wp, None, loop)
            if h.stdout is not None:
                self.stdout = await self._reader(loop, h.stdout)
            if h.stderr is not None:
                self.stderr = await self._reader(loop, h.stderr)
        except BaseException:
            self._close_streams()
            raise

    async def _reader(self, loop: asyncio.AbstractEventLoop, pipe: IO[bytes]) -> asyncio.StreamReader:
        reader = asyncio.StreamReader()
        transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
        self._transports.append(transport)
        return reader

    def _close_streams(self) -> None:
        """Take the pipes off the loop now (the blocking handle closes their fds)."""
        for t in self._transports:
            if isinstance(t, asyncio.WriteTransport):
                # close() would wait for unwritten data, its fd still registered;
                # one already closed with nothing left to write has let go
                if not t.is_closing() or t.get_write_buffer_size():
                    t.abort()
            else:
                t.close()
        self._transports.clear()

    @property
    def pid(self) -> int:
        """The process's host pid."""
        return self._handle.pid

    @property
    def returncode(self) -> int | None:
        """subprocess-style, once :meth:`wait` has seen the end: the exit code, or minus the signal."""
        status = self._handle._exit
        return None if status is None else status.returncode

    async def wait(self, timeout: float | None = None) -> ExitStatus:
        """Wait for the process to exit, on its pidfd, and return its
        :class:`~pycontainer.ExitStatus`, the same as the blocking ``wait``
        gives.  ``TimeoutError`` when ``timeout`` seconds pass first; the
        process keeps running.  Cancelling the await leaves no reader."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        h = self._handle
        while True:
            pidfd, pid = h._pidfd, h.pid
            if h._exit is None and pidfd is not None:
                left = None if deadline is None else deadline - loop.time()
                if not await self._watch.wait(pidfd, left):
                    raise TimeoutError(f"{self._what} did not exit within {timeout} s")
            # It has exited: the blocking wait reaps it (waitid on the pidfd) without blocking.
            try:
                return self._blocking_wait(0)
            except TimeoutError:
                if (h._pidfd, h.pid) == (pidfd, pid):
                    raise
                # a new instance meanwhile (Container.restart): wait for that one

    async def communicate(
        self, input: bytes | None = None, timeout: float | None = None
    ) -> tuple[bytes | None, bytes | None]:
        """Send ``input`` to stdin (then close it), read stdout and stderr to
        their end, wait for the process; as asyncio's ``communicate``.
        ``TimeoutError`` when ``timeout`` passes first: nothing is killed,
        and what was read by then is lost."""

        async def feed() -> None:
            if self.stdin is None:
                return
            try:
                if input:
                    self.stdin.write(input)
                    await self.stdin.drain()
            except (BrokenPipeError, ConnectionResetError):
                pass  # it did not read it all: as subprocess, not an error
            self.stdin.close()

        async def drain(reader: asyncio.StreamReader | None) -> bytes | None:
            return None if reader is None else await reader.read()

        async def everything() -> tuple[bytes | None, bytes | None]:
            _, out, err = await asyncio.gather(feed(), drain(self.stdout), drain(self.stderr))
            await self.wait()
            return out, err

        if timeout is None:
            return await everything()
        try:
            return await asyncio.wait_for(everything(), timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(f"{self._what} did not finish within {timeout} s") from None


class AsyncContainer(_AsyncHandle):
    """A :class:`~pycontainer.Container` for asyncio.  Make one with
    :meth:`create`, :meth:`run`, :meth:`load` or :meth:`wrap`.

    ``async with`` deletes it (forcibly) at the end, as ``with`` does a
    Container.  ``container`` is the blocking object underneath, for what
    has no async form here (pause, resume, update, stats, copy_to, ...:
    each a short run of syscalls)."""

    container: Container
    """The blocking :class:`~pycontainer.Container` this wraps."""

    def __init__(self, container: Container) -> None:
        """Wrap ``container`` without turning its pipes into streams (:meth:`wrap` does)."""
        super().__init__(container, container.wait, f"container {container.id!r}")
        self.container = container

    def __repr__(self) -> str:
        return f"<AsyncContainer {self.id!r} pid={self.pid} root={self.root!r}>"

    # ---- construction: inline ---------------------------------------------------

    @classmethod
    async def wrap(cls, container: Container) -> AsyncContainer:
        """An AsyncContainer for ``container``, its stdio pipes (``PIPE``
        at create) as :attr:`stdin`, :attr:`stdout`, :attr:`stderr` streams.
        From here on use the pipes only through these."""
        self = cls(container)
        await self._connect()
        return self

    @classmethod
    async def _adopt(cls, container: Container) -> AsyncContainer:
        """:meth:`wrap` a container we just made, deleting it if that fails
        (or is cancelled): nobody else holds it."""
        try:
            return await cls.wrap(container)
        except BaseException:
            container.delete(force=True, volumes=True)  # inline: a created init is killed and reaped at once
            raise

    @classmethod
    async def create(cls, root: str | None, id: str, config: ContainerConfig, **kwargs: Any) -> AsyncContainer:
        """:meth:`Container.create <pycontainer.Container.create>`, with the
        same arguments, run inline on the loop's thread (a few ms; the first
        use of an image may unpack its layers, as the blocking create does).
        Its init waits for :meth:`start`.  A failed or cancelled create leaves
        nothing behind."""
        return await cls._adopt(Container.create(root, id, config, **kwargs))

    @classmethod
    async def run(cls, root: str | None, id: str, config: ContainerConfig, **kwargs: Any) -> AsyncContainer:
        """:meth:`Container.run <pycontainer.Container.run>` (create + start
        in one step, with :meth:`create`'s arguments), inline; the container
        keeps running: :meth:`wait` for it.  A failed or cancelled run leaves
        nothing behind."""
        return await cls._adopt(Container.run(root, id, config, **kwargs))

    @classmethod
    async def load(cls, root: str | None, id: str) -> AsyncContainer:
        """:meth:`Container.load <pycontainer.Container.load>`: the container
        ``id`` as another process (or object) made it; ``ContainerNotFound``
        when there is none."""
        return await cls.wrap(Container.load(root, id))

    # ---- what the blocking object knows -------------------------------------------

    @property
    def id(self) -> str:
        """The container's id."""
        return self.container.id

    @property
    def root(self) -> str:
        """Its state root."""
        return self.container.root

    @property
    def config(self) -> ContainerConfig:
        """The config it was created with (its resources as last updated)."""
        return self.container.config

    @property
    def status(self) -> Status:
        """Derived from the live system, as the blocking ``status`` (no waiting)."""
        return self.container.status

    def state(self) -> State:
        """The blocking :meth:`Container.state <pycontainer.Container.state>`."""
        return self.container.state()

    # ---- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        """Release the init to exec, inline: the wait for its exec is the
        kernel's (the exec fifo), and the config's startContainer and
        poststart hooks, if any, run here too.  ``InitError`` when the exec fails."""
        self.container.start()

    async def kill(self, sig: int = _signal.SIGTERM) -> None:
        """Send ``sig`` to the init through its pidfd (inline)."""
        self.container.kill(sig)

    async def stop(self, timeout: float = 10.0, sig: int | None = None) -> ExitStatus:
        """``docker stop``: ``sig`` (default: the image's StopSignal, else
        SIGTERM), then SIGKILL if it still runs after ``timeout`` seconds;
        returns the exit status, as the blocking ``stop``.  Cancelled, the
        container is left as it is then (perhaps signalled, still running)."""
        c = self.container
        if c.status is Status.STOPPED:
            return await self.wait()
        if sig is None:
            sig = stop_signal(c.image_config)
        try:
            c.kill(sig)
            return await self.wait(timeout)
        except InvalidStateTransition:  # it stopped meanwhile
            return await self.wait()
        except TimeoutError:
            pass
        with contextlib.suppress(InvalidStateTransition):
            c.kill(_signal.SIGKILL)
        status = await self.wait(30)
        if status.code is None and status.signal is None:
            # as the blocking stop: an init that records its own status had no chance to
            status = ExitStatus(signal=_signal.SIGKILL)
            c._exit = status
            c._record_exit(status)
        return status

    async def delete(self, force: bool = False, *, volumes: bool = False) -> None:
        """Remove the container (``volumes``: its anonymous volumes too, as
        :meth:`Container.delete <pycontainer.Container.delete>`).  A created
        one is killed first; a running or paused one only with ``force`` (SIGKILL).  The wait for the
        killed init is awaited on its pidfd; the rest (cgroup, mounts,
        state directory) is done inline.  Cancelled during that wait, the
        container is killed but not yet deleted: delete it again."""
        c = self.container
        c._require("force-delete" if force else "delete")  # refused before anything is done
        if c.status is not Status.STOPPED:
            with contextlib.suppress(InvalidStateTransition):
                c.kill(_signal.SIGKILL)  # (a paused one is thawed to die)
            await self.wait()
        self._close_streams()
        c.delete(force=force, volumes=volumes)

    def close(self) -> None:
        """Release this object's fds (streams, pidfd) without touching the container."""
        self._close_streams()
        self.container.close()

    async def __aenter__(self) -> AsyncContainer:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not os.path.exists(os.path.join(self.container.dir, "state.json")):
            self.close()
            return
        try:
            await self.delete(force=True)
        except asyncio.CancelledError:
            # cancelled again while it cleaned up: finish inline rather than leave the container
            self._close_streams()
            with contextlib.suppress(ContainerNotFound):
                self.container.delete(force=True)
            raise

    # ---- logs and exec -------------------------------------------------------------

    def logs(self, *, follow: bool = False, tail: int | None = None) -> LogStream:
        """The container's json-file log (created with ``log=LogConfig(...)``)
        as an async iterator of :class:`~pycontainer.logs.LogEntry`, oldest
        first; ``tail``: the last ones only; ``follow``: wait for more (on
        inotify events) until the container's output ends.  Use it in
        ``async with`` (or ``aclose()`` it) to release its fds at once when
        leaving early."""
        return LogStream(self.container.dir, follow=follow, tail=tail)

    async def exec(
        self,
        process: Process | Sequence[str],
        *,
        stdin: StdioArg = None,
        stdout: StdioArg = None,
        stderr: StdioArg = None,
        pass_fds: Sequence[int | IO[Any]] = (),
    ) -> AsyncExecProcess:
        """:meth:`Container.exec <pycontainer.Container.exec>` (the spawn
        inline, a few ms), its ``PIPE`` stdio as streams of the returned
        :class:`AsyncExecProcess`.  Cancelled while the streams are set up,
        the process is killed and reaped."""
        handle = self.container.exec(process, stdin=stdin, stdout=stdout, stderr=stderr, pass_fds=pass_fds)
        proc = AsyncExecProcess(handle)
        try:
            await proc._connect()
        except BaseException:
            handle.kill(_signal.SIGKILL)
            handle.wait()  # inline: SIGKILL'ed, it ends at once
            handle.close()
            raise
        return proc


class AsyncExecProcess(_AsyncHandle):
    """A process started by :meth:`AsyncContainer.exec`, as asyncio's
    ``Process``: ``stdin`` (a StreamWriter), ``stdout`` and ``stderr``
    (StreamReaders) for the streams given as ``PIPE``, ``await wait()``
    (on its pidfd), ``communicate``, ``kill``.  ``async with`` kills it
    (SIGKILL) if it still runs, waits for it and closes it."""

    handle: ExecProcess
    """The blocking :class:`~pycontainer.ExecProcess` underneath."""

    def __init__(self, handle: ExecProcess) -> None:
        super().__init__(handle, handle.wait, f"process {handle.pid}")
        self.handle = handle

    def __repr__(self) -> str:
        return f"<AsyncExecProcess pid={self.pid} returncode={self.returncode}>"

    async def kill(self, sig: int = _signal.SIGTERM) -> None:
        """Send ``sig`` through the pidfd (nothing once it has been reaped)."""
        self.handle.kill(sig)

    def close(self) -> None:
        """Close the streams and the pidfd; an exited process is reaped first
        (one still running is not: wait for it, or use ``async with``)."""
        self._close_streams()
        self.handle.close()

    async def __aenter__(self) -> AsyncExecProcess:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if self.handle._exit is None:
                self.handle.kill(_signal.SIGKILL)
                try:
                    await self.wait()
                except asyncio.CancelledError:
                    self.handle.wait()  # inline: SIGKILL'ed, it ends at once; no zombie left
                    raise
        finally:
            self.close()


# ---- log streaming ---------------------------------------------------------------

_IN_MODIFY = 0x2
_IN_CLOSE_WRITE = 0x8
_IN_MOVED_FROM = 0x40
_IN_MOVED_TO = 0x80
_IN_CREATE = 0x100
_IN_DELETE = 0x200
_IN_DELETE_SELF = 0x400
_IN_MOVE_SELF = 0x800
_IN_Q_OVERFLOW = 0x4000
_IN_IGNORED = 0x8000
_IN_ONLYDIR = 0x1000000
_WATCH = (
    _IN_MODIFY | _IN_CLOSE_WRITE | _IN_MOVED_FROM | _IN_MOVED_TO | _IN_CREATE | _IN_DELETE
    | _IN_DELETE_SELF | _IN_MOVE_SELF | _IN_ONLYDIR
)  # fmt: skip
_EVENT = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len (then the name)
_libc: ctypes.CDLL | None = None


def _inotify_watch(directory: str) -> int:
    """An inotify fd (non-blocking, close-on-exec) watching ``directory``."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    fd = int(_libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC))
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"inotify_init1: {os.strerror(err)}")
    if int(_libc.inotify_add_watch(fd, os.fsencode(directory), _WATCH)) < 0:
        err = ctypes.get_errno()
        os.close(fd)
        raise OSError(err, os.strerror(err), directory)
    return fd


class _DirWatch:
    """Changes to the log files of a container's state directory, from inotify.

    The logger's end cannot be seen as an event of its own: it is the
    release of its flock on ``container.log.lock``, and the kernel reports
    that file's close (IN_CLOSE_WRITE) just *before* it drops the lock.  So
    after that close, and only then, a wait also ends after a short time
    (5 ms, doubling, at most 1 s) for the reader to look at the lock again;
    in practice the first look finds it gone."""

    def __init__(self, directory: str) -> None:
        self._fd = -1
        self._fd = _inotify_watch(directory)
        self._gone = False  # the directory was removed: no event will come
        self._lock_closed = False
        self._retry = 0.005

    async def changed(self) -> None:
        """Return once a log file may have changed (or the logger may be done)."""
        while not self._gone:
            if not await _readable(self._fd, self._retry if self._lock_closed else None):
                self._retry = min(self._retry * 2, 1.0)
                return
            if self._drain():
                return

    def _drain(self) -> bool:
        """Read every queued event; True when one concerns the log."""
        relevant = False
        while True:
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                return relevant
            for mask, name in _events(data):
                if mask & (_IN_DELETE_SELF | _IN_IGNORED):
                    self._gone = True
                if name == _logs.LOCK_NAME and mask & _IN_CLOSE_WRITE:
                    self._lock_closed = True
                if mask & (_IN_Q_OVERFLOW | _IN_MOVE_SELF | _IN_DELETE_SELF | _IN_IGNORED) or name.startswith(
                    _logs.LOG_NAME
                ):
                    relevant = True

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:
        self.close()


def _events(data: bytes) -> list[tuple[int, str]]:
    """The (mask, name) of each inotify event in ``data``."""
    out = []
    offset = 0
    while offset + _EVENT.size <= len(data):
        _wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
        name = data[offset + _EVENT.size : offset + _EVENT.size + length].rstrip(b"\0")
        out.append((int(mask), os.fsdecode(name)))
        offset += _EVENT.size + length
    return out


class LogStream:
    """A container's log entries as an async iterator (from :meth:`AsyncContainer.logs`).

    The files are read inline (as the blocking :meth:`Container.logs
    <pycontainer.Container.logs>` reads them, rotation included); a
    follower waits between reads on inotify events of the state directory,
    not on a timer.  It ends when the log does: without ``follow`` at its
    current end, with ``follow`` once the container's output ended (or
    its state directory was removed).  Nothing is opened until the first
    ``__anext__``; the open files and the inotify fd go when it ends, at
    ``aclose()`` or at the end of ``async with``.  Cancelling an
    ``__anext__`` leaves the stream usable."""

    def __init__(self, directory: str, *, follow: bool = False, tail: int | None = None) -> None:
        self.directory = directory
        self.follow = follow
        self.tail = tail
        self._entries: Generator[LogEntry | None, None, None] | None = None  # once started
        self._watch: _DirWatch | None = None
        self._done = False
        self._busy = False

    def __aiter__(self) -> LogStream:
        return self

    async def __anext__(self) -> LogEntry:
        if self._done:
            raise StopAsyncIteration
        if self._busy:
            raise RuntimeError("another coroutine is already waiting for this log stream")
        self._busy = True
        try:
            if self._entries is None:
                self._entries = self._start()
            while True:
                try:
                    entry = next(self._entries)
                except StopIteration:
                    self.close()
                    raise StopAsyncIteration from None
                except BaseException:
                    self.close()
                    raise
                if entry is not None:
                    return entry
                assert self._watch is not None  # only a follower waits
                await self._watch.changed()
        finally:
            self._busy = False

    def _start(self) -> Generator[LogEntry | None, None, None]:
        # The watch comes before the first read: a line written between
        # the read and the wait is an event queued for the wait.
        if self.follow and os.path.exists(os.path.join(self.directory, _logs.LOCK_NAME)):
            try:
                self._watch = _DirWatch(self.directory)
            except FileNotFoundError:
                pass  # the directory went: the read finds no log, or its end at once
        # (without a watch there is no log to follow: the read says so, or finds its end)
        return _logs._entries(self.directory, follow=self.follow and self._watch is not None, tail=self.tail)

    def close(self) -> None:
        """Release the open log file and the inotify fd; the stream ends."""
        self._done = True
        if self._entries is not None:
            self._entries.close()
        if self._watch is not None:
            self._watch.close()
            self._watch = None

    async def aclose(self) -> None:
        self.close()

    async def __aenter__(self) -> LogStream:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
