"""The control table (durablehost.engine.control) on SQLite and Azurite: active markers by partition,
wake-ups taken only by the owner of their partition, the partition count fixed when the hub is created,
the single-owner layout of earlier versions migrated, leases, members and the instance index."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from durablehost.engine.control import (
    LEASE_PARTITION,
    MARKER_PARTITION,
    ControlTable,
    Member,
    PartitionCountMismatch,
)
from durablehost.engine.owed import StoreOutage
from durablehost.engine.placement import partition_of
from durablehost.engine.records import InstanceRecord, RuntimeStatus
from durablehost.errors import EtagMismatch
from durablehost.store import open_store
from durablehost.store.base import TableStore

NOW = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture
async def store(engine_store: TableStore | None) -> AsyncIterator[TableStore]:
    the_store = engine_store or open_store("memory")
    yield the_store
    await the_store.close()


@pytest.fixture
async def control(store: TableStore) -> ControlTable:
    table = ControlTable(store, f"C{uuid.uuid4().hex[:10]}", StoreOutage())
    await table.initialize()
    return table


# ------------------------------------------------------------------ markers


async def test_markers_are_listed_by_partition(control: ControlTable) -> None:
    await control.mark_active(0, "a")
    await control.mark_active(0, "b")
    await control.mark_active(3, "c")
    assert await control.list_active(0) == ["a", "b"]
    assert await control.list_active(3) == ["c"]
    assert await control.list_active(1) == []
    await control.unmark_active(0, "a")
    await control.unmark_active(0, "a")  # idempotent
    await control.unmark_active(2, "never")
    assert await control.list_active(0) == ["b"]
    await control.mark_active(10, "a-b")  # an id with a dash, in a partition whose number starts with 1
    assert await control.list_active(1) == []
    assert await control.list_active(10) == ["a-b"]
    # One partition for every marker, rows keyed by the hub partition: a marker write carries along the
    # lingering removals of every partition.
    rows = [e.row_key async for e in control.store.query(control.table, partition_key=MARKER_PARTITION)]
    assert rows == ["00-b", "03-c", "10-a-b"]


# ------------------------------------------------------------------ wake-ups


async def test_wake_ups_are_taken_only_for_owned_partitions(control: ControlTable) -> None:
    await control.wake(0, "a")
    await control.wake(1, "b")
    await control.wake(1, "c")
    await control.wake(12, "d")
    assert sorted(await control.take_wakes({1, 12})) == ["b", "c", "d"]
    assert await control.take_wakes({1, 12}) == []  # taken: gone
    assert await control.take_wakes([0]) == ["a"]  # partition 0's survived for its owner


async def test_a_backlog_for_a_partition_nobody_reads_does_not_hide_an_owned_one_s(
    control: ControlTable,
) -> None:
    await asyncio.gather(*(control.wake(0, f"orphan{n:03d}") for n in range(30)))  # its owner is dead
    await control.wake(3, "mine")
    assert await control.take_wakes({3}, limit=10) == ["mine"]  # the first 10 rows are all partition 0's
    assert len(await control.take_wakes({0}, limit=1000)) == 30


async def test_no_partitions_take_no_wake_ups_and_read_nothing(control: ControlTable) -> None:
    await control.wake(0, "a")
    assert await control.take_wakes(set()) == []
    assert await control.take_wakes({0}) == ["a"]


async def test_an_instance_id_with_dashes_and_digits_is_returned_whole(control: ControlTable) -> None:
    await control.wake(2, "02-looks-like-a-prefix")
    await control.wake(10, "2")
    assert await control.take_wakes({2}) == ["02-looks-like-a-prefix"]
    assert await control.take_wakes({10}) == ["2"]


async def test_a_wake_up_written_after_a_take_survives_for_the_next(control: ControlTable) -> None:
    await control.wake(0, "a")
    assert await control.take_wakes({0}) == ["a"]
    await control.wake(0, "a")
    assert await control.take_wakes({0}) == ["a"]


async def test_repeated_wake_ups_of_one_instance_are_one_row(control: ControlTable) -> None:
    for _ in range(3):
        await control.wake(0, "a")
    assert await control.take_wakes({0}) == ["a"]


# ------------------------------------------------------------------ the partition count


async def test_the_partition_count_is_fixed_when_the_hub_is_created(store: TableStore) -> None:
    hub = f"C{uuid.uuid4().hex[:10]}"
    first = ControlTable(store, hub, StoreOutage())
    await first.initialize()
    assert await first.partition_count(4) == 4
    again = ControlTable(store, hub, StoreOutage())
    assert await again.partition_count(4) == 4
    with pytest.raises(PartitionCountMismatch) as mismatch:
        await again.partition_count(8)
    assert str(mismatch.value) == (
        "the task hub was created with 4 partitions, but partitionCount 8 is configured; the count of a "
        "task hub cannot change (as in Azure): configure partitionCount 4, or use a new task hub name"
    )
    assert await again.partition_count(4) == 4  # the mismatch changed nothing


async def test_a_config_row_without_a_count_is_reported(control: ControlTable) -> None:
    await control.store.insert(control.table, "hub", "config", {"Other": 1})
    with pytest.raises(
        PartitionCountMismatch, match=r"the control row C\w+Control/hub/config has no PartitionCount"
    ):
        await control.partition_count(4)


# ------------------------------------------------------------------ migrating the single-owner layout


async def test_the_single_owner_layout_is_migrated_to_partition_markers(control: ControlTable) -> None:
    ids = [f"instance-{n}" for n in range(12)]
    for instance_id in ids:  # what the one-lease version wrote: one "active" partition, a "hub" lease
        await control.store.insert(control.table, "active", instance_id, {"Active": True})
    await control.store.insert(control.table, LEASE_PARTITION, "hub", {"Owner": "old", "ExpiresAt": NOW})
    await control.migrate_single_owner_layout(4, partition_of)
    for partition in range(4):
        expected = sorted(i for i in ids if partition_of(i, 4) == partition)
        assert await control.list_active(partition) == expected
    assert sorted([i for p in range(4) for i in await control.list_active(p)]) == sorted(ids)
    left = [e.row_key async for e in control.store.query(control.table, partition_key="active")]
    assert left == []
    assert [e.row_key async for e in control.store.query(control.table, partition_key=LEASE_PARTITION)] == []
    await control.migrate_single_owner_layout(4, partition_of)  # again, with nothing left: a no-op
    assert sorted([i for p in range(4) for i in await control.list_active(p)]) == sorted(ids)


async def test_migration_keeps_the_new_leases(control: ControlTable) -> None:
    await control.ensure_leases(2)
    await control.migrate_single_owner_layout(2, partition_of)
    assert sorted(await control.read_leases()) == [0, 1]


# ------------------------------------------------------------------ leases and members


async def test_leases_exist_once_and_are_written_conditionally(control: ControlTable) -> None:
    await control.ensure_leases(3)
    await control.ensure_leases(3)  # idempotent
    leases = await control.read_leases()
    assert sorted(leases) == [0, 1, 2]
    assert all(lease.owner == "" and lease.next_owner == "" for lease in leases.values())
    until = NOW + timedelta(seconds=15)
    etag = await control.write_lease(0, owner="me", expires_at=until, next_owner="", etag=leases[0].etag)
    lease = await control.read_lease(0)
    assert (lease.owner, lease.expires_at, lease.etag) == ("me", until, etag)
    with pytest.raises(EtagMismatch):  # someone holding the old ETag cannot take it
        await control.write_lease(0, owner="other", expires_at=until, next_owner="", etag=leases[0].etag)


async def test_members_heartbeat_and_leave(control: ControlTable) -> None:
    expires = NOW + timedelta(seconds=15)
    await control.heartbeat(Member("m1", expires, "host-a", 123, 456, "worker 1", 2))
    await control.heartbeat(Member("m2", expires, "host-b", 7, None, "", 0))
    assert {m.member_id: m for m in await control.read_members()}["m1"] == Member(
        "m1", expires, "host-a", 123, 456, "worker 1", 2
    )
    await control.remove_member("m1")
    await control.remove_member("m1")
    assert [m.member_id for m in await control.read_members()] == ["m2"]


# ------------------------------------------------------------------ the instance index


def _record(instance_id: str, status: RuntimeStatus = RuntimeStatus.RUNNING) -> InstanceRecord:
    return InstanceRecord(instance_id, "orch", status, "e", NOW, NOW, input='"x"')


async def test_the_index_lists_published_instances_by_prefix_and_in_pages(control: ControlTable) -> None:
    for instance_id in ("order-1", "order-2", "order-3", "other"):
        await control.publish(_record(instance_id))
    await control.publish(_record("order-2", RuntimeStatus.COMPLETED))  # rewritten, not added
    await control.unpublish("order-3")
    records, continuation = await control.query_records([], prefix="order-", page_size=10, continuation=None)
    assert [(r.instance_id, r.status) for r in records] == [
        ("order-1", RuntimeStatus.RUNNING),
        ("order-2", RuntimeStatus.COMPLETED),
    ]
    assert continuation is None and records[0].input == '"x"'
    first, token = await control.query_records([], page_size=2, continuation=None)
    rest, end = await control.query_records([], page_size=2, continuation=token)
    assert [r.instance_id for r in first + rest] == ["order-1", "order-2", "other"] and end is None


async def test_index_writes_go_through_the_group_commit_writers(control: ControlTable) -> None:
    assert control.requests == 0 and not control.busy
    await control.publish(_record("a"))
    await control.mark_active(1, "a")
    await control.wake(1, "a")
    assert control.requests == 3 and not control.busy
