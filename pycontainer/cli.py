"""``pycontainer``: a Docker-like command line over the library, no daemon.

    pycontainer run [OPTIONS] [IMAGE | --rootfs DIR] [COMMAND [ARG...]]   (or: run [OPTIONS] -- COMMAND...)
    pycontainer create | start | stop | kill | rm | ps | logs | exec | inspect | pause | unpause | wait | top | port
    pycontainer network create | ls | inspect | rm

(``list``, ``state`` and ``delete`` are kept as the first CLI's names.)
Every feature is a library call; only this module maps errors to exit
codes, as Docker's: 125 for the CLI's own errors, 126 for a command that
cannot run, 127 for one that is not found, else the container's status.
See docs/cli.md.
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
from collections.abc import Callable, Sequence
from typing import Any, TypedDict

from . import DEVNULL, PIPE, Container, ContainerConfig, LogConfig, Mount, Process, Status, User, _sys
from .errors import ConfigError, ContainerNotFound, ImageError, InitError, InvalidStateTransition, PyContainerError
from .build import BuildError
from .volumes import check_name as volume_name


def _parse_volume(spec: str) -> Mount:
    parts = spec.split(":")
    if len(parts) == 1 and spec.startswith("/"):  # -v /path: an anonymous volume
        return Mount(destination=spec, type="volume")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise ConfigError("volume", f"{spec!r} is not [SRC:]DST[:OPTIONS]")
    options: list[str] = ["rbind"]
    if len(parts) == 3:
        for opt in parts[2].split(","):
            if opt not in ("ro", "rw", "nocopy"):
                raise ConfigError("volume", f"{opt!r} in {spec!r} is not ro, rw or nocopy")
            options.append(opt)
    if "/" not in parts[0] and not parts[0].startswith("."):  # a name: a named volume, as Docker's
        return Mount(destination=parts[1], source=volume_name(parts[0]), type="volume", options=tuple(options[1:]))
    if "nocopy" in options:
        raise ConfigError("volume", f"{spec!r}: nocopy is for volumes, not bind mounts")
    return Mount(destination=parts[1], source=os.path.abspath(parts[0]), type="bind", options=tuple(options))


def _parse_signal(text: str) -> int:
    try:
        return _sys.signal_number(text)
    except ValueError as e:
        raise ConfigError("signal", str(e)) from None


def _add_container_options(run: argparse.ArgumentParser) -> None:
    """The options of run and create (docker run's names)."""
    run.add_argument("--rootfs", help="a directory to use as / (instead of an image)")
    run.add_argument("--image", help="an image in the store (the IMAGE argument, given as an option)")
    run.add_argument("--data-root", help="images and layers (default $PYCONTAINER_DATA_ROOT or /var/lib/pycontainer)")
    run.add_argument("--name", help="container id (default: a random one)")
    run.add_argument("-e", "--env", action="append", default=[], metavar="K=V")
    run.add_argument("--env-file", action="append", default=[], metavar="FILE", help="K=V lines")
    run.add_argument("-v", "--volume", action="append", default=[], metavar="SRC:DST[:ro]")
    run.add_argument("--mount", action="append", default=[], metavar="type=bind|tmpfs,src=S,dst=D[,readonly]")
    run.add_argument("--tmpfs", action="append", default=[], metavar="DST[:OPTIONS]")
    run.add_argument("--hostname")
    run.add_argument("-w", "--workdir")
    run.add_argument("-u", "--user", help="user[:group] or uid[:gid]")
    run.add_argument("--entrypoint", help="replace the image's entrypoint")
    run.add_argument("--init", action="store_true", help="run an init as pid 1 that reaps zombies")
    run.add_argument("-t", "--tty", action="store_true", help="give the process a terminal")
    run.add_argument("-i", "--interactive", action="store_true", help="keep stdin open")
    run.add_argument("--read-only", action="store_true", help="mount the rootfs read-only")
    run.add_argument("--network", help="none, host, container:<id>, or a network's name (bridge: the default one)")
    run.add_argument("-p", "--publish", action="append", default=[], metavar="[[IP:]HOST:]CONTAINER[/PROTO]")
    run.add_argument("-m", "--memory", help="memory limit (512m, 1g)")
    run.add_argument("--cpus", type=float, help="CPUs (0.5: half of one)")
    run.add_argument("--pids-limit", type=int)
    run.add_argument("--cap-add", action="append", default=[])
    run.add_argument("--cap-drop", action="append", default=[])
    run.add_argument(
        "--security-opt", action="append", default=[], metavar="seccomp=FILE|unconfined, no-new-privileges"
    )
    run.add_argument("--log-opt", action="append", default=[], metavar="max-size=10m|max-file=3")
    run.add_argument("--restart", default="no", help="no, always, unless-stopped, on-failure[:MAX]")
    run.add_argument("cmd", nargs=argparse.REMAINDER, help="[IMAGE] [COMMAND [ARG...]], or -- COMMAND...")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pycontainer", description="Run containers without a daemon.")
    p.add_argument("--root", help="state root (default $PYCONTAINER_ROOT or /run/pycontainer)")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a command in a new container")
    run.add_argument("-d", "--detach", action="store_true", help="run in the background, print its id")
    run.add_argument("--rm", action="store_true", help="remove the container when it exits")
    _add_container_options(run)
    create = sub.add_parser("create", help="create a container (start runs it)")
    _add_container_options(create)

    for name, text in (("start", "start containers (a stopped one anew, as restart)"), ("pause", "freeze"),
                       ("unpause", "thaw"),
                       ("wait", "wait for containers to stop, print their exit codes"),
                       ("inspect", "containers as JSON"), ("port", "a container's published ports")):  # fmt: skip
        sub.add_parser(name, help=text).add_argument("ids", nargs="+", metavar="CONTAINER")
    stop = sub.add_parser("stop", help="stop containers: SIGTERM, then SIGKILL after --time")
    stop.add_argument("-t", "--time", type=float, default=10.0)
    stop.add_argument("ids", nargs="+", metavar="CONTAINER")
    rs = sub.add_parser("restart", help="stop containers (as stop) and start them anew")
    rs.add_argument("-t", "--time", type=float, default=10.0)
    rs.add_argument("ids", nargs="+", metavar="CONTAINER")
    rn = sub.add_parser("rename", help="give a container another name")
    rn.add_argument("old", metavar="CONTAINER")
    rn.add_argument("new", metavar="NEW_NAME")
    k = sub.add_parser("kill", help="send a signal to containers")
    k.add_argument("-s", "--signal", default="KILL")
    k.add_argument("ids", nargs="+", metavar="CONTAINER")
    rm = sub.add_parser("rm", aliases=["delete"], help="remove containers")
    rm.add_argument("-f", "--force", action="store_true", help="kill it first if it runs")
    rm.add_argument("-v", "--volumes", action="store_true", help="remove its anonymous volumes too")
    rm.add_argument("ids", nargs="+", metavar="CONTAINER")
    ps = sub.add_parser("ps", aliases=["list"], help="list containers")
    ps.add_argument("-a", "--all", action="store_true", help="stopped ones too")
    ps.add_argument("-q", "--quiet", action="store_true", help="ids only")
    ps.add_argument("--format", choices=("table", "json"), default="table")
    lg = sub.add_parser("logs", help="a container's log")
    lg.add_argument("-f", "--follow", action="store_true")
    lg.add_argument("--tail", default="all", help="the last N lines (all)")
    lg.add_argument("-t", "--timestamps", action="store_true")
    lg.add_argument("id", metavar="CONTAINER")
    ex = sub.add_parser("exec", help="run a command in a running container")
    ex.add_argument("-d", "--detach", action="store_true")
    ex.add_argument("-i", "--interactive", action="store_true")
    ex.add_argument("-t", "--tty", action="store_true")
    ex.add_argument("-e", "--env", action="append", default=[], metavar="K=V")
    ex.add_argument("-u", "--user")
    ex.add_argument("-w", "--workdir")
    ex.add_argument("id", metavar="CONTAINER")
    ex.add_argument("cmd", nargs=argparse.REMAINDER)
    top = sub.add_parser("top", help="a container's processes")
    top.add_argument("id", metavar="CONTAINER")
    stats = sub.add_parser("stats", help="resource use")
    stats.add_argument("--no-stream", action="store_true", help="print once, and exit")
    stats.add_argument("ids", nargs="*", metavar="CONTAINER")
    st = sub.add_parser("state", help="a container's OCI state as JSON")
    st.add_argument("id")
    cp = sub.add_parser("cp", help="copy files between a container and the host")
    cp.add_argument("src", metavar="SRC", help="CONTAINER:PATH or a host path")
    cp.add_argument("dest", metavar="DEST", help="CONTAINER:PATH or a host path")
    df = sub.add_parser("diff", help="what a container changed in its image")
    df.add_argument("id", metavar="CONTAINER")
    cm = sub.add_parser("commit", help="a new image from a container's changes")
    cm.add_argument("-m", "--message", default="")
    cm.add_argument("-c", "--change", action="append", default=[], metavar="CMD [...]|ENV K=V|WORKDIR D|USER U")
    cm.add_argument("--no-pause", action="store_true", help="do not pause it meanwhile")
    cm.add_argument("id", metavar="CONTAINER")
    cm.add_argument("ref", nargs="?", metavar="REPOSITORY[:TAG]")

    def image_cmd(name: str, text: str, aliases: Sequence[str] = ()) -> argparse.ArgumentParser:
        q = sub.add_parser(name, help=text, aliases=list(aliases))
        q.add_argument("--data-root", help="images and layers (default $PYCONTAINER_DATA_ROOT or /var/lib/pycontainer)")
        return q

    im = image_cmd("images", "list images")
    im.add_argument("-q", "--quiet", action="store_true")
    im.add_argument("--format", choices=("table", "json"), default="table")
    pl = image_cmd("pull", "pull an image from a registry")
    pl.add_argument("ref")
    pl.add_argument("-q", "--quiet", action="store_true", help="no progress")
    pu = image_cmd("push", "push an image to a registry")
    pu.add_argument("ref")
    pu.add_argument("dest", nargs="?", help="another name to push it as")
    pu.add_argument("-q", "--quiet", action="store_true")
    tg = image_cmd("tag", "another name for an image")
    tg.add_argument("source")
    tg.add_argument("target")
    ri = image_cmd("rmi", "remove image names (and the image with its last)")
    ri.add_argument("refs", nargs="+", metavar="IMAGE")
    sv = image_cmd("save", "images to a docker archive (docker load reads it)")
    sv.add_argument("-o", "--output", required=True)
    sv.add_argument("refs", nargs="+", metavar="IMAGE")
    ld = image_cmd("load", "images from a docker archive or an OCI layout tar")
    ld.add_argument("-i", "--input", required=True)
    ip = image_cmd("import", "an image of a root filesystem tarball")
    ip.add_argument("-c", "--change", action="append", default=[], metavar="CMD [...]|ENV K=V|WORKDIR D|USER U")
    ip.add_argument("file", help="a tar (gzip, zstd too), or - for stdin")
    ip.add_argument("ref", nargs="?", metavar="REPOSITORY[:TAG]")
    hi = image_cmd("history", "an image's layers and how they were made")
    hi.add_argument("ref")
    image = sub.add_parser("image", help="image commands: prune")
    isub = image.add_subparsers(dest="image_command", required=True)
    pr = isub.add_parser("prune", help="remove what no image or container uses")
    pr.add_argument("--data-root")
    lo = image_cmd("login", "store a registry's credentials (mode 0600)")
    lo.add_argument("-u", "--username", required=True)
    lo.add_argument("-p", "--password")
    lo.add_argument("--password-stdin", action="store_true")
    lo.add_argument("server")
    lu = image_cmd("logout", "forget a registry's credentials")
    lu.add_argument("server")

    bd = sub.add_parser("build", help="build an image from a Dockerfile")
    bd.add_argument("-t", "--tag")
    bd.add_argument("-f", "--file", help="the Dockerfile (default CONTEXT/Dockerfile)")
    bd.add_argument("--build-arg", action="append", default=[], metavar="K=V")
    bd.add_argument("--no-cache", action="store_true")
    bd.add_argument("--target", help="stop after this stage")
    bd.add_argument("-q", "--quiet", action="store_true", help="print only the image id")
    bd.add_argument("--data-root")
    bd.add_argument("context")

    vol = sub.add_parser("volume", help="named volumes: create, ls, inspect, rm, prune")
    vsub = vol.add_subparsers(dest="volume_command", required=True)
    vc = vsub.add_parser("create", help="make a volume (run -v NAME:/path makes one too)")
    vc.add_argument("name", nargs="?")
    vc.add_argument("--label", action="append", default=[], metavar="K=V")
    vsub.add_parser("ls", help="list the volumes")
    vi = vsub.add_parser("inspect", help="volumes as JSON")
    vi.add_argument("names", nargs="+")
    vr = vsub.add_parser("rm", help="remove volumes no container uses")
    vr.add_argument("-f", "--force", action="store_true")
    vr.add_argument("names", nargs="+")
    vsub.add_parser("prune", help="remove every volume no container uses")
    for q in (vol, vc, vi, vr):
        q.add_argument("--data-root", help="(default $PYCONTAINER_DATA_ROOT or /var/lib/pycontainer)")

    net = sub.add_parser("network", help="bridge networks: create, ls, inspect, rm, connect, disconnect")
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
    for verb, text in (("connect", "join a container to a network too"), ("disconnect", "take it off again")):
        q = nsub.add_parser(verb, help=text)
        q.add_argument("name", metavar="NETWORK")
        q.add_argument("container", metavar="CONTAINER")
    return p


def _env_lines(args: argparse.Namespace) -> list[str]:
    items: list[str] = []
    for path in args.env_file:
        try:
            with open(path, encoding="utf-8") as f:
                items += [ln.strip() for ln in f if ln.strip() and not ln.lstrip().startswith("#")]
        except OSError as e:
            raise ConfigError("env-file", f"{path}: {e.strerror}") from None
    env: list[str] = []  # our PATH (or the image's Env) comes in when it is not given
    for item in [*items, *args.env]:
        if "=" not in item:
            item = f"{item}={os.environ.get(item, '')}"
        key = item.partition("=")[0]
        env = [e for e in env if e.partition("=")[0] != key] + [item]
    return env


def _parse_mount(spec: str) -> Mount:
    """--mount type=bind|tmpfs,source=S,target=D[,readonly][,tmpfs-size=N]"""
    fields: dict[str, str] = {}
    for part in spec.split(","):
        k, _, val = part.partition("=")
        fields[k.strip()] = val.strip() or "true"
    kind = fields.pop("type", "volume")
    dst = fields.pop("target", None) or fields.pop("destination", None) or fields.pop("dst", None)
    src = fields.pop("source", None) or fields.pop("src", None)
    ro = fields.pop("readonly", None) or fields.pop("ro", None)
    size = fields.pop("tmpfs-size", None)
    nocopy = fields.pop("volume-nocopy", None)
    if not dst:
        raise ConfigError("mount", f"{spec!r} names no target")
    if fields:
        raise ConfigError("mount", f"{spec!r}: unknown field {next(iter(fields))!r}")
    options = ["ro"] if ro in ("true", "1") else []
    if kind == "bind":
        if not src:
            raise ConfigError("mount", f"{spec!r}: a bind mount needs a source")
        return Mount(dst, os.path.abspath(src), "bind", ["rbind", *options])
    if kind == "tmpfs":
        return Mount(dst, "tmpfs", "tmpfs", ["nosuid", "nodev", *options, *([f"size={size}"] if size else [])])
    if kind == "volume":
        if nocopy in ("true", "1"):
            options.append("nocopy")
        return Mount(dst, volume_name(src) if src else None, "volume", options)  # (no source: anonymous)
    raise ConfigError("mount", f"type {kind!r} is not supported (bind, volume, tmpfs)")


def _parse_tmpfs(spec: str) -> Mount:
    dst, _, opts = spec.partition(":")
    return Mount(dst, "tmpfs", "tmpfs", ["nosuid", "nodev", *(o for o in opts.split(",") if o)])


def _resources(args: argparse.Namespace) -> Any:
    from . import Resources
    from .oci.runc import _size

    fields: dict[str, Any] = {}
    if args.memory:
        fields["memory"] = _size("--memory", args.memory)
    if args.cpus is not None:
        fields["cpus"] = args.cpus
    if args.pids_limit is not None:
        fields["pids_limit"] = args.pids_limit
    return Resources(**fields)


def _security(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for opt in args.security_opt:
        key, _, value = opt.partition("=")
        key = key.replace(":", "=")
        if key == "seccomp":
            if value == "unconfined":
                out["seccomp"] = "unconfined"
            else:
                try:
                    with open(value, encoding="utf-8") as f:
                        out["seccomp"] = json.load(f)
                except (OSError, ValueError) as e:
                    raise ConfigError("security-opt", f"seccomp profile {value!r}: {e}") from None
        elif key == "no-new-privileges" and value in ("", "true"):
            out["no_new_privileges"] = True
        else:
            raise ConfigError("security-opt", f"{opt!r} is not supported (seccomp=FILE|unconfined, no-new-privileges)")
    return out


def _log_config(args: argparse.Namespace) -> LogConfig:
    from .logs import parse_size

    size, files = 0, 1
    for opt in args.log_opt:
        key, _, value = opt.partition("=")
        if key == "max-size":
            size = parse_size(value)
        elif key == "max-file":
            if not value.isdigit():
                raise ConfigError("log-opt", f"max-file={value!r} is not a count")
            files = int(value)
        else:
            raise ConfigError("log-opt", f"{opt!r} is not supported (max-size, max-file)")
    return LogConfig(max_size=size, max_files=files)


def _config(args: argparse.Namespace) -> tuple[ContainerConfig, str | None]:
    """The config, and the image (None: a rootfs, or the built-in image)."""
    from . import Capabilities

    rest = list(args.cmd)
    image = args.image
    if rest and rest[0] == "--":
        rest = rest[1:]
    elif rest and not args.rootfs and not args.image:
        image, rest = rest[0], rest[1:]
    if not rest and not image and not args.rootfs:
        image = None  # the built-in image's command
    if not rest and args.rootfs:
        raise ConfigError("cmd", "no command given (run --rootfs DIR ... COMMAND [ARG...])")
    sec = _security(args)
    caps = None
    if args.cap_add or args.cap_drop:
        caps = Capabilities.docker(add=args.cap_add, drop=args.cap_drop)
    restart = args.restart or "no"
    if restart != "no" and getattr(args, "rm", False):
        raise ConfigError("restart", "--restart and --rm conflict (as Docker's)")
    process = Process(
        args=rest,
        env=_env_lines(args),
        cwd=args.workdir or "/",
        user=args.user or User(),
        terminal=args.tty,
        entrypoint=None if args.entrypoint is None else [args.entrypoint] if args.entrypoint else [],
        capabilities=caps,
        no_new_privileges=sec.pop("no_new_privileges", False),
    )
    cfg = ContainerConfig(
        process=process,
        rootfs=os.path.abspath(args.rootfs) if args.rootfs else None,
        image=image if not args.rootfs else None,
        hostname=args.hostname,
        mounts=[
            *(_parse_volume(v) for v in args.volume),
            *(_parse_mount(m) for m in args.mount),
            *(_parse_tmpfs(t) for t in args.tmpfs),
        ],  # fmt: skip
        init=args.init or getattr(args, "detach", False) or args.command == "create" or restart != "no",
        restart=restart,
        readonly_rootfs=args.read_only,
        resources=_resources(args),
        **sec,
    )
    return cfg, image


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


def _new_id(args: argparse.Namespace) -> str:
    return args.name or uuid.uuid4().hex[:12]


def _create(args: argparse.Namespace, *, foreground: bool) -> Container:
    cfg, _image = _config(args)
    cid = _new_id(args)
    kw: dict[str, Any] = {"data_root": args.data_root, "network": args.network, "ports": args.publish}
    if foreground:
        if not args.interactive and not args.tty:
            kw["stdin"] = DEVNULL
    else:
        # detached: its output goes to its log, its stdin nowhere (-i: an open, empty pipe);
        # with --rm its logger removes it once its output ends
        kw["log"] = _log_config(args)
        kw["auto_remove"] = bool(getattr(args, "rm", False))
        kw["stdin"] = PIPE if args.interactive else DEVNULL
    return Container.create(args.root, cid, cfg, **kw)


def _cmd_run(args: argparse.Namespace) -> int:
    if args.detach:
        c = _create(args, foreground=False)
        try:
            c.start()
        except BaseException:
            c.delete(force=True, volumes=True)
            raise
        print(c.id)
        c.close()
        return 0
    container = _create(args, foreground=True)
    status = None
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
        if args.rm or status is None:  # (interrupted or failed: nothing half-made stays)
            container.delete(force=True, volumes=True)
        else:
            container.close()
    if status.signal is not None:
        return 128 + status.signal
    return status.code if status.code is not None else 0


def _cmd_create(args: argparse.Namespace) -> int:
    c = _create(args, foreground=False)
    print(c.id)
    c.close()
    return 0


def _forward(container: Container, sig: int) -> None:
    with contextlib.suppress(PyContainerError, ProcessLookupError):
        container.kill(sig)


def _each(args: argparse.Namespace, action: Callable[[Container], object]) -> int:
    """Docker's way with several containers: each in turn, errors reported,
    the id printed for each that worked; 1 if any failed."""
    failed = False
    for cid in args.ids:
        try:
            c = Container.load(args.root, cid)
            try:
                action(c)
            finally:
                c.close()
            print(cid)
        except PyContainerError as e:
            print(f"pycontainer: {e}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


def _restart(c: Container, timeout: float) -> None:
    # (a container without a log: its output has nowhere to go once we are gone)
    quiet = {} if c.log_config is not None else {"stdout": DEVNULL, "stderr": DEVNULL}
    c.restart(timeout, stdin=DEVNULL, init=True, **quiet)  # (init: we do not stay to learn its status)


def _cmd_start(args: argparse.Namespace) -> int:
    # docker start of a stopped container runs it anew
    def start(c: Container) -> None:
        status = c.status
        if status is Status.STOPPED:
            _restart(c, 0)
        elif status is Status.CREATED:
            c.start()
        # (running or paused: nothing to do, as Docker's start)

    return _each(args, start)


def _cmd_restart(args: argparse.Namespace) -> int:
    return _each(args, lambda c: _restart(c, args.time))


def _cmd_rename(args: argparse.Namespace) -> int:
    c = Container.load(args.root, args.old)
    try:
        c.rename(args.new)
    finally:
        c.close()
    return 0


def _cmd_stop(args: argparse.Namespace) -> int:
    return _each(args, lambda c: c.stop(args.time) and None)


def _cmd_kill(args: argparse.Namespace) -> int:
    sig = _parse_signal(args.signal)
    return _each(args, lambda c: c.kill(sig))


def _cmd_rm(args: argparse.Namespace) -> int:
    return _each(args, lambda c: c.delete(force=args.force, volumes=args.volumes))


def _cmd_pause(args: argparse.Namespace) -> int:
    return _each(args, lambda c: c.pause())


def _cmd_unpause(args: argparse.Namespace) -> int:
    return _each(args, lambda c: c.resume())


def _cmd_wait(args: argparse.Namespace) -> int:
    failed = False
    for cid in args.ids:
        try:
            c = Container.load(args.root, cid)
            st = c.wait()
            print(st.returncode if st.code is not None else 128 + (st.signal or 0))
        except PyContainerError as e:
            print(f"pycontainer: {e}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


def _status_text(c: Container) -> str:
    st = c.state()
    if st.status is Status.STOPPED:
        ex = st.exit_status
        code = "?" if ex is None or ex.code is None and ex.signal is None else ex.returncode
        if ex is not None and ex.signal is not None:
            code = 128 + ex.signal
        return f"Exited ({code})"
    return {"created": "Created", "running": "Up", "paused": "Up (Paused)"}[st.status.value]


def _image_of(c: Container) -> str:
    cfg = c.config
    return cfg.image or (f"rootfs:{cfg.rootfs}" if cfg.rootfs else "localhost/busybox:latest")


class _PsRow(TypedDict):
    """A line of ``ps`` (``--format json`` prints it as is: Docker's names)."""

    ID: str
    Image: str
    Command: str
    CreatedAt: str
    Status: str
    State: str
    Ports: str
    Names: str
    Pid: int


def _cmd_ps(args: argparse.Namespace) -> int:
    rows: list[_PsRow] = []
    for c in Container.list(args.root):
        try:
            st = c.state()
            if not args.all and st.status is Status.STOPPED:
                continue
            rows.append({
                "ID": c.id, "Image": _image_of(c), "Command": " ".join(c.config.process.args),
                "CreatedAt": st.created, "Status": _status_text(c), "State": st.status.value,
                "Ports": ", ".join(str(p) for p in (c._data.get("network") or {}).get("ports", [])),
                "Names": c.id, "Pid": st.pid or 0,
            })  # fmt: skip
        finally:
            c.close()
    if args.quiet:
        for r in rows:
            print(r["ID"])
    elif args.format == "json":
        for r in rows:
            print(json.dumps(r))
    else:
        table = [("CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES")]
        for r in rows:
            cmd = r["Command"] if len(r["Command"]) <= 20 else r["Command"][:19] + "…"
            table.append(
                (r["ID"][:12], r["Image"], f'"{cmd}"', r["CreatedAt"][:19], r["Status"], r["Ports"], r["Names"])
            )
        widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
        for row in table:
            print("   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def _cmd_logs(args: argparse.Namespace) -> int:
    c = Container.load(args.root, args.id)
    tail = None if args.tail == "all" else int(args.tail) if args.tail.isdigit() else None
    if tail is None and args.tail != "all":
        raise ConfigError("tail", f"{args.tail!r} is not a number of lines or 'all'")
    out, err = sys.stdout.buffer, sys.stderr.buffer
    try:
        for e in c.logs(follow=args.follow, tail=tail):
            f = out if e.stream == "stdout" else err
            f.write((e.time.encode() + b" " if args.timestamps else b"") + e.data)
            f.flush()
    except BrokenPipeError:
        pass
    finally:
        c.close()
    return 0


def _cmd_exec(args: argparse.Namespace) -> int:
    c = Container.load(args.root, args.id)
    cmd = args.cmd[1:] if args.cmd and args.cmd[0] == "--" else list(args.cmd)
    if not cmd:
        raise ConfigError("cmd", "exec needs a command")
    base = c.config.process
    env = [*base.env]
    for item in args.env:
        key = item.partition("=")[0]
        env = [e for e in env if e.partition("=")[0] != key] + [
            item if "=" in item else f"{item}={os.environ.get(item, '')}"
        ]
    import attrs

    proc = attrs.evolve(base, args=cmd, env=env, cwd=args.workdir or base.cwd, terminal=args.tty,
                        user=args.user if args.user else base.user)  # fmt: skip
    stdin = None if args.interactive or args.tty else DEVNULL
    p = c.exec(proc, stdin=stdin)
    if args.detach:
        if p.pty is not None:
            os.close(p.pty)
        return 0
    if p.pty is not None:
        _relay_pty(p.pty, c)
    st = p.wait()
    return st.code if st.code is not None else 128 + (st.signal or 0)


def _inspect(c: Container) -> dict[str, Any]:
    import attrs

    from .container import _config_to_json

    st = c.state()
    ex = st.exit_status
    return {
        "Id": c.id,
        "Name": c.id,
        "Created": st.created,
        "Image": _image_of(c),
        "State": {
            "Status": {"stopped": "exited"}.get(st.status.value, st.status.value),
            "Running": st.status in (Status.RUNNING, Status.PAUSED),
            "Paused": st.status is Status.PAUSED,
            "Pid": st.pid if st.status is not Status.STOPPED else 0,
            "ExitCode": (ex.returncode if ex and ex.code is not None else 128 + ex.signal if ex and ex.signal else 0),
            "OOMKilled": bool(ex and ex.oom_killed),
        },
        "Path": c.config.process.args[0] if c.config.process.args else "",
        "Args": list(c.config.process.args[1:]),
        "RestartCount": c.restart_count,
        "Config": _config_to_json(c.config),
        "NetworkSettings": {**(c._data.get("network") or {}), "Networks": c.networks},
        "LogPath": os.path.join(c.dir, "container.log") if os.path.exists(os.path.join(c.dir, "container.log")) else "",
        "State_OCI": st.to_oci(),
        "ExitStatus": attrs.asdict(ex) if ex else None,
    }


def _cmd_inspect(args: argparse.Namespace) -> int:
    out, failed = [], False
    for cid in args.ids:
        try:
            c = Container.load(args.root, cid)
            out.append(_inspect(c))
            c.close()
        except PyContainerError as e:
            print(f"pycontainer: {e}", file=sys.stderr)
            failed = True
    print(json.dumps(out, indent=2, default=str))
    return 1 if failed else 0


def _cmd_port(args: argparse.Namespace) -> int:
    for cid in args.ids:
        c = Container.load(args.root, cid)
        for p in (c._data.get("network") or {}).get("ports", []):
            print(p)
        c.close()
    return 0


def _cmd_top(args: argparse.Namespace) -> int:
    c = Container.load(args.root, args.id)
    try:
        print(f"{'PID':>8} {'USER':>6}  CMD")
        for pid in c.processes():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
                uid = os.stat(f"/proc/{pid}").st_uid
            except OSError:
                continue
            print(f"{pid:>8} {uid:>6}  {cmd}")
    finally:
        c.close()
    return 0


def _stats_rows(containers: list[Container], before: dict[str, tuple[float, int]]) -> list[tuple[str, ...]]:
    """docker stats' columns; CPU % from the CPU time since ``before`` (which is updated)."""
    import time

    rows: list[tuple[str, ...]] = []
    for c in containers:
        try:
            if c.status is Status.STOPPED:
                continue
            s = c.stats()
        except PyContainerError:
            continue
        now, cpu = time.monotonic(), s.cpu.total_ns or 0
        then, cpu0 = before.get(c.id, (now, cpu))
        before[c.id] = (now, cpu)
        pct = 100.0 * (cpu - cpu0) / ((now - then) * 1e9) if now > then else 0.0
        usage, limit = s.memory.usage or 0, s.memory.limit
        mem = f"{usage / 2**20:.1f}MiB / " + (f"{limit / 2**20:.0f}MiB" if limit else "unlimited")
        mem_pct = f"{100.0 * usage / limit:.2f}%" if limit else "--"
        blk = f"{(s.io.read_bytes or 0) / 1e6:.1f}MB / {(s.io.write_bytes or 0) / 1e6:.1f}MB"
        rows.append((c.id[:12], f"{pct:.2f}%", mem, mem_pct, blk, str(s.pids.current or 0)))
    return rows


def _cmd_stats(args: argparse.Namespace) -> int:
    """docker stats: CPU % over a second (--no-stream: one table), memory, block I/O, pids."""
    import time

    def containers() -> list[Container]:
        return [Container.load(args.root, i) for i in args.ids] if args.ids else Container.list(args.root)

    header = ("CONTAINER", "CPU %", "MEM USAGE / LIMIT", "MEM %", "BLOCK I/O", "PIDS")
    before: dict[str, tuple[float, int]] = {}
    first = containers()
    _stats_rows(first, before)  # the first sample: CPU % needs two
    for c in first:
        c.close()
    try:
        while True:
            time.sleep(1.0)
            cs = containers()
            rows = [header, *_stats_rows(cs, before)]
            for c in cs:
                c.close()
            widths = [max(len(r[k]) for r in rows) for k in range(len(header))]
            if not args.no_stream and sys.stdout.isatty():
                sys.stdout.write("\x1b[2J\x1b[H")
            for r in rows:
                print("   ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
            sys.stdout.flush()
            if args.no_stream or (args.ids and len(rows) == 1):
                return 0
    except KeyboardInterrupt:
        return 0


def _cmd_state(args: argparse.Namespace) -> int:
    c = Container.load(args.root, args.id)
    print(json.dumps(c.state().to_oci(), indent=2))
    c.close()
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
    elif args.network_command in ("connect", "disconnect"):
        c = Container.load(args.root, args.container)
        try:
            c.connect(args.name) if args.network_command == "connect" else c.disconnect(args.name)
        finally:
            c.close()
    else:
        store.remove(args.name)
        print(args.name)
    return 0


def _store(args: argparse.Namespace) -> Any:
    from .images import ImageStore

    return ImageStore(args.data_root)


def _cmd_build(args: argparse.Namespace) -> int:
    from .build import build

    build_args = {}
    for item in args.build_arg:
        k, sep, v = item.partition("=")
        build_args[k] = v if sep else os.environ.get(k, "")
    image = build(args.context, tag=args.tag, dockerfile=args.file, build_args=build_args, target=args.target,
                  no_cache=args.no_cache, root=args.root, data_root=args.data_root,
                  out=(lambda _s: None) if args.quiet else None)  # fmt: skip
    print(image.id)
    return 0


def _cmd_volume(args: argparse.Namespace) -> int:
    from .volumes import VolumeStore

    store = VolumeStore(getattr(args, "data_root", None))
    cmd = args.volume_command
    if cmd == "create":
        labels = dict(item.partition("=")[::2] for item in args.label)
        print(store.create(args.name, labels).name)
    elif cmd == "ls":
        print("DRIVER    VOLUME NAME")
        for v in store.list():
            print(f"local     {v.name}")
    elif cmd == "inspect":
        print(json.dumps([store.inspect(n) for n in args.names], indent=2))
    elif cmd == "rm":
        failed = False
        for n in args.names:
            try:
                store.remove(n, force=args.force)
                print(n)
            except PyContainerError as e:
                print(f"pycontainer: {e}", file=sys.stderr)
                failed = True
        return 1 if failed else 0
    else:
        for n in store.prune():
            print(n)
    return 0


def _cmd_cp(args: argparse.Namespace) -> int:
    def side(text: str) -> tuple[str | None, str]:
        cid, sep, path = text.partition(":")
        return (cid, path) if sep and cid and "/" not in cid else (None, text)

    (src_c, src), (dst_c, dst) = side(args.src), side(args.dest)
    if (src_c is None) == (dst_c is None):
        raise ConfigError("cp", "one side is CONTAINER:PATH, the other a host path")
    c = Container.load(args.root, src_c or dst_c or "")
    try:
        if dst_c is not None:
            c.copy_to(src, dst)
        else:
            c.copy_from(src, dst)
    finally:
        c.close()
    return 0


def _cmd_diff(args: argparse.Namespace) -> int:
    c = Container.load(args.root, args.id)
    try:
        for kind, path in c.changes():
            print(f"{kind} {path}")
    finally:
        c.close()
    return 0


def _change(text: str) -> tuple[str, Any]:
    """commit -c: Dockerfile-like instructions that set the image's config."""
    word, _, rest = text.strip().partition(" ")
    word, rest = word.upper(), rest.strip()

    def argv() -> list[str]:
        if rest.startswith("["):
            try:
                return [str(x) for x in json.loads(rest)]
            except ValueError:
                raise ConfigError("change", f"{text!r}: not a JSON array") from None
        return ["/bin/sh", "-c", rest]

    if word == "CMD":
        return "Cmd", argv()
    if word == "ENTRYPOINT":
        return "Entrypoint", argv()
    if word == "ENV":
        return "Env", rest.replace(" ", "=", 1) if "=" not in rest else rest
    if word in ("WORKDIR", "USER"):
        return {"WORKDIR": "WorkingDir", "USER": "User"}[word], rest
    raise ConfigError("change", f"{text!r}: CMD, ENTRYPOINT, ENV, WORKDIR or USER")


def _cmd_commit(args: argparse.Namespace) -> int:
    c = Container.load(args.root, args.id)
    config = _config_changes(args.change)
    try:
        image = c.commit(args.ref, comment=args.message, config=config or None, pause=not args.no_pause)
    finally:
        c.close()
    print(image.id)
    return 0


def _cmd_images(args: argparse.Namespace) -> int:
    store = _store(args)
    rows = []
    for image in store.list():
        size = sum(int(layer.get("size") or 0) for layer in image.layers)
        created = str(image.config_json.get("created") or "")
        for ref in image.refs or ("<none>:<none>",):
            repo, _, tag = ref.rpartition(":")
            rows.append({"Repository": repo, "Tag": tag, "ID": image.id, "CreatedAt": created, "Size": size})
    if args.quiet:
        for r in dict.fromkeys(r["ID"] for r in rows):
            print(r.removeprefix("sha256:")[:12])
    elif args.format == "json":
        for r in rows:
            print(json.dumps(r))
    else:
        table = [("REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE")]
        table += [(r["Repository"], r["Tag"], r["ID"].removeprefix("sha256:")[:12], r["CreatedAt"][:19],
                   f"{r['Size'] / 1e6:.1f}MB") for r in rows]  # fmt: skip
        widths = [max(len(row[i]) for row in table) for i in range(5)]
        for row in table:
            print("   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def _credentials(server: str) -> dict[str, str]:
    from . import auth

    return auth.lookup(server) or {}


def _cmd_pull(args: argparse.Namespace) -> int:
    from .images._registry import split_ref

    creds = _credentials(split_ref(args.ref)[0])
    store = _store(args)
    before = None
    with contextlib.suppress(PyContainerError):
        before = store.get(args.ref).digest
    # Docker's progress on stderr (bars on a terminal, status lines
    # elsewhere); stdout keeps the name alone, for scripts.
    image = store.pull(args.ref, progress=not args.quiet, **creds)
    name = image.refs[0] if image.refs else image.digest
    if not args.quiet:
        news = "Image is up to date for" if before == image.digest else "Downloaded newer image for"
        print(f"Digest: {image.digest}\nStatus: {news} {name}", file=sys.stderr)
    print(name)
    return 0


def _cmd_push(args: argparse.Namespace) -> int:
    from .images._registry import split_ref

    creds = _credentials(split_ref(args.dest or args.ref)[0])
    digest = _store(args).push(args.ref, args.dest, progress=not args.quiet, **creds)
    print(digest)
    return 0


def _cmd_tag(args: argparse.Namespace) -> int:
    _store(args).tag(args.source, args.target)
    return 0


def _cmd_rmi(args: argparse.Namespace) -> int:
    store, failed = _store(args), False
    for ref in args.refs:
        try:
            store.remove(ref)
            print(f"Untagged: {ref}")
        except PyContainerError as e:
            print(f"pycontainer: {e}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


def _cmd_save(args: argparse.Namespace) -> int:
    _store(args).export_docker_archive(list(args.refs), args.output)
    return 0


def _cmd_load(args: argparse.Namespace) -> int:
    import tarfile
    import tempfile

    store = _store(args)
    try:
        with tarfile.open(args.input) as t:
            names = set(t.getnames())
    except (OSError, tarfile.TarError) as e:
        raise ConfigError("input", f"{args.input}: not a tar archive: {e}") from None
    if "index.json" in names or "./index.json" in names:  # an OCI layout
        from .images import unpack_layer

        with tempfile.TemporaryDirectory() as d, open(args.input, "rb") as f:
            unpack_layer(f, d, archive=True)  # the store's safe unpacker: nothing lands outside d
            images = store.import_oci_layout(d)
    else:
        images = store.import_docker_archive(args.input)
    for image in images:
        for ref in image.refs or (image.id,):
            print(f"Loaded image: {ref}")
    return 0


def _config_changes(changes: Sequence[str]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for text in changes:
        key, value = _change(text)
        if key == "Env":
            config.setdefault("Env", []).append(value)
        else:
            config[key] = value
    return config


def _cmd_import(args: argparse.Namespace) -> int:
    source = sys.stdin.buffer if args.file == "-" else args.file
    image = _store(args).import_rootfs(source, args.ref, _config_changes(args.change))
    print(image.id)
    return 0


def _cmd_history(args: argparse.Namespace) -> int:
    image = _store(args).get(args.ref)
    print(f"{'CREATED':<22}{'CREATED BY':<60}COMMENT")
    for h in reversed(image.config_json.get("history") or []):
        by = str(h.get("created_by") or "")
        by = by if len(by) <= 57 else by[:56] + "…"
        print(f"{str(h.get('created') or '')[:19]:<22}{by:<60}{h.get('comment') or ''}")
    return 0


def _cmd_image(args: argparse.Namespace) -> int:
    removed = _store(args).gc()
    print(json.dumps(removed))
    return 0


def _cmd_login(args: argparse.Namespace) -> int:
    from . import auth

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    elif args.password is not None:
        password = args.password
    else:
        import getpass

        password = getpass.getpass()
    try:
        auth.login(args.server, args.username, password)
    except ImageError as e:
        print(f"pycontainer: {e}", file=sys.stderr)
        return 1  # (as docker login's)
    print("Login Succeeded")
    return 0


def _cmd_logout(args: argparse.Namespace) -> int:
    from . import auth

    auth.forget(args.server)
    print(f"Removing login credentials for {args.server}")
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "build": _cmd_build,
    "cp": _cmd_cp,
    "volume": _cmd_volume,
    "diff": _cmd_diff,
    "commit": _cmd_commit,
    "images": _cmd_images,
    "pull": _cmd_pull,
    "push": _cmd_push,
    "tag": _cmd_tag,
    "rmi": _cmd_rmi,
    "save": _cmd_save,
    "load": _cmd_load,
    "history": _cmd_history,
    "import": _cmd_import,
    "image": _cmd_image,
    "login": _cmd_login,
    "logout": _cmd_logout,
    "run": _cmd_run,
    "create": _cmd_create,
    "start": _cmd_start,
    "stop": _cmd_stop,
    "kill": _cmd_kill,
    "rm": _cmd_rm,
    "delete": _cmd_rm,
    "ps": _cmd_ps,
    "list": _cmd_ps,
    "logs": _cmd_logs,
    "exec": _cmd_exec,
    "inspect": _cmd_inspect,
    "pause": _cmd_pause,
    "restart": _cmd_restart,
    "rename": _cmd_rename,
    "unpause": _cmd_unpause,
    "wait": _cmd_wait,
    "port": _cmd_port,
    "top": _cmd_top,
    "stats": _cmd_stats,
    "state": _cmd_state,
    "network": _cmd_network,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except InitError as e:
        print(f"pycontainer: {e}", file=sys.stderr)
        return 127 if e.step == "exec" and e.errno == errno.ENOENT else 126 if e.step == "exec" else 125
    except BuildError as e:
        print(f"pycontainer: {e}", file=sys.stderr)
        return 1  # as docker build's
    except (ConfigError, ContainerNotFound, InvalidStateTransition, PyContainerError) as e:
        print(f"pycontainer: {e}", file=sys.stderr)
        return 125
    except KeyboardInterrupt:
        return 130


__all__ = ["main"]
