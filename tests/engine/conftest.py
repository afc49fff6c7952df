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
