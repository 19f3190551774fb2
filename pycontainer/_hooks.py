"""Run OCI hooks: each a program with the container's state JSON on stdin.

Hooks of the runtime's namespaces run as plain children of this process.
Hooks of the container's namespaces (createContainer, startContainer) run
through util-linux's ``nsenter``, which joins every namespace of the
container's init that differs from ours (and, for startContainer, its
root): no Python runs between the fork and the hook's exec, so this is safe
from a threaded caller.  nsenter forks once more to enter the pid
namespace; both stay in the process group a timeout kills.
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
from .errors import HookError

_SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_OUTPUT_TAIL = 4096


def _nsenter() -> str:
    path = shutil.which("nsenter", path=_SYSTEM_PATH)
    if path is None:
        raise HookError("create_container", 0, "nsenter", "cannot run: nsenter (util-linux) is not installed")
    return path


def _argv(hook: Hook, enter_pid: int | None, into_root: bool) -> tuple[str, list[str]]:
    """The executable and argv: the hook itself, or nsenter in front of it.
    (Through nsenter the hook's argv[0] is its path.)"""
    if enter_pid is None:
        return hook.path, hook.argv()
    nsenter = _nsenter()
    argv = [nsenter, f"--target={enter_pid}", "--all"]
    if into_root:
        argv += ["--root", "--wd=/"]
    return nsenter, [*argv, "--", hook.path, *hook.argv()[1:]]


def _run_one(kind: str, index: int, hook: Hook, state: bytes, enter_pid: int | None, into_root: bool) -> None:
    exe, argv = _argv(hook, enter_pid, into_root)
    env = dict(e.split("=", 1) if "=" in e else (e, "") for e in hook.env)
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
        if proc.returncode < 0:
            why = f"was killed by {signal.Signals(-proc.returncode).name}"
        elif enter_pid is not None and proc.returncode in (126, 127) and b"nsenter:" in out:
            why = f"cannot run in the container ({proc.returncode})"
        else:
            why = f"exited with status {proc.returncode}"
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
    into_root: bool = False,
) -> None:
    """Run ``hooks`` in order; the first that fails raises HookError and
    the rest do not run (the spec's rule for every kind but poststart and
    poststop)."""
    data = state_json(state, status)
    for i, hook in enumerate(hooks):
        _run_one(kind, i, hook, data, enter_pid, into_root)


def run_warn(kind: str, hooks: Sequence[Hook], state: dict[str, Any], status: str) -> None:
    """Run every hook; a failure is a warning and the next hook runs (the
    spec's rule for poststart and poststop)."""
    data = state_json(state, status)
    for i, hook in enumerate(hooks):
        try:
            _run_one(kind, i, hook, data, None, False)
        except HookError as e:
            warnings.warn(str(e), stacklevel=3)
