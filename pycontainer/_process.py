"""Stdio plumbing and the process handle shared by a container's init and exec'd processes."""

from __future__ import annotations

import errno
import os
import selectors
import subprocess
import threading
import time
from collections.abc import Sequence
from typing import IO, Any

import attrs

from . import _sys

PIPE = subprocess.PIPE
DEVNULL = subprocess.DEVNULL
STDOUT = subprocess.STDOUT

StdioArg = int | IO[Any] | None


@attrs.frozen
class ExitStatus:
    """How a process ended: ``code`` when it exited, ``signal`` when a signal killed it.

    Both are None when the process was not our child and nothing recorded its end.
    ``oom_killed`` is Docker's OOMKilled: a container's init died of SIGKILL
    after the kernel's OOM killer acted in the container's cgroup."""

    code: int | None = None
    signal: int | None = None
    oom_killed: bool = False

    @property
    def returncode(self) -> int | None:
        """subprocess-style: the exit code, or minus the signal number."""
        if self.code is not None:
            return self.code
        return -self.signal if self.signal is not None else None

    @classmethod
    def from_waitid(cls, result: Any) -> ExitStatus:
        if result.si_code == os.CLD_EXITED:
            return cls(code=result.si_status)
        return cls(signal=result.si_status)


@attrs.define
class Stdio:
    """The child's stdio fds (to dup onto 0, 1, 2) and the parent's ends."""

    pairs: list[tuple[int, int]] = attrs.field(factory=list)
    child_fds: list[int] = attrs.field(factory=list)  # ours to close once the child has them
    stdin: IO[bytes] | None = None
    stdout: IO[bytes] | None = None
    stderr: IO[bytes] | None = None

    def close_child_ends(self) -> None:
        for fd in self.child_fds:
            os.close(fd)
        self.child_fds.clear()

    def close_all(self) -> None:
        self.close_child_ends()
        for f in (self.stdin, self.stdout, self.stderr):
            if f is not None:
                f.close()


def _fileno(arg: int | IO[Any]) -> int:
    return arg if isinstance(arg, int) else arg.fileno()


def prepare_stdio(stdin: StdioArg, stdout: StdioArg, stderr: StdioArg, pass_fds: Sequence[int | IO[Any]] = ()) -> Stdio:
    """Turn subprocess-style arguments into fds for the child.

    ``None`` inherits ours; ``PIPE`` makes a pipe; ``DEVNULL`` opens /dev/null;
    an int or a file object is used as is; ``stderr=STDOUT`` shares stdout.
    ``pass_fds`` become fds 3, 4, ... in the child.  Every fd we make is
    close-on-exec on our side; the shim dups them into place."""
    io = Stdio()
    try:
        for target, arg in ((0, stdin), (1, stdout), (2, stderr)):
            if arg is None:
                continue
            if arg == STDOUT and target == 2:
                src = next((s for s, d in io.pairs if d == 1), 1)
                io.pairs.append((src, 2))
                continue
            if arg == PIPE:
                r, w = os.pipe2(os.O_CLOEXEC)
                child, ours = (r, w) if target == 0 else (w, r)
                io.child_fds.append(child)
                f = os.fdopen(ours, "wb" if target == 0 else "rb", buffering=0)
                setattr(io, ("stdin", "stdout", "stderr")[target], f)
                io.pairs.append((child, target))
            elif arg == DEVNULL:
                fd = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
                io.child_fds.append(fd)
                io.pairs.append((fd, target))
            else:
                io.pairs.append((_fileno(arg), target))
        for i, passed in enumerate(pass_fds):
            io.pairs.append((_fileno(passed), 3 + i))
    except BaseException:
        io.close_all()
        raise
    return io


class ProcessHandle:
    """What a container's init and an exec'd process share: pid, pidfd, stdio, wait."""

    pid: int
    stdin: IO[bytes] | None
    stdout: IO[bytes] | None
    stderr: IO[bytes] | None
    pty: int | None  # the pty master, when the process has a terminal

    def _init_handle(self, pid: int, pidfd: int | None, io: Stdio | None, pty: int | None, ours: bool) -> None:
        self.pid = pid
        self._pidfd = pidfd
        self._ours = ours  # our child: we can reap it and learn its status
        self._exit: ExitStatus | None = None
        self._wait_lock = threading.Lock()
        self.stdin = io.stdin if io else None
        self.stdout = io.stdout if io else None
        self.stderr = io.stderr if io else None
        self.pty = pty

    def _reap(self, timeout: float | None) -> ExitStatus | None:
        """Wait for the process to end; its status, or None on timeout."""
        with self._wait_lock:
            if self._exit is not None:
                return self._exit
            if self._pidfd is None:
                self._exit = ExitStatus()
                return self._exit
            if not _sys.pidfd_wait_exit(self._pidfd, timeout):
                return None
            status = ExitStatus()
            if self._ours:
                try:
                    res = os.waitid(os.P_PIDFD, self._pidfd, os.WEXITED)
                    if res is not None:
                        status = ExitStatus.from_waitid(res)
                except ChildProcessError:
                    pass  # somebody else reaped it
            if status.code is not None or status.signal is not None:
                status = self._on_exit(status)
            self._exit = status
            return status

    def _on_exit(self, status: ExitStatus) -> ExitStatus:
        """Called once with the status of a process we reaped (under the wait lock)."""
        return status

    def _close_handle(self) -> None:
        if self._pidfd is not None:
            # Reap first, or the pid lingers as a zombie.
            if self._ours and self._exit is None:
                self._reap(0)
            os.close(self._pidfd)
            self._pidfd = None
        for f in (self.stdin, self.stdout, self.stderr):
            if f is not None and not f.closed:
                f.close()
        if self.pty is not None:
            os.close(self.pty)
            self.pty = None

    def communicate(
        self, input: bytes | None = None, timeout: float | None = None
    ) -> tuple[bytes | None, bytes | None]:
        """Send ``input`` to stdin, read stdout and stderr to EOF, as subprocess does.

        Raises TimeoutError when ``timeout`` passes first; nothing is killed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        out: dict[int, list[bytes]] = {}
        sel = selectors.DefaultSelector()
        try:
            if self.stdin is not None:
                if input:
                    sel.register(self.stdin, selectors.EVENT_WRITE)
                else:
                    self.stdin.close()
            for f in (self.stdout, self.stderr):
                if f is not None and not f.closed:
                    out[f.fileno()] = []
                    sel.register(f, selectors.EVENT_READ)
            view = memoryview(input or b"")
            while sel.get_map():
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError(f"process {self.pid} did not finish within {timeout} s")
                for key, _ in sel.select(left):
                    fobj = key.fileobj
                    if self.stdin is not None and fobj is self.stdin:
                        try:
                            n = os.write(key.fd, view[:65536])
                        except BrokenPipeError:
                            n = len(view)
                        view = view[n:]
                        if not view:
                            sel.unregister(fobj)
                            self.stdin.close()
                        continue
                    try:
                        data = os.read(key.fd, 65536)
                    except OSError as e:
                        if e.errno != errno.EIO:  # a pty reports EIO at hang-up
                            raise
                        data = b""
                    if data:
                        out[key.fd].append(data)
                    else:
                        sel.unregister(fobj)
        finally:
            sel.close()
        result = [
            b"".join(out[f.fileno()]) if f is not None and f.fileno() in out else None
            for f in (self.stdout, self.stderr)
        ]
        self._reap(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return result[0], result[1]


class ExecProcess(ProcessHandle):
    """A process started in a running container by :meth:`Container.exec`."""

    def __init__(self, pid: int, pidfd: int, io: Stdio, pty: int | None) -> None:
        self._init_handle(pid, pidfd, io, pty, ours=True)

    def wait(self, timeout: float | None = None) -> ExitStatus:
        status = self._reap(timeout)
        if status is None:
            raise TimeoutError(f"process {self.pid} did not exit within {timeout} s")
        return status

    def kill(self, sig: int = 15) -> None:
        if self._pidfd is not None and self._exit is None:
            try:
                _sys.pidfd_signal(self._pidfd, sig)
            except ProcessLookupError:
                pass

    def close(self) -> None:
        self._close_handle()

    def __enter__(self) -> ExecProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._exit is None:
            self.kill(9)
            self.wait()
        self.close()
