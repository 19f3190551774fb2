"""Cgroups behind one interface, on v1, hybrid and v2 hosts.

>>> layout = detect()                      # what this host mounts
>>> mgr = new_manager(layout, "pycontainer/web", "web")
>>> mgr.create_dirs(); mgr.create(Resources(memory=64 << 20))   # doctest: +SKIP
>>> mgr.destroy()                                                # doctest: +SKIP

``detect`` reads the host's mounts (or, for a directory that is not a real
cgroup mount, such as a test's fake tree, its files) and picks the mode;
``new_manager`` places a container's cgroup the way runc does: an absolute
``cgroups_path`` is taken from the root of each hierarchy, a relative one
from the creating process's own cgroup (v1) or that cgroup's parent (v2,
where the own cgroup holds processes and may not hand controllers down).
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import CgroupError
from ._base import (
    V1_CONTROLLERS,
    CPUStats,
    IOStats,
    Layout,
    Manager,
    MemoryStats,
    OOMWatcher,
    PidsStats,
    Stats,
    blkio_to_io_weight,
    shares_to_weight,
    swap_to_v2,
    weight_to_shares,
)
from ._v1 import V1Manager
from ._v2 import V2Manager

DEFAULT_ROOT = "/sys/fs/cgroup"
DEFAULT_PARENT = "pycontainer"


def _mountinfo(root: str, proc: str) -> list[tuple[str, str, set[str]]]:
    """(mount point, fs type, super options) of cgroup mounts right under ``root``."""
    out: list[tuple[str, str, set[str]]] = []
    try:
        with open(f"{proc}/self/mountinfo", encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return out
    for line in lines:
        left, _, right = line.partition(" - ")
        fields, rfields = left.split(), right.split()
        if len(fields) < 5 or len(rfields) < 3 or rfields[0] not in ("cgroup", "cgroup2"):
            continue
        point = fields[4].replace("\\040", " ")
        if point == root or os.path.dirname(point) == root:
            out.append((point, rfields[0], set(rfields[2].split(","))))
    return out


def detect(root: str = DEFAULT_ROOT, proc: str = "/proc") -> Layout:
    """The cgroup layout under ``root``.  Raises CgroupError when there is none."""
    root = root.rstrip("/") or "/"
    if os.path.exists(f"{root}/cgroup.controllers"):
        return Layout(mode="v2", root=root, unified=root, controllers=_controllers(root))
    v1: dict[str, str] = {}
    unified = None
    mounts = _mountinfo(root, proc)
    if mounts:
        for point, fstype, opts in mounts:
            if fstype == "cgroup2":
                unified = point
                continue
            for opt in opts:
                if opt in V1_CONTROLLERS or opt.startswith("name="):
                    v1[opt] = point
    else:  # not a mount: a directory laid out like one (tests' fake trees)
        try:
            names = sorted(os.listdir(root))
        except OSError as e:
            raise CgroupError(f"cannot read cgroup root {root}: {os.strerror(e.errno or 0)}") from None
        for name in names:
            path = f"{root}/{name}"
            if os.path.islink(path) or not os.path.isdir(path):
                continue
            if os.path.exists(f"{path}/cgroup.controllers"):
                unified = path
            elif os.path.exists(f"{path}/cgroup.procs"):
                for part in name.split(","):
                    v1[part] = path
    if not v1:
        if unified:
            return Layout(mode="v2", root=root, unified=unified, controllers=_controllers(unified))
        raise CgroupError(f"no cgroup hierarchy is mounted under {root}")
    mode = "hybrid" if unified else "v1"
    return Layout(
        mode=mode, root=root, v1=v1, unified=unified, controllers=_controllers(unified) if unified else frozenset()
    )


def _controllers(path: str) -> frozenset[str]:
    try:
        with open(f"{path}/cgroup.controllers", encoding="ascii") as f:
            return frozenset(f.read().split())
    except OSError:
        return frozenset()


def own_cgroups(proc: str = "/proc", pid: str = "self") -> dict[str, str]:
    """/proc/PID/cgroup as {controller or "name=..." or "unified": path}."""
    out: dict[str, str] = {}
    try:
        with open(f"{proc}/{pid}/cgroup", encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError:
        return out
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, names, path = parts
        if not names:
            out["unified"] = path
        for name in names.split(","):
            if name:
                out[name] = path
    return out


_own_cache: dict[str, dict[str, str]] = {}


def _own(proc: str) -> dict[str, str]:
    """Our own cgroups, read once per process: a runtime is not moved between
    cgroups under its feet (and if it is, new containers still land where the
    first ones did)."""
    own = _own_cache.get(proc)
    if own is None:
        own = _own_cache[proc] = own_cgroups(proc)
    return own


def new_manager(
    layout: Layout, cgroups_path: str | None, container_id: str, proc: str = "/proc"
) -> V1Manager | V2Manager:
    """A manager for one container's cgroup (not made yet: call ``create_dirs``).

    Without ``cgroups_path`` the cgroup is ``pycontainer/<id>-<8 random hex>``:
    ids are unique only within one state root, and two creators racing for one
    id must not share (or remove) each other's cgroup."""
    rel = cgroups_path or f"{DEFAULT_PARENT}/{container_id}-{os.urandom(4).hex()}"
    absolute = rel.startswith("/")
    own = {} if absolute else _own(proc)
    if layout.mode == "v2":
        assert layout.unified is not None
        base = "" if absolute else os.path.dirname(own.get("unified", "/").rstrip("/"))
        top = f"{layout.unified}/{base.strip('/')}".rstrip("/")
        shared = [f"{top}/{DEFAULT_PARENT}"] if cgroups_path is None else []
        return V2Manager(
            layout, {"unified": f"{top}/{rel.strip('/')}"}, shared=shared, plan={"unified": (top, rel.strip("/"))}
        )
    plan: dict[str, tuple[str, str]] = {}
    for name, mount in layout.v1.items():
        base = "" if absolute else own.get(name, "/")
        top = f"{mount}/{base.strip('/')}".rstrip("/")
        plan[name] = (top, rel.strip("/"))
    if layout.unified:
        base = "" if absolute else os.path.dirname(own.get("unified", "/").rstrip("/"))
        top = f"{layout.unified}/{base.strip('/')}".rstrip("/")
        plan["unified"] = (top, rel.strip("/"))
    shared = sorted({f"{t}/{DEFAULT_PARENT}" for t, _ in plan.values()}) if cgroups_path is None else []
    return V1Manager(layout, {k: f"{t}/{r}" for k, (t, r) in plan.items()}, shared=shared, plan=plan)


def load_manager(data: dict[str, Any], root: str = DEFAULT_ROOT) -> V1Manager | V2Manager:
    """A manager from ``Manager.to_json()`` (state.json)."""
    layout = detect(root)
    cls = V2Manager if data["mode"] == "v2" else V1Manager
    return cls(layout, data["paths"], data.get("made"), data.get("parents"), shared=data.get("shared"))


__all__ = [
    "CPUStats",
    "DEFAULT_ROOT",
    "IOStats",
    "Layout",
    "Manager",
    "MemoryStats",
    "OOMWatcher",
    "PidsStats",
    "Stats",
    "V1Manager",
    "V2Manager",
    "blkio_to_io_weight",
    "detect",
    "load_manager",
    "new_manager",
    "own_cgroups",
    "shares_to_weight",
    "swap_to_v2",
    "weight_to_shares",
]
