"""A test suite for a web service, with the pycontainer pytest plugin: the
service runs from an image built from this directory (see conftest.py)."""

from __future__ import annotations

import pytest

from pycontainer.pytest_plugin import ContainerFactory, RunningContainer
from pycontainer.readiness import Command, LogLine, TCPPort


def get(web: RunningContainer, path: str) -> bytes:
    with web.connect(80) as s:
        s.sendall(f"GET {path} HTTP/1.0\r\n\r\n".encode())
        return s.makefile("rb").read()


@pytest.fixture(scope="module")
def web(pycontainer_module: ContainerFactory, web_image: str, lan: str) -> RunningContainer:
    return pycontainer_module(web_image, name="web", network=lan, ports=[80], memory="64m", pids=64,
                              ready=[LogLine("serving on port 80"), TCPPort(80, timeout=10)])  # fmt: skip


def test_the_page(web: RunningContainer) -> None:
    assert get(web, "/").endswith(b"\r\n\r\nhello from a locally built image\n")


def test_the_health_check_runs_as_the_images_user(web: RunningContainer) -> None:
    assert get(web, "/cgi-bin/health").endswith(b"ok web\n")


def test_another_container_reaches_it_by_name(pycontainer: ContainerFactory, web: RunningContainer, lan: str) -> None:
    client = pycontainer(command=["sleep", "60"], network=lan, ready=Command(["true"]))
    result = client.exec(["wget", "-qO-", "http://web/"])
    assert result.exit_code == 0 and result.stdout == b"hello from a locally built image\n"


def test_a_missing_page_is_a_404(web: RunningContainer) -> None:
    assert get(web, "/nothing").split(b"\r\n")[0].endswith(b" 404 Not Found")
