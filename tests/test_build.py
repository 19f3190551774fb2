"""Dockerfile builds (issue 8): every instruction, stages, the cache,
.dockerignore, and a built image that runs and pushes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from pycontainer.build import BuildError, build, expand, parse
from pycontainer.images import ImageStore

from .conftest import needs_root

pytestmark = needs_root

DOCKERFILE = """\
# every instruction, two stages
ARG BASE=localhost/busybox
FROM ${BASE} AS builder
ARG GREETING=hello
RUN echo "$GREETING from the builder" > /built.txt
FROM localhost/busybox
ENV APP=/srv/app \\
    MODE=test
WORKDIR $APP
COPY app/ ./
COPY --from=builder /built.txt /srv/
ADD arch.tar /extracted/
COPY --chown=nobody:nogroup app/main.txt /owned.txt
RUN ["sh", "-c", "echo exec-form > /exec.txt"]
SHELL ["/bin/sh", "-ec"]
RUN test -d /srv/app && echo shell-form > /shell.txt
USER nobody
LABEL org.example.k=v other="two words"
EXPOSE 8080 53/udp
VOLUME /data
STOPSIGNAL SIGINT
HEALTHCHECK --interval=5s CMD true
ENTRYPOINT ["sh", "-c"]
CMD ["pwd; ls; cat /srv/built.txt /exec.txt /shell.txt; ls /extracted; stat -c %U /owned.txt; id -un; echo $MODE"]
"""


@pytest.fixture
def context(tmp_path):
    ctx = tmp_path / "ctx"
    (ctx / "app" / "sub").mkdir(parents=True)
    (ctx / "app" / "main.txt").write_text("main\n")
    (ctx / "app" / "sub" / "d.txt").write_text("deep\n")
    (ctx / "skipme").mkdir()
    (ctx / "skipme" / "x").write_text("no\n")
    (ctx / ".env").write_text("secret\n")
    (ctx / ".dockerignore").write_text("skipme\n.env\n")
    subprocess.run(["tar", "-C", str(ctx / "app"), "-cf", str(ctx / "arch.tar"), "."], check=True)
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    return ctx


def cli(root, data_root, *args, **kw):
    env = {**os.environ, "PYCONTAINER_ROOT": root, "PYCONTAINER_DATA_ROOT": data_root}
    return subprocess.run([sys.executable, "-m", "pycontainer", *args], capture_output=True, text=True, env=env,
                          timeout=300, **kw)  # fmt: skip


def test_every_instruction_and_a_second_stage(root, data_root, context):
    assert cli(root, data_root, "run", "--rm", "--", "true").returncode == 0  # (the built-in image)
    r = cli(root, data_root, "build", "-t", "localhost/built:1", "--build-arg", "GREETING=hi", str(context))
    assert r.returncode == 0, r.stdout + r.stderr
    r = cli(root, data_root, "run", "--rm", "localhost/built:1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["/srv/app", "main.txt", "sub", "hi", "from", "the", "builder", "exec-form",
                                "shell-form", "main.txt", "sub", "nobody", "nobody", "test"]  # fmt: skip
    image = ImageStore(data_root).get("localhost/built:1")
    cfg = image.config_json["config"]
    assert cfg["WorkingDir"] == "/srv/app" and cfg["User"] == "nobody" and cfg["StopSignal"] == "SIGINT"
    assert {"APP=/srv/app", "MODE=test"} <= set(cfg["Env"])
    assert cfg["Labels"].items() >= {"org.example.k": "v", "other": "two words"}.items()  # (and the base's)
    assert set(cfg["ExposedPorts"]) == {"8080/tcp", "53/udp"} and set(cfg["Volumes"]) == {"/data"}
    assert cfg["Shell"] == ["/bin/sh", "-ec"] and cfg["Entrypoint"] == ["sh", "-c"]
    assert cfg["Healthcheck"]["Test"] == ["CMD-SHELL", "true"] and cfg["Healthcheck"]["Interval"] == "5s"
    base = ImageStore(data_root).get("localhost/busybox")
    # one layer per filesystem-changing instruction of the last stage: 3 COPY, 1 ADD, 2 RUN
    assert len(image.layers) == len(base.layers) + 6
    made_by = [h["created_by"] for h in image.config_json["history"]]
    assert "COPY --chown=nobody:nogroup app/main.txt /owned.txt" in made_by and "STOPSIGNAL SIGINT" in made_by
    # .dockerignore: nothing of skipme/ or .env came in with COPY . /ctx
    (context / "Dockerfile.all").write_text("FROM localhost/busybox\nCOPY . /ctx/\nCMD ls -A /ctx\n")
    r = cli(
        root, data_root, "build", "-q", "-t", "localhost/all:1", "-f", str(context / "Dockerfile.all"), str(context)
    )
    assert r.returncode == 0, r.stderr
    listing = cli(root, data_root, "run", "--rm", "localhost/all:1").stdout.split()
    assert "app" in listing and "arch.tar" in listing and "skipme" not in listing and ".env" not in listing
    for ref in ("localhost/built:1", "localhost/all:1"):
        assert cli(root, data_root, "rmi", ref).returncode == 0
    assert os.listdir(root) == []


def test_the_cache_makes_nothing_new_and_notices_changes(root, data_root, context):
    lines: list[str] = []
    store = ImageStore(data_root)
    first = build(str(context), tag="localhost/c:1", root=root, data_root=data_root, out=lines.append)
    blob_dir = os.path.dirname(store.blob_path("sha256:" + "0" * 64))
    blobs = set(os.listdir(blob_dir))
    lines.clear()
    second = build(str(context), tag="localhost/c:1", root=root, data_root=data_root, out=lines.append)
    assert second.digest == first.digest
    assert set(os.listdir(blob_dir)) == blobs  # no new layer, nothing new
    assert sum(line == "--> using cache" for line in lines) == 18  # every step but the FROMs and the ARG
    # a copied file changes: its COPY and every later step run again, the earlier ones do not
    (context / "app" / "main.txt").write_text("changed\n")
    lines.clear()
    third = build(str(context), tag="localhost/c:1", root=root, data_root=data_root, out=lines.append)
    assert third.digest != first.digest
    steps = [i for i, line in enumerate(lines) if line.startswith("STEP")]
    cached_before = [lines[i + 1] == "--> using cache" for i in steps if "COPY app/ ./" in lines[i]]
    assert cached_before == [False]
    assert lines[lines.index(next(x for x in lines if "RUN echo" in x)) + 1] == "--> using cache"
    lines.clear()
    build(str(context), tag="localhost/c:1", root=root, data_root=data_root, out=lines.append, no_cache=True)
    assert "--> using cache" not in lines
    store.remove("localhost/c:1")
    assert os.listdir(root) == []


def test_target_stops_after_a_stage(root, data_root, context):
    image = build(str(context), tag="localhost/t:1", target="builder", root=root, data_root=data_root,
                  out=lambda _s: None)  # fmt: skip
    r = cli(root, data_root, "run", "--rm", "localhost/t:1", "sh", "-c", "cat /built.txt; ls /srv 2>&1 || true")
    assert r.stdout.splitlines()[0] == "hello from the builder" and "No such file" in r.stdout
    with pytest.raises(BuildError, match="no stage named 'nothere'"):
        build(str(context), target="nothere", root=root, data_root=data_root, out=lambda _s: None)
    ImageStore(data_root).remove(image.refs[0])
    assert os.listdir(root) == []


@pytest.mark.parametrize(
    "dockerfile, words",
    [
        ("FROM localhost/busybox\nRUN exit 3\n", "line 2: RUN exit 3: exited with status 3"),
        ("FROM localhost/busybox\nFLY away\n", "line 2: unknown instruction 'FLY'"),
        ("RUN true\n", "starts with FROM"),
        ("FROM localhost/busybox\nCOPY nothere /x\n", "'nothere': no such file"),
        ("FROM localhost/busybox\nCOPY ../outside /x\n", "outside the build context"),
        ("FROM localhost/busybox\nCOPY skipme /x\n", ".dockerignore"),
        ("FROM scratch\nRUN true\n", "line 2: RUN true: the stage FROM scratch has no files"),
        ("FROM scratch\nCOPY --chown=app app /app\n", "--chown=app: a stage FROM scratch has no /etc/passwd"),
    ],
)
def test_bad_dockerfiles_name_the_line_and_leave_nothing(root, data_root, context, dockerfile, words):
    (context / "Dockerfile").write_text(dockerfile)
    (context.parent / "outside").write_text("x")
    with pytest.raises(BuildError) as e:
        build(str(context), root=root, data_root=data_root, out=lambda _s: None)
    assert words in str(e.value)
    assert os.listdir(root) == []
    r = cli(root, data_root, "build", str(context))
    assert r.returncode == 1 and words in r.stderr  # docker build's status


def test_parse_and_expand():
    ins = parse("FROM a\n# c\nRUN echo \\\n  one \\\n  two\nCOPY --from=x --chown=1:2 a b\n")
    assert [(i.line, i.cmd) for i in ins] == [(1, "FROM"), (3, "RUN"), (6, "COPY")]
    assert ins[1].args.split() == ["echo", "one", "two"]
    assert ins[2].flag("from") == "x" and ins[2].flag("chown") == "1:2" and ins[2].args == "a b"
    env = {"A": "1", "E": ""}
    assert expand("$A ${A} ${B:-d} ${A:+alt} ${E:-empty} \\$A", env) == "1 1 d alt empty $A"


def test_a_built_image_pushes_to_a_registry(root, data_root, context, tmp_path):
    from .imagetools import start_registry

    (context / "Dockerfile").write_text("FROM localhost/busybox\nRUN echo pushed > /p.txt\nCMD cat /p.txt\n")
    build(str(context), tag="localhost/tobepushed:1", root=root, data_root=data_root, out=lambda _s: None)
    proc, host = start_registry(str(tmp_path))
    try:
        assert cli(root, data_root, "tag", "localhost/tobepushed:1", f"{host}/pushed:1").returncode == 0
        r = cli(root, data_root, "push", "-q", f"{host}/pushed:1")
        assert r.returncode == 0, r.stderr
        manifest = json.loads(
            subprocess.run(
                ["skopeo", "inspect", "--tls-verify=false", "--raw", f"docker://{host}/pushed:1"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout  # fmt: skip
        )
        assert len(manifest["layers"]) == len(ImageStore(data_root).get("localhost/busybox").layers) + 1
    finally:
        proc.terminate()
        proc.wait(10)
    for ref in ("localhost/tobepushed:1", f"{host}/pushed:1"):
        ImageStore(data_root).remove(ref)


def test_copy_into_dot_an_existing_directory_and_all_ignored_dirs(root, data_root, context):
    (context / "secrets").mkdir()
    (context / "secrets" / "key").write_text("no\n")
    (context / ".dockerignore").write_text("skipme\n.env\nsecrets/key\n")
    (context / "Dockerfile").write_text(
        "FROM localhost/busybox\nWORKDIR /app\nCOPY app/main.txt .\nCOPY app/main.txt /etc\nCOPY secrets /s\n"
        "CMD cat /app/main.txt /etc/main.txt; ls -A /s 2>&1 | wc -l\n"
    )
    image = build(str(context), tag="localhost/dot:1", root=root, data_root=data_root, out=lambda _s: None)
    r = cli(root, data_root, "run", "--rm", "localhost/dot:1")
    assert r.stdout.split() == ["main", "main", "0"], r.stdout + r.stderr
    ImageStore(data_root).remove(image.refs[0])
    assert os.listdir(root) == []


def test_the_images_stop_signal_ends_a_restart_policy(root, data_root, context):
    import time

    (context / "Dockerfile").write_text(
        "FROM localhost/busybox\nSTOPSIGNAL SIGUSR1\n"
        """CMD ["sh", "-c", "trap 'exit 0' USR1; echo up; while :; do sleep 0.1; done"]\n"""
    )
    build(str(context), tag="localhost/usr1:1", root=root, data_root=data_root, out=lambda _s: None)
    r = cli(root, data_root, "run", "-d", "--name", "u1", "--restart", "always", "localhost/usr1:1")
    assert r.returncode == 0, r.stderr
    deadline = time.monotonic() + 20
    while "up" not in cli(root, data_root, "logs", "u1").stdout:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    began = time.monotonic()
    assert cli(root, data_root, "stop", "-t", "10", "u1").returncode == 0
    assert time.monotonic() - began < 5  # ended by SIGUSR1, not killed after the timeout
    time.sleep(0.6)
    assert cli(root, data_root, "logs", "u1").stdout == "up\n"  # and not started again
    assert cli(root, data_root, "wait", "u1").stdout == "0\n"
    assert cli(root, data_root, "rm", "u1").returncode == 0
    ImageStore(data_root).remove("localhost/usr1:1")
    assert os.listdir(root) == []


def test_from_scratch_takes_only_what_is_copied(root, data_root, context):
    """A static binary and files, copied from a stage and the context onto
    an empty image: a layer each and nothing else, and it runs."""
    (context / "Dockerfile").write_text(
        "FROM localhost/busybox AS tools\n"
        "RUN echo made > /made.txt\n"
        "FROM scratch\n"
        "COPY --from=tools /bin/busybox /bin/busybox\n"
        "COPY --chown=1000:1000 app/main.txt /data/\n"
        "COPY --from=tools --chown=1000 /made.txt /data/\n"
        'ENTRYPOINT ["/bin/busybox"]\n'
        'CMD ["sh", "-c", "/bin/busybox ls -n /data; /bin/busybox cat /data/made.txt"]\n'
    )
    assert cli(root, data_root, "run", "--rm", "--", "true").returncode == 0  # (the built-in image)
    image = build(str(context), tag="localhost/tiny:1", root=root, data_root=data_root, out=lambda _s: None)
    assert len(image.layers) == 3 and image.config_json["rootfs"]["diff_ids"] == image.diff_ids
    r = cli(root, data_root, "run", "--rm", "localhost/tiny:1")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert [ln.split()[2:4] for ln in lines[1:3]] == [["1000", "1000"], ["1000", "1000"]] and lines[-1] == "made"
    layers = ImageStore(data_root).unpack(image)
    assert [sorted(os.listdir(d)) for d in layers] == [["bin"], ["data"], ["data"]]  # and nothing else
    ImageStore(data_root).remove("localhost/tiny:1")
    assert os.listdir(root) == []


def test_copy_from_keeps_links_and_modes_and_follows_a_source_link_inside_the_stage(root, data_root, context):
    """As Docker's: a directory's absolute links come as they are, modes
    too (sticky, setuid, world-writable); a source that is a link is
    followed in the stage's tree (never on the host) and copied under its
    own name; a wildcard does not walk through a link onto the host."""
    (context / "Dockerfile").write_text(
        "FROM localhost/busybox AS a\n"
        "RUN mkdir -p /d/tmp && chmod 1777 /d/tmp && ln -s /etc/passwd /d/pw && cp /bin/busybox /d/suid && chmod 4755 /d/suid"
        " && ln -s /d /abs-dir && ln -s /d/suid /abs && ln -s /etc /hostish\n"
        "FROM localhost/busybox\n"
        "COPY --from=a /d /d\n"
        "COPY --from=a /abs /abs\n"
        "COPY --from=a /abs-dir/p* /g/\n"
        "COPY --from=a /hostish/host* /h/\n"
        'CMD ["sh", "-c", "stat -c \'%a %F\' /d/tmp /d/suid /abs; readlink /d/pw; ls /g /h"]\n'
    )
    assert cli(root, data_root, "run", "--rm", "--", "true").returncode == 0  # (the built-in image)
    build(str(context), tag="localhost/links:1", root=root, data_root=data_root, out=lambda _s: None)
    r = cli(root, data_root, "run", "--rm", "localhost/links:1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["1777 directory", "4755 regular file", "4755 regular file", "/etc/passwd",
                                     "/g:", "pw", "", "/h:", "hostname", "hosts"], r.stdout  # (not the host's host.conf)
    ImageStore(data_root).remove("localhost/links:1")
    assert os.listdir(root) == []


def test_a_step_after_volume_still_writes_its_layer(root, data_root, context):
    """As BuildKit's: COPY and RUN into a VOLUME path land in the image (a
    container of the image then gets them in its anonymous volume)."""
    (context / "Dockerfile").write_text(
        "FROM localhost/busybox\nVOLUME /data\nCOPY app/main.txt /data/\nRUN echo ran > /data/run.txt\n"
        'CMD ["sh", "-c", "cat /data/main.txt /data/run.txt"]\n'
    )
    assert cli(root, data_root, "run", "--rm", "--", "true").returncode == 0  # (the built-in image)
    build(str(context), tag="localhost/vol:1", root=root, data_root=data_root, out=lambda _s: None)
    r = cli(root, data_root, "run", "--rm", "localhost/vol:1")
    assert (r.returncode, r.stdout) == (0, "main\nran\n"), r.stderr
    ImageStore(data_root).remove("localhost/vol:1")
    assert os.listdir(root) == []
