from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from durablehost.testing import DurableTestHost

APPS = Path(__file__).parent / "apps"


@pytest.fixture
async def basic_host() -> AsyncIterator[DurableTestHost]:
    async with DurableTestHost.start(APPS / "basic") as host:
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
