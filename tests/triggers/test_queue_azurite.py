"""Queue-triggered functions on a real Azurite queue service, in the harness (azure-fidelity-notes §5).

Messages are written with azure-storage-queue as a producer would (base64 through its
``TextBase64EncodePolicy``, or plain); the listener polls in real time, so each test waits for the outcome
with a deadline. Every test uses its own queue (``QUEUE_NAME``) and ``maxPollingInterval`` is short."""

from __future__ import annotations

import asyncio
import itertools
import logging
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import TextBase64EncodePolicy
from azure.storage.queue.aio import QueueClient

from durablehost.azurite import AzuritePorts, connection_string, free_ports
from durablehost.testing import DurableTestHost
from durablehost.triggers.options import ListenerTimings
from durablehost.triggers.plan import NotServed
from tests.triggers.conftest import recorded, write_app

pytestmark = pytest.mark.azurite

FAST_POLLING = {"version": "2.0", "extensions": {"queues": {"maxPollingInterval": "00:00:00.2"}}}

STARTER = """
@app.queue_trigger(arg_name="msg", queue_name="%QUEUE_NAME%", connection="AzureWebJobsStorage")
@app.durable_client_input(client_name="client")
async def enqueued(msg: func.QueueMessage, client) -> None:
    await client.start_new("record", client_input={
        "body": msg.get_body().decode(),
        "json": msg.get_json() if msg.get_body().startswith(b"{") else None,
        "id": msg.id,
        "dequeue_count": msg.dequeue_count,
        "insertion_time": msg.insertion_time.isoformat(),
        "expiration_time": msg.expiration_time.isoformat(),
        "time_next_visible": msg.time_next_visible.isoformat(),
        "pop_receipt": msg.pop_receipt,
    })
"""

FAILING = """
import time

attempts = []

@app.queue_trigger(arg_name="msg", queue_name="%QUEUE_NAME%", connection="AzureWebJobsStorage")
def failing(msg: func.QueueMessage) -> None:
    attempts.append((msg.get_body().decode(), msg.dequeue_count, time.monotonic()))
    raise ValueError("this message cannot be handled")
"""


@pytest.fixture
def queue_name(monkeypatch: pytest.MonkeyPatch, azurite_connection_string: str) -> str:
    name = f"work-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("QUEUE_NAME", name)
    monkeypatch.setenv("AzureWebJobsStorage", azurite_connection_string)
    return name


@pytest.fixture
async def producer(azurite_connection_string: str, queue_name: str) -> AsyncIterator[QueueClient]:
    """A base64-encoding client for the test's queue, which it creates (and deletes afterwards)."""
    client = QueueClient.from_connection_string(
        azurite_connection_string, queue_name, message_encode_policy=TextBase64EncodePolicy()
    )
    await client.create_queue()
    yield client
    await client.delete_queue()
    await client.close()


@pytest.fixture
async def raw(azurite_connection_string: str, queue_name: str) -> AsyncIterator[Callable[[str], QueueClient]]:
    """Clients that neither encode nor decode, for any queue: ``raw(name)``."""
    clients: list[QueueClient] = []

    def make(name: str) -> QueueClient:
        client = QueueClient.from_connection_string(azurite_connection_string, name)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 15.0) -> Any:
    """Await ``check()`` until it returns something truthy (real time); return it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    for _ in itertools.count():
        result = await check()
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"not reached within {timeout} s; last result {result!r}")
        await asyncio.sleep(0.05)
    raise AssertionError("unreachable")


async def peek_texts(client: QueueClient) -> list[str]:
    """The visible messages' texts; none while the queue does not exist."""
    try:
        return [str(m.content) for m in await client.peek_messages(max_messages=32)]
    except ResourceNotFoundError:
        return []


def attempts() -> list[tuple[str, int, float]]:
    return list(sys.modules["function_app"].attempts)


async def test_a_base64_message_starts_an_orchestration_with_the_message_s_metadata(
    tmp_path: Path, producer: QueueClient, queue_name: str
) -> None:
    app = write_app(tmp_path / "app", STARTER, FAST_POLLING)
    async with DurableTestHost.start(app) as host:
        description = host.triggers.describe("enqueued") or ""
        assert description.startswith(f"served: queue '{queue_name}' on http://127.0.0.1:")
        assert description.endswith("(connection AzureWebJobsStorage)")
        sent = await producer.send_message('{"order": 42}')
        runs = await eventually(lambda: recorded(host))
        await eventually(lambda: _empty(producer))
    [(_, value)] = runs
    assert value["body"] == '{"order": 42}' and value["json"] == {"order": 42}
    assert value["id"] == sent.id
    assert value["dequeue_count"] == 1
    assert value["insertion_time"] == sent.inserted_on.isoformat()
    assert value["expiration_time"] == sent.expires_on.isoformat()
    assert value["time_next_visible"] > value["insertion_time"]
    assert isinstance(value["pop_receipt"], str) and value["pop_receipt"]


async def test_a_plain_message_with_message_encoding_none(
    tmp_path: Path, producer: QueueClient, raw: Callable[[str], QueueClient], queue_name: str
) -> None:
    host_json = {
        "version": "2.0",
        "extensions": {"queues": {"maxPollingInterval": "00:00:00.2", "messageEncoding": "none"}},
    }
    app = write_app(
        tmp_path / "app",
        """
        @app.queue_trigger(arg_name="text", queue_name="%QUEUE_NAME%", connection="AzureWebJobsStorage")
        @app.durable_client_input(client_name="client")
        async def plain(text: str, client) -> None:
            await client.start_new("record", client_input={"text": text, "type": type(text).__name__})
        """,
        host_json,
    )
    async with DurableTestHost.start(app) as host:
        await raw(queue_name).send_message("plain text, not base64")
        runs = await eventually(lambda: recorded(host))
    assert [value for _, value in runs] == [{"text": "plain text, not base64", "type": "str"}]


async def test_a_failing_message_is_retried_after_visibility_timeout_then_poisoned(
    tmp_path: Path, producer: QueueClient, raw: Callable[[str], QueueClient], queue_name: str
) -> None:
    host_json = {
        "version": "2.0",
        "extensions": {
            "queues": {
                "maxPollingInterval": "00:00:00.2",
                "maxDequeueCount": 2,
                "visibilityTimeout": "00:00:01",
            }
        },
    }
    app = write_app(tmp_path / "app", FAILING, host_json)
    poison = raw(f"{queue_name}-poison")
    async with DurableTestHost.start(app):
        await producer.send_message("bad order")
        poisoned = await eventually(lambda: peek_texts(poison))
        tried = attempts()
        await asyncio.sleep(0.5)
        assert attempts() == tried  # nothing runs it again
    # Runs at dequeue counts 1 and 2 (maxDequeueCount), the second after the 1 s visibilityTimeout.
    assert [(body, count) for body, count, _ in tried] == [("bad order", 1), ("bad order", 2)]
    assert tried[1][2] - tried[0][2] >= 0.9
    # The same text (still base64) lands in <queue>-poison as a new message; the original is gone.
    assert poisoned == [producer_text("bad order")]
    assert await eventually(lambda: _empty(producer))  # deleted after the copy is added
    copy = [m async for m in poison.receive_messages(max_messages=1)]
    assert copy[0].dequeue_count == 1
    await poison.delete_queue()


async def test_a_message_that_is_not_base64_goes_to_the_poison_queue_without_running(
    tmp_path: Path, producer: QueueClient, raw: Callable[[str], QueueClient], queue_name: str
) -> None:
    app = write_app(tmp_path / "app", FAILING, FAST_POLLING)
    poison = raw(f"{queue_name}-poison")
    async with DurableTestHost.start(app):
        await raw(queue_name).send_message("not base64 !")
        poisoned = await eventually(lambda: peek_texts(poison))
        assert attempts() == []
    assert poisoned == ["not base64 !"]
    assert await eventually(lambda: _empty(producer))  # deleted after the copy is added
    await poison.delete_queue()


async def test_a_message_dequeued_more_than_max_dequeue_count_is_poisoned_without_running(
    tmp_path: Path, producer: QueueClient, raw: Callable[[str], QueueClient], queue_name: str
) -> None:
    host_json = {
        "version": "2.0",
        "extensions": {"queues": {"maxPollingInterval": "00:00:00.2", "maxDequeueCount": 1}},
    }
    await producer.send_message("seen before")
    reader = raw(queue_name)
    for expected_count in (1, 2):  # another consumer received it twice and let it go
        received = await eventually(lambda: _receive_one(reader))
        assert received.dequeue_count == expected_count
    poison = raw(f"{queue_name}-poison")
    app = write_app(tmp_path / "app", FAILING, host_json)
    async with DurableTestHost.start(app):
        poisoned = await eventually(lambda: peek_texts(poison))
        assert attempts() == []
    assert poisoned == [producer_text("seen before")]
    await poison.delete_queue()


async def test_visibility_is_renewed_while_a_slow_function_runs(
    tmp_path: Path, producer: QueueClient, queue_name: str
) -> None:
    app = write_app(
        tmp_path / "app",
        """
        seen = []

        @app.queue_trigger(arg_name="msg", queue_name="%QUEUE_NAME%", connection="AzureWebJobsStorage")
        async def slow(msg: func.QueueMessage) -> None:
            seen.append(msg.dequeue_count)
            await asyncio.sleep(3.5)
        """,
        FAST_POLLING,
    )
    # Received invisible for 2 s: without renewal the message would be delivered again mid-run.
    timings = ListenerTimings(queue_visibility=timedelta(seconds=2), min_renewal=timedelta(seconds=0.5))
    async with DurableTestHost.start(app, trigger_timings=timings) as host:
        await producer.send_message("takes a while")
        await eventually(lambda: _seen(host))
        await host.run_until_idle()
        await asyncio.sleep(1.0)
        seen = list(sys.modules["function_app"].seen)
    assert seen == [1]
    assert await _empty(producer)


async def test_batch_size_and_new_batch_threshold_bound_the_messages_in_flight(
    tmp_path: Path, producer: QueueClient
) -> None:
    host_json = {
        "version": "2.0",
        "extensions": {
            "queues": {"maxPollingInterval": "00:00:00.2", "batchSize": 2, "newBatchThreshold": 1}
        },
    }
    app = write_app(
        tmp_path / "app",
        """
        gates = {}
        active = []
        peak = [0]
        release_all = asyncio.Event()

        @app.queue_trigger(arg_name="msg", queue_name="%QUEUE_NAME%", connection="AzureWebJobsStorage")
        async def gated(msg: func.QueueMessage) -> None:
            body = msg.get_body().decode()
            active.append(body)
            peak[0] = max(peak[0], len(active))
            waiters = [asyncio.ensure_future(gates.setdefault(body, asyncio.Event()).wait()),
                       asyncio.ensure_future(release_all.wait())]
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()
            active.remove(body)
        """,
        host_json,
    )
    for number in range(6):
        await producer.send_message(f"m{number}")
    async with DurableTestHost.start(app) as host:
        module: Any = sys.modules["function_app"]
        await eventually(lambda: _count(module.active, 2))
        await asyncio.sleep(0.5)
        assert len(module.active) == 2  # above newBatchThreshold: no further batch is fetched
        # The function's events belong to the user-code loop it runs on: set them there.
        on_user_loop = host.host.user_code.loop.call_soon_threadsafe
        on_user_loop(module.gates[module.active[0]].set)  # one finishes: 1 in flight, at the threshold
        await eventually(lambda: _count(module.active, 3))  # the next batch of 2 is fetched
        await asyncio.sleep(0.5)
        assert len(module.active) == 3
        on_user_loop(module.release_all.set)
        await eventually(lambda: _empty(producer))
        await host.run_until_idle()
        assert module.peak == [3]  # batchSize + newBatchThreshold


async def test_a_poison_queue_has_no_poison_queue(
    tmp_path: Path,
    raw: Callable[[str], QueueClient],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    name = f"work-{uuid.uuid4().hex[:8]}-poison"
    monkeypatch.setenv("QUEUE_NAME", name)
    client = raw(name)
    await client.create_queue()
    app = write_app(
        tmp_path / "app",
        FAILING,
        {
            "version": "2.0",
            "extensions": {"queues": {"maxPollingInterval": "00:00:00.2", "maxDequeueCount": 1}},
        },
    )
    with caplog.at_level(logging.WARNING, logger="durablehost.triggers"):
        async with DurableTestHost.start(app) as host:
            await client.send_message(producer_text("x"))
            await eventually(lambda: _attempted())
            await host.run_until_idle()
            await asyncio.sleep(0.5)
            tried = attempts()
            visible = await peek_texts(client)
    # Not released (it would come back at once and fail in a loop): it stays invisible.
    assert [(body, count) for body, count, _ in tried] == [("x", 1)]
    assert visible == []
    assert any("has no poison queue" in r.getMessage() for r in caplog.records)
    await client.delete_queue()


async def test_a_queue_created_after_start_is_picked_up(
    tmp_path: Path, azurite_connection_string: str, queue_name: str
) -> None:
    app = write_app(tmp_path / "app", STARTER, FAST_POLLING)
    async with DurableTestHost.start(app) as host:
        await asyncio.sleep(0.3)  # the listener polls a queue that does not exist yet
        client = QueueClient.from_connection_string(
            azurite_connection_string, queue_name, message_encode_policy=TextBase64EncodePolicy()
        )
        try:
            await client.create_queue()
            await client.send_message("late queue")
            runs = await eventually(lambda: recorded(host))
            await client.delete_queue()
        finally:
            await client.close()
    assert [value["body"] for _, value in runs] == ["late queue"]


async def test_a_connection_setting_other_than_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, azurite_connection_string: str, producer: QueueClient
) -> None:
    monkeypatch.delenv("AzureWebJobsStorage")
    monkeypatch.setenv("QUEUE_CONNECTION", azurite_connection_string)
    app = write_app(
        tmp_path / "app", STARTER.replace('"AzureWebJobsStorage"', '"QUEUE_CONNECTION"'), FAST_POLLING
    )
    async with DurableTestHost.start(app) as host:
        await producer.send_message("via another setting")
        runs = await eventually(lambda: recorded(host))
    assert [value["body"] for _, value in runs] == ["via another setting"]


async def test_an_unreachable_account_is_listed_not_served_and_the_rest_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nobody = free_ports()  # nothing listens there
    monkeypatch.setenv("QUEUE_NAME", "work")
    monkeypatch.setenv(
        "AzureWebJobsStorage", connection_string(AzuritePorts(nobody.blob, nobody.queue, nobody.table))
    )
    app = write_app(
        tmp_path / "app",
        STARTER
        + textwrap.dedent(
            """
        @app.timer_trigger(schedule="0 0 * * * *", arg_name="timer", run_on_startup=True)
        @app.durable_client_input(client_name="client")
        async def tick(timer: func.TimerRequest, client) -> None:
            await client.start_new("record", client_input="tick")
        """
        ),
    )
    started = time.monotonic()
    async with DurableTestHost.start(app) as host:
        entry = host.triggers.entries["enqueued"]
        runs = await recorded(host)
    assert time.monotonic() - started < 10
    assert isinstance(entry, NotServed) and not entry.config_error
    assert f"queue 'work' on http://127.0.0.1:{nobody.queue}/devstoreaccount1" in entry.reason
    assert "cannot be reached" in entry.reason
    assert [value for _, value in runs] == ["tick"]


async def test_without_a_connection_setting_the_function_is_not_served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QUEUE_NAME", "work")
    app = write_app(tmp_path / "app", STARTER)
    async with DurableTestHost.start(app) as host:
        entry = host.triggers.entries["enqueued"]
    assert isinstance(entry, NotServed) and not entry.config_error
    assert "the connection setting 'AzureWebJobsStorage' is not set" in entry.reason


def producer_text(body: str) -> str:
    return TextBase64EncodePolicy().encode(body)


async def _empty(client: QueueClient) -> bool:
    return (await client.get_queue_properties()).approximate_message_count == 0


async def _receive_one(client: QueueClient) -> Any:
    async for message in client.receive_messages(max_messages=1, visibility_timeout=1):
        return message
    return None


async def _seen(host: DurableTestHost) -> bool:
    return bool(sys.modules["function_app"].seen)


async def _count(items: list[Any], expected: int) -> bool:
    return len(items) == expected


async def _attempted() -> bool:
    return bool(attempts())
