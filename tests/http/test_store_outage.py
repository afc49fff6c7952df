"""The HTTP edge while the store is away: every request it cannot serve is a 503 with Retry-After, the
outage is logged once (not once a request), and the same request succeeds once the store is back.

The server's own application (build_app, through the harness's loopback API) in front of a host whose
store (SQLite or Azurite) fails every operation on command (tests/support/faults.py)."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator

import aiohttp
import pytest

from durablehost.store import open_store
from durablehost.testing import DurableTestHost
from durablehost.testing.loopback import LoopbackApi
from tests.http.hosting import MGMT, SIMPLE
from tests.support.faults import FaultyStore

HUB = f"Outage{uuid.uuid4().hex[:10]}"


@pytest.fixture(params=["sqlite", pytest.param("azurite", marks=pytest.mark.azurite)])
async def faulty(request: pytest.FixtureRequest) -> AsyncIterator[FaultyStore]:
    if request.param == "sqlite":
        inner = open_store("memory")
    else:
        inner = open_store(request.getfixturevalue("azurite_connection_string"))
    yield FaultyStore(inner)
    await inner.close()


async def test_a_request_the_store_cannot_serve_is_a_503_with_retry_after_and_logged_once(
    faulty: FaultyStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    async with DurableTestHost.start(SIMPLE, store=faulty, hub=HUB) as test_host:  # type: ignore[arg-type]
        instance_id = await test_host.client.start_new("wait_event", client_input="x")
        await test_host.run_until_idle()
        api = await LoopbackApi.start(test_host.host, HUB)
        raise_url = f"{api.url}{MGMT}/instances/{instance_id}/raiseEvent/approval"
        headers = {"Content-Type": "application/json", "Idempotency-Key": "outage-1"}
        try:
            async with aiohttp.ClientSession() as session:

                async def ask() -> tuple[int, str | None, str]:
                    async with session.post(raise_url, data=json.dumps("yes"), headers=headers) as answer:
                        return answer.status, answer.headers.get("Retry-After"), await answer.text()

                faulty.fail()
                async with asyncio.timeout(10):
                    while not test_host.host.outage.down:  # the engine's own loops notice within a second
                        status, retry_after, text = await ask()
                        assert (status, retry_after) == (503, "1") and "storage is unavailable" in text
                        await asyncio.sleep(0.05)
                for _ in range(5):
                    assert (await ask())[:2] == (503, "1")
                faulty.heal()
                async with asyncio.timeout(10):
                    while test_host.host.outage.down:  # noqa: ASYNC110 - the engine notices the return
                        await asyncio.sleep(0.05)
                assert (await ask())[0] == 202
        finally:
            await api.close()
        await test_host.run_until_idle()
        status = await test_host.client.get_status(instance_id)
        assert status is not None and status.runtime_status is not None
        assert status.runtime_status.value == "Completed"
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert sum(m.startswith("storage is unavailable") for m in messages) == 1
    back = [m for m in messages if m.startswith("storage is back")]
    assert len(back) == 1 and back[0].endswith("; 5 requests answered 503)"), back
    # Before the engine knew of the outage a refusal is warned on its own (at most the few sent in that
    # moment); once it knows, none is.
    refused = [m for m in messages if m.startswith("storage unavailable on POST")]
    assert len(refused) < 25
