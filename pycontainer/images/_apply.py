"""An image's config as the defaults of a container's config, as Docker applies them."""

from __future__ import annotations

import attrs

from ..config import DEFAULT_ENV, ContainerConfig, User
from ..errors import ConfigError
from ._store import Image


def merge_env(image_env: tuple[str, ...], env: tuple[str, ...]) -> tuple[str, ...]:
    """The image's Env with ``env`` on top: a key set in both takes ``env``'s value."""
    out: dict[str, str] = {}
    for item in (*image_env, *env):
        key, _, _ = item.partition("=")
        out[key] = item
    return tuple(out.values())


def apply_image(cfg: ContainerConfig, image: Image) -> ContainerConfig:
    """The config with the image's defaults filled in.

    args: the Entrypoint (the process's ``entrypoint`` if given) plus the
    process's args, or the image's Cmd when there are none (and no
    entrypoint override, which drops the Cmd as ``docker run --entrypoint``
    does).  env: the image's Env, the process's entries on top (the default
    PATH-only env gives way to the image's).  cwd ``/`` and the default user
    give way to the image's WorkingDir and User."""
    ic = image.config
    p = cfg.process
    entrypoint = p.entrypoint if p.entrypoint is not None else ic.entrypoint
    cmd = p.args if p.args else (() if p.entrypoint is not None else ic.cmd)
    args = tuple(entrypoint) + tuple(cmd)
    if not args:
        raise ConfigError(
            "process.args", f"image {image.refs[0] if image.refs else image.digest} has no Entrypoint or Cmd: give args"
        )
    env = (ic.env or DEFAULT_ENV) if p.env == DEFAULT_ENV else merge_env(ic.env, p.env)
    cwd = p.cwd if p.cwd != "/" or not ic.working_dir else ic.working_dir
    if not cwd.startswith("/"):
        cwd = "/" + cwd
    user = p.user if p.user != User() or not ic.user else ic.user
    process = attrs.evolve(p, args=args, env=env, cwd=cwd, user=user, entrypoint=None)
    return attrs.evolve(cfg, process=process)
