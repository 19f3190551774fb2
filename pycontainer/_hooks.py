"""Run OCI hooks: each a program with the container's state JSON on stdin.

Hooks of the runtime's namespaces run as plain children of this process.
createContainer hooks, whose path resolves in the runtime's tree, run
through util-linux's ``nsenter``, which joins every namespace of the
container's init that differs from ours: no Python runs between the fork
and the hook's exec, so this is safe from a threaded caller; nsenter forks
once more to enter the pid namespace, and both stay in the process group a
timeout kills.  startContainer hooks, whose path resolves in the
container's rootfs (a program the image controls), run as the container's
own process would: through ``Container.exec``, in its cgroup, with its
user, capabilities, no_new_privs and seccomp filter (runc runs them from
its init, after those are applied).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import warnings
from collections.abc import Sequence
from typing import Any

from .config import Hook
from .errors import HookError, PyContainerError

_SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_OUTPUT_TAIL = 4096


def _nsenter() -> str:
    path = shutil.which("nsenter", path=_SYSTEM_PATH)
    if path is None:
        raise HookError("create_container", 0, "nsenter", "cannot run: nsenter (util-linux) is not installed")
    return path


def _argv(hook: Hook, enter_pid: int | None) -> tuple[str, list[str]]:
    """The executable and argv: the hook itself, or nsenter in front of it.
    (Through nsenter the hook's argv[0] is its path.)"""
    if enter_pid is None:
        return hook.path, hook.argv()
    nsenter = _nsenter()
    return nsenter, [nsenter, f"--target={enter_pid}", "--all", "--", hook.path, *hook.argv()[1:]]


def _why(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


def _run_one(kind: str, index: int, hook: Hook, state: bytes, enter_pid: int | None) -> None:
    exe, argv = _argv(hook, enter_pid)
    env = {key: value for key, _, value in (e.partition("=") for e in hook.env)}
    try:
        proc = subprocess.Popen(
            argv,
            executable=exe,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            close_fds=True,
            start_new_session=True,  # a timeout kills the hook and what it started
        )
    except OSError as e:
        raise HookError(kind, index, hook.path, f"cannot run: {e.strerror or e}") from None
    try:
        out, _ = proc.communicate(state, timeout=hook.timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        raise HookError(kind, index, hook.path, f"timed out after {hook.timeout} s", _tail(out)) from None
    except BaseException:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    if proc.returncode:
        if enter_pid is not None and proc.returncode in (126, 127) and b"nsenter:" in out:
            why = f"cannot run in the container ({proc.returncode})"
        else:
            why = _why(proc.returncode)
        raise HookError(kind, index, hook.path, why, _tail(out))


def _tail(out: bytes) -> str:
    return out[-_OUTPUT_TAIL:].decode("utf-8", "replace")


def state_json(state: dict[str, Any], status: str) -> bytes:
    return json.dumps({**state, "status": status}).encode()


def run(
    kind: str,
    hooks: Sequence[Hook],
    state: dict[str, Any],
    status: str,
    *,
    enter_pid: int | None = None,
) -> None:
    """Run ``hooks`` in order; the first that fails raises HookError and
    the rest do not run (the spec's rule for every kind but poststart and
    poststop)."""
    data = state_json(state, status)
    for i, hook in enumerate(hooks):
        _run_one(kind, i, hook, data, enter_pid)


def run_in_container(kind: str, hooks: Sequence[Hook], state: dict[str, Any], status: str, container: Any) -> None:
    """Run ``hooks`` as processes of ``container`` (``Container.exec`` with
    its process's user and confinement), each with the state on stdin."""
    import attrs

    from ._process import PIPE, STDOUT

    data = state_json(state, status)
    base = container.config.process
    for i, hook in enumerate(hooks):
        proc = attrs.evolve(base, args=[hook.path, *hook.argv()[1:]], env=hook.env, cwd="/", terminal=False)
        try:
            p = container.exec(proc, stdin=PIPE, stdout=PIPE, stderr=STDOUT)
        except PyContainerError as e:
            raise HookError(kind, i, hook.path, f"cannot run: {e}") from None
        with p:
            try:
                out, _ = p.communicate(data, timeout=hook.timeout)
            except TimeoutError:
                p.kill(signal.SIGKILL)
                p.wait()
                raise HookError(kind, i, hook.path, f"timed out after {hook.timeout} s") from None
            except BaseException:
                p.kill(signal.SIGKILL)
                p.wait()
                raise
            status_ = p.wait()
        code = status_.returncode
        if code:
            raise HookError(kind, i, hook.path, _why(code), _tail(out or b""))


def run_warn(kind: str, hooks: Sequence[Hook], state: dict[str, Any], status: str) -> None:
    """Run every hook; a failure is a warning and the next hook runs (the
    spec's rule for poststart and poststop)."""
    data = state_json(state, status)
    for i, hook in enumerate(hooks):
        try:
            _run_one(kind, i, hook, data, None)
        except HookError as e:
            warnings.warn(str(e), stacklevel=3)
