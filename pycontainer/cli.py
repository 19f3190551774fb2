"""A first command line over the library: run, list, state, kill, delete.

    python -m pycontainer run [--rootfs DIR | --image REF] [-e K=V] [-v SRC:DST[:ro]] [--hostname H]
                              [--workdir D] [--user U] [--init] [-t] [--name ID] -- CMD...
    python -m pycontainer list | state ID | kill ID [SIGNAL] | delete [-f] ID

Only this module maps errors to exit codes; the library raises.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import signal
import sys
import termios
import tty
import uuid
from collections.abc import Sequence

from . import Container, ContainerConfig, Mount, Process, User, _sys
from .errors import ConfigError, ContainerNotFound, InitError, InvalidStateTransition, PyContainerError


def _parse_volume(spec: str) -> Mount:
    parts = spec.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise ConfigError("volume", f"{spec!r} is not SRC:DST[:ro|rw]")
    options: list[str] = ["rbind"]
    if len(parts) == 3:
        if parts[2] not in ("ro", "rw"):
            raise ConfigError("volume", f"{parts[2]!r} in {spec!r} is not ro or rw")
        options.append(parts[2])
    return Mount(destination=parts[1], source=os.path.abspath(parts[0]), type="bind", options=tuple(options))


def _parse_signal(text: str) -> int:
    if text.isdigit():
        return int(text)
    name = text.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise ConfigError("signal", f"unknown signal {text!r}") from None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pycontainer", description="Run containers without a daemon.")
    p.add_argument("--root", help="state root (default $PYCONTAINER_ROOT or /run/pycontainer)")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a command in a new container and wait for it")
    run.add_argument("--rootfs", help="a directory to use as / (default: the built-in localhost/busybox image)")
    run.add_argument("--image", help="an image in the store (see pycontainer.images) to run")
    run.add_argument("--data-root", help="images and layers (default $PYCONTAINER_DATA_ROOT or /var/lib/pycontainer)")
    run.add_argument("--name", help="container id (default: a random one)")
    run.add_argument("-e", "--env", action="append", default=[], metavar="K=V")
    run.add_argument("-v", "--volume", action="append", default=[], metavar="SRC:DST[:ro]")
    run.add_argument("--hostname")
    run.add_argument("-w", "--workdir", default="/")
    run.add_argument("-u", "--user", help="user[:group] or uid[:gid]")
    run.add_argument("--init", action="store_true", help="run an init as pid 1 that reaps zombies")
    run.add_argument("-t", "--tty", action="store_true", help="give the process a terminal")
    run.add_argument("--read-only", action="store_true", help="mount the rootfs read-only")
    run.add_argument("--network", help="none, host, container:<id>, or a network's name (bridge: the default one)")
    run.add_argument("-p", "--publish", action="append", default=[], metavar="[IP:]HOST:CONTAINER[/PROTO]")
    run.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD [ARG...]")

    sub.add_parser("list", help="list containers")
    st = sub.add_parser("state", help="print a container's state as JSON")
    st.add_argument("id")
    k = sub.add_parser("kill", help="send a signal to a container's init")
    k.add_argument("id")
    k.add_argument("signal", nargs="?", default="TERM")
    d = sub.add_parser("delete", help="remove a container")
    d.add_argument("-f", "--force", action="store_true", help="kill it first if it runs")
    d.add_argument("id")
    net = sub.add_parser("network", help="bridge networks: create, ls, inspect, rm")
    nsub = net.add_subparsers(dest="network_command", required=True)
    nc = nsub.add_parser("create", help="make a network (its bridge comes with the first container)")
    nc.add_argument("name")
    nc.add_argument(
        "--subnet",
        help="an IPv4 range (default: the first free /24 of 10.77.0.0/16 that no other network nor host route overlaps)",
    )
    nc.add_argument("--subnet6", help="an IPv6 range, for IPv6 addresses too")
    nc.add_argument("--mtu", type=int, default=1500)
    nsub.add_parser("ls", help="list the networks")
    ni = nsub.add_parser("inspect", help="a network and its members, as JSON")
    ni.add_argument("name")
    nr = nsub.add_parser("rm", help="remove a network no container uses")
    nr.add_argument("name")
    return p


def _config(args: argparse.Namespace) -> ContainerConfig:
    cmd = list(args.cmd)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd and not args.image:
        raise ConfigError("cmd", "no command given (run ... -- CMD [ARG...])")
    env: list[str] = []  # our PATH (or the image's Env) comes in when it is not given
    for item in args.env:
        if "=" not in item:
            item = f"{item}={os.environ.get(item, '')}"
        key = item.partition("=")[0]
        env = [e for e in env if e.partition("=")[0] != key] + [item]
    return ContainerConfig(
        process=Process(
            args=cmd,
            env=env,
            cwd=args.workdir,
            user=args.user or User(),
            terminal=args.tty,
        ),
        rootfs=os.path.abspath(args.rootfs) if args.rootfs else None,
        image=args.image,
        hostname=args.hostname,
        mounts=[_parse_volume(v) for v in args.volume],
        init=args.init,
        readonly_rootfs=args.read_only,
    )


def _relay_pty(master: int, container: Container) -> None:
    """Copy our terminal to the container's pty and back until it hangs up."""
    stdin = sys.stdin.fileno()
    is_tty = os.isatty(stdin)
    saved = termios.tcgetattr(stdin) if is_tty else None
    if is_tty:
        with contextlib.suppress(OSError):
            import fcntl

            size = fcntl.ioctl(stdin, termios.TIOCGWINSZ, b"\0" * 8)
            fcntl.ioctl(master, termios.TIOCSWINSZ, size)
        tty.setraw(stdin)
    try:
        watch = [master, stdin]
        while True:
            r = _sys.readable(watch, None)
            if master in r:
                try:
                    data = os.read(master, 65536)
                except OSError as e:
                    if e.errno != errno.EIO:
                        raise
                    data = b""
                if not data:
                    return
                os.write(sys.stdout.fileno(), data)
            if stdin in r:
                data = os.read(stdin, 65536)
                if not data:
                    watch.remove(stdin)
                else:
                    os.write(master, data)
    finally:
        if saved is not None:
            termios.tcsetattr(stdin, termios.TCSADRAIN, saved)


def _cmd_run(args: argparse.Namespace) -> int:
    cfg = _config(args)
    cid = args.name or uuid.uuid4().hex[:16]
    container = Container.create(
        args.root, cid, cfg, data_root=args.data_root, network=args.network, ports=args.publish
    )
    try:
        # Forward the signals a user sends us to the container's init.
        forward = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
        old = {s: signal.signal(s, lambda n, _f: _forward(container, n)) for s in forward}
        try:
            container.start()
            if container.pty is not None:
                _relay_pty(container.pty, container)
            status = container.wait()
        finally:
            for s, h in old.items():
                signal.signal(s, h)
    finally:
        container.delete(force=True)
    if status.signal is not None:
        return 128 + status.signal
    return status.code if status.code is not None else 0


def _forward(container: Container, sig: int) -> None:
    with contextlib.suppress(PyContainerError, ProcessLookupError):
        container.kill(sig)


def _cmd_list(args: argparse.Namespace) -> int:
    rows = [("ID", "PID", "STATUS", "CREATED")]
    for c in Container.list(args.root):
        st = c.state()
        rows.append((st.id, str(st.pid or 0), st.status.value, st.created))
        c.close()
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
    return 0


def _cmd_state(args: argparse.Namespace) -> int:
    c = Container.load(args.root, args.id)
    print(json.dumps(c.state().to_oci(), indent=2))
    c.close()
    return 0


def _cmd_kill(args: argparse.Namespace) -> int:
    c = Container.load(args.root, args.id)
    c.kill(_parse_signal(args.signal))
    c.close()
    return 0


def _cmd_delete(args: argparse.Namespace) -> int:
    Container.load(args.root, args.id).delete(force=args.force)
    return 0


def _cmd_network(args: argparse.Namespace) -> int:
    import attrs

    from .network import NetworkStore

    store = NetworkStore(args.root)
    if args.network_command == "create":
        net = store.create(args.name, args.subnet, subnet6=args.subnet6, mtu=args.mtu)
        print(net.name)
    elif args.network_command == "ls":
        rows = [("NAME", "SUBNET", "GATEWAY", "BRIDGE")]
        rows += [(n.name, n.subnet + (f" {n.subnet6}" if n.subnet6 else ""), n.gateway, n.bridge) for n in store.list()]
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        for r in rows:
            print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
    elif args.network_command == "inspect":
        net = store.get(args.name)
        members = [{**attrs.asdict(m), "ports": [str(p) for p in m.ports]} for m in store.members(args.name)]
        print(json.dumps({**attrs.asdict(net), "members": members}, indent=2))
    else:
        store.remove(args.name)
        print(args.name)
    return 0


COMMANDS = {
    "run": _cmd_run,
    "list": _cmd_list,
    "state": _cmd_state,
    "kill": _cmd_kill,
    "delete": _cmd_delete,
    "network": _cmd_network,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except InitError as e:
        print(f"pycontainer: {e}", file=sys.stderr)
        return 127 if e.step == "exec" and e.errno == errno.ENOENT else 126 if e.step == "exec" else 125
    except (ConfigError, ContainerNotFound, InvalidStateTransition, PyContainerError) as e:
        print(f"pycontainer: {e}", file=sys.stderr)
        return 125
    except KeyboardInterrupt:
        return 130
