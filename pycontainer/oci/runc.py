"""``pycontainer-runc``: runc's command line over pycontainer, for engines
that drive a runtime binary with an OCI bundle.

Commands: ``spec``, ``features``, ``create``, ``start``, ``run``
(foreground or ``--detach``), ``exec`` (``--process`` or a command line),
``state``, ``kill``, ``delete``, ``list``, ``ps``, ``pause``, ``resume``,
``events``, ``update``; global ``--root``, ``--log``, ``--log-format``,
``--debug``.  A container's pid 1 is pycontainer's init, which records the
exit status in the state directory: a detached container needs no process
of ours while it runs.  Errors are printed on stderr (and logged to
``--log``) with exit status 1, as runc does; warnings (a failed poststart
or poststop hook) go the same ways and change no exit status.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:  # (imported where used: the runtime starts faster without them)
    from .. import Container, ContainerConfig, Process, Resources

DEFAULT_ROOT = "/run/pycontainer-runc"


class _Usage(Exception):
    pass


class _Unused:
    """Stands for a subcommand's parser that this process does not build."""

    def add_argument(self, *_args: Any, **_kw: Any) -> None:
        return None


_GLOBAL_WITH_VALUE = ("--root", "--log", "--log-format")
_COMMANDS = ("spec", "features", "create", "run", "start", "state", "pause", "resume", "exec", "kill", "delete",
             "list", "ps", "events", "update")  # fmt: skip


def _command_of(argv: list[str]) -> str | None:
    """The subcommand in ``argv`` (the first word that is not a global option)."""
    words = iter(argv)
    for word in words:
        if word in _GLOBAL_WITH_VALUE:
            next(words, None)
        elif word == "--" or not word.startswith("-"):
            return None if word == "--" else word
    return None


def _parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """runc's command line.  With ``argv``, only the subcommand it names is
    built: argparse looks up a translation for every help string, and each
    command is a process of its own (engines run one per step)."""
    only = _command_of(sys.argv[1:] if argv is None else argv)
    if only not in _COMMANDS:
        only = None  # --help, or a word argparse shall call an invalid choice among all
    p = argparse.ArgumentParser(prog="pycontainer-runc", description="runc's command line over pycontainer")
    p.add_argument("--root", default=DEFAULT_ROOT, help=f"state directory (default {DEFAULT_ROOT})")
    p.add_argument("--log", help="log file (default: stderr only)")
    p.add_argument("--log-format", choices=("text", "json"), default="text")
    p.add_argument("--debug", action="store_true")
    p.add_argument("--systemd-cgroup", action="store_true", help="not supported: refused")
    sub = p.add_subparsers(dest="command", required=True)

    def add(name: str, **kw: Any) -> Any:
        return sub.add_parser(name, **kw) if only is None or only == name else _Unused()

    s = add("spec", help="write a default config.json")
    s.add_argument("--bundle", "-b", default=".")

    add("features", help="what this runtime supports, as JSON")

    for name in ("create", "run"):
        c = add(name)
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
        add(name).add_argument("id")

    e = add("exec", help="run another process in a running container")
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

    k = add("kill")
    k.add_argument("--all", "-a", action="store_true")
    k.add_argument("id")
    k.add_argument("signal", nargs="?", default="SIGTERM")

    d = add("delete")
    d.add_argument("--force", "-f", action="store_true")
    d.add_argument("id")

    ls = add("list")
    ls.add_argument("--format", "-f", choices=("table", "json"), default="table")
    ls.add_argument("--quiet", "-q", action="store_true")

    ps = add("ps")
    ps.add_argument("--format", "-f", choices=("table", "json"), default="table")
    ps.add_argument("id")

    ev = add("events", help="stats every --interval, and OOM events, as JSON lines")
    ev.add_argument("--stats", action="store_true", help="print the stats once and exit")
    ev.add_argument("--interval", default="5s", help="time between stats (5s, 500ms, 1m)")
    ev.add_argument("id")

    up = add("update", help="change a live container's resource limits")
    up.add_argument("--resources", "-r", help="a JSON file with the spec's linux.resources object ('-': stdin)")
    for flag in _UPDATE_FLAGS:
        up.add_argument(flag)
    up.add_argument("id")
    return p


# runc update's flags -> Resources fields (memory sizes take k/m/g suffixes)
_UPDATE_FLAGS = {
    "--blkio-weight": "blkio_weight",
    "--cpu-period": "cpu_period",
    "--cpu-quota": "cpu_quota",
    "--cpu-share": "cpu_shares",
    "--cpu-rt-period": "cpu_rt_period",
    "--cpu-rt-runtime": "cpu_rt_runtime",
    "--cpuset-cpus": "cpuset_cpus",
    "--cpuset-mems": "cpuset_mems",
    "--memory": "memory",
    "--memory-reservation": "memory_reservation",
    "--memory-swap": "memory_swap",
    "--pids-limit": "pids_limit",
}
_SIZE_FIELDS = {"memory", "memory_reservation", "memory_swap"}
_TEXT_FIELDS = {"cpuset_cpus", "cpuset_mems"}


def _size(flag: str, text: str) -> int:
    """A byte count as runc's units.RAMInBytes reads it: 512, 64m, 1.5GiB; -1 is unlimited."""
    import re

    if text.strip() == "-1":
        return -1
    m = re.fullmatch(r"(\d+(?:\.\d+)?) ?([kmgtp])?i?b?", text.strip(), re.IGNORECASE)
    if not m:
        raise _Usage(f"invalid value {text!r} for {flag}: not a size such as 512, 64m or 1g")
    power = " kmgtp".index((m.group(2) or " ").lower())
    return int(float(m.group(1)) * 1024**power)


def _duration(text: str) -> float:
    """Go's time.ParseDuration for the units runc's users give: 5s, 500ms, 1m30s."""
    import re

    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|µs|ns|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise _Usage(f"invalid duration {text!r} (such as 5s, 500ms, 1m)")
    scale = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    seconds = sum(float(n) * scale[u] for n, u in parts)
    if seconds <= 0:
        raise _Usage(f"duration must be greater than 0, not {text!r}")
    return seconds


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


def _load_config(bundle: str) -> ContainerConfig:
    import attrs

    from . import load_bundle

    cfg = load_bundle(bundle)  # (its warnings go where main() shows them)
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


def _create(args: argparse.Namespace) -> Container:
    from .. import Container

    bundle = os.path.abspath(args.bundle)
    cfg = _load_config(bundle)
    if cfg.process.terminal and not args.console_socket:
        raise _Usage("process.terminal needs --console-socket")
    if args.console_socket and not cfg.process.terminal:
        raise _Usage("--console-socket is for a process with terminal: true")
    import attrs

    cfg = attrs.evolve(cfg, no_pivot_root=args.no_pivot, new_keyring=not args.no_new_keyring)
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


def _state_json(c: Container) -> dict[str, Any]:
    """runc's state: the spec's, with rootfs, owner and annotations."""
    import pwd

    state = c.state()
    st = state.to_oci()
    st["rootfs"] = state.rootfs
    try:
        st["owner"] = pwd.getpwuid(os.stat(c.dir).st_uid).pw_name
    except (KeyError, OSError):
        st["owner"] = ""
    if c.config.annotations:
        st["annotations"] = dict(c.config.annotations)
    return st


def _table(rows: list[list[Any]]) -> None:
    """Columns as runc's tabwriter lays them out (min width 12, padding 3)."""
    cells = [[str(x) for x in row] for row in rows]
    widths = [max(12, *(len(row[i]) + 3 for row in cells)) for i in range(len(cells[0]) - 1)]
    for row in cells:
        print("".join(x.ljust(w) for x, w in zip(row[:-1], widths, strict=True)) + row[-1])


def _update_resources(args: argparse.Namespace) -> Resources:
    """The limits to change: --resources (the spec's linux.resources object)
    and the flags on top, as runc update reads them."""
    import attrs

    from .. import Resources
    from . import _obj, _resources

    res = Resources()
    if args.resources:
        try:
            if args.resources == "-":
                raw = json.load(sys.stdin)
            else:
                with open(args.resources, encoding="utf-8") as f:
                    raw = json.load(f)
        except (OSError, ValueError) as e:
            raise _Usage(f"cannot read the resources {args.resources}: {e}") from None
        res = _resources(_obj(raw, "resources"))
    changes: dict[str, Any] = {}
    for flag, field in _UPDATE_FLAGS.items():
        text = getattr(args, flag[2:].replace("-", "_"))
        if text is None:
            continue
        if field in _SIZE_FIELDS:
            changes[field] = _size(flag, text)
        elif field in _TEXT_FIELDS:
            changes[field] = text
        else:
            try:
                changes[field] = int(text)
            except ValueError:
                raise _Usage(f"invalid value {text!r} for {flag}: not a number") from None
    return attrs.evolve(res, **changes)


def _stats_json(st: Any) -> dict[str, Any]:
    """Our Stats in the shape of runc's events data (libcontainer's types.Stats)."""
    m, cpu, pids, io = st.memory, st.cpu, st.pids, st.io

    def clean(d: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in d.items() if v is not None and v != {}}

    return clean({
        "cpu": clean({
            "usage": clean({"total": cpu.total_ns, "kernel": cpu.system_ns, "user": cpu.user_ns}),
            "throttling": clean({"periods": cpu.periods, "throttledPeriods": cpu.throttled_periods,
                                 "throttledTime": cpu.throttled_ns}),
        }),
        "memory": clean({
            "usage": clean({"usage": m.usage, "max": m.peak, "limit": m.limit, "failcnt": m.failcnt}),
            "swap": clean({"usage": m.swap_usage}),
        }),
        "pids": clean({"current": pids.current, "limit": pids.limit}),
        "blkio": {"ioServiceBytesRecursive": [{"op": op, "value": v} for op, v in
                                              (("Read", io.read_bytes), ("Write", io.write_bytes)) if v is not None]},
        "oomKills": st.oom_kills,
    })  # fmt: skip


def _events(args: argparse.Namespace, c: Container) -> int:
    """runc events: {"type": "stats", "id", "data"} every --interval, and
    {"type": "oom", "id"} when the OOM killer acts, until the container
    stops; --stats prints the stats once."""
    import time

    from .. import Status

    interval = _duration(args.interval)

    def emit(event: dict[str, Any]) -> None:
        print(json.dumps(event), flush=True)

    if args.stats:
        emit({"type": "stats", "id": c.id, "data": _stats_json(c.stats())})
        return 0
    with c.oom_watcher() as oom:
        due = time.monotonic()
        while c.status is not Status.STOPPED:
            left = due - time.monotonic()
            if left > 0 and oom.wait(min(left, 1.0)):
                emit({"type": "oom", "id": c.id})
                continue
            if time.monotonic() >= due:
                emit({"type": "stats", "id": c.id, "data": _stats_json(c.stats())})
                due += interval
    return 0


def run(argv: list[str] | None = None) -> int:
    """One command line; errors are raised (main() reports them as runc)."""
    return _run(_parser(argv).parse_args(argv))


def _run(args: argparse.Namespace) -> int:
    from .. import Container, ContainerNotFound

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
        try:
            c.start()
        except BaseException:
            c.delete(force=True)  # as runc: a run that cannot start leaves nothing
            raise
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
            _table([["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]]
                   + [[r["id"], r["pid"], r["status"], r["bundle"], r["created"], r["owner"]] for r in rows])  # fmt: skip
        return 0
    try:
        c = Container.load(args.root, args.id)
    except ContainerNotFound:
        if cmd == "delete" and args.force:
            return 0  # as runc: forcing away what is not there is done
        raise
    if cmd == "events":
        return _events(args, c)
    if cmd == "update":
        c.update(_update_resources(args))
        return 0
    if cmd == "exec":
        return _exec(args, c)
    if cmd == "start":
        c.start()
    elif cmd == "state":
        print(json.dumps(_state_json(c), indent=2))
    elif cmd == "kill":
        from .._sys import signal_number

        try:
            sig = signal_number(args.signal)
        except ValueError as e:
            raise _Usage(str(e)) from None
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


def _exec_process(args: argparse.Namespace, c: Container) -> Process:
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


def _exec(args: argparse.Namespace, c: Container) -> int:
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
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": sorted({*_FLAG_OPTIONS, *_PROPAGATION_FLAGS, "idmap", "ridmap"}),
        "linux": {
            "namespaces": [n.value for n in NamespaceType],
            "capabilities": f["capabilities"],
            "cgroup": {"v1": True, "v2": True, "systemd": False},
            "seccomp": {"enabled": True, "actions": f["seccomp"]["actions"], "operators": f["seccomp"]["operators"]},
            "apparmor": {"enabled": f["apparmor"]},
            "selinux": {"enabled": f["selinux"]},
        },
    }


def _runc_message(e: BaseException, command: str | None) -> str:
    """runc's words for the lifecycle errors engines look for (podman and
    containerd match on them); our own message otherwise."""
    if command == "exec":
        return f"exec failed: {_runc_words(e, command)}"
    return _runc_words(e, command)


def _runc_words(e: BaseException, command: str | None) -> str:
    from .. import ContainerExists, ContainerNotFound, InvalidStateTransition

    if isinstance(e, ContainerNotFound):
        return "container does not exist"
    if isinstance(e, ContainerExists):
        return f"{command} failed: container with given ID already exists"
    if isinstance(e, InvalidStateTransition):
        action, status = e.action, e.from_
        if action == "start":
            if status == "stopped":
                return "cannot start a container that has stopped"
            return "cannot start an already running container"
        if action == "delete":
            return f"cannot delete container {e.id} that is not stopped: {status}"
        if action == "exec":
            return f"cannot exec in a {status} container"
        if action == "resume":
            return "container not paused"
        if action in ("kill", "pause"):
            return "container not running"
    return str(e)


def _emit(args: argparse.Namespace, level: str, msg: str) -> None:
    """A message on stderr as runc's logrus writes it, and to --log."""
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    print(f'time="{now}" level={level} msg={json.dumps(msg)}', file=sys.stderr)
    try:
        _log(args, level, msg)
    except OSError:
        pass


def main(argv: list[str] | None = None) -> int:
    """The console script: runc's messages on stderr and its exit statuses
    (1 for an error, 255 for a failed exec)."""
    import warnings

    from .. import PyContainerError

    args = _parser(argv).parse_args(argv)  # (a usage error exits 2 with argparse's message)

    def show(  # (warnings.showwarning's signature)
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        _emit(args, "warning", str(message))

    warnings.showwarning = show
    warnings.simplefilter("always", UserWarning)
    if args.debug:
        # as runc --debug: what is being done goes to the log (stderr without --log)
        debug = _log if args.log else (lambda _a, level, msg: _emit(args, level, msg))
        debug(args, "debug", f"command line: {' '.join(sys.argv[1:] if argv is None else argv)}")
    try:
        status = _run(args)
        if args.debug:
            debug(args, "debug", f"{args.command}: done, exit status {status}")
        return status
    except (PyContainerError, _Usage, OSError) as e:
        command = args.command
        _emit(args, "error", _runc_message(e, command))
        return 255 if command == "exec" else 1


if __name__ == "__main__":
    sys.exit(main())
