"""Fixtures of the example suite: the image built from this directory's
Dockerfile once per session, and a bridge network whose host side is a
throwaway network namespace (so the suite touches no host network)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from pycontainer.build import build
from pycontainer.images import ImageStore
from pycontainer.network import NetworkStore, private_netns
from pycontainer.pytest_plugin import Settings

IMAGE = "localhost/example-web:test"
HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="session")
def web_image(pycontainer_settings: Settings) -> Iterator[str]:
    image = build(HERE, tag=IMAGE, root=pycontainer_settings.root, data_root=pycontainer_settings.data_root,
                  out=lambda _line: None)  # fmt: skip
    yield IMAGE
    ImageStore(pycontainer_settings.data_root).remove(image.digest)


@pytest.fixture(scope="session")
def lan(pycontainer_settings: Settings) -> Iterator[str]:
    store = NetworkStore(pycontainer_settings.root)
    with private_netns() as host_side:
        store.create("lan", subnet="10.139.0.0/24", host_netns=host_side)
        yield "lan"
        store.remove("lan", wait=30)
