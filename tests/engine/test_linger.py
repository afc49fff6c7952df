"""Writes that linger for company (durablehost.engine.groupcommit, control): index copies and marker
removals wait up to their linger so that instances run one at a time share requests; an urgent write takes
them along at once; a flush, a listing, a graceful stop and the harness's run-until-idle send them now."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

import pytest

from durablehost.engine import control as control_module
from durablehost.engine.clock import WallClock
from durablehost.engine.control import INDEX_PARTITION, MARKER_PARTITION, ControlTable
from durablehost.engine.groupcommit import PartitionWriter
from durablehost.engine.host import DurableHost
from durablehost.engine.owed import StoreOutage
from durablehost.engine.records import InstanceRecord, RuntimeStatus
from durablehost.functions import load_app
from durablehost.store import open_store
from durablehost.store.base import Op, TableStore
from durablehost.testing import DurableTestHost
from tests.support.faults import WRITES, FaultyStore

from .conftest import APPS

LONG = 30.0  # a linger no test waits out: whatever is sent was sent for another reason


class Recorder:
    """A real store that records each write request (operation, row keys) and never fails."""

    def __init__(self, inner: TableStore, hub: str) -> None:
        self.hub = hub
        self.table = f"{hub}Control"
        self.store = FaultyStore(inner)
        self.requests: list[tuple[str, list[str]]] = []
        self.store.fail(WRITES, when=self._record)

    def _record(self, operation: str, table: str, ops: Sequence[Op]) -> bool:
        self.requests.append((operation, [op.row_key for op in ops]))
        return False


@pytest.fixture
async def recorder(engine_store: TableStore | None) -> Recorder:
    store = engine_store or open_store("memory")
    hub = f"L{uuid.uuid4().hex[:12]}"
    await store.create_table(f"{hub}Control")
    return Recorder(store, hub)


async def _rows(recorder: Recorder, partition: str) -> list[str]:
    return [e.row_key async for e in recorder.store.query(recorder.table, partition_key=partition)]


async def test_a_write_that_is_not_urgent_waits_and_others_join_it(recorder: Recorder) -> None:
    writer = PartitionWriter(recorder.store, recorder.table, "p", StoreOutage(), linger=0.3)
    writes = [asyncio.create_task(writer.upsert(f"r{n}", {"N": n}, urgent=False)) for n in range(5)]
    await asyncio.sleep(0.1)
    assert recorder.requests == []  # still lingering
    assert writer.lingering
    await asyncio.wait_for(asyncio.gather(*writes), timeout=10)
    assert recorder.requests == [("transact", ["r0", "r1", "r2", "r3", "r4"])]
    assert await _rows(recorder, "p") == ["r0", "r1", "r2", "r3", "r4"]
    assert not writer.busy


async def test_an_urgent_write_goes_at_once_and_takes_what_lingers_along(recorder: Recorder) -> None:
    writer = PartitionWriter(recorder.store, recorder.table, "p", StoreOutage(), linger=LONG)
    for n in range(3):
        await recorder.store.upsert(recorder.table, "p", f"gone{n}", {"N": n})
    recorder.requests.clear()
    lingering = [asyncio.create_task(writer.delete(f"gone{n}", urgent=False)) for n in range(3)]
    await asyncio.sleep(0.05)
    assert recorder.requests == []
    await asyncio.wait_for(writer.upsert("new", {"Active": True}), timeout=10)
    await asyncio.wait_for(asyncio.gather(*lingering), timeout=10)
    assert recorder.requests == [("transact", ["gone0", "gone1", "gone2", "new"])]
    assert await _rows(recorder, "p") == ["new"]


async def test_a_flush_sends_what_lingers_now(recorder: Recorder) -> None:
    writer = PartitionWriter(recorder.store, recorder.table, "p", StoreOutage(), linger=LONG)
    pending = asyncio.create_task(writer.upsert("a", {"N": 1}, urgent=False))
    await asyncio.sleep(0.05)
    await asyncio.wait_for(writer.flush(), timeout=10)
    assert pending.done()
    assert await _rows(recorder, "p") == ["a"]
    await writer.flush()  # nothing waits: returns at once
    assert recorder.requests == [("upsert", ["a"])]


async def test_a_listing_sends_its_own_process_s_lingering_index_copies_first(recorder: Recorder) -> None:
    control = ControlTable(recorder.store, recorder.hub, StoreOutage())
    now = WallClock().now()
    record = InstanceRecord(
        instance_id="listed",
        name="noop",
        status=RuntimeStatus.RUNNING,
        execution_id="e",
        created_time=now,
        last_updated_time=now,
    )
    publishing = asyncio.create_task(control.publish(record))
    await asyncio.sleep(0.05)
    assert control.only_lingering
    records, _ = await control.query_records([], page_size=10, continuation=None)
    assert [r.instance_id for r in records] == ["listed"]
    await publishing
    assert not control.busy


async def test_marker_removals_of_every_partition_ride_with_the_next_marker(recorder: Recorder) -> None:
    control = ControlTable(recorder.store, recorder.hub, StoreOutage())
    await control.mark_active(0, "a")
    await control.mark_active(3, "b")
    recorder.requests.clear()
    removals = [
        asyncio.create_task(control.unmark_active(0, "a", urgent=False)),
        asyncio.create_task(control.unmark_active(3, "b", urgent=False)),
    ]
    await asyncio.sleep(0.05)
    assert recorder.requests == []
    await control.mark_active(1, "c")  # one request for the new marker and both removals
    await asyncio.gather(*removals)
    assert recorder.requests == [("transact", ["00-a", "03-b", "01-c"])]
    assert await control.list_active(0) == []
    assert await control.list_active(1) == ["c"]
    assert await _rows(recorder, MARKER_PARTITION) == ["01-c"]


async def _control_rows(store: TableStore, hub: str, partition: str) -> dict[str, str]:
    rows = store.query(f"{hub}Control", partition_key=partition)
    return {e.row_key: str(e.get("RuntimeStatus", "")) async for e in rows}


async def test_run_until_idle_sends_what_lingers(
    engine_store: TableStore | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(control_module, "LINGER", LONG)
    store = engine_store or open_store("memory")
    hub = f"L{uuid.uuid4().hex[:12]}"
    async with DurableTestHost.start(APPS / "surface", store=store, hub=hub) as host:
        instance_id = await host.client.start_new("noop", client_input=1)
        await asyncio.wait_for(host.run_until_idle(), timeout=LONG / 2)
        assert not host.host.dispatcher.control.busy
        assert (await _control_rows(store, hub, INDEX_PARTITION))[instance_id] == "Completed"
        assert await _control_rows(store, hub, MARKER_PARTITION) == {}
    await store.close()


async def test_a_graceful_stop_sends_what_lingers(
    engine_store: TableStore | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(control_module, "LINGER", LONG)
    store = engine_store or open_store("memory")
    hub = f"L{uuid.uuid4().hex[:12]}"
    host = DurableHost(store, load_app(APPS / "surface"), WallClock(), hub=hub)
    await host.start()
    instance_id = await host.start_new("noop", input_text="1")
    for _ in range(1000):
        state = host.dispatcher.cache.get(instance_id)
        if state is not None and state.record.status.is_finished:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)
    assert host.dispatcher.control.only_lingering  # the index copy and the marker removal wait
    await asyncio.wait_for(host.stop(drain=True), timeout=LONG / 2)
    assert (await _control_rows(store, hub, INDEX_PARTITION))[instance_id] == "Completed"
    assert await _control_rows(store, hub, MARKER_PARTITION) == {}
    await store.close()
