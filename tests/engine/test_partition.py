"""The partition layer: outcomes are written against the ETag their task row had when scheduled, alone or
folded into an episode's commit, so of two outcomes of one task exactly one is recorded; and the control
table's markers."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from durablehost.engine.control import ControlTable
from durablehost.engine.owed import StoreOutage
from durablehost.engine.partition import InstanceRepository, OutcomeConflict
from durablehost.engine.placement import DEFAULT_PARTITIONS, partition_of
from durablehost.engine.records import InstanceRecord, RuntimeStatus, TaskKind, TaskRecord, TaskState
from durablehost.store import open_store
from durablehost.store.base import TableStore
from durablehost.testing import DurableTestHost
from tests.support.histories import History

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


async def _scheduled(repo: InstanceRepository, tasks: int) -> tuple[InstanceRecord, list[TaskRecord]]:
    record = InstanceRecord("i1", "orch", RuntimeStatus.RUNNING, "exec", NOW, NOW)
    await repo.insert_instance(record)
    scheduled = [TaskRecord("exec", n, TaskKind.ACTIVITY, "act", NOW, history_seq=n) for n in range(tasks)]
    history = History("orch", instance_id="i1", execution_id="exec", at=NOW)
    for n in range(tasks):
        history.activity(n, "act")
    events = history.events
    record.history_count = len(events)
    await repo.commit(record, history_start=0, new_history=events, upsert_tasks=scheduled, delete_rows=[])
    return record, scheduled


def _outcome(task: TaskRecord, result: str) -> TaskRecord:
    return replace(task, state=TaskState.COMPLETED, result=result, stored=False)


@pytest.mark.parametrize("tasks", [1, 150], ids=["one-batch", "split-commit"])
async def test_a_second_outcome_for_a_committed_task_is_dropped(repo: InstanceRepository, tasks: int) -> None:
    _record, scheduled = await _scheduled(repo, tasks)
    task = scheduled[-1]
    assert task.etag is not None
    first, second = _outcome(task, '"first"'), _outcome(task, '"second"')
    assert await repo.record_outcomes("i1", [first]) == [True]
    assert await repo.record_outcomes("i1", [second]) == [False]  # against the same, now stale, ETag
    stored = await repo.read_task("i1", "exec", task.task_id)
    assert stored is not None and stored.result == '"first"'


async def test_outcomes_are_written_together_and_a_duplicate_among_them_is_dropped(
    repo: InstanceRepository,
) -> None:
    _record, scheduled = await _scheduled(repo, 120)
    assert await repo.record_outcomes("i1", [_outcome(scheduled[7], '"early"')]) == [True]
    batch = [_outcome(task, f'"{task.task_id}"') for task in scheduled]
    recorded = await repo.record_outcomes("i1", batch)
    assert recorded == [n != 7 for n in range(120)]
    rows = {t.task_id: t for t in (await repo.load("i1")).tasks.values()}  # type: ignore[union-attr]
    assert rows[7].result == '"early"'
    assert all(rows[n].result == f'"{n}"' and rows[n].state is TaskState.COMPLETED for n in rows if n != 7)


async def test_an_outcome_folded_into_an_episode_commits_with_it(repo: InstanceRepository) -> None:
    record, scheduled = await _scheduled(repo, 1)
    done = _outcome(scheduled[0], '"r"')
    completion = History(at=NOW).episode().completed(0, "r").end().events
    start = record.history_count
    record.history_count += len(completion)
    await repo.commit(
        record, history_start=start, new_history=completion, upsert_tasks=[], delete_rows=[], outcomes=[done]
    )
    assert done.stored
    loaded = await repo.load("i1")
    assert loaded is not None and loaded.tasks[0].state is TaskState.COMPLETED and loaded.tasks[0].consumed
    # The same task once more, folded into the next episode: the store refuses it and nothing commits.
    again = _outcome(scheduled[0], '"again"')
    before = loaded.record.history_count
    loaded.record.history_count += 1
    with pytest.raises(OutcomeConflict):
        await repo.commit(
            loaded.record,
            history_start=before,
            new_history=History(at=NOW).episode().events,
            upsert_tasks=[],
            delete_rows=[],
            outcomes=[again],
        )
    after = await repo.get_record("i1")
    assert after is not None and after.history_count == before


async def test_recovery_keeps_the_marker_of_an_instance_being_created(tmp_path: Path) -> None:
    """A host taking over while a client is between writing an instance's marker and its row must not
    drop the marker: it was the only way a later owner would find the instance after a crash."""
    store = open_store(f"sqlite:{tmp_path / 'race.sqlite'}")
    control = ControlTable(store, "TestHub", StoreOutage())
    await control.initialize()
    partition = partition_of("being-created", DEFAULT_PARTITIONS)
    await control.mark_active(partition, "being-created")  # the client's first write; its row comes next
    async with DurableTestHost.start(APPS / "basic", store=store, hub="TestHub") as host:
        await host.run_until_idle()  # the recovery of every partition has run
        assert "being-created" in await control.list_active(partition)
    await store.close()


async def test_an_old_marker_without_an_instance_is_removed(repo: InstanceRepository) -> None:
    control = ControlTable(repo.store, repo.hub, StoreOutage())
    await control.initialize()
    await control.mark_active(2, "orphan")
    await control.remove_orphan_marker(2, "orphan", older_than=NOW)  # written after NOW: kept
    assert await control.list_active(2) == ["orphan"]
    await control.remove_orphan_marker(2, "orphan", older_than=datetime.now(UTC) + timedelta(minutes=1))
    assert await control.list_active(2) == []


async def test_an_outcome_message_for_task_zero_is_held_not_dropped() -> None:
    """A sub-orchestration's result sent by another partition's owner completes task 0 like any other
    (it was once taken for stale: task id 0 is falsy)."""
    from durablehost.engine.cache import InstanceCache
    from durablehost.engine.episode import InstanceState
    from durablehost.engine.outcomes import HeldOutcomes
    from durablehost.engine.records import EventMessage, MessageKind, Outcome

    store = open_store("memory")
    repo = InstanceRepository(store, "Zero")
    await repo.initialize()
    record, scheduled = await _scheduled(repo, 1)
    message = EventMessage(
        row_key="E1",
        name="outcome:0",
        input=Outcome(TaskState.COMPLETED, result='"child"').to_json(),
        raised_time=NOW,
        kind=MessageKind.OUTCOME,
        execution_id=record.execution_id,
        task_id=0,
    )
    state = InstanceState(record, [], {0: scheduled[0]}, [message])
    held = HeldOutcomes(
        repo, InstanceCache(repo, 10, pinned=lambda _: False), StoreOutage(), schedule=print, spawn=print
    )
    assert held.absorb_messages(state) == []  # nothing stale
    assert held.pending("i1")[0].outcome.result == '"child"'
    assert state.events == []
    await store.close()
