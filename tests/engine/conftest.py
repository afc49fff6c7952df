from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from durablehost.store import open_store
from durablehost.store.base import TableStore
from durablehost.testing import DurableTestHost

APPS = Path(__file__).parent / "apps"


@pytest.fixture(params=["sqlite", pytest.param("azurite", marks=pytest.mark.azurite)])
def engine_store(request: pytest.FixtureRequest) -> Iterator[TableStore | None]:
    """The store behind a test host: None (the harness's in-memory SQLite) or the session's Azurite."""
    if request.param == "sqlite":
        yield None
        return
    yield open_store(request.getfixturevalue("azurite_connection_string"))


@asynccontextmanager
async def running_host(app: str, store: TableStore | None) -> AsyncIterator[DurableTestHost]:
    """A harness on ``store``; on Azurite each test gets its own task hub (its own tables)."""
    hub = f"T{uuid.uuid4().hex[:12]}"
    try:
        async with DurableTestHost.start(APPS / app, store=store, hub=hub) as host:
            yield host
    finally:
        if store is not None:
            await store.close()


@pytest.fixture
async def basic_host(engine_store: TableStore | None) -> AsyncIterator[DurableTestHost]:
    async with running_host("basic", engine_store) as host:
        calls = _calls()
        calls.clear()
        yield host


def _calls() -> dict[str, int]:
    import function_app  # the fixture app's entry module, loaded by DurableTestHost.start

    calls: dict[str, int] = function_app.CALLS
    return calls


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """Expose each phase's report on the test item, so fixtures can add diagnostics on failure."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
