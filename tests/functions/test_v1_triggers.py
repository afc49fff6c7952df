"""Timer and queue starters of a function.json app written as Microsoft's samples are
(``apps/v1_triggers``: one folder per function, ``main`` entry points, the durable client binding as
``starter: str`` made into ``df.DurableOrchestrationClient(starter)``, shared code imported relatively
(``Inbox``) and absolutely (``Tick``)), end to end: in the harness (virtual time for the timer, a real
Azurite queue) and under a real ``durablehost start`` subprocess (a 1-second schedule; an Azurite queue
with a base64 message and a poison one). ``Nightly`` and ``Archive`` are disabled by app settings
(local.settings.json) and get no listener.

The harness reads settings from the environment only, so each harness test sets what local.settings.json
holds; the subprocess reads local.settings.json, as ``func start`` does.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import TextBase64EncodePolicy
from azure.storage.queue.aio import QueueClient

from durablehost.testing import DurableTestHost
from durablehost.triggers.plan import NotServed
from tests.functions.conftest import APPS
from tests.http.hosting import MGMT, request, run_cli, start_host

APP = APPS / "v1_triggers"
T0 = datetime(2024, 1, 1, tzinfo=UTC)
ORDER = {"order": "A-1", "items": ["tea", "cups"]}
POISON = "not an order"
DISABLED = {"Nightly": "AzureWebJobs.Nightly.Disabled", "Archive": "AzureWebJobs_Archive_Disabled"}
_SETTINGS = ("TICK_SCHEDULE", "ORDERS_QUEUE", "AzureWebJobsStorage", *DISABLED.values())


@pytest.fixture(autouse=True)
def settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """The app's settings as local.settings.json has them, but for the disabling ones."""
    for name in _SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TICK_SCHEDULE", "0 */5 * * * *")
    monkeypatch.setenv("ORDERS_QUEUE", "orders")
    yield monkeypatch


@pytest.fixture
def queue_name(settings: pytest.MonkeyPatch, azurite_connection_string: str) -> str:
    name = f"orders-{uuid.uuid4().hex[:12]}"
    settings.setenv("ORDERS_QUEUE", name)
    settings.setenv("AzureWebJobsStorage", azurite_connection_string)
    return name


@pytest.fixture
async def queues(
    azurite_connection_string: str, queue_name: str
) -> AsyncIterator[Callable[[str], QueueClient]]:
    """``queues(suffix)``: a base64 client (as a producer writes) for ``<queue><suffix>``, deleted after."""
    clients: list[QueueClient] = []

    def make(suffix: str = "") -> QueueClient:
        client = QueueClient.from_connection_string(
            azurite_connection_string, queue_name + suffix, message_encode_policy=TextBase64EncodePolicy()
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        try:
            await client.delete_queue()
        except ResourceNotFoundError:
            pass
        await client.close()


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 20.0) -> Any:
    """Await ``check()`` until it returns something truthy (real time); return it."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout} s; last result {result!r}")
        await asyncio.sleep(0.05)


async def peek(client: QueueClient) -> list[str]:
    """The texts of the visible messages as stored (base64 from our producers); none if no queue."""
    try:
        return [str(m.content) for m in await client.peek_messages(max_messages=32)]
    except ResourceNotFoundError:
        return []


def stored(text: str) -> str:
    """``text`` as a base64 producer stores it (and as a poison copy keeps it)."""
    return str(TextBase64EncodePolicy().encode(text))


async def outputs(host: DurableTestHost, name: str) -> list[tuple[datetime, Any]]:
    """(creation time, output) of every completed ``name`` instance, oldest first."""
    await host.run_until_idle()
    records, _ = await host.host.list_instances(name=name, page_size=1000)
    return sorted(
        (r.created_time, json.loads(r.output or "null")) for r in records if r.status.value == "Completed"
    )


# --- in the harness ------------------------------------------------------------------------------------


async def test_a_timer_starter_runs_on_its_schedule_in_virtual_time() -> None:
    async with DurableTestHost.start(APP, start_time=T0) as host:
        assert host.triggers.describe("Tick") == "served: cron '0 */5 * * * *' (from %TICK_SCHEDULE%)"
        await host.advance(timedelta(minutes=4, seconds=59))
        assert await outputs(host, "Ticked") == []
        await host.advance(timedelta(minutes=6))
        runs = await outputs(host, "Ticked")
    assert [when for when, _ in runs] == [T0 + timedelta(minutes=5), T0 + timedelta(minutes=10)]
    # What the func.TimerRequest held, recorded by shared code the starter imports absolutely.
    first, second = (output["ticked"] for _, output in runs)
    assert first["past_due"] is False and first["status"]["Next"] == "2024-01-01T00:05:00+00:00"
    assert second["status"]["Last"] == "2024-01-01T00:05:00+00:00"


@pytest.mark.azurite
async def test_a_queue_starter_on_azurite_and_a_poison_message(
    queues: Callable[[str], QueueClient], caplog: pytest.LogCaptureFixture
) -> None:
    producer, poison = queues(""), queues("-poison")
    await producer.create_queue()
    caplog.set_level(logging.WARNING, logger="durablehost.triggers")
    async with DurableTestHost.start(APP, start_time=T0) as host:
        await producer.send_message(json.dumps(ORDER))
        await producer.send_message(POISON)  # parse_order (relative import of shared code) refuses it
        poisoned = await eventually(lambda: peek(poison))
        received = await eventually(lambda: outputs(host, "Received"))
        await eventually(lambda: _empty(producer))
    assert [output for _, output in received] == [{"received": {**ORDER, "dequeue_count": 1}}]
    assert poisoned == [stored(POISON)]
    # Tried maxDequeueCount (host.json: 2) times, then moved: the function raised each time.
    assert any("MaxDequeueCount of 2" in r.getMessage() for r in caplog.records)


async def _empty(client: QueueClient) -> bool:
    return await peek(client) == []


@pytest.mark.azurite
@pytest.mark.parametrize("disabled", [True, False], ids=["disabled", "enabled"])
async def test_functions_disabled_by_app_settings_get_no_listener(
    disabled: bool, settings: pytest.MonkeyPatch, queues: Callable[[str], QueueClient]
) -> None:
    settings.setenv("TICK_SCHEDULE", "0 0 12 * * *")  # once a day: not what this test is about
    if disabled:  # both spellings (fidelity notes §1.4)
        settings.setenv(DISABLED["Nightly"], "true")
        settings.setenv(DISABLED["Archive"], "1")
    archive = queues("-archive")
    await archive.create_queue()
    await archive.send_message("an old order")
    async with DurableTestHost.start(APP, start_time=T0) as host:
        for name, setting in DISABLED.items():
            entry = host.triggers.entries[name]
            assert isinstance(entry, NotServed) == disabled
            if isinstance(entry, NotServed):
                assert entry.disabled and not entry.config_error
                assert entry.reason.startswith(f"disabled by the app setting {setting};")
        assert ("Nightly" in host.triggers.timers, "Archive" in host.triggers.queues) == (not disabled,) * 2
        await host.advance(timedelta(days=1, minutes=1))  # past the next midnight
        if not disabled:
            await eventually(lambda: outputs(host, "Received"))
        await asyncio.sleep(1.0)  # a listener would have polled the archive queue five times by now
        ticked = [output["ticked"] for _, output in await outputs(host, "Ticked")]
        archived = [output["received"] for _, output in await outputs(host, "Received")]
    assert ("nightly" in ticked) == (not disabled)
    assert archived == ([] if disabled else [{"archived": "an old order"}])
    assert await peek(archive) == ([stored("an old order")] if disabled else [])


# --- under durablehost start ----------------------------------------------------------------------------


def _listing(output: str) -> dict[str, str]:
    found = {}
    for line in output.splitlines():
        name, sep, rest = line.strip().partition(": ")
        if sep and name in {"Tick", "Ticked", "Inbox", "Received", "Nightly", "Archive"}:
            found[name] = rest
    return found


def test_list_shows_the_disabled_functions_as_not_served() -> None:
    result = run_cli("start", "--app-dir", str(APP), "--list", env={"AzureWebJobsStorage": ""})
    assert result.returncode == 0, result.stderr
    listing = _listing(result.stdout)
    assert listing["Tick"] == "timerTrigger, served: cron '0 */5 * * * *' (from %TICK_SCHEDULE%)"
    assert listing["Nightly"] == (
        "timerTrigger, NOT SERVED: disabled by the app setting AzureWebJobs.Nightly.Disabled; remove the "
        "setting (or set it to false) to run it"
    )
    assert listing["Archive"] == (
        "queueTrigger, NOT SERVED: disabled by the app setting AzureWebJobs_Archive_Disabled; remove the "
        "setting (or set it to false) to run it"
    )


@pytest.mark.azurite
@pytest.mark.slow
async def test_start_serves_a_one_second_timer_and_an_azurite_queue_with_a_poison_message(
    queue_name: str, queues: Callable[[str], QueueClient], azurite_connection_string: str
) -> None:
    producer, poison, archive = queues(""), queues("-poison"), queues("-archive")
    for queue in (producer, archive):
        await queue.create_queue()
    await archive.send_message("an old order")  # Archive is disabled by local.settings.json
    env = {
        "TICK_SCHEDULE": "*/1 * * * * *",
        "ORDERS_QUEUE": queue_name,
        "AzureWebJobsStorage": azurite_connection_string,
    }
    host = start_host("--store", "memory", app=APP, env=env)
    try:
        url = host.url
        assert url is not None
        banner = _listing(host.log())
        assert banner["Tick"] == (
            "timerTrigger, served: cron '*/1 * * * * *' (from %TICK_SCHEDULE%), monitor off (fires more "
            "than once a minute)"
        )
        assert banner["Inbox"].startswith(f"queueTrigger, served: queue '{queue_name}' on http://127.0.0.1:")
        assert banner["Nightly"].startswith("timerTrigger, NOT SERVED: disabled by the app setting")
        assert banner["Archive"].startswith("queueTrigger, NOT SERVED: disabled by the app setting")
        await producer.send_message(json.dumps(ORDER))
        await producer.send_message(POISON)
        poisoned = await eventually(lambda: peek(poison))
        completed = await eventually(lambda: _completed(url, lambda found: _has_order_and_ticks(found)))
    finally:
        code = host.stop()
    assert code == 0, host.log()
    assert poisoned == [stored(POISON)]
    assert await peek(producer) == []
    assert await peek(archive) == [stored("an old order")]
    received = [item["output"] for item in completed if item["name"] == "Received"]
    assert received == [{"received": {**ORDER, "dequeue_count": 1}}]
    ticks = [item["output"]["ticked"] for item in completed if item["name"] == "Ticked"]
    assert len(ticks) >= 2 and all(t == {"past_due": False, "status": {}} for t in ticks)
    assert "MaxDequeueCount of 2" in host.log()


def _has_order_and_ticks(found: list[dict[str, Any]]) -> bool:
    names = [item["name"] for item in found]
    return "Received" in names and names.count("Ticked") >= 2


async def _completed(url: str, done: Callable[[list[dict[str, Any]]], bool]) -> list[dict[str, Any]]:
    status, body, _ = await request("GET", f"{url}{MGMT}/instances/?runtimeStatus=Completed")
    assert status == 200, body
    found: list[dict[str, Any]] = json.loads(body)
    return found if done(found) else []
