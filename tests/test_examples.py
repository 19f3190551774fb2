"""docs/examples/: each runs here, as a user would run it (issue 9)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from .conftest import needs_root

pytestmark = needs_root

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "examples")


def sandbox(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, os.path.join(EXAMPLES, "sandbox.py"), *args], capture_output=True,
                          text=True, timeout=120)  # fmt: skip


def test_the_sandbox_confines_a_command():
    r = sandbox("--", "sh", "-c", "id -un; ip -o link | wc -l; touch /x 2>/dev/null || echo ro; echo w > /tmp/t && cat /tmp/t; exit 3")
    assert (r.returncode, r.stdout) == (3, "nobody\n1\nro\nw\n"), r.stderr  # no network but lo, / read-only


@pytest.mark.parametrize(
    "limit, script, status, says",
    [
        (["--seconds", "1"], "sleep 30", 137, ""),  # the time limit: SIGKILL
        # the memory limit: tail, which holds the one endless line, is OOM-killed
        (["--memory", str(32 << 20)], "head -c 100m /dev/zero | tail > /dev/null", 137, ""),
        (["--pids", "8"], "for i in 1 2 3 4 5 6 7 8 9 10; do sleep 5 & done", 2, "can't fork"),  # (sh gives up: 2)
    ],
)
def test_the_sandbox_limits(limit, script, status, says):
    r = sandbox(*limit, "--", "sh", "-c", script)
    assert r.returncode == status and says in r.stderr, (r.returncode, r.stderr)


def test_a_bad_command_is_a_clear_error():
    r = sandbox("--", "no-such-tool")
    assert r.returncode == 125 and "no-such-tool" in r.stderr and "ENOENT" in r.stderr


def test_the_web_service_suite_passes_with_the_plugin(tmp_path):
    """docs/examples/webapp: an image built from its Dockerfile, served on a
    bridge network whose host side is a throwaway namespace, tested through
    the pytest plugin's fixtures; nothing is left behind."""
    root, data_root = tmp_path / "state", tmp_path / "data"
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", os.path.join(EXAMPLES, "webapp"),
         f"--pycontainer-root={root}", f"--pycontainer-data-root={data_root}"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0 and "4 passed" in r.stdout, r.stdout[-3000:] + r.stderr[-2000:]
    assert [n for n in os.listdir(root) if n != ".networks"] == []
