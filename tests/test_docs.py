"""The docs' examples run, and the README's set-up commands are what CI runs."""

from __future__ import annotations

import os
import pathlib
import re

import pytest

from .conftest import needs_root

TOP = pathlib.Path(__file__).resolve().parent.parent


def python_blocks(path: pathlib.Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), re.S)


@needs_root
@pytest.mark.root
@pytest.mark.parametrize(
    "doc",
    [
        "README.md",
        "docs/api.md",
        "docs/cgroups.md",
        "docs/images.md",
        "docs/networking.md",
        "docs/security.md",
        "docs/oci.md",
    ],
)
def test_examples_run(doc, tmp_path, data_root, monkeypatch):
    monkeypatch.setenv("PYCONTAINER_ROOT", str(tmp_path / "state"))
    monkeypatch.setenv("PYCONTAINER_DATA_ROOT", data_root)
    blocks = python_blocks(TOP / doc)
    assert blocks, f"{doc} has no python example"
    for code in blocks:
        exec(compile(code, doc, "exec"), {"__name__": "__doc_example__"})
    left = os.listdir(tmp_path / "state") if (tmp_path / "state").exists() else []
    assert left == []


def test_readme_commands_are_what_ci_runs():
    readme = (TOP / "README.md").read_text()
    commands = re.findall(r"```sh\n(.*?)\n```", readme, re.S)[:2]
    assert len(commands) == 2
    ci = (TOP / ".ci" / "run").read_text()
    for cmd in commands:
        assert cmd in ci, f"README command not in .ci/run: {cmd}"
