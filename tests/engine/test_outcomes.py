"""Held outcomes (durablehost.engine.outcomes) over a real repository, SQLite and Azurite: an outcome is
held until a commit of its partition stores it, claimed into an episode's snapshot and given back if the
episode does not commit, flushed as one group commit when no episode takes it, each written against the
ETag its task row had when scheduled (one outcome per task); outcome messages from other partitions are
held with their inbox row, stale ones handed back for deletion; an outcome the store cannot hold becomes
a failure."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import pytest

from durablehost.engine.cache import InstanceCache
from durablehost.engine.episode import InstanceState
from durablehost.engine.outcomes import HeldOutcomes
from durablehost.engine.owed import StoreOutage
from durablehost.engine.partition import InstanceRepository
from durablehost.engine.records import (
    MAX_VALUE_BYTES,
    EventMessage,
    InstanceRecord,
    MessageKind,
    Outcome,
    RuntimeStatus,
    TaskKind,
    TaskRecord,
    TaskState,
)
from durablehost.store import open_store
from durablehost.store.base import TableStore
from tests.support.histories import History

NOW = datetime(2024, 1, 1, tzinfo=UTC)
DONE = Outcome(TaskState.COMPLETED, result='"ok"')


@dataclass
class Engine:
    """The parts of a dispatcher HeldOutcomes talks to: a repository, a cache, what it schedules and
    the background work it spawns."""

    repo: InstanceRepository
    cache: InstanceCache
    outcomes: HeldOutcomes = field(init=False)
    scheduled: list[str] = field(default_factory=list)
    spawned: list[asyncio.Task[object]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.outcomes = HeldOutcomes(
            self.repo, self.cache, StoreOutage(), schedule=self.scheduled.append, spawn=self._spawn
        )

    def _spawn(self, work: Awaitable[object]) -> None:
        self.spawned.append(asyncio.ensure_future(work))

    async def settle(self) -> None:
        while not all(task.done() for task in self.spawned):
            await asyncio.gather(*self.spawned)


@pytest.fixture
async def engine(engine_store: TableStore | None) -> AsyncIterator[Engine]:
    store = engine_store or open_store("memory")
    repo = InstanceRepository(store, f"H{uuid.uuid4().hex[:12]}")
    await repo.initialize()
    held = Engine(repo, InstanceCache(repo, 16, pinned=lambda _: False))
    held.cache._pinned = held.outcomes.pinned  # as the dispatcher wires them
    yield held
    await held.settle()
    await store.close()


async def _instance(engine: Engine, tasks: int, *, kind: TaskKind = TaskKind.ACTIVITY) -> InstanceState:
    """An instance whose first episode scheduled ``tasks`` tasks (ids 0 …), loaded into the cache."""
    record = InstanceRecord("i1", "fan_out", RuntimeStatus.RUNNING, "exec", NOW, NOW)
    await engine.repo.insert_instance(record)
    history = History("fan_out", instance_id="i1", execution_id="exec", at=NOW).started(tasks)
    rows = []
    for task_id in range(tasks):
        if kind is TaskKind.ENTITY_MESSAGE:
            history.signal(task_id, "@e@k", "op", {"id": f"r{task_id}"})
        else:
            history.activity(task_id, "square", task_id)
        rows.append(TaskRecord("exec", task_id, kind, "square", NOW, history_seq=2 + task_id))
    events = history.end().events
    record.history_count = len(events)
    await engine.repo.commit(record, history_start=0, new_history=events, upsert_tasks=rows, delete_rows=[])
    state = await engine.cache.load("i1")
    assert state is not None
    return state


async def _stored(engine: Engine, task_id: int) -> TaskRecord:
    task = await engine.repo.read_task("i1", "exec", task_id)
    assert task is not None
    return task


# ------------------------------------------------------------------ holding and claiming


async def test_an_outcome_is_held_once_per_task(engine: Engine) -> None:
    state = await _instance(engine, 2)
    first = engine.outcomes.hold("i1", state.tasks[0], DONE, NOW)
    assert first is not None and not first.done()
    assert engine.outcomes.hold("i1", state.tasks[0], Outcome(TaskState.FAILED, reason="late"), NOW) is None
    assert engine.outcomes.pinned("i1") and engine.outcomes.busy
    assert list(engine.outcomes.pending("i1")) == [0]
    assert engine.outcomes.pending("i1")[0].outcome == DONE  # the first one stands


async def test_claimed_outcomes_are_completions_in_the_episodes_snapshot(engine: Engine) -> None:
    state = await _instance(engine, 3)
    waiters = [
        engine.outcomes.hold("i1", state.tasks[n], Outcome(TaskState.COMPLETED, result=str(n)), NOW)
        for n in (2, 0)
    ]
    snapshot = state.snapshot()
    claimed = engine.outcomes.claim(state, snapshot)
    assert [(t.task_id, t.state, t.result, t.stored) for t in claimed] == [
        (2, TaskState.COMPLETED, "2", False),
        (0, TaskState.COMPLETED, "0", False),
    ]
    assert [t.task_id for t in snapshot.pending_completions()] == [0, 2]
    assert state.tasks[0].state is TaskState.SCHEDULED  # the cached state is not touched
    assert engine.outcomes.pending("i1") == {} and engine.outcomes.pinned("i1")
    engine.outcomes.committed("i1")  # the episode committed them
    assert [w.result() for w in waiters if w is not None] == [True, True]
    assert not engine.outcomes.pinned("i1")


async def test_an_episode_that_does_not_commit_gives_its_outcomes_back(engine: Engine) -> None:
    state = await _instance(engine, 1)
    waiter = engine.outcomes.hold("i1", state.tasks[0], DONE, NOW)
    engine.outcomes.claim(state, state.snapshot())
    engine.outcomes.unclaim("i1")
    assert waiter is not None and not waiter.done()
    assert list(engine.outcomes.pending("i1")) == [0]
    again = engine.outcomes.claim(state, state.snapshot())  # the next episode takes them
    assert [t.task_id for t in again] == [0]


async def test_an_outcome_for_a_task_no_longer_waiting_is_dropped_at_claim(engine: Engine) -> None:
    state = await _instance(engine, 1)
    waiter = engine.outcomes.hold("i1", state.tasks[0], DONE, NOW)
    state.tasks[0] = replace(state.tasks[0], state=TaskState.COMPLETED)  # another outcome came first
    assert engine.outcomes.claim(state, state.snapshot()) == []
    assert waiter is not None and waiter.result() is False


async def test_entity_message_outcomes_are_not_claimed_but_flushed(engine: Engine) -> None:
    state = await _instance(engine, 1, kind=TaskKind.ENTITY_MESSAGE)
    waiter = engine.outcomes.hold("i1", state.tasks[0], Outcome(TaskState.COMPLETED), NOW)
    assert engine.outcomes.claim(state, state.snapshot()) == []  # no episode waits for a sent message
    await engine.settle()
    assert waiter is not None and waiter.result() is True
    assert (await _stored(engine, 0)).state is TaskState.COMPLETED


# ------------------------------------------------------------------ flushing


async def test_held_outcomes_are_flushed_together_and_released_when_stored(engine: Engine) -> None:
    state = await _instance(engine, 3)
    waiters = [
        engine.outcomes.hold("i1", state.tasks[n], Outcome(TaskState.COMPLETED, result=str(n * n)), NOW)
        for n in range(3)
    ]
    engine.outcomes.flush_soon("i1")
    assert engine.outcomes.pinned("i1")  # flushing
    await engine.settle()
    assert [w.result() for w in waiters if w is not None] == [True, True, True]
    assert [(await _stored(engine, n)).result for n in range(3)] == ["0", "1", "4"]
    cached = engine.cache.get("i1")
    assert cached is not None and all(cached.tasks[n].state is TaskState.COMPLETED for n in range(3))
    assert engine.scheduled == ["i1"]  # the stored completions wait for the next episode
    assert not engine.outcomes.pinned("i1") and not engine.outcomes.busy


async def test_of_two_outcomes_of_one_task_the_store_keeps_the_first(engine: Engine) -> None:
    state = await _instance(engine, 2)
    # The task's outcome was stored by another process (an activity re-run after a hand-over).
    other = replace(state.tasks[1], state=TaskState.COMPLETED, result='"theirs"', stored=False)
    assert await engine.repo.record_outcomes("i1", [other]) == [True]
    ours = engine.outcomes.hold("i1", state.tasks[1], Outcome(TaskState.COMPLETED, result='"ours"'), NOW)
    kept = engine.outcomes.hold("i1", state.tasks[0], DONE, NOW)
    loads = engine.cache.loads
    engine.outcomes.flush_soon("i1")
    await engine.settle()
    assert ours is not None and ours.result() is False
    assert kept is not None and kept.result() is True
    assert (await _stored(engine, 1)).result == '"theirs"'
    assert engine.cache.loads == loads + 1  # what was cached of that task was stale: reloaded


async def test_drop_and_close_release_every_waiter_unrecorded(engine: Engine) -> None:
    state = await _instance(engine, 2)
    dropped = engine.outcomes.hold("i1", state.tasks[0], DONE, NOW)
    engine.outcomes.drop("i1")
    assert dropped is not None and dropped.result() is False
    pending = engine.outcomes.hold("i1", state.tasks[0], DONE, NOW)
    claimed_waiter = engine.outcomes.hold("i1", state.tasks[1], DONE, NOW)
    engine.outcomes.claim(state, state.snapshot())
    engine.outcomes.close()
    assert pending is not None and claimed_waiter is not None
    assert pending.result() is False and claimed_waiter.result() is False
    assert not engine.outcomes.busy


# ------------------------------------------------------------------ outcome messages


def _message(task_id: int, outcome: Outcome, *, execution_id: str = "exec", row: str = "") -> EventMessage:
    return EventMessage(
        row_key=row or f"E{uuid.uuid4().hex}",
        name=f"outcome:{task_id}",
        input=outcome.to_json(),
        raised_time=NOW + timedelta(seconds=task_id),
        kind=MessageKind.OUTCOME,
        execution_id=execution_id,
        task_id=task_id,
    )


async def test_outcome_messages_are_held_with_their_inbox_row_and_stale_ones_returned(engine: Engine) -> None:
    state = await _instance(engine, 2)
    for_zero = _message(0, Outcome(TaskState.COMPLETED, result='"zero"'))  # task 0: a falsy id
    duplicate = _message(0, Outcome(TaskState.COMPLETED, result='"again"'))
    old_execution = _message(1, DONE, execution_id="earlier")
    unknown_task = _message(7, DONE)
    event = EventMessage(row_key="E-event", name="approval", input="1", raised_time=NOW)
    for message in (for_zero, duplicate, old_execution, unknown_task):
        await engine.repo.add_event("i1", message)
    state.events = [for_zero, duplicate, old_execution, unknown_task, event]
    stale = engine.outcomes.absorb_messages(state)
    assert sorted(stale) == sorted([duplicate.row_key, old_execution.row_key, unknown_task.row_key])
    assert state.events == [event]  # external events stay for the episode
    held = engine.outcomes.pending("i1")[0]
    assert (held.outcome.result, held.source_row) == ('"zero"', for_zero.row_key)
    # Claimed and committed by an episode, the message's inbox row is deleted in that commit.
    [completion] = engine.outcomes.claim(state, state.snapshot())
    assert completion.source_row == for_zero.row_key


async def test_a_flushed_outcome_message_deletes_its_inbox_row(engine: Engine) -> None:
    state = await _instance(engine, 1)
    message = _message(0, Outcome(TaskState.FAILED, reason="child failed"))
    await engine.repo.add_event("i1", message)
    state.events = [message]
    assert engine.outcomes.absorb_messages(state) == []
    engine.outcomes.flush_soon("i1")
    await engine.settle()
    stored = await _stored(engine, 0)
    assert (stored.state, stored.reason) == (TaskState.FAILED, "child failed")
    assert await engine.repo.list_pending_events("i1") == []


# ------------------------------------------------------------------ limits


async def test_an_outcome_over_the_stores_limits_becomes_a_failure(engine: Engine) -> None:
    state = await _instance(engine, 1)
    huge = json.dumps("x" * (MAX_VALUE_BYTES + 10))
    waiter = engine.outcomes.hold("i1", state.tasks[0], Outcome(TaskState.COMPLETED, result=huge), NOW)
    held = engine.outcomes.pending("i1")[0].outcome
    assert held.state is TaskState.FAILED and held.result is None
    assert held.reason is not None and "the result of task 0 (square)" in held.reason
    assert "durablehost stores at most 900,000 bytes per value" in held.reason
    engine.outcomes.flush_soon("i1")
    await engine.settle()
    assert waiter is not None and waiter.result() is True
    assert (await _stored(engine, 0)).state is TaskState.FAILED


async def test_task_of_finds_a_task_scheduled_after_the_cached_copy(engine: Engine) -> None:
    state = await _instance(engine, 1)
    stale = replace(state, tasks={})  # cached before the episode that scheduled task 0
    engine.cache.put(stale)
    task = await engine.outcomes.task_of("i1", "exec", 0)
    assert task is not None and task.task_id == 0
    assert await engine.outcomes.task_of("i1", "exec", 5) is None
    assert await engine.outcomes.task_of("i1", "other-exec", 0) is None
