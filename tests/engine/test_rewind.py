"""Rewind planning (durablehost.engine.rewind.plan_rewind) over failed instances built episode by episode
with the real SDK: failures become GenericEvents, which the SDK ignores, so no sequence id moves
(protocol §1.4, §2.3); an exhausted retry chain gets its last attempt back with the id of its dummy timer
(§2.5); a rewind that would move ids is refused. Each plan is then applied and run on, to show that the
SDK agrees with the ids the plan leaves.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import pytest

from durablehost.engine.episode import InstanceState
from durablehost.engine.history import EventType
from durablehost.engine.partition import LoadedInstance
from durablehost.engine.records import RuntimeStatus, TaskKind, TaskState, task_row_key
from durablehost.engine.rewind import RewindPlan, plan_rewind
from durablehost.errors import RewindRefused
from durablehost.functions import FunctionIndex, load_app
from tests.support.episodes import Episodes
from tests.support.histories import T0, History, Retry

from .conftest import APPS

SECOND = timedelta(seconds=1)
LATER = T0 + timedelta(days=1)


@pytest.fixture(scope="module")
def core() -> FunctionIndex:
    return load_app(APPS / "core")


def _loaded(state: InstanceState) -> LoadedInstance:
    return LoadedInstance(replace(state.record), list(state.history), dict(state.tasks), list(state.events))


def _apply(run: Episodes, plan: RewindPlan) -> None:
    """What the host commits for a rewind: the new history and row, reset tasks, removed dummy timers."""
    state = run.state
    state.record = plan.record
    state.history = list(plan.history)
    for task in plan.reset_tasks:
        state.tasks[task.task_id] = task
    for task_id in [t for t, task in state.tasks.items() if task.row_key in plan.removed_rows]:
        del state.tasks[task_id]
    run.now = plan.record.last_updated_time


def _neutralised(event: dict[str, object], original: dict[str, object]) -> bool:
    return event["EventType"] == EventType.GENERIC and event["DhRewound"] == original


def _failed_chain(core: FunctionIndex) -> Episodes:
    run = Episodes.start(core, "chain", ["a", "b"])
    run.run()
    run.fail(0, "Activity function 'hello' failed: ValueError: down", "trace", after=SECOND)
    run.run()
    assert run.record.status is RuntimeStatus.FAILED
    return run


def test_a_failed_activity_is_neutralised_and_scheduled_again(core: FunctionIndex) -> None:
    run = _failed_chain(core)
    loaded = _loaded(run.state)
    plan = plan_rewind(loaded, LATER, "fixed")
    before = run.history
    assert len(plan.history) == len(before) + 1  # every event in its place, and a marker at the end
    changed = [i for i, (old, new) in enumerate(zip(before, plan.history, strict=False)) if old != new]
    kinds = [EventType(before[i]["EventType"]) for i in changed]
    assert kinds == [EventType.TASK_FAILED, EventType.EXECUTION_COMPLETED]
    assert all(_neutralised(plan.history[i], before[i]) for i in changed)
    marker = plan.history[-1]
    assert (marker["EventType"], marker["Data"]) == (EventType.GENERIC, "rewound: fixed")
    [task] = plan.reset_tasks
    assert (task.task_id, task.state, task.reason, task.details, task.consumed) == (
        0,
        TaskState.SCHEDULED,
        None,
        None,
        False,
    )
    record = plan.record
    assert (record.status, record.output, record.completed_time) == (RuntimeStatus.RUNNING, None, None)
    assert record.history_count == len(plan.history) and record.last_updated_time == LATER
    assert record.next_task_id == 1
    assert plan.removed_rows == [] and plan.failed_children == []
    assert loaded.record.status is RuntimeStatus.FAILED  # the plan works on a copy

    _apply(run, plan)
    run.complete(0, "A")
    run.run()
    assert run.new_work() == [(1, "activity", "hello")]  # the SDK numbers on from where it was
    run.complete(1, "B")
    run.run()
    assert json.loads(run.record.output or "") == ["A", "B"]


def test_an_exhausted_retry_chain_gets_its_last_attempt_and_the_dummy_timers_id_back(
    core: FunctionIndex,
) -> None:
    run = Episodes.start(core, "retry", None)
    run.run()
    for attempt in (0, 2, 4):
        run.fail(attempt, f"boom {attempt}", after=SECOND)
        run.run()
        run.fire(attempt + 1)
        run.run()
    assert run.record.status is RuntimeStatus.FAILED and run.record.next_task_id == 6
    before = run.history
    plan = plan_rewind(_loaded(run.state), LATER, "again")
    neutralised = [
        (EventType(old["EventType"]).name, old.get("TaskScheduledId", old.get("TimerId", old["EventId"])))
        for old, new in zip(before, plan.history, strict=False)
        if old != new
    ]
    # The last attempt's failure and its dummy timer go; the earlier attempts and their timers stay.
    assert neutralised == [
        ("TASK_FAILED", 4),
        ("TIMER_CREATED", 5),
        ("TIMER_FIRED", 5),
        ("EXECUTION_COMPLETED", 6),
    ]
    assert [t.task_id for t in plan.reset_tasks] == [4]
    assert plan.removed_rows == [task_row_key("execution", 5)]
    assert plan.record.next_task_id == 5

    _apply(run, plan)
    run.complete(4, "ok on the third")
    run.run()
    assert run.new_work() == [(5, "activity", "hello")]  # the id the dummy timer had
    run.complete(5, "Hello after!")
    run.run()
    assert json.loads(run.record.output or "") == ["ok on the third", "Hello after!"]


def test_a_rewound_last_attempt_that_fails_again_takes_the_dummy_timer_id_again(core: FunctionIndex) -> None:
    run = Episodes.start(core, "retry", None)
    run.run()
    for attempt in (0, 2, 4):
        run.fail(attempt, "boom", after=SECOND)
        run.run()
        run.fire(attempt + 1)
        run.run()
    first = run.history[:]
    _apply(run, plan_rewind(_loaded(run.state), LATER, "once"))
    run.fail(4, "still broken", after=SECOND)
    run.run()
    assert run.new_work() == [(5, "timer", "flaky")] and run.state.tasks[5].final_retry_timer
    run.fire(5)
    run.run()
    assert run.record.status is RuntimeStatus.FAILED
    assert "still broken" in (run.record.output or "")
    plan = plan_rewind(_loaded(run.state), LATER + timedelta(days=1), "twice")
    assert plan.record.next_task_id == 5 and [t.task_id for t in plan.reset_tasks] == [4]
    assert len(first) < len(plan.history)


def test_a_rewind_that_would_move_ids_is_refused(core: FunctionIndex) -> None:
    """retry_then_more goes on after its chain ran out (ids 0, 1, 2, then the dummy timer 3) and schedules
    id 4: handing 3 back would give the rewound attempt's next action an id the SDK has taken."""
    run = Episodes.start(core, "retry_then_more", None, instance_id="stuck")
    run.run()
    run.fail(0, "boom")
    run.run()
    run.fire(1)
    run.run()
    run.fail(2, "boom")
    run.run()
    run.fire(3)
    run.run()
    assert run.new_work() == [(4, "activity", "hello")]
    run.complete(4, "Hello fallback!")
    run.run()
    assert run.record.status is RuntimeStatus.FAILED
    with pytest.raises(RewindRefused) as refused:
        plan_rewind(_loaded(run.state), LATER, "no")
    assert refused.value.instance_id == "stuck"
    assert "work was scheduled after a retry chain ran out of attempts (its final timer is task 3)" in str(
        refused.value
    )


def test_a_failed_sub_orchestration_is_reset_and_its_child_named(core: FunctionIndex) -> None:
    run = Episodes.start(core, "parent", 5)
    run.run()
    run.fail(0, "Sub-orchestration 'child' (execution:0) failed: boom", after=SECOND)
    run.run()
    assert run.record.status is RuntimeStatus.FAILED
    plan = plan_rewind(_loaded(run.state), LATER, "child fixed")
    [task] = plan.reset_tasks
    assert (task.kind, task.state, task.child_instance_id) == (
        TaskKind.SUB_ORCHESTRATION,
        TaskState.SCHEDULED,
        "execution:0",
    )
    assert plan.failed_children == ["execution:0"]
    _apply(run, plan)
    run.complete(0, 10)
    run.run()
    assert json.loads(run.record.output or "") == 10


def test_a_sub_orchestration_retry_chain_is_handed_back_with_the_childs_id(core: FunctionIndex) -> None:
    run = Episodes.start(core, "sub_retry", 5)
    run.run()
    for attempt in (0, 2):
        run.fail(attempt, "child failed", after=SECOND)
        run.run()
        run.fire(attempt + 1)
        run.run()
    assert run.record.status is RuntimeStatus.FAILED
    plan = plan_rewind(_loaded(run.state), LATER, "child fixed")
    assert [(t.task_id, t.child_instance_id) for t in plan.reset_tasks] == [(2, "execution:2")]
    assert plan.failed_children == ["execution:2"]
    assert plan.record.next_task_id == 3 and plan.removed_rows == [task_row_key("execution", 3)]


def test_an_orchestrator_that_failed_in_its_own_code_is_replayed(core: FunctionIndex) -> None:
    run = Episodes.start(core, "raises")
    run.run()
    run.complete(0, "Hello x!")
    run.run()
    plan = plan_rewind(_loaded(run.state), LATER, "try again")
    assert plan.reset_tasks == [] and plan.removed_rows == []
    _apply(run, plan)
    # History no longer ends with OrchestratorCompleted: the instance has work, an episode replays it.
    assert run.state.has_work()
    result = run.run()
    assert result.finished and run.record.status is RuntimeStatus.FAILED
    assert (
        json.loads(run.record.output or "") == "Orchestrator function 'raises' failed: orchestrator exploded"
    )


def test_a_built_history_is_planned_as_the_engines_own() -> None:
    """The same exhausted chain written by hand (tests.support.histories) plans the same rewind."""
    history = History("retry").started(None).activity(0, "flaky", None, retry=Retry(2, 1000)).episode()
    history.failed(0, "a").retry_timer(1, of=0, fire_at=timedelta(seconds=1)).episode(after=SECOND).fired(1)
    history.retry_attempt(2, "flaky", None, of=0).episode().failed(2, "b").retry_timer(
        3, of=0, fire_at=T0 + SECOND
    )
    history.episode().fired(3).failed_execution("Orchestrator function 'retry' failed: b \n None")
    state = history.state()
    assert state.record.status is RuntimeStatus.FAILED and state.tasks[3].final_retry_timer
    plan = plan_rewind(_loaded(state), LATER, "built")
    assert [t.task_id for t in plan.reset_tasks] == [2]
    assert plan.removed_rows == [task_row_key("execution", 3)]
    assert plan.record.next_task_id == 3
    kept = [e for e in plan.history if e["EventType"] == EventType.TASK_FAILED]
    assert [e["TaskScheduledId"] for e in kept] == [0]
