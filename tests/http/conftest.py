"""Fixtures of the HTTP server tests; the helpers live in hosting.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.http.hosting import HostProcess, start_host


@pytest.fixture(scope="module")
def server() -> Iterator[HostProcess]:
    """A host on the simple app with an in-memory store, shared by a module's tests."""
    host = start_host("--store", "memory")
    yield host
    assert host.stop() == 0, host.log()


@pytest.fixture
def url(server: HostProcess) -> str:
    assert server.url is not None
    return server.url
