"""Drive the C shim: spawn a child with a plan and speak the sync protocol.

Sync protocol (SOCK_SEQPACKET socketpair, one ``struct pc_msg`` per packet;
the child's end is close-on-exec, so EOF means "exec'd or died"):

=====  ==============  =========================================================
step   direction       message
=====  ==============  =========================================================
1      parent          ``pc_spawn``: clone with the new namespaces
2      parent          writes /proc/<pid>/uid_map, gid_map (user namespace);
                       later: cgroup join, host side of the network
3      parent -> child ``GO`` (only when step 2 had work to do)
4      child -> parent ``PID`` when the plan re-clones (joined pid namespace);
                       the parent reaps the intermediate child
5      child -> parent ``PTY`` with the pty master as SCM_RIGHTS (terminal)
6      child -> parent ``READY``: every mount and namespace is set up
7      child           blocks opening ``exec.fifo`` for writing
8      ``start``       opens the fifo for reading: the child writes one byte,
                       runs the rest of the plan and execs; EOF on the fifo
                       means exec happened; a ``pc_msg`` on it is a late error
7r     parent -> child ``run`` instead of 7 and 8: once the state directory is
                       renamed into place, ``GO``, which the child waits for
                       right before its execve; EOF on the socket = exec'd
any    child -> parent ``ERROR`` {step, op, errno, path}: the child exits 127
=====  ==============  =========================================================
"""

from __future__ import annotations

import array
import contextlib
import os
import socket
import struct
import time
from collections.abc import Callable, Sequence

import attrs

from . import _plan, _sys
from ._shim import ffi, lib
from .errors import InitError, PyContainerError

MSG_GO = lib.PC_MSG_GO
MSG_PID = lib.PC_MSG_PID
MSG_READY = lib.PC_MSG_READY
MSG_ERROR = lib.PC_MSG_ERROR
MSG_PTY = lib.PC_MSG_PTY
MSG_HANDED = lib.PC_MSG_HANDED
MSG_MAPS = lib.PC_MSG_MAPS
assert MSG_MAPS == _plan.MSG_MAPS
MSG_HOOKS = lib.PC_MSG_HOOKS
assert MSG_HOOKS == _plan.MSG_HOOKS

_MSG = struct.Struct("@iiiiq512s")
MSG_SIZE = _MSG.size
assert MSG_SIZE == ffi.sizeof("struct pc_msg")
assert _plan._OP_STRUCT.size == ffi.sizeof("struct pc_op")

SETUP_TIMEOUT = 60.0


@attrs.define
class Message:
    type: int
    step: int
    op: int
    err: int
    pid: int
    text: str

    @classmethod
    def unpack(cls, data: bytes) -> Message:
        t, step, op, err, pid, text = _MSG.unpack(data[:MSG_SIZE])
        return cls(t, step, op, err, pid, text.split(b"\0", 1)[0].decode(errors="replace"))

    def error(self) -> InitError:
        try:
            name = _plan.STEP_NAMES[_plan.Op(self.op)]
        except ValueError:
            name = f"op {self.op}"
        return InitError(name, self.text, self.err, self.step)


def pack_go() -> bytes:
    return _MSG.pack(MSG_GO, 0, 0, 0, 0, b"")


@attrs.define(eq=False)
class Child:
    """A spawned child and the parent's end of its sync socket."""

    pid: int
    sock: socket.socket
    arena: object
    arena_size: int
    pty_master: int | None = None
    # run: called right after the GO (see go_and_wait_exec)
    after_go: Callable[[], None] | None = None
    # the child exited with a message of ours unread: it never read the GO
    reset: bool = False

    def send_go(self) -> None:
        self.sock.send(pack_go(), socket.MSG_NOSIGNAL)

    def go_and_wait_exec(self) -> None:
        """``run`` (step 7r): GO, then wait until the child has exec'd (EOF).
        InitError for a step that failed after READY; PyContainerError when
        the child was gone before the GO."""
        try:
            self.send_go()
        except (BrokenPipeError, ConnectionResetError):
            self.wait_for(0)  # (the ERROR it sent before dying, if it did)
            raise PyContainerError(f"container init (pid {self.pid}) died before it could start") from None
        if self.after_go is not None:
            self.after_go()
        self.wait_for(0)

    def recv(self, deadline: float) -> Message | None:
        """The next message, or None at EOF."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise PyContainerError(f"container setup timed out (pid {self.pid})")
            if _sys.readable([self.sock.fileno()], left):
                break
        fds = array.array("i")
        try:
            data, ancdata, _flags, _addr = self.sock.recvmsg(MSG_SIZE, socket.CMSG_SPACE(fds.itemsize))
        except ConnectionResetError:
            # The child exited with our GO unread in its queue: the kernel
            # reports that once, ahead of what the child sent before it
            # died (its ERROR), which the next read returns.
            self.reset = True
            data, ancdata, _flags, _addr = self.sock.recvmsg(MSG_SIZE, socket.CMSG_SPACE(fds.itemsize))
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(payload[: len(payload) - (len(payload) % fds.itemsize)])
        if not data:
            return None
        msg = Message.unpack(data)
        if msg.type == MSG_PTY and fds:
            self.pty_master = fds[0]
            for extra in fds[1:]:
                os.close(extra)
        else:
            for fd in fds:
                os.close(fd)
        return msg

    def wait_for(
        self,
        until: int,
        timeout: float = SETUP_TIMEOUT,
        on_maps: Callable[[int], None] | None = None,
        on_hooks: Callable[[int], None] | None = None,
    ) -> None:
        """Read messages until ``until`` (READY) or EOF (exec'd, when until=0).

        ``on_maps(pid)`` writes the child's id maps when it asks (MAPS);
        ``on_hooks(pid)`` runs the create hooks (HOOKS); GO follows each.
        The hooks' own time does not count against ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            msg = self.recv(deadline)
            if msg is None:
                if until or self.arena is not None:  # EOF before READY, or before the handoff
                    raise PyContainerError(f"container init (pid {self.pid}) died during setup")
                if self.reset:  # (EOF, but the GO was never read: no exec)
                    raise PyContainerError(f"container init (pid {self.pid}) died before it could start")
                return
            if msg.type == MSG_ERROR:
                raise msg.error()
            if msg.type == MSG_MAPS:
                if on_maps is None:
                    raise PyContainerError("the child asked for id maps, but none were given")
                on_maps(self.pid)
                self.send_go()
            elif msg.type == MSG_HOOKS:
                if on_hooks is None:
                    raise PyContainerError("the child asked for hooks, but none were given")
                began = time.monotonic()
                on_hooks(self.pid)
                deadline += time.monotonic() - began
                self.send_go()
            elif msg.type == MSG_HANDED:
                # The child execs the helper: it no longer uses our memory.
                self.release_arena()
            elif msg.type == MSG_PID:
                # The plan re-cloned: reap the intermediate child, follow the new one.
                os.waitpid(self.pid, 0)
                self.pid = int(msg.pid)
            elif msg.type == until:
                return

    def _announced_pids(self) -> list[int]:
        pids = []
        try:
            while True:
                data = self.sock.recv(MSG_SIZE, socket.MSG_DONTWAIT)
                if not data:
                    break
                msg = Message.unpack(data)
                if msg.type == MSG_PID:
                    pids.append(int(msg.pid))
        except OSError:
            pass
        return pids

    def release_arena(self) -> None:
        if self.arena is not None:
            lib.pc_arena_release(self.arena, self.arena_size)
            self.arena = None

    def close(self) -> None:
        """Done with the protocol.  Every plan hands off before READY (and
        exec's EOF), so by now the child runs in its own memory."""
        assert self.arena is None, "the child still uses the arena"
        self.sock.close()

    def abandon(self) -> None:
        """Kill and reap a child whose setup failed, then free its arena."""
        # A re-cloned child may have announced itself after we stopped
        # reading, also while we reap the one we know: read again after each.
        pending = [self.pid]
        seen = set(pending)
        while pending:
            pid = pending.pop()
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
            for new in self._announced_pids():
                if new not in seen:
                    seen.add(new)
                    pending.append(new)
        # The child is gone: nothing uses the arena any more.
        self.release_arena()
        self.sock.close()
        if self.pty_master is not None:
            os.close(self.pty_master)
            self.pty_master = None


def spawn(
    ops: Sequence[_plan.PlanOp],
    clone_flags: int,
    *,
    packed: _plan.Packed | None = None,
    keep_fds: Sequence[int] = (),
    max_target_fd: int = 2,
    cgroup_fd: int = -1,
) -> Child:
    """Clone a child that runs ``ops``.  The caller then drives the protocol.

    The child closes every inherited fd >= 3 but ``keep_fds`` and its end of
    the sync socket before it does anything else."""
    # The arena is freed when the child reports HANDED: a plan without the
    # handoff would keep sharing our memory up to its exec.
    if packed is not None:  # (``ops`` packed already: plan_create's)
        hands_off = _plan.Op.HANDOFF in packed.kinds
        data, blob = packed.packed, packed.blob
    else:
        hands_off = any(o.kind is _plan.Op.HANDOFF for o in ops)
        data, blob = _plan.encode(ops)
    if not hands_off:
        raise ValueError("a plan must hand off to the helper")
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        args = ffi.new("struct pc_spawn_args *")
        args.clone_flags = clone_flags
        args.sync_fd = child.fileno()
        ops_buf = ffi.from_buffer("struct pc_op[]", data)
        blob_buf = ffi.from_buffer("char[]", blob or b"\0")
        args.ops = ops_buf
        args.nops = len(ops)
        args.blob = blob_buf
        args.blob_len = len(blob)
        keep = sorted({child.fileno(), *keep_fds})
        keep_buf = ffi.new("int[]", keep)
        args.keep_fds = keep_buf
        args.nkeep = len(keep)
        args.fd_base = max([max_target_fd, *keep]) + 1
        args.cgroup_fd = cgroup_fd
        res = ffi.new("struct pc_spawn_result *")
        lib.pc_spawn(args, res)
    finally:
        child.close()
    if res.pid < 0:
        parent.close()
        raise OSError(res.err, f"clone: {os.strerror(res.err)}")
    return Child(res.pid, parent, res.arena, res.arena_size)


def write_id_maps(pid: int, uid_maps: Sequence[object], gid_maps: Sequence[object]) -> None:
    for name, maps in (("uid_map", uid_maps), ("gid_map", gid_maps)):
        text = "".join(f"{m.container_id} {m.host_id} {m.size}\n" for m in maps)  # type: ignore[attr-defined]
        fd = os.open(f"/proc/{pid}/{name}", os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)


def userns_fd(
    uid_maps: Sequence[object], gid_maps: Sequence[object], helper_fd: int, write_maps: Callable[..., None]
) -> int:
    """An fd of a new user namespace with these maps, for an idmapped mount
    (mount_setattr takes the maps of a namespace, not a list).  A child
    makes the namespace and waits while we write its maps and open it;
    then it is killed: the fd keeps the namespace."""
    ops = [
        _plan.op(_plan.Op.HANDOFF, v=(helper_fd,)),
        _plan.op(_plan.Op.UNSHARE, v=(_plan.CLONE_NEWUSER,)),
        _plan.op(_plan.Op.SYNC, v=(MSG_MAPS,)),
        _plan.op(_plan.Op.SYNC, v=(MSG_MAPS,)),  # (never answered: the child waits here until killed)
    ]
    child = spawn(ops, 0, keep_fds=[helper_fd])
    try:
        deadline = time.monotonic() + SETUP_TIMEOUT
        while True:
            msg = child.recv(deadline)
            if msg is None:
                raise PyContainerError(f"the user namespace helper (pid {child.pid}) died")
            if msg.type == MSG_ERROR:
                raise msg.error()
            if msg.type == MSG_HANDED:
                child.release_arena()
            elif msg.type == MSG_MAPS:
                break
        write_maps(child.pid, uid_maps, gid_maps)
        return os.open(f"/proc/{child.pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        child.abandon()
