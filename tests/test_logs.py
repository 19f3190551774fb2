"""Container logs (issue 8): the json-file logger on the real kernel."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import pytest

from pycontainer import PIPE, ConfigError, Container, LogConfig, PyContainerError
from pycontainer.logs import parse_size, writing

from .conftest import needs_root

pytestmark = needs_root

STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z")


def test_stdout_and_stderr_are_kept_as_dockers_json_file(root, config):
    script = "echo out1; echo err1 >&2; printf 'no newline'"
    c = Container.run(root, "lg1", config("sh", "-c", script), log=LogConfig())
    try:
        assert c.wait(timeout=30).code == 0
        entries = list(c.logs(follow=True))  # follow: to the end of the output
        # (two pipes: stdout's and stderr's lines may interleave either way)
        assert [(e.stream, e.data) for e in entries if e.stream == "stdout"] == [
            ("stdout", b"out1\n"), ("stdout", b"no newline")
        ]  # fmt: skip
        assert [(e.stream, e.data) for e in entries if e.stream == "stderr"] == [("stderr", b"err1\n")]
        with open(os.path.join(c.dir, "container.log")) as f:
            lines = [json.loads(line) for line in f]
        assert all(set(obj) == {"log", "stream", "time"} and STAMP.fullmatch(obj["time"]) for obj in lines)
    finally:
        c.delete()


def test_follow_streams_lines_as_they_come_and_ends_with_the_output(root, config):
    c = Container.run(root, "lg2", config("sh", "-c", "for i in 1 2 3; do echo $i; sleep 0.3; done"), log=LogConfig())
    try:
        began = time.monotonic()
        seen = []
        for e in c.logs(follow=True):
            seen.append((e.data, time.monotonic() - began))
        assert [d for d, _ in seen] == [b"1\n", b"2\n", b"3\n"]
        assert seen[0][1] < seen[2][1] - 0.4  # as they came, not all at the end
    finally:
        c.delete()


def test_rotation_by_size_keeps_max_files(root, config):
    script = "i=0; while [ $i -lt 200 ]; do echo line-$i; i=$((i+1)); done"
    c = Container.run(root, "lg3", config("sh", "-c", script), log=LogConfig(max_size=1000, max_files=3))
    try:
        c.wait(timeout=30)
        # read once the logger is done: lines a reader is too slow for rotate
        # out of reach (as with Docker's max-file)
        deadline = time.monotonic() + 30
        while writing(c.dir):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        entries = list(c.logs())
        names = sorted(n for n in os.listdir(c.dir) if n.startswith("container.log") and not n.endswith(".lock"))
        assert names == ["container.log", "container.log.1", "container.log.2"]
        for n in names[1:]:
            assert os.path.getsize(os.path.join(c.dir, n)) >= 1000
        datas = [e.data for e in entries]
        assert datas[-1] == b"line-199\n" and len(datas) < 200  # the oldest went
        assert datas == [f"line-{i}\n".encode() for i in range(200 - len(datas), 200)]  # in order, none lost between
        assert [e.data for e in c.logs(tail=2)] == [b"line-198\n", b"line-199\n"]
        assert list(c.logs(tail=0)) == []
    finally:
        c.delete()


def test_one_file_is_truncated_instead(root, config):
    script = "i=0; while [ $i -lt 100 ]; do echo line-$i; i=$((i+1)); done"
    c = Container.run(root, "lg4", config("sh", "-c", script), log=LogConfig(max_size=500, max_files=1))
    try:
        c.wait(timeout=30)
        datas = [e.data for e in c.logs(follow=True)]
        assert datas and datas[-1] == b"line-99\n" and len(datas) < 100
        assert not os.path.exists(os.path.join(c.dir, "container.log.1"))
    finally:
        c.delete()


def test_a_long_line_is_cut_into_parts(root, config):
    c = Container.run(root, "lg5", config("sh", "-c", "head -c 40000 /dev/zero | tr '\\0' a; echo"), log=LogConfig())
    try:
        c.wait(timeout=30)
        parts = [e.data for e in c.logs(follow=True)]
        assert [len(p) for p in parts] == [16384, 16384, 40000 - 32768 + 1]
        assert b"".join(parts) == b"a" * 40000 + b"\n"
    finally:
        c.delete()


def test_a_terminal_is_logged_as_stdout(root, config):
    c = Container.run(root, "lg6", config("sh", "-c", "tty; echo hi", process={"terminal": True}), log=LogConfig())
    try:
        c.wait(timeout=30)
        assert c.pty is None  # the logger has it
        assert [(e.stream, e.data) for e in c.logs(follow=True)] == [
            ("stdout", b"/dev/pts/0\r\n"),
            ("stdout", b"hi\r\n"),
        ]
    finally:
        c.delete()


def test_the_log_outlives_the_creating_process(root, rootfs):
    code = (
        "import sys\nfrom pycontainer import *\n"
        "c = Container.run(sys.argv[1], 'lg7', ContainerConfig(process=Process(args=['sh', '-c',"
        " 'sleep 0.5; echo late']), rootfs=sys.argv[2], init=True), log=LogConfig())\n"
    )
    subprocess.run([sys.executable, "-c", code, root, rootfs], check=True, timeout=60)
    c = Container.load(root, "lg7")  # the creator is gone; the container and its logger are not
    try:
        assert [e.data for e in c.logs(follow=True)] == [b"late\n"]
        assert c.wait(timeout=30).code == 0  # recorded by the init
    finally:
        c.delete(force=True)


def test_bad_log_input_is_refused(root, config):
    with pytest.raises(ConfigError, match="log"):
        Container.create(root, "lg8", config("true"), log=LogConfig(), stdout=PIPE)
    with pytest.raises(ConfigError, match="max_files"):
        LogConfig(max_files=0)
    with pytest.raises(ConfigError, match="max_size"):
        LogConfig(max_size=-1)
    with pytest.raises(ConfigError, match="max_size"):
        parse_size("ten megs")
    assert parse_size("10k") == 10240 and parse_size("20m") == 20 << 20
    c = Container.run(root, "lg9", config("true"))
    try:
        c.wait(timeout=30)
        with pytest.raises(PyContainerError, match="without log"):
            list(c.logs())
    finally:
        c.delete()
    assert os.listdir(root) == []


def test_entries_round_trip_any_bytes(root, config):
    c = Container.run(
        root, "lg10", config("sh", "-c", "printf 'q\"\\\\ \\t\\001 \\303\\251 \\377\\n'"), log=LogConfig()
    )
    try:
        c.wait(timeout=30)
        assert [e.data for e in c.logs(follow=True)] == [b'q"\\ \t\x01 \xc3\xa9 \xff\n']  # \xff: not UTF-8
    finally:
        c.delete()


def test_follow_goes_on_through_rotations(root, config):
    """Rotations while a reader follows (several between two of its polls
    too): nothing kept on disk is skipped or read twice."""
    script = "i=0; while [ $i -lt 60 ]; do echo line-$i; i=$((i+1)); [ $((i % 10)) = 0 ] && sleep 0.1; done"
    c = Container.run(root, "lg11", config("sh", "-c", script), log=LogConfig(max_size=250, max_files=50))
    try:
        datas = [e.data for e in c.logs(follow=True)]
        assert datas == [f"line-{i}\n".encode() for i in range(60)]
    finally:
        c.delete()


def test_auto_remove_goes_when_the_output_ends_and_spares_a_successor(root, config):
    c = Container.run(root, "auto", config("sh", "-c", "echo bye"), log=LogConfig(), auto_remove=True)
    c.wait(timeout=30)  # (reaps our child; the removal is the logger's)
    c.close()
    deadline = time.monotonic() + 20
    while os.path.exists(os.path.join(root, "auto")):
        assert time.monotonic() < deadline, "not removed"
        time.sleep(0.05)
    # one removed by hand, and another made under the same id at once: the
    # first one's logger must not remove the second
    first = Container.run(root, "auto", config("sleep", "60"), log=LogConfig(), auto_remove=True)
    first.delete(force=True)
    second = Container.run(root, "auto", config("sleep", "60"))
    try:
        time.sleep(1.5)
        assert Container.load(root, "auto").status.value == "running"
    finally:
        second.delete(force=True)
    with pytest.raises(ConfigError, match="auto_remove"):
        Container.create(root, "auto", config("true"), auto_remove=True)
    assert os.listdir(root) == []
