"""pytest plugin (registered through the ``pytest11`` entry point): the ``durable_test_host`` and
``model_server`` fixtures.

The app folder comes from the ``durablehost_app`` ini option (relative to the rootdir), defaulting to the
rootdir itself, or from ``@pytest.mark.durablehost_app("path")`` on a test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from durablehost.testing.harness import DurableTestHost
from durablehost.testing.model_server import ModelServer


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("durablehost_app", "folder of the Functions app that durable_test_host loads", default=".")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "durablehost_app(path): the app folder for durable_test_host")


@pytest.fixture
async def durable_test_host(request: pytest.FixtureRequest) -> AsyncIterator[DurableTestHost]:
    marker = request.node.get_closest_marker("durablehost_app")
    configured = marker.args[0] if marker else request.config.getini("durablehost_app")
    app_dir = Path(request.config.rootpath) / str(configured)
    async with DurableTestHost.start(app_dir) as host:
        yield host


@pytest.fixture
def model_server() -> Iterator[ModelServer]:
    """A scripted OpenAI-compatible server on a free loopback port (``.base_url``), fresh per test."""
    with ModelServer() as server:
        yield server
