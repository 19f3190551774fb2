"""Build images from Dockerfiles, with no daemon.

``build(context, tag=..., dockerfile=..., build_args=..., target=..., no_cache=...)``
runs the instructions in order, each on the image the one before made:

- ``RUN`` (shell form through the stage's SHELL, or exec form) in a
  container of that image, with the build args in its environment; its
  changes become one layer (``Container.commit``);
- ``COPY`` (``--from=STAGE|IMAGE``, ``--chown=USER[:GROUP]``) and ``ADD``
  (local files; a local tar archive is unpacked) into a created container
  of that image, then committed as one layer;
- ``ENV``, ``ARG``, ``WORKDIR``, ``USER``, ``CMD``, ``ENTRYPOINT``,
  ``LABEL``, ``EXPOSE``, ``VOLUME``, ``SHELL``, ``STOPSIGNAL`` and
  ``HEALTHCHECK`` change the config only: a new image over the same layers.

Stages (``FROM IMAGE [AS NAME]``) build one after another; ``target`` stops
after the named one.  Every step is cached: its key is the parent image,
the instruction (with the build args it sees) and, for COPY/ADD, the
content of what it copies; a step whose key is known and whose image is
still in the store is not run again.  ``.dockerignore`` in the context
leaves files out of COPY and ADD.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from .errors import ConfigError, PyContainerError

if TYPE_CHECKING:  # (imported where used: pycontainer.build loads without them)
    from .config import ContainerConfig
    from .images import Image, ImageStore

_META = {"ENV", "ARG", "WORKDIR", "USER", "CMD", "ENTRYPOINT", "LABEL", "EXPOSE", "VOLUME", "SHELL", "STOPSIGNAL",
         "HEALTHCHECK", "MAINTAINER", "ONBUILD"}  # fmt: skip
_ALL = {"FROM", "RUN", "COPY", "ADD", *_META}


class BuildError(PyContainerError):
    """A Dockerfile that cannot be built: names the line and why."""


@attrs.frozen
class Instruction:
    """One Dockerfile instruction: its ``line``, ``cmd`` (upper case), ``args`` and ``--flags``."""

    line: int
    cmd: str  # upper case
    args: str  # the rest, continuation lines joined
    flags: tuple[tuple[str, str], ...] = ()  # --name=value before the arguments

    def flag(self, name: str) -> str | None:
        return next((v for k, v in self.flags if k == name), None)

    def json_args(self) -> list[str] | None:
        """The exec (JSON array) form's words, or None for the shell form."""
        text = self.args.strip()
        if text.startswith("["):
            try:
                words = json.loads(text)
            except ValueError:
                return None
            if isinstance(words, list) and all(isinstance(w, str) for w in words):
                return words
        return None

    def __str__(self) -> str:
        flags = "".join(f"--{k}={v} " for k, v in self.flags)
        return f"{self.cmd} {flags}{self.args}".strip()


def parse(text: str) -> list[Instruction]:
    """The instructions of a Dockerfile (comments, blank lines and
    backslash continuations handled; heredocs are not)."""
    out: list[Instruction] = []
    pending, start = "", 0
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if not pending:
            start = n
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        word, _, rest = full.partition(" ")
        cmd = word.upper()
        if cmd not in _ALL:
            raise BuildError(f"line {start}: unknown instruction {word!r}")
        flags = []
        rest = rest.strip()
        while rest.startswith("--") and cmd in ("FROM", "COPY", "ADD", "RUN", "HEALTHCHECK"):
            flag, _, rest = rest.partition(" ")
            name, _, value = flag[2:].partition("=")
            flags.append((name, value))
            rest = rest.strip()
        out.append(Instruction(start, cmd, rest, tuple(flags)))
    if pending:
        raise BuildError("the Dockerfile ends in a continuation line")
    if not out or out[0].cmd not in ("FROM", "ARG"):
        raise BuildError("a Dockerfile starts with FROM (after global ARGs)")
    return out


_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?::?([-+])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


def expand(text: str, env: Mapping[str, str]) -> str:
    """$VAR, ${VAR}, ${VAR:-default}, ${VAR:+alt}, as the Dockerfile does."""

    def sub(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(4)
        value = env.get(name, "")
        if m.group(2) == "-":
            return value or m.group(3)
        if m.group(2) == "+":
            return m.group(3) if value else ""
        return value

    return _VAR.sub(sub, text.replace("\\$", "\0")).replace("\0", "$")


def _pairs(text: str) -> list[tuple[str, str]]:
    """ENV/LABEL/ARG arguments: K=V pairs (quoted values), or the old ``K V``."""
    words = shlex.split(text)
    if words and "=" not in words[0]:
        return [(words[0], text.strip()[len(words[0]) :].strip())]
    out = []
    for w in words:
        k, sep, v = w.partition("=")
        if not sep and not k:
            continue
        out.append((k, v))
    return out


class _Ignore:
    """.dockerignore: patterns relative to the context, ``**`` for any
    depth, ``!`` re-includes; the last matching pattern wins."""

    def __init__(self, context: str) -> None:
        self.rules: list[tuple[bool, str]] = []
        try:
            with open(os.path.join(context, ".dockerignore"), encoding="utf-8") as f:
                for line in f:
                    line = line.strip()
                    if line and not line.startswith("#"):
                        neg = line.startswith("!")
                        pat = os.path.normpath(line[1:] if neg else line).lstrip("/")
                        self.rules.append((neg, pat))
        except FileNotFoundError:
            pass

    def reincludes_below(self, rel: str) -> bool:
        """May a ``!`` pattern re-include something inside directory ``rel``?"""
        rel = os.path.normpath(rel)
        return any(neg and (pat.startswith(rel + "/") or "**" in pat) for neg, pat in self.rules)

    def ignored(self, rel: str) -> bool:
        rel = os.path.normpath(rel)
        out = False
        for neg, pat in self.rules:
            if _match(pat, rel):
                out = not neg
        return out


def _match(pat: str, rel: str) -> bool:
    regex = (
        re.escape(pat).replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*").replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
    )
    # a pattern that names a directory covers what is inside it
    return re.fullmatch(regex + "(/.*)?", rel) is not None


@attrs.define
class _Stage:
    name: str | None
    image: Image
    args: dict[str, str]


def build(
    context: str,
    *,
    tag: str | None = None,
    dockerfile: str | None = None,
    build_args: Mapping[str, str] | None = None,
    target: str | None = None,
    no_cache: bool = False,
    root: str | None = None,
    data_root: str | None = None,
    out: Callable[[str], None] | None = None,
) -> Image:
    """Build the Dockerfile (``context/Dockerfile`` by default) and tag the
    result ``tag``; returns the image (``images.Image``).  ``out`` gets
    the progress lines and what RUN steps print (default: our stdout)."""
    from .images import ImageStore

    context = os.path.realpath(context)
    if not os.path.isdir(context):
        raise ConfigError("context", f"{context!r} is not a directory")
    path = dockerfile or os.path.join(context, "Dockerfile")
    try:
        with open(path, encoding="utf-8") as f:
            instructions = parse(f.read())
    except OSError as e:
        raise ConfigError("dockerfile", f"{path}: {e.strerror}") from None

    def to_stdout(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    say = out or to_stdout
    b = _Builder(ImageStore(data_root), context, root, data_root, dict(build_args or {}), no_cache, say)
    try:
        image = b.run(instructions, target)
    finally:
        b.scratch.cleanup()
    if tag:
        image = b.store.tag(image.digest, tag)
    return image


class _Builder:
    def __init__(self, store: ImageStore, context: str, root: str | None, data_root: str | None, build_args: dict[str, str],
                 no_cache: bool, say: Callable[[str], None]) -> None:  # fmt: skip
        self.store, self.context, self.root, self.data_root = store, context, root, data_root
        self.build_args, self.no_cache, self.say = build_args, no_cache, say
        self.ignore = _Ignore(context)
        self.stages: list[_Stage] = []
        self.cache_dir = os.path.join(store.root, "build-cache")
        self.used_args: set[str] = set()
        # COPY --from trees, by image digest, and an empty directory, in one
        # scratch directory that goes with the build
        self.scratch = tempfile.TemporaryDirectory(prefix="pyc-build-")
        self.trees: dict[str, str] = {}
        self.empty_dir = os.path.join(self.scratch.name, "empty")
        os.mkdir(self.empty_dir)

    # ---- the cache: step key -> image digest ------------------------------------------

    def _cached(self, key: str) -> Image | None:
        if self.no_cache:
            return None
        try:
            with open(os.path.join(self.cache_dir, key), encoding="ascii") as f:
                return self.store.get(f.read().strip())
        except (OSError, PyContainerError):
            return None

    def _remember(self, key: str, image: Image) -> None:
        os.makedirs(self.cache_dir, mode=0o700, exist_ok=True)
        tmp = os.path.join(self.cache_dir, f".{key}.{os.getpid()}")
        with open(tmp, "w", encoding="ascii") as f:
            f.write(image.digest)
        os.replace(tmp, os.path.join(self.cache_dir, key))

    @staticmethod
    def _key(*parts: str) -> str:
        return hashlib.sha256("\0".join(parts).encode()).hexdigest()

    # ---- steps --------------------------------------------------------------------------

    def run(self, instructions: list[Instruction], target: str | None) -> Image:
        global_args: dict[str, str] = {}
        i = 0
        while i < len(instructions) and instructions[i].cmd == "ARG":
            for k, v in _pairs(instructions[i].args):
                global_args[k] = self.build_args.get(k, v)
            i += 1
        stage: _Stage | None = None
        total = len(instructions)
        for n, ins in enumerate(instructions[i:], i + 1):
            self.say(f"STEP {n}/{total}: {ins}")
            if ins.cmd == "FROM":
                if stage is not None and target is not None and stage.name == target:
                    break
                stage = self._from(ins, global_args)
                continue
            if stage is None:
                raise BuildError(f"line {ins.line}: {ins.cmd} before FROM")
            try:
                stage.image = self._step(stage, ins)
            except BuildError:
                raise
            except PyContainerError as e:
                raise BuildError(f"line {ins.line}: {ins}: {e}") from None
        if stage is None:
            raise BuildError("no FROM")
        if target is not None and stage.name != target and not any(s.name == target for s in self.stages):
            raise BuildError(f"no stage named {target!r}")
        unused = set(self.build_args) - self.used_args - set(global_args)
        if unused:
            self.say(f"warning: build args not used: {', '.join(sorted(unused))}")
        self.say(f"--> {stage.image.id}")
        return stage.image

    def _from(self, ins: Instruction, global_args: dict[str, str]) -> _Stage:
        words = expand(ins.args, global_args).split()
        if not words or (len(words) not in (1, 3)) or (len(words) == 3 and words[1].upper() != "AS"):
            raise BuildError(f"line {ins.line}: FROM IMAGE [AS NAME]")
        ref = words[0]
        named = next((s for s in self.stages if s.name == ref), None)
        image = named.image if named is not None else self._image(ref, ins)
        stage = _Stage(words[2] if len(words) == 3 else None, image, {})
        self.stages.append(stage)
        return stage

    def _image(self, ref: str, ins: Instruction) -> Image:
        from .images import BUILTIN, builtin_image, host_platform, normalize_ref

        if ref == "scratch":
            # Docker's empty image: no layers, an empty config
            os_, arch = host_platform()
            cfg = {"architecture": arch, "os": os_, "config": {}, "rootfs": {"type": "layers", "diff_ids": []},
                   "history": []}  # fmt: skip
            return self.store.add_image(cfg, [], None)

        try:
            if normalize_ref(ref) == normalize_ref(BUILTIN):
                return builtin_image(self.store)  # made on first use, as for containers
            return self.store.get(ref)
        except PyContainerError:
            try:
                from . import auth
                from .images._registry import split_ref

                creds = auth.lookup(split_ref(ref)[0]) or {}
                return self.store.pull(ref, progress=False, **creds)
            except PyContainerError as e:
                raise BuildError(f"line {ins.line}: image {ref!r}: {e}") from None

    def _env(self, stage: _Stage) -> dict[str, str]:
        """What $VAR sees: the stage's ARGs under its ENV, as Docker's."""
        env = dict(stage.args)
        for item in (stage.image.config_json.get("config") or {}).get("Env") or []:
            k, _, v = item.partition("=")
            env[k] = v
        return env

    def _step(self, stage: _Stage, ins: Instruction) -> Image:
        if ins.cmd == "ARG":
            for k, v in _pairs(ins.args):
                self.used_args.add(k)
                stage.args[k] = self.build_args.get(k, expand(v, self._env(stage)))
            return stage.image
        if ins.cmd in _META:
            return self._meta(stage, ins)
        if ins.cmd == "RUN":
            return self._run(stage, ins)
        return self._copy(stage, ins)

    def _meta(self, stage: _Stage, ins: Instruction) -> Image:
        env = self._env(stage)
        cfg = json.loads(json.dumps(stage.image.config_json.get("config") or {}))
        cmd = ins.cmd
        if cmd == "ENV":
            current = dict(e.partition("=")[::2] for e in cfg.get("Env") or [])
            for k, v in _pairs(ins.args):
                current[k] = expand(v, env)
                env[k] = current[k]
            cfg["Env"] = [f"{k}={v}" for k, v in current.items()]
        elif cmd == "WORKDIR":
            wd = expand(ins.args.strip(), env)
            cfg["WorkingDir"] = os.path.normpath(os.path.join(cfg.get("WorkingDir") or "/", wd))
        elif cmd == "USER":
            cfg["User"] = expand(ins.args.strip(), env)
        elif cmd in ("CMD", "ENTRYPOINT"):
            words = ins.json_args()
            shell = cfg.get("Shell") or ["/bin/sh", "-c"]
            value = words if words is not None else [*shell, ins.args.strip()]
            cfg["Cmd" if cmd == "CMD" else "Entrypoint"] = value
            if cmd == "ENTRYPOINT":
                cfg["Cmd"] = None  # as Docker: a new entrypoint drops the inherited Cmd
        elif cmd == "LABEL":
            labels = dict(cfg.get("Labels") or {})
            labels.update({k: expand(v, env) for k, v in _pairs(ins.args)})
            cfg["Labels"] = labels
        elif cmd == "EXPOSE":
            ports = dict(cfg.get("ExposedPorts") or {})
            for p in expand(ins.args, env).split():
                ports[p if "/" in p else f"{p}/tcp"] = {}
            cfg["ExposedPorts"] = ports
        elif cmd == "VOLUME":
            words = ins.json_args() or expand(ins.args, env).split()
            cfg["Volumes"] = {**(cfg.get("Volumes") or {}), **{w: {} for w in words}}
        elif cmd == "SHELL":
            words = ins.json_args()
            if not words:
                raise BuildError(f"line {ins.line}: SHELL takes a JSON array")
            cfg["Shell"] = words
        elif cmd == "STOPSIGNAL":
            cfg["StopSignal"] = expand(ins.args.strip(), env)
        elif cmd == "HEALTHCHECK":
            text = ins.args.strip()
            if text.upper() == "NONE":
                cfg["Healthcheck"] = {"Test": ["NONE"]}
            else:
                _, _, rest = text.partition(" ") if text.upper().startswith("CMD") else ("", "", text)
                cmdw = json.loads(rest) if rest.strip().startswith("[") else ["CMD-SHELL", rest.strip()]
                cfg["Healthcheck"] = {"Test": cmdw if cmdw[:1] in (["CMD"], ["CMD-SHELL"]) else ["CMD", *cmdw],
                                      **{k.capitalize(): v for k, v in ins.flags}}  # fmt: skip
        # (MAINTAINER, ONBUILD: recorded in the history only)
        key = self._key("meta", stage.image.digest, str(ins), json.dumps(stage.args, sort_keys=True))
        cached = self._cached(key)
        if cached is not None:
            self.say("--> using cache")
            return cached
        image = _config_image(self.store, stage.image, cfg, str(ins))
        self._remember(key, image)
        return image

    def _container_config(self, stage: _Stage, args: Sequence[str]) -> ContainerConfig:
        from . import ContainerConfig, Process

        # the build args, but not over the image's ENV (which wins, as Docker's)
        image_env = {e.partition("=")[0] for e in (stage.image.config_json.get("config") or {}).get("Env") or []}
        env = [f"{k}={v}" for k, v in stage.args.items() if k not in image_env]
        process = Process(args=list(args), entrypoint=[], env=env) if env else Process(args=list(args), entrypoint=[])
        # (image_volumes=False: a step's changes under a VOLUME path reach its layer, as BuildKit's)
        return ContainerConfig(process=process, image=stage.image.digest, image_volumes=False)

    def _run(self, stage: _Stage, ins: Instruction) -> Image:
        from . import PIPE, STDOUT, Container

        if not stage.image.layers:
            raise BuildError(f"line {ins.line}: {ins}: the stage FROM scratch has no files to run anything with yet")
        words = ins.json_args()
        cfg_json = stage.image.config_json.get("config") or {}
        argv = words if words is not None else [*(cfg_json.get("Shell") or ["/bin/sh", "-c"]), ins.args]
        key = self._key("run", stage.image.digest, str(ins), json.dumps(stage.args, sort_keys=True))
        cached = self._cached(key)
        if cached is not None:
            self.say("--> using cache")
            return cached
        cid = f"build-{uuid.uuid4().hex[:12]}"
        c = Container.create(self.root, cid, self._container_config(stage, argv), stdout=PIPE, stderr=STDOUT,
                             data_root=self.data_root)  # fmt: skip
        try:
            c.start()
            assert c.stdout is not None
            for line in iter(c.stdout.readline, b""):
                self.say(line.decode(errors="replace").rstrip("\n"))
            status = c.wait()
            if status.returncode:
                raise BuildError(f"line {ins.line}: {ins}: exited with status {status.returncode}")
            image = c.commit(None, comment="", created_by=str(ins), pause=False)
        finally:
            c.delete(force=True)
        self._remember(key, image)
        return image

    def _copy(self, stage: _Stage, ins: Instruction) -> Image:
        from . import Container
        from .container import copy_entries_in
        from .rootfs import lookup_user

        env = self._env(stage)
        words = ins.json_args() or shlex.split(expand(ins.args, env))
        words = [expand(w, env) for w in words] if ins.json_args() else words
        if len(words) < 2:
            raise BuildError(f"line {ins.line}: {ins.cmd} SRC... DEST")
        *sources, dest = words
        workdir = (stage.image.config_json.get("config") or {}).get("WorkingDir") or "/"
        dest_abs = os.path.normpath(dest if dest.startswith("/") else os.path.join(workdir, dest))
        # into DEST: "dir/", ".", several sources, or a directory the image has there
        into_dir = dest.endswith(("/", "/.")) or dest == "." or len(sources) > 1 or self._image_dir(stage, dest_abs)
        source_root, digest = self._source_root(ins)
        entries: list[tuple[str, str]] = []
        for src in sources:
            matches = self._sources(source_root, src, ins)
            if len(matches) > 1:
                into_dir = True
            for path, name in matches:
                entries += self._entries(path, dest_abs, into_dir or os.path.isdir(path), ins, source_root, name)
        content = hashlib.sha256()
        for host, where in sorted(entries):
            content.update(where.encode() + b"\0" + _hash_path(host).encode())
        key = self._key("copy", stage.image.digest, str(ins), digest, content.hexdigest())
        cached = self._cached(key)
        if cached is not None:
            self.say("--> using cache")
            return cached
        if not stage.image.layers:
            # FROM scratch: no files to run a container on; the copy is the
            # first layer, made in a directory of the build's own
            image = self._copy_onto_scratch(stage, ins, entries, into_dir, dest_abs)
            self._remember(key, image)
            return image
        cid = f"build-{uuid.uuid4().hex[:12]}"
        # Never started: its process only has to pass create's check that it
        # can be executed, which an image from scratch has nothing for; the
        # executable of the container's own setup process always does.
        c = Container.create(self.root, cid, self._container_config(stage, ["/proc/self/exe"]), data_root=self.data_root)
        try:
            owner = None
            chown = ins.flag("chown")
            if chown:
                user, group = (chown.split(":", 1) + [""])[:2]
                u, _home = lookup_user(f"/proc/{c.pid}/root", f"{user}:{group}" if group else user)
                owner = (u.uid, u.gid)
            with tempfile.TemporaryDirectory() as tmp:
                copy_entries_in(c, self._add_entries(ins, entries, into_dir, dest_abs, tmp), owner)
            image = c.commit(None, comment="", created_by=str(ins), pause=False)
        finally:
            c.delete(force=True)
        self._remember(key, image)
        return image

    def _add_entries(
        self, ins: Instruction, entries: list[tuple[str, str]], into_dir: bool, dest_abs: str, tmp: str
    ) -> list[tuple[str, str]]:
        """The entries to copy, ADD's local tar archives unpacked (in ``tmp``)."""
        final: list[tuple[str, str]] = []
        for host, where in entries:
            if ins.cmd == "ADD" and os.path.isfile(host) and tarfile.is_tarfile(host):
                unpacked = os.path.join(tmp, str(len(final)))
                os.mkdir(unpacked)
                try:
                    with tarfile.open(host) as t:
                        t.extractall(unpacked, filter="data")
                except (tarfile.TarError, OSError) as e:
                    raise BuildError(f"line {ins.line}: {ins}: {host}: {e}") from None
                target = where if into_dir else dest_abs
                target = os.path.dirname(where) if where.endswith(os.path.basename(host)) else target
                final += [(os.path.join(unpacked, n), os.path.join(target, n)) for n in os.listdir(unpacked)]
            else:
                final.append((host, where))
        return final

    def _copy_onto_scratch(
        self, stage: _Stage, ins: Instruction, entries: list[tuple[str, str]], into_dir: bool, dest_abs: str
    ) -> Image:
        from .container import copy_entries_into
        from .images import commit

        owner = (0, 0)
        chown = ins.flag("chown")
        if chown:
            user, _, group = chown.partition(":")
            if not user.isdigit() or not (group or user).isdigit():
                raise BuildError(f"line {ins.line}: --chown={chown}: a stage FROM scratch has no /etc/passwd: use ids")
            owner = (int(user), int(group or user))
        with tempfile.TemporaryDirectory(dir=self.scratch.name) as tmp:
            layer = os.path.join(tmp, "layer")
            os.mkdir(layer, 0o755)
            copy_entries_into(layer, self._add_entries(ins, entries, into_dir, dest_abs, tmp), owner, str(ins))
            return commit(self.store, stage.image, layer, None, created_by=str(ins))

    def _source_root(self, ins: Instruction) -> tuple[str, str]:
        """Where COPY's sources are: the context, or (``--from``) a stage's
        or an image's files; and what identifies them for the cache."""
        origin = ins.flag("from")
        if not origin:
            return self.context, "context"
        stage = next((s for s in self.stages if s.name == origin), None)
        if stage is None and origin.isdigit() and int(origin) < len(self.stages):
            stage = self.stages[int(origin)]
        image = stage.image if stage is not None else self._image(origin, ins)
        return self._unpacked(image), image.digest

    def _unpacked(self, image: Image) -> str:
        """A merged view of an image's files (its layers copied, top last)
        for COPY --from: a temporary directory kept for the build."""
        from .images import copy_layers

        if image.digest not in self.trees:
            d = os.path.join(self.scratch.name, image.digest.split(":")[1][:16])
            os.mkdir(d)
            copy_layers(self.store.unpack(image), d)  # (bottom layer first)
            self.trees[image.digest] = d
        return self.trees[image.digest]

    def _sources(self, base: str, src: str, ins: Instruction) -> list[tuple[str, str]]:
        """(the file to copy, the name it is copied as) for each match of ``src``."""
        import glob

        if base != self.context:
            # the directory part resolved in the tree first: a glob must not
            # walk through one of its links onto the host's directories
            head, tail = os.path.split(src.strip("/"))
            if any(ch in head for ch in "*?["):
                raise BuildError(f"line {ins.line}: {src!r}: --from takes wildcards in the last part of a path only")
            pattern = os.path.join(_resolve_in(base, head, ins), tail)
        else:
            pattern = os.path.join(base, src)
        found = sorted(glob.glob(pattern)) if any(ch in src for ch in "*?[") else [pattern]
        out = []
        for path in found:
            name = os.path.basename(os.path.normpath(path))
            if base != self.context:
                # An image's or a stage's files: its symlinks point into it,
                # never at the host; a source that is a link is followed
                # there (the copy takes its target's content, under its name).
                path = _resolve_in(base, os.path.relpath(path, base), ins)
            real = os.path.realpath(path)
            if real != base and not real.startswith(base.rstrip("/") + "/"):
                raise BuildError(f"line {ins.line}: {src!r} is outside the build context")
            if not os.path.lexists(path):
                raise BuildError(f"line {ins.line}: {src!r}: no such file in the build context")
            rel = os.path.relpath(path, base)
            if base == self.context and rel != "." and self.ignore.ignored(rel):
                continue
            out.append((path, name))
        if not out:
            raise BuildError(f"line {ins.line}: {src!r}: nothing to copy (.dockerignore left it out)")
        return out

    def _entries(
        self, path: str, dest: str, into_dir: bool, ins: Instruction, base: str, name: str | None = None
    ) -> list[tuple[str, str]]:
        """(host path, container path) pairs: a file as DEST or into it
        (as ``name``, default its own); a directory's contents into DEST
        (Docker's COPY dir/ DEST), skipping what .dockerignore says."""
        if not os.path.isdir(path) or os.path.islink(path):
            where = os.path.join(dest, name or os.path.basename(path)) if into_dir else dest
            return [(path, where)]
        out = []
        left_out = False
        for dirpath, dirnames, filenames in os.walk(path):
            rel_dir = os.path.relpath(dirpath, path)
            for name in sorted(dirnames + filenames):
                host = os.path.join(dirpath, name)
                rel_ctx = os.path.relpath(host, base)
                if base == self.context and self.ignore.ignored(rel_ctx) and not self.ignore.reincludes_below(rel_ctx):
                    left_out = True
                    if name in dirnames:
                        dirnames.remove(name)
                    continue
                if base == self.context and self.ignore.ignored(rel_ctx):
                    left_out = True  # (a directory walked only for the files re-included below it)
                    continue
                if name in filenames or os.path.islink(host) or not os.listdir(host):
                    out.append((host, os.path.normpath(os.path.join(dest, rel_dir, name))))
        # an empty directory comes as itself (tar adds it alone); one whose
        # every entry .dockerignore left out comes empty, as an empty one
        return out or [(self.empty_dir if left_out else path, dest)]

    def _image_dir(self, stage: _Stage, path: str) -> bool:
        """Is ``path`` a directory in the stage's image?  From its layers,
        top first: the first that has the path (or whites it out) says."""
        for layer in reversed(self.store.unpack(stage.image)):
            here = os.path.join(layer, path.lstrip("/"))
            if os.path.lexists(here):
                return os.path.isdir(here) and not os.path.islink(here)
            parent, name = os.path.split(path.lstrip("/"))
            if os.path.lexists(os.path.join(layer, parent, ".wh." + name)):
                return False
        return False


def _resolve_in(root: str, rel: str, ins: Instruction) -> str:
    """``root/rel`` with its symlinks followed as if ``root`` were "/" (an
    absolute target starts again at ``root``; ".." stops there): where a
    path of an image's or a stage's tree leads in that tree."""
    todo = [p for p in rel.split("/") if p not in ("", ".")]
    done: list[str] = []
    hops = 0
    while todo:
        part = todo.pop(0)
        if part == "..":
            if done:
                done.pop()
            continue
        here = os.path.join(root, *done, part)
        if os.path.islink(here):
            hops += 1
            if hops > 40:
                raise BuildError(f"line {ins.line}: {rel!r}: too many levels of symbolic links")
            target = os.readlink(here)
            if target.startswith("/"):
                done = []
            todo = [p for p in target.split("/") if p not in ("", ".")] + todo
            continue
        done.append(part)
    return os.path.join(root, *done)


def _hash_path(path: str) -> str:
    """What a copied file is, for the cache: its content (a link: its target), mode."""
    h = hashlib.sha256()
    st = os.lstat(path)
    h.update(f"{st.st_mode}".encode())
    if os.path.islink(path):
        h.update(os.readlink(path).encode())
    elif os.path.isfile(path):
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def _config_image(store: ImageStore, base: Image, config: dict[str, Any], created_by: str) -> Image:
    """``base`` with its config's ``config`` object replaced: no new layer."""
    cfg = json.loads(json.dumps(base.config_json))
    cfg["config"] = config
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    cfg["created"] = created
    cfg.setdefault("history", []).append({"created": created, "created_by": created_by, "empty_layer": True})
    return store.add_image(cfg, list(base.layers), None)


__all__ = ["BuildError", "Instruction", "build", "expand", "parse"]
