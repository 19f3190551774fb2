"""Rootless containers: a non-root host user runs containers in a user
namespace that maps container root to the user and the rest of the
container's ids to the user's subordinate ranges (/etc/subuid, /etc/subgid),
written by the setuid helpers newuidmap/newgidmap (Debian's uidmap).

``Container.create`` by a non-root user calls :func:`rootless_config`: a
config without a user namespace gets one with :func:`rootless_mappings`;
cgroups are used where delegated, and skipped with a warning where the
user cannot write them (see ``container.py``).  State and data roots default
to the user's own directories (:func:`default_state_root`,
:func:`default_data_root`).
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
from collections.abc import Sequence

import attrs

from .config import ContainerConfig, IDMap, Namespace, NamespaceType
from .errors import ConfigError, PyContainerError


def is_rootless() -> bool:
    """Does this process run without root (containers made rootless, see docs/security.md)?"""

    return os.geteuid() != 0


def _user_name(uid: int) -> str | None:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None


def subordinate_ranges(kind: str = "uid", uid: int | None = None, path: str | None = None) -> list[tuple[int, int]]:
    """The user's (start, count) ranges in /etc/subuid (``kind="uid"``) or
    /etc/subgid, by name or by number, in file order."""
    uid = os.geteuid() if uid is None else uid
    keys = {str(uid), _user_name(uid)}
    out = []
    try:
        with open(path or f"/etc/sub{kind}", encoding="utf-8") as f:
            for line in f:
                parts = line.strip().split(":")
                if len(parts) == 3 and parts[0] in keys and parts[1].isdigit() and parts[2].isdigit():
                    if int(parts[2]) > 0:
                        out.append((int(parts[1]), int(parts[2])))
    except FileNotFoundError:
        pass
    return out


def rootless_mappings(uid: int | None = None, gid: int | None = None) -> tuple[tuple[IDMap, ...], tuple[IDMap, ...]]:
    """(uid_mappings, gid_mappings) of a rootless container: 0 is the user
    (group), 1.. are the subordinate ranges one after the other.  Without
    ranges, only 0 is mapped."""
    uid = os.geteuid() if uid is None else uid
    gid = os.getegid() if gid is None else gid
    maps = []
    for kind, own in (("uid", uid), ("gid", gid)):
        out = [IDMap(0, own, 1)]
        nxt = 1
        for start, count in subordinate_ranges(kind, uid):
            out.append(IDMap(nxt, start, count))
            nxt += count
        maps.append(tuple(out))
    return maps[0], maps[1]


def rootless_config(config: ContainerConfig) -> ContainerConfig:
    """``config`` as a non-root user can run it: with a user namespace (new,
    with :func:`rootless_mappings`, unless the config has one), and without
    device cgroup rules unless it asks for some (v1 devices files need
    CAP_SYS_ADMIN, v2 device programs CAP_BPF; and in a user namespace no
    device node can be made, only the runtime's binds of the harmless ones
    are there)."""
    if config.cgroups and config.resources.devices is None:
        config = attrs.evolve(config, resources=attrs.evolve(config.resources, devices=()))
    if config.has_namespace(NamespaceType.USER):
        if config.new_namespace(NamespaceType.USER) and not config.uid_mappings:
            uids, gids = rootless_mappings()
            return attrs.evolve(config, uid_mappings=uids, gid_mappings=gids)
        return config
    uids, gids = rootless_mappings()
    return attrs.evolve(
        config,
        namespaces=(*config.namespaces, Namespace(NamespaceType.USER)),
        uid_mappings=config.uid_mappings or uids,
        gid_mappings=config.gid_mappings or gids,
    )


def write_id_maps_setuid(pid: int, uid_maps: Sequence[IDMap], gid_maps: Sequence[IDMap]) -> None:
    """Write the child's maps with newuidmap/newgidmap, which check them
    against /etc/subuid and /etc/subgid."""
    for tool, maps in (("newuidmap", uid_maps), ("newgidmap", gid_maps)):
        exe = shutil.which(tool) or (f"/usr/bin/{tool}" if os.path.exists(f"/usr/bin/{tool}") else None)
        if exe is None:
            raise PyContainerError(
                f"{tool} is not installed (Debian: apt-get install uidmap): a rootless container needs it"
            )
        args = [exe, str(pid)]
        for m in maps:
            args += [str(m.container_id), str(m.host_id), str(m.size)]
        r = subprocess.run(args, capture_output=True, text=True, check=False)
        if r.returncode != 0:
            what = "uid" if tool == "newuidmap" else "gid"
            raise ConfigError(
                f"{what}_mappings",
                f"{tool} refused {' '.join(args[2:])}: {r.stderr.strip() or f'exit {r.returncode}'} "
                f"(are the ranges in /etc/sub{what}?)",
            )


def _own_dir(path: str) -> str:
    """Make ``path`` (0700) or check that it is ours and no symlink: a
    directory under /tmp may have been made by someone else first."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
        raise PyContainerError(f"{path} is not a directory of this user's only: refusing to keep state there")
    return path


def default_state_root() -> str:
    """A non-root user's state root: $XDG_RUNTIME_DIR/pycontainer, else
    /tmp/pycontainer-<uid>."""
    run = os.environ.get("XDG_RUNTIME_DIR")
    if run and os.path.isdir(run):
        return os.path.join(run, "pycontainer")
    return _own_dir(f"/tmp/pycontainer-{os.geteuid()}")


def default_data_root() -> str:
    """A non-root user's data root: $XDG_DATA_HOME/pycontainer, else
    ~/.local/share/pycontainer."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "pycontainer")


__all__ = [
    "default_data_root",
    "default_state_root",
    "is_rootless",
    "rootless_config",
    "rootless_mappings",
    "subordinate_ranges",
]
