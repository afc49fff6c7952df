"""The partition layer: committed task rows carry the ETag their outcome is written against."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from durablehost.engine import history as h
from durablehost.engine.partition import InstanceRepository
from durablehost.engine.records import InstanceRecord, RuntimeStatus, TaskKind, TaskRecord, TaskState
from durablehost.store import open_store
from durablehost.store.base import TableStore
from durablehost.testing import DurableTestHost

from .conftest import APPS

NOW = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture
async def repo(engine_store: TableStore | None) -> AsyncIterator[InstanceRepository]:
    """On SQLite and on Azurite (engine_store), with a task hub of its own."""
    store = engine_store or open_store("memory")
    repository = InstanceRepository(store, f"P{uuid.uuid4().hex[:12]}")
    await repository.initialize()
    yield repository
    await store.close()


@pytest.mark.parametrize("tasks", [1, 150], ids=["one-batch", "split-commit"])
async def test_a_second_outcome_for_a_committed_task_is_dropped(repo: InstanceRepository, tasks: int) -> None:
    record = InstanceRecord("i1", "orch", RuntimeStatus.RUNNING, "exec", NOW, NOW)
    await repo.insert_instance(record)
    scheduled = [TaskRecord("exec", n, TaskKind.ACTIVITY, "act", NOW, history_seq=n) for n in range(tasks)]
    events = [h.task_scheduled(NOW, n, "act", None) for n in range(tasks)]
    record.history_count = len(events)
    await repo.commit(record, history_start=0, new_history=events, upsert_tasks=scheduled, delete_rows=[])
    task = scheduled[-1]
    assert task.etag is not None
    first = TaskRecord(**{**task.__dict__, "state": TaskState.COMPLETED, "result": '"first"'})
    second = TaskRecord(**{**task.__dict__, "state": TaskState.COMPLETED, "result": '"second"'})
    assert await repo.record_outcome("i1", first)
    assert not await repo.record_outcome("i1", second)  # written against the same, now stale, ETag
    stored = await repo.read_task("i1", "exec", task.task_id)
    assert stored is not None and stored.result == '"first"'


async def test_recovery_keeps_the_marker_of_an_instance_being_created(tmp_path: Path) -> None:
    """A host taking over while a client is between writing an instance's marker and its row must not
    drop the marker: it was the only way a later owner would find the instance after a crash."""
    store = open_store(f"sqlite:{tmp_path / 'race.sqlite'}")
    repo = InstanceRepository(store, "TestHub")
    await repo.initialize()
    await repo.mark_active("being-created")  # the client's first write; its instance row comes next
    async with DurableTestHost.start(APPS / "basic", store=store, hub="TestHub"):
        assert "being-created" in await repo.list_active()
    await store.close()


async def test_an_old_marker_without_an_instance_is_removed(repo: InstanceRepository) -> None:
    await repo.mark_active("orphan")
    await repo.remove_orphan_marker("orphan", older_than=NOW)  # written after NOW: kept
    assert await repo.list_active() == ["orphan"]
    await repo.remove_orphan_marker("orphan", older_than=datetime.now(UTC) + timedelta(minutes=1))
    assert await repo.list_active() == []
