"""Registry credentials, as ``docker login`` keeps them: one JSON file,
``$PYCONTAINER_AUTH_FILE`` or ``~/.config/pycontainer/auth.json``, mode
0600 in a 0700 directory, ``{"auths": {"host": {"auth": base64("user:password")}}}``
(the layout of Docker's config.json).  Written whole and renamed into place."""

from __future__ import annotations

import base64
import binascii
import json
import os
from typing import Any

from .errors import ConfigError


def path() -> str:
    """Where the credentials are kept: ``$PYCONTAINER_AUTH_FILE``, else ``~/.config/pycontainer/auth.json``."""

    return os.environ.get("PYCONTAINER_AUTH_FILE") or os.path.join(
        os.path.expanduser("~"), ".config", "pycontainer", "auth.json"
    )


def _load() -> dict[str, Any]:
    try:
        with open(path(), encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return {"auths": {}}
    except (OSError, ValueError) as e:
        raise ConfigError("auth", f"{path()}: {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("auths", {}), dict):
        raise ConfigError("auth", f"{path()}: not a credentials file")
    data.setdefault("auths", {})
    return data


def _save(data: dict[str, Any]) -> None:
    target = path()
    os.makedirs(os.path.dirname(target), mode=0o700, exist_ok=True)
    tmp = f"{target}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # exact, whatever the umask
        os.write(fd, json.dumps(data, indent=2).encode())
    finally:
        os.close(fd)
    os.replace(tmp, target)


_DOCKER_HUB = ("docker.io", "index.docker.io", "registry-1.docker.io", "https://index.docker.io/v1/")


def _key(server: str) -> str:
    """Docker Hub's names are one registry (``split_ref`` says registry-1.docker.io)."""
    return "docker.io" if server in _DOCKER_HUB else server


def store(server: str, username: str, password: str) -> None:
    """Keep the credentials for ``server`` (unchecked: :func:`login` asks the registry first)."""

    server = _key(server)
    if not server or "/" in server or ":" in username:
        raise ConfigError("login", f"{server!r} / {username!r}: a registry host and a user name without ':'")
    data = _load()
    data["auths"][server] = {"auth": base64.b64encode(f"{username}:{password}".encode()).decode()}
    _save(data)


def login(server: str, username: str, password: str, *, insecure: bool | None = None) -> None:
    """``docker login``: ask the registry whether it takes the credentials
    (``GET /v2/``, answering its basic or bearer challenge with them), then
    :func:`store` them.  ImageError, with nothing stored, if it does not.
    ``insecure`` as the registry client's (plain HTTP for 127.0.0.1 and
    localhost by default)."""
    from .errors import ImageError
    from .images._registry import Registry

    if not _key(server) or "/" in _key(server) or ":" in username:  # (as store() says, before the network)
        raise ConfigError("login", f"{server!r} / {username!r}: a registry host and a user name without ':'")
    host = "registry-1.docker.io" if _key(server) == "docker.io" else server
    reg = Registry(host, username=username, password=password, insecure=insecure)
    try:
        reg.request("GET", "/v2/", scope="")
    except ImageError as e:
        raise ImageError(f"login to {server} as {username!r} refused: {e}") from None
    store(server, username, password)


def forget(server: str) -> None:
    """``docker logout``: drop the credentials for ``server`` (ConfigError if there are none)."""

    server = _key(server)
    data = _load()
    if data["auths"].pop(server, None) is None:
        raise ConfigError("logout", f"not logged in to {server}")
    _save(data)


def lookup(server: str) -> dict[str, str] | None:
    """``{"username": ..., "password": ...}`` for ``server``, or None."""
    entry = _load()["auths"].get(_key(server))
    if not isinstance(entry, dict) or not entry.get("auth"):
        return None
    try:
        user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise ConfigError("auth", f"{path()}: the entry for {server} is not base64 of user:password") from None
    return {"username": user, "password": password}


__all__ = ["forget", "login", "lookup", "path", "store"]
