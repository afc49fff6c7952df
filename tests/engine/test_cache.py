"""The instance cache (durablehost.engine.cache) over a real repository, SQLite and Azurite: an LRU that
never evicts pinned instances, loads that clean rows a crash left behind, and revalidation by ETag that
reloads only an instance someone else changed and otherwise re-reads its inbox."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import cast

import pytest

from durablehost.engine.cache import InstanceCache
from durablehost.engine.episode import InstanceState
from durablehost.engine.partition import InstanceRepository
from durablehost.engine.records import (
    EventMessage,
    InstanceRecord,
    RuntimeStatus,
    TaskKind,
    TaskRecord,
    history_row_key,
)
from durablehost.store import open_store
from durablehost.store.base import TableStore
from tests.support.histories import History

NOW = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture
async def repo(engine_store: TableStore | None) -> AsyncIterator[InstanceRepository]:
    store = engine_store or open_store("memory")
    repository = InstanceRepository(store, f"K{uuid.uuid4().hex[:12]}")
    await repository.initialize()
    yield repository
    await store.close()


async def _create(repo: InstanceRepository, instance_id: str) -> InstanceRecord:
    """An instance at its first step: [OrchestratorStarted, ExecutionStarted, TaskScheduled 0, …]."""
    record = InstanceRecord(instance_id, "chain", RuntimeStatus.RUNNING, "exec", NOW, NOW)
    await repo.insert_instance(record)
    history = History("chain", instance_id=instance_id, execution_id="exec", at=NOW).started(["a"])
    events = history.activity(0, "hello", "a").end().events
    task = TaskRecord("exec", 0, TaskKind.ACTIVITY, "hello", NOW, history_seq=2, input='"a"')
    record.history_count = len(events)
    await repo.commit(record, history_start=0, new_history=events, upsert_tasks=[task], delete_rows=[])
    return record


def _state(instance_id: str) -> InstanceState:
    record = InstanceRecord(instance_id, "chain", RuntimeStatus.RUNNING, "exec", NOW, NOW)
    return InstanceState(record, [], {}, [])


def _event(name: str, row: str) -> EventMessage:
    return EventMessage(row_key=row, name=name, input='"x"', raised_time=NOW)


# ------------------------------------------------------------------ the LRU


def _unused_repo() -> InstanceRepository:
    """No repository: put, get and eviction never read storage (only loads do)."""
    return cast(InstanceRepository, object())


def test_the_least_recently_used_instance_is_evicted() -> None:
    cache = InstanceCache(_unused_repo(), 2, pinned=lambda _: False)
    for instance_id in ("a", "b"):
        cache.put(_state(instance_id))
    assert cache.get("a") is not None  # a is now the most recent
    cache.put(_state("c"))
    assert "b" not in cache and "a" in cache and "c" in cache and len(cache) == 2
    cache.put(_state("a"))  # putting again refreshes it too
    cache.put(_state("d"))
    assert sorted(s.record.instance_id for s in cache.cached()) == ["a", "d"]


def test_pinned_instances_are_never_evicted() -> None:
    pinned = {"a", "b"}
    cache = InstanceCache(_unused_repo(), 2, pinned=lambda instance_id: instance_id in pinned)
    cache.put(_state("a"))
    cache.put(_state("b"))
    for instance_id in ("c", "d", "e"):
        cache.put(_state(instance_id))
        assert {"a", "b"} <= {s.record.instance_id for s in cache.cached()}
        assert instance_id in cache  # the newest stays
        assert len(cache) <= 2 + len(pinned)  # over its size by at most what is pinned
    pinned.clear()  # their episodes finished: they go like any other
    for instance_id in ("f", "g", "h"):
        cache.put(_state(instance_id))
    assert "a" not in cache and "b" not in cache and len(cache) == 2


def test_get_of_an_unknown_instance_is_none_and_drop_forgets() -> None:
    cache = InstanceCache(_unused_repo(), 4, pinned=lambda _: False)
    assert cache.get("nope") is None
    cache.put(_state("a"))
    cache.put(_state("b1"))
    cache.drop("a")
    cache.drop("a")
    assert "a" not in cache
    assert cache.drop_where(lambda instance_id: instance_id.startswith("b")) == ["b1"]
    assert len(cache) == 0


# ------------------------------------------------------------------ loading


async def test_an_instance_is_loaded_once_then_served_from_memory(repo: InstanceRepository) -> None:
    await _create(repo, "i1")
    cache = InstanceCache(repo, 4, pinned=lambda _: False)
    state = await cache.get_or_load("i1")
    assert state is not None and cache.loads == 1
    assert len(state.history) == 4 and list(state.tasks) == [0]
    assert await cache.get_or_load("i1") is state and cache.loads == 1
    assert await cache.get_or_load("missing") is None and cache.loads == 2 and "missing" not in cache


async def test_a_load_deletes_rows_a_crash_left_behind(repo: InstanceRepository) -> None:
    record = await _create(repo, "i1")
    delivered = _event("approval", "E0001")
    await repo.add_event("i1", delivered)
    # An episode delivered the event and committed; the crash came before its inbox row was deleted.
    raised = History(at=NOW).episode().raised("approval", "x").end().events
    raised[1]["DhInboxKey"] = delivered.row_key
    start = record.history_count
    record.history_count += len(raised)
    await repo.commit(record, history_start=start, new_history=raised, upsert_tasks=[], delete_rows=[])
    old_task = TaskRecord("older-exec", 3, TaskKind.TIMER, "timer", NOW, history_seq=0)  # a past execution
    await repo.store.upsert(repo.table, "i1", old_task.row_key, old_task.to_properties())
    cache = InstanceCache(repo, 4, pinned=lambda _: False)
    state = await cache.load("i1")
    assert state is not None and state.events == [] and list(state.tasks) == [0]
    rows = {e.row_key async for e in repo.store.query(repo.table, partition_key="i1")}
    assert delivered.row_key not in rows and old_task.row_key not in rows
    assert history_row_key(0) in rows


# ------------------------------------------------------------------ revalidation


async def test_revalidating_an_uncached_instance_loads_it(repo: InstanceRepository) -> None:
    await _create(repo, "i1")
    cache = InstanceCache(repo, 4, pinned=lambda _: False)
    state, reloaded = await cache.revalidate("i1")
    assert state is not None and reloaded and cache.loads == 1


async def test_an_unchanged_instance_only_has_its_inbox_read_again(repo: InstanceRepository) -> None:
    await _create(repo, "i1")
    cache = InstanceCache(repo, 4, pinned=lambda _: False)
    state = await cache.load("i1")
    assert state is not None and state.events == []
    await repo.add_event("i1", _event("approval", "E0002"))  # an event raised through another process
    again, reloaded = await cache.revalidate("i1")
    assert again is state and not reloaded and cache.loads == 1
    assert [e.name for e in state.events] == ["approval"]


async def test_an_instance_changed_elsewhere_is_reloaded(repo: InstanceRepository) -> None:
    await _create(repo, "i1")
    cache = InstanceCache(repo, 4, pinned=lambda _: False)
    state = await cache.load("i1")
    assert state is not None
    # Another process suspends it: the instance row changes, and with it its ETag.
    changed = await repo.get_record("i1")
    assert changed is not None
    await repo.update_record(
        replace(changed, status=RuntimeStatus.SUSPENDED, suspended_from=RuntimeStatus.RUNNING)
    )
    fresh, reloaded = await cache.revalidate("i1")
    assert reloaded and fresh is not None and fresh is not state and cache.loads == 2
    assert fresh.record.status is RuntimeStatus.SUSPENDED
    assert cache.get("i1") is fresh


async def test_a_commit_by_this_process_keeps_the_cached_copy_valid(repo: InstanceRepository) -> None:
    """The ETag a commit returns is stored on the record, so the owner's own writes are not 'changes'."""
    await _create(repo, "i1")
    cache = InstanceCache(repo, 4, pinned=lambda _: False)
    state = await cache.load("i1")
    assert state is not None
    await repo.update_record(state.record)  # our own write: record.etag is the new one
    same, reloaded = await cache.revalidate("i1")
    assert same is state and not reloaded


async def test_a_purged_instance_is_dropped(repo: InstanceRepository) -> None:
    await _create(repo, "i1")
    cache = InstanceCache(repo, 4, pinned=lambda _: False)
    await cache.load("i1")
    await repo.purge_partition("i1")
    state, reloaded = await cache.revalidate("i1")
    assert state is None and reloaded and "i1" not in cache
