"""``pycontainer-runc``: runc's command line over pycontainer, for engines
that drive a runtime binary with an OCI bundle.

Built so far: ``spec``, ``features``, ``create``, ``start``, ``run``
(foreground or ``--detach``), ``exec`` (``--process`` or a command line),
``state``, ``kill``, ``delete``, ``list``, ``ps``, ``pause``, ``resume``; global ``--root``, ``--log``, ``--log-format``,
``--debug``.  A container's pid 1 is pycontainer's init, which records the
exit status in the state directory: a detached container needs no process
of ours while it runs.  Errors are printed on stderr (and logged to
``--log``) with exit status 1, as runc does.  Not yet: ``exec``,
``events``, ``update``, ``--console-socket``, hooks.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from typing import Any

DEFAULT_ROOT = "/run/pycontainer-runc"


class _Usage(Exception):
    pass


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pycontainer-runc", description="runc's command line over pycontainer")
    p.add_argument("--root", default=DEFAULT_ROOT, help=f"state directory (default {DEFAULT_ROOT})")
    p.add_argument("--log", help="log file (default: stderr only)")
    p.add_argument("--log-format", choices=("text", "json"), default="text")
    p.add_argument("--debug", action="store_true")
    p.add_argument("--systemd-cgroup", action="store_true", help="not supported: refused")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("spec", help="write a default config.json")
    s.add_argument("--bundle", "-b", default=".")

    sub.add_parser("features", help="what this runtime supports, as JSON")

    for name in ("create", "run"):
        c = sub.add_parser(name)
        c.add_argument("--bundle", "-b", default=".")
        c.add_argument("--pid-file")
        c.add_argument("--console-socket")
        c.add_argument("--preserve-fds", type=int, default=0)
        c.add_argument("--no-pivot", action="store_true")
        c.add_argument("--no-new-keyring", action="store_true")
        if name == "run":
            c.add_argument("--detach", "-d", action="store_true")
        c.add_argument("id")

    for name in ("start", "state", "pause", "resume"):
        sub.add_parser(name).add_argument("id")

    e = sub.add_parser("exec", help="run another process in a running container")
    e.add_argument("--process", "-p", help="a JSON file with the runtime spec's process object")
    e.add_argument("--cwd")
    e.add_argument("--env", "-e", action="append", default=[])
    e.add_argument("--user", "-u", help="uid[:gid]")
    e.add_argument("--cap", "-c", action="append", default=[], help="add a capability")
    e.add_argument("--no-new-privs", action="store_true")
    e.add_argument("--detach", "-d", action="store_true")
    e.add_argument("--pid-file")
    e.add_argument("--tty", "-t", action="store_true")
    e.add_argument("--console-socket")
    e.add_argument("--preserve-fds", type=int, default=0)
    e.add_argument("id")
    e.add_argument("argv", nargs=argparse.REMAINDER, metavar="COMMAND")

    k = sub.add_parser("kill")
    k.add_argument("--all", "-a", action="store_true")
    k.add_argument("id")
    k.add_argument("signal", nargs="?", default="SIGTERM")

    d = sub.add_parser("delete")
    d.add_argument("--force", "-f", action="store_true")
    d.add_argument("id")

    ls = sub.add_parser("list")
    ls.add_argument("--format", "-f", choices=("table", "json"), default="table")
    ls.add_argument("--quiet", "-q", action="store_true")

    ps = sub.add_parser("ps")
    ps.add_argument("--format", "-f", choices=("table", "json"), default="table")
    ps.add_argument("id")
    return p


def _write_pid_file(path: str, pid: int) -> None:
    """The pid, replacing the file whole (a reader never sees half of it)."""
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="ascii") as f:
        f.write(str(pid))
    os.replace(tmp, path)


def _log(args: argparse.Namespace, level: str, msg: str) -> None:
    if not args.log:
        return
    now = datetime.datetime.now(datetime.timezone.utc).isoformat()
    if args.log_format == "json":
        line = json.dumps({"level": level, "msg": msg, "time": now})
    else:
        line = f'time="{now}" level={level} msg={json.dumps(msg)}'
    with open(args.log, "a", encoding="utf-8") as f:
        f.write(line + "\n")


def _load_config(bundle: str) -> Any:
    import warnings

    import attrs

    from . import load_bundle

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cfg = load_bundle(bundle)
    for w in caught:
        print(f"pycontainer-runc: warning: {w.message}", file=sys.stderr)
    # pid 1 is pycontainer's init: it records the exit status for later commands
    return attrs.evolve(cfg, init=True)


def _send_console(path: str, master: int) -> None:
    """Hand the pty master to whoever listens on ``path`` (a unix socket),
    as runc does: one message carrying the fd (SCM_RIGHTS), with the
    master's name as its data."""
    import socket

    name = "/dev/ptmx"  # the master's name, as runc's console package gives it
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(path)
        socket.send_fds(s, [name.encode()], [master])


def _create(args: argparse.Namespace) -> Any:
    from .. import Container

    bundle = os.path.abspath(args.bundle)
    cfg = _load_config(bundle)
    if cfg.process.terminal and not args.console_socket:
        raise _Usage("process.terminal needs --console-socket")
    if args.console_socket and not cfg.process.terminal:
        raise _Usage("--console-socket is for a process with terminal: true")
    pass_fds = list(range(3, 3 + args.preserve_fds))
    c = Container.create(args.root, args.id, cfg, pass_fds=pass_fds, bundle=bundle)
    if c.pty is not None:
        try:
            _send_console(args.console_socket, c.pty)
        except OSError as e:
            c.delete(force=True)
            raise _Usage(f"cannot send the console to {args.console_socket}: {e.strerror or e}") from None
        os.close(c.pty)
        c.pty = None
    if args.pid_file:
        _write_pid_file(args.pid_file, c.pid)
    return c


def _state_json(c: Any) -> dict[str, Any]:
    st = c.state().to_oci()
    st["rootfs"] = c.state().rootfs
    return st


def run(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from .. import Container

    if args.systemd_cgroup:
        raise _Usage("--systemd-cgroup is not supported (pycontainer manages cgroupfs itself)")
    cmd = args.command
    if cmd == "spec":
        from .. import ContainerConfig, Process, User
        from . import spec_from_config

        path = os.path.join(args.bundle, "config.json")
        if os.path.exists(path):
            raise _Usage(f"File {path} exists. Remove it first")
        spec = spec_from_config(
            ContainerConfig(process=Process(args=["sh"], terminal=True, user=User()), rootfs="/rootfs")
        )
        spec["root"] = {"path": "rootfs", "readonly": True}
        spec["hostname"] = "pycontainer"
        with open(path, "w", encoding="utf-8") as f:
            json.dump(spec, f, indent=2)
        return 0
    if cmd == "features":
        print(json.dumps(_features(), indent=2))
        return 0
    if cmd == "create":
        c = _create(args)
        c.close()
        return 0
    if cmd == "run":
        c = _create(args)
        c.start()
        if args.detach:
            c.close()
            return 0
        status = c.wait()
        c.delete()
        return status.code if status.code is not None else 128 + (status.signal or 0)
    if cmd == "list":
        rows = [_state_json(c) for c in Container.list(args.root)]
        if args.quiet:
            print("\n".join(r["id"] for r in rows))
        elif args.format == "json":
            print(json.dumps(rows))
        else:
            print(f"{'ID':<16}{'PID':<8}{'STATUS':<10}{'BUNDLE':<40}CREATED")
            for r in rows:
                print(f"{r['id']:<16}{r['pid']:<8}{r['status']:<10}{r['bundle']:<40}{r['created']}")
        return 0
    c = Container.load(args.root, args.id)
    if cmd == "exec":
        return _exec(args, c)
    if cmd == "start":
        c.start()
    elif cmd == "state":
        print(json.dumps(_state_json(c), indent=2))
    elif cmd == "kill":
        from ..cli import _parse_signal

        sig = _parse_signal(args.signal)
        if args.all:
            for pid in c.processes():
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
        else:
            c.kill(sig)
    elif cmd == "delete":
        c.delete(force=args.force)
    elif cmd == "pause":
        c.pause()
    elif cmd == "resume":
        c.resume()
    elif cmd == "ps":
        pids = c.processes()
        if args.format == "json":
            print(json.dumps(pids))
        else:
            print("PID")
            print("\n".join(map(str, pids)))
    return 0


def _exec_process(args: argparse.Namespace, c: Any) -> Any:
    """The process to exec: --process (the spec's process object), or the
    command line with the container's process as the base."""
    import attrs

    from .. import Capabilities, User
    from . import _process

    if args.process:
        try:
            with open(args.process, encoding="utf-8") as f:
                raw = json.load(f)
        except (OSError, ValueError) as e:
            raise _Usage(f"cannot read the process file {args.process}: {e}") from None
        return _process(raw if isinstance(raw, dict) else {})
    if not args.argv:
        raise _Usage("exec needs a command (or --process)")
    base = c.config.process
    proc = attrs.evolve(base, args=args.argv, env=(*base.env, *args.env), cwd=args.cwd or base.cwd,
                        terminal=False, no_new_privileges=base.no_new_privileges or args.no_new_privs)  # fmt: skip
    if args.user:
        uid, _, gid = args.user.partition(":")
        if not uid.isdigit() or (gid and not gid.isdigit()):
            raise _Usage(f"--user {args.user!r} is not uid[:gid]")
        proc = attrs.evolve(proc, user=User(int(uid), int(gid or uid)))
    if args.cap:
        caps = base.capabilities or Capabilities()
        add = [*args.cap]
        proc = attrs.evolve(proc, capabilities=Capabilities(
            bounding=(*caps.bounding, *add), effective=(*caps.effective, *add), permitted=(*caps.permitted, *add),
            inheritable=caps.inheritable, ambient=caps.ambient))  # fmt: skip
    return proc


def _exec(args: argparse.Namespace, c: Any) -> int:
    import attrs

    proc = _exec_process(args, c)
    if args.tty:
        proc = attrs.evolve(proc, terminal=True)
    if proc.terminal and not args.console_socket:
        raise _Usage("a terminal needs --console-socket")
    p = c.exec(proc, pass_fds=list(range(3, 3 + args.preserve_fds)))
    if p.pty is not None:
        try:
            _send_console(args.console_socket, p.pty)
        finally:
            os.close(p.pty)
            p.pty = None
    if args.pid_file:
        _write_pid_file(args.pid_file, p.pid)
    if args.detach:
        return 0
    status = p.wait()
    return status.code if status.code is not None else 128 + (status.signal or 0)


def _features() -> dict[str, Any]:
    from .. import security
    from ..config import NamespaceType
    from .._plan import _FLAG_OPTIONS, _PROPAGATION_FLAGS

    f = security.features()
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.0.2",
        "hooks": [],
        "mountOptions": sorted({*_FLAG_OPTIONS, *_PROPAGATION_FLAGS}),
        "linux": {
            "namespaces": [n.value for n in NamespaceType],
            "capabilities": f["capabilities"],
            "cgroup": {"v1": True, "v2": True, "systemd": False},
            "seccomp": {"enabled": True, "actions": f["seccomp"]["actions"], "operators": f["seccomp"]["operators"]},
            "apparmor": {"enabled": f["apparmor"]},
            "selinux": {"enabled": f["selinux"]},
        },
    }


def main(argv: list[str] | None = None) -> int:
    """The console script: runc's exit status 1 and a message on stderr for
    any error."""
    from .. import PyContainerError

    try:
        return run(argv)
    except (PyContainerError, _Usage, OSError) as e:
        msg = str(e)
        try:
            args = _parser().parse_known_args(argv)[0]
            _log(args, "error", msg)
        except SystemExit:
            pass
        print(f"pycontainer-runc: {msg}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
