"""Named volumes, as Docker's ``local`` driver keeps them: a directory per
volume, ``<data root>/volumes/<name>/_data``, bound into the containers that
name it (``Mount(destination, source=NAME, type="volume")``, ``-v
NAME:/path``).  A container that uses a volume leaves a holder file in
``<name>/holders/`` naming its state directory, removed when the container
is deleted; a volume with a live holder is not removed."""

from __future__ import annotations

import builtins
import datetime
import hashlib
import json
import os
import re
import shutil
import uuid
from typing import Any

import attrs

from .errors import ConfigError, PyContainerError

_NAME_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}")


class VolumeError(PyContainerError):
    """A volume is missing, in use, or cannot be made or removed."""


@attrs.frozen
class Volume:
    """A named volume: its ``name``, the ``mountpoint`` containers see, when it was ``created``, its ``labels``."""

    name: str
    mountpoint: str  # the directory containers see
    created: str
    labels: dict[str, str] = attrs.field(factory=dict)


def check_name(name: str) -> str:
    """``name`` if it is a volume name (as Docker's), else ConfigError."""

    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise ConfigError("volume", f"{name!r} is not a volume name ([a-zA-Z0-9][a-zA-Z0-9_.-]*)")
    return name


class VolumeStore:
    """The named volumes under ``<data root>/volumes``: create, get, list, inspect, hold, remove, prune."""

    def __init__(self, data_root: str | None = None) -> None:
        from .rootfs import data_root as _data_root

        self.root = os.path.join(_data_root(data_root), "volumes")

    def _dir(self, name: str) -> str:
        return os.path.join(self.root, check_name(name))

    def create(
        self, name: str | None = None, labels: dict[str, str] | None = None, *, exist_ok: bool = False
    ) -> Volume:
        name = check_name(name or uuid.uuid4().hex)
        d = self._dir(name)
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        tmp = os.path.join(self.root, f".new-{name}-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        os.mkdir(tmp, 0o700)
        try:
            os.mkdir(os.path.join(tmp, "_data"), 0o755)
            os.mkdir(os.path.join(tmp, "holders"), 0o700)
            meta = {"name": name, "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
                    "labels": dict(labels or {})}  # fmt: skip
            with open(os.path.join(tmp, "volume.json"), "w", encoding="utf-8") as f:
                json.dump(meta, f)
            try:
                os.rename(tmp, d)  # claims the name: two creators never share one half-made volume
            except OSError:
                if os.path.isdir(d):
                    if exist_ok:
                        return self.get(name)
                    raise VolumeError(f"volume {name!r} already exists") from None
                raise
        finally:
            if os.path.isdir(tmp):
                shutil.rmtree(tmp)
        return self.get(name)

    def get(self, name: str) -> Volume:
        d = self._dir(name)
        try:
            with open(os.path.join(d, "volume.json"), encoding="utf-8") as f:
                meta = json.load(f)
        except FileNotFoundError:
            raise VolumeError(f"no volume {name!r} (in {self.root})") from None
        return Volume(name, os.path.join(d, "_data"), meta.get("created", ""), meta.get("labels") or {})

    # (from here on in the class, ``list`` names this method: annotations say builtins.list)
    def list(self) -> list[Volume]:
        try:
            names = sorted(n for n in os.listdir(self.root) if not n.startswith("."))
        except FileNotFoundError:
            return []
        out = []
        for n in names:
            try:
                out.append(self.get(n))
            except (VolumeError, ConfigError, ValueError):
                continue
        return out

    def users(self, name: str) -> builtins.list[str]:
        """State directories of the containers that use it (live ones only;
        a holder whose container is gone is dropped)."""
        hd = os.path.join(self._dir(name), "holders")
        out = []
        for h in sorted(os.listdir(hd)) if os.path.isdir(hd) else []:
            holder = os.path.join(hd, h)
            try:
                with open(holder, encoding="utf-8") as f:
                    container_dir = f.read().strip()
            except FileNotFoundError:
                continue
            if os.path.isdir(container_dir):
                out.append(container_dir)
            else:
                self.release(holder)
        return out

    def hold(self, name: str, container_dir: str, *, create: bool = True) -> tuple[str, str]:
        """Record that the container at ``container_dir`` uses volume
        ``name`` (made if missing and ``create``, as ``docker run -v``);
        returns (its mountpoint, the holder file to release)."""
        vol = self.create(name, exist_ok=True) if create else self.get(name)
        holder = os.path.join(self._dir(name), "holders", hashlib.sha256(container_dir.encode()).hexdigest()[:32])
        with open(holder + ".new", "w", encoding="utf-8") as f:
            f.write(container_dir)
        os.replace(holder + ".new", holder)
        return vol.mountpoint, holder

    @staticmethod
    def release(holder: str) -> None:
        try:
            os.unlink(holder)
        except FileNotFoundError:
            pass

    def remove(self, name: str, *, force: bool = False) -> None:
        """Remove a volume no container uses (as Docker's, ``force`` only
        spares the error for a missing one: a volume in use is never removed)."""
        d = self._dir(name)
        if not os.path.isdir(d):
            if force:
                return
            raise VolumeError(f"no volume {name!r} (in {self.root})")
        users = self.users(name)
        if users:
            raise VolumeError(f"volume {name!r} is in use by {len(users)} container(s): {', '.join(users)}")
        gone = os.path.join(self.root, f".gone-{name}-{uuid.uuid4().hex[:8]}")
        os.rename(d, gone)  # at once out of sight, then removed
        shutil.rmtree(gone)

    def prune(self) -> builtins.list[str]:
        """Remove every volume no live container uses; their names."""
        removed = []
        for vol in self.list():
            if not self.users(vol.name):
                try:
                    self.remove(vol.name)
                    removed.append(vol.name)
                except VolumeError:
                    continue
        return removed

    def inspect(self, name: str) -> dict[str, Any]:
        vol = self.get(name)
        return {"Name": vol.name, "Driver": "local", "Mountpoint": vol.mountpoint, "CreatedAt": vol.created,
                "Labels": vol.labels, "UsedBy": self.users(name)}  # fmt: skip


__all__ = ["Volume", "VolumeError", "VolumeStore", "check_name"]
