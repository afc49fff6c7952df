"""Group commit (durablehost.engine.groupcommit.PartitionWriter) on a real store, SQLite and Azurite:
writes to one row coalesce, batches hold at most 100 rows in one transaction, a lone write uses the
single-entity API, a delete of a row already gone drops out of its batch, and a writer is released only
once its row is durable. The store is wrapped to record every request it receives."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence

import pytest

from durablehost.engine import owed
from durablehost.engine.groupcommit import MAX_BATCH, PartitionWriter
from durablehost.engine.owed import StoreOutage
from durablehost.errors import InvalidKey
from durablehost.store import open_store
from durablehost.store.base import Op, Properties, TableStore, UpdateMode
from tests.support.faults import WRITES, FaultyStore

PARTITION = "index"


class RecordingStore(FaultyStore):
    """A FaultyStore that records each write request (operation, number of rows) as it arrives and can
    hold requests at a gate, to keep a flush in flight while a test queues more writes."""

    def __init__(self, inner: TableStore, table: str) -> None:
        super().__init__(inner)
        self.table = table
        self.requests: list[tuple[str, int]] = []
        self.gate: asyncio.Event | None = None

    async def _arrive(self, operation: str, rows: int) -> None:
        self.requests.append((operation, rows))
        if self.gate is not None:
            await self.gate.wait()

    async def upsert(
        self,
        table: str,
        partition_key: str,
        row_key: str,
        properties: Properties,
        mode: UpdateMode = UpdateMode.MERGE,
    ) -> str:
        await self._arrive("upsert", 1)
        return await super().upsert(table, partition_key, row_key, properties, mode)

    async def delete(self, table: str, partition_key: str, row_key: str, *, etag: str | None = None) -> None:
        await self._arrive("delete", 1)
        await super().delete(table, partition_key, row_key, etag=etag)

    async def transact(self, table: str, operations: Sequence[Op]) -> list[str | None]:
        await self._arrive("transact", len(operations))
        return await super().transact(table, operations)


@pytest.fixture
async def store(engine_store: TableStore | None) -> AsyncIterator[RecordingStore]:
    inner = engine_store or open_store("memory")
    recording = RecordingStore(inner, f"G{uuid.uuid4().hex[:12]}")
    await inner.create_table(recording.table)
    yield recording
    await inner.close()


def _writer(store: RecordingStore) -> PartitionWriter:
    return PartitionWriter(store, store.table, PARTITION, StoreOutage())


async def _rows(store: RecordingStore) -> dict[str, object]:
    table: str = store.table
    return {e.row_key: e.get("V") async for e in store.inner.query(table, partition_key=PARTITION)}


async def _in_flight(store: RecordingStore, writer: PartitionWriter) -> asyncio.Future[None]:
    """Start a write of row "first" and hold it at the store: a flush is in flight."""
    store.gate = asyncio.Event()
    first = asyncio.ensure_future(writer.upsert("first", {"V": 0}))
    while not store.requests:  # noqa: ASYNC110 - recorded as it reaches the store, before the gate
        await asyncio.sleep(0)
    return first


async def test_a_lone_write_uses_the_single_entity_api(store: RecordingStore) -> None:
    writer = _writer(store)
    await writer.upsert("a", {"V": 1})
    assert store.requests == [("upsert", 1)] and writer.requests == 1
    await writer.delete("a")
    assert store.requests == [("upsert", 1), ("delete", 1)] and writer.requests == 2
    assert await _rows(store) == {}


async def test_a_lone_delete_of_a_missing_row_is_done(store: RecordingStore) -> None:
    writer = _writer(store)
    await writer.delete("never-written")
    assert store.requests == [("delete", 1)]


async def test_writes_that_arrive_during_a_flush_go_together_in_the_next(store: RecordingStore) -> None:
    writer = _writer(store)
    first = await _in_flight(store, writer)
    rest = [asyncio.ensure_future(writer.upsert(f"r{n}", {"V": n})) for n in range(5)]
    await asyncio.sleep(0)
    assert store.requests == [("upsert", 1)]  # nothing more goes out while one flush is in flight
    assert store.gate is not None
    store.gate.set()
    await asyncio.gather(first, *rest)
    assert store.requests == [("upsert", 1), ("transact", 5)]
    assert writer.requests == 2
    assert await _rows(store) == {"first": 0, **{f"r{n}": n for n in range(5)}}


async def test_writes_of_one_row_collapse_into_the_last(store: RecordingStore) -> None:
    writer = _writer(store)
    first = await _in_flight(store, writer)
    waits = [asyncio.ensure_future(writer.upsert("row", {"V": n})) for n in range(3)]
    waits.append(asyncio.ensure_future(writer.delete("row")))
    waits.append(asyncio.ensure_future(writer.upsert("row", {"V": "last"})))
    await asyncio.sleep(0)
    assert store.gate is not None
    store.gate.set()
    await asyncio.gather(first, *waits)  # every writer of the row is served by the one write
    assert store.requests == [("upsert", 1), ("upsert", 1)]
    assert await _rows(store) == {"first": 0, "row": "last"}


async def test_many_rows_go_in_transactions_of_at_most_100(store: RecordingStore) -> None:
    writer = _writer(store)
    first = await _in_flight(store, writer)
    waits = [asyncio.ensure_future(writer.upsert(f"r{n:03d}", {"V": n})) for n in range(250)]
    await asyncio.sleep(0)
    assert store.gate is not None
    store.gate.set()
    await asyncio.gather(first, *waits)
    assert MAX_BATCH == 100
    assert store.requests == [("upsert", 1), ("transact", 100), ("transact", 100), ("transact", 50)]
    assert writer.requests == 4
    assert len(await _rows(store)) == 251


async def test_a_delete_of_a_row_already_gone_drops_out_of_its_batch(store: RecordingStore) -> None:
    writer = _writer(store)
    await writer.upsert("gone-soon", {"V": 1})
    await store.inner.delete(store.table, PARTITION, "gone-soon")  # behind the writer's back
    store.requests.clear()
    sent_before = writer.requests
    first = await _in_flight(store, writer)
    waits = [
        asyncio.ensure_future(writer.upsert("x", {"V": "x"})),
        asyncio.ensure_future(writer.delete("gone-soon")),
        asyncio.ensure_future(writer.upsert("y", {"V": "y"})),
    ]
    await asyncio.sleep(0)
    assert store.gate is not None
    store.gate.set()
    await asyncio.gather(first, *waits)
    # The transaction fails on the missing row (EntityNotFound at its index); it is sent again without it.
    assert store.requests == [("upsert", 1), ("transact", 3), ("transact", 2)]
    assert writer.requests - sent_before == 3
    assert await _rows(store) == {"first": 0, "x": "x", "y": "y"}


async def test_a_batch_left_with_one_row_sends_it_alone(store: RecordingStore) -> None:
    writer = _writer(store)
    first = await _in_flight(store, writer)
    waits = [
        asyncio.ensure_future(writer.delete("missing")),
        asyncio.ensure_future(writer.upsert("kept", {"V": 1})),
    ]
    await asyncio.sleep(0)
    assert store.gate is not None
    store.gate.set()
    await asyncio.gather(first, *waits)
    assert store.requests == [("upsert", 1), ("transact", 2), ("upsert", 1)]
    assert await _rows(store) == {"first": 0, "kept": 1}


async def test_a_writer_is_released_only_once_its_row_is_stored(store: RecordingStore) -> None:
    writer = _writer(store)
    first = await _in_flight(store, writer)
    await asyncio.sleep(0.01)
    assert not first.done() and writer.busy
    assert await _rows(store) == {}
    assert store.gate is not None
    store.gate.set()
    await first
    assert await _rows(store) == {"first": 0}
    assert not writer.busy


async def test_a_write_through_an_outage_is_released_after_the_retry_lands(
    store: RecordingStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_sleep = asyncio.sleep
    monkeypatch.setattr(owed, "backoff_sleep", lambda _delay: real_sleep(0.005))
    outage = StoreOutage()
    writer = PartitionWriter(store, store.table, PARTITION, outage)
    store.fail(WRITES)
    done = asyncio.ensure_future(writer.upsert("a", {"V": 1}))
    await asyncio.sleep(0.05)
    assert not done.done() and outage.down
    assert await _rows(store) == {}
    store.heal()
    await done
    assert not outage.down and store.failures >= 3
    assert await _rows(store) == {"a": 1}
    # Every attempt is a request to the store, the failed ones too.
    assert writer.requests == len(store.requests) == store.failures + 1


async def test_a_cancelled_writer_does_not_cancel_the_write(store: RecordingStore) -> None:
    writer = _writer(store)
    first = await _in_flight(store, writer)
    first.cancel()
    await asyncio.sleep(0)
    assert store.gate is not None
    store.gate.set()
    await asyncio.sleep(0.05)
    assert await _rows(store) == {"first": 0}  # others may be waiting on the same row


async def test_a_refused_row_fails_the_writers_of_its_batch_and_the_next_batch_goes_on(
    store: RecordingStore,
) -> None:
    writer = _writer(store)
    first = await _in_flight(store, writer)
    bad = asyncio.ensure_future(writer.upsert("bad/key", {"V": 1}))  # '/' is not allowed in keys
    good = asyncio.ensure_future(writer.upsert("good", {"V": 2}))
    await asyncio.sleep(0)
    assert store.gate is not None
    store.gate.set()
    await first
    for waiter in (bad, good):
        with pytest.raises(InvalidKey):
            await waiter
    await writer.upsert("after", {"V": 3})
    assert await _rows(store) == {"first": 0, "after": 3}
