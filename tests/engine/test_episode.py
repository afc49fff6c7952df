"""``run_episode`` over built histories with the real SDK: no store, no host, milliseconds each.

Each test plays an instance's outside world (tests.support.episodes: tasks complete, timers fire, events
arrive) and compares what the engine wrote with the history the protocol document says the host writes
(tests.support.histories): which events, in which order, with which sequence ids (protocol §1.4, §2.3,
§2.5), and what the instance row says afterwards. The orchestrators are tests/engine/apps/core.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest

from durablehost.engine.episode import InstanceState, episode_timestamp, run_episode
from durablehost.engine.fidelity import Fidelity
from durablehost.engine.history import EventType, format_timestamp, parse_timestamp
from durablehost.engine.records import RuntimeStatus, TaskKind, TaskState
from durablehost.functions import FunctionIndex, load_app
from tests.support.episodes import Episodes
from tests.support.histories import T0, History, Retry, comparable, kinds

from .conftest import APPS

SECOND = timedelta(seconds=1)


@pytest.fixture(scope="module")
def core() -> FunctionIndex:
    return load_app(APPS / "core")


def _ids(events: list[dict[str, Any]], event_type: EventType) -> list[int]:
    key = {EventType.TASK_COMPLETED: "TaskScheduledId", EventType.TIMER_FIRED: "TimerId"}.get(event_type)
    return [e[key] if key else e["EventId"] for e in events if e["EventType"] == event_type]


# ------------------------------------------------------------------ new actions become history


def test_a_chain_schedules_one_activity_per_episode_and_completes(core: FunctionIndex) -> None:
    run = Episodes.start(core, "chain", ["Tokyo", "Seattle"])
    first = run.run()
    expected = History("chain").started(["Tokyo", "Seattle"]).activity(0, "hello", "Tokyo").end()
    assert run.history == expected.events
    assert run.new_work() == [(0, "activity", "hello")]
    assert first.tasks_to_write[0].input == '"Tokyo"' and first.tasks_to_write[0].history_seq == 2
    assert run.record.status is RuntimeStatus.RUNNING
    assert (run.record.next_task_id, run.record.action_count) == (1, 1)

    run.complete(0, "Hello Tokyo!")
    run.run()
    expected.episode().completed(0, "Hello Tokyo!").activity(1, "hello", "Seattle").end()
    assert run.history == expected.events
    assert run.last.consumed[0].task_id == 0

    run.complete(1, "Hello Seattle!")
    final = run.run()
    output = ["Hello Tokyo!", "Hello Seattle!"]
    expected.episode().completed(1, "Hello Seattle!").completed_execution(output).end()
    assert run.history == expected.events
    assert final.finished and not final.new_work
    record = run.record
    assert record.status is RuntimeStatus.COMPLETED
    assert json.loads(record.output or "") == output
    assert record.history_count == len(run.history) == 12
    assert record.completed_time == T0


def test_each_kind_of_action_takes_the_next_id_and_waits_take_none(core: FunctionIndex) -> None:
    """One yield of every kind: ids in flattened action order (§2.3), a wait between them takes none,
    and an unnamed child is "{executionId}:{id}" (§2.7)."""
    steps = [
        [
            "all",
            [
                ["activity", "hello", "a"],
                ["timer", 60],
                ["wait", "go"],
                ["sub", "child", 3],
                ["sub", "child", 4, "kid"],
                ["http", "GET", "https://example.com/x"],
            ],
        ]
    ]
    run = Episodes.start(core, "script", steps)
    result = run.run()
    expected = (
        History("script")
        .started(steps)
        .activity(0, "hello", "a")
        .timer(1, timedelta(seconds=60))
        .wait("go")
        .sub_orchestration(2, "child", 3)
        .sub_orchestration(3, "child", 4, instance_id="kid")
    )
    request = json.loads(run.history[-2]["Input"])  # what the SDK put in the CallHttp action
    assert request["method"] == "GET" and request["uri"] == "https://example.com/x"
    expected.http(4, request).end()
    assert run.history == expected.events
    assert [(t.task_id, t.kind) for t in result.new_work] == [
        (0, TaskKind.ACTIVITY),
        (1, TaskKind.TIMER),
        (2, TaskKind.SUB_ORCHESTRATION),
        (3, TaskKind.SUB_ORCHESTRATION),
        (4, TaskKind.HTTP),
    ]
    assert [t.child_instance_id for t in result.new_work if t.kind is TaskKind.SUB_ORCHESTRATION] == [
        "execution:2",
        "kid",
    ]
    assert run.record.waits == {"go": 1}
    assert (run.record.next_task_id, run.record.action_count) == (5, 6)


def test_a_signal_takes_an_id_without_being_yielded_and_a_call_waits_for_its_answer(
    core: FunctionIndex,
) -> None:
    steps = [["signal", "counter_entity", "c", "add", 5], ["call_entity", "counter_entity", "c", "get"]]
    run = Episodes.start(core, "script", steps)
    result = run.run()
    assert kinds(result.new_history) == [
        "ORCHESTRATOR_STARTED",
        "EXECUTION_STARTED",
        "EVENT_SENT",
        "EVENT_SENT",
        "ORCHESTRATOR_COMPLETED",
    ]
    signal, call = result.new_history[2], result.new_history[3]
    assert (signal["EventId"], signal["InstanceId"], signal["Name"]) == (0, "@counter_entity@c", "add")
    assert (call["EventId"], call["InstanceId"], call["Name"]) == (1, "@counter_entity@c", "get")
    # The extension-v2 request message (protocol §2.7); the SDK reads only "id".
    sent, asked = json.loads(signal["Input"]), json.loads(call["Input"])
    assert sent["signal"] is True and sent["input"] == "5" and sent["op"] == "add"
    assert (
        asked["signal"] is False and asked["parent"] == "instance" and asked["parentExecution"] == "execution"
    )
    assert sent["id"] != asked["id"]
    assert [t.kind for t in result.new_work] == [TaskKind.ENTITY_MESSAGE, TaskKind.ENTITY_MESSAGE]
    assert run.record.waits == {asked["id"]: 1}  # the answer is an event named after the request

    run.answer(1, 5)
    done = run.run()
    assert done.finished and json.loads(run.record.output or "") == [5]
    [raised] = [e for e in done.new_history if e["EventType"] == EventType.EVENT_RAISED]
    assert raised["Name"] == asked["id"]


def test_an_entity_error_answer_raises_in_the_orchestrator(core: FunctionIndex) -> None:
    run = Episodes.start(core, "script", [["call_entity", "counter_entity", "c", "get"]])
    run.run()
    run.answer(0, "no such operation", error=True)
    run.run()
    assert json.loads(run.record.output or "") == [{"failed": "no such operation"}]


def test_a_fan_out_completed_out_of_order_returns_results_in_argument_order(core: FunctionIndex) -> None:
    run = Episodes.start(core, "fan_out", 5)
    run.run()
    assert [t for t, _, _ in run.new_work()] == [0, 1, 2, 3, 4]
    # Five results in two episodes, out of order (protocol §2.3: matched by id, not by order).
    for task_id in (3, 1):
        run.complete(task_id, task_id * task_id, after=SECOND)
    run.run()
    assert not run.last.new_work and not run.last.finished
    for task_id in (4, 0, 2):
        run.complete(task_id, task_id * task_id, after=SECOND)
    run.run()
    assert json.loads(run.record.output or "") == [0, 1, 4, 9, 16]
    # In history, completions stand in arrival order, which is what the SDK replays.
    assert _ids(run.history, EventType.TASK_COMPLETED) == [3, 1, 4, 0, 2]
    [finished] = [e for e in run.history if e["EventType"] == EventType.EXECUTION_COMPLETED]
    assert finished["EventId"] == 5


def test_completions_of_one_episode_enter_history_by_arrival_time_then_id(core: FunctionIndex) -> None:
    run = Episodes.start(core, "fan_out", 3)
    run.run()
    run.complete(2, 4, after=SECOND)
    run.complete(1, 1)  # at the same time as 2: by id
    run.complete(0, 0, after=SECOND)
    run.run()
    assert _ids(run.last.new_history, EventType.TASK_COMPLETED) == [1, 2, 0]


# ------------------------------------------------------------------ retries (§2.5)


def test_retry_succeeding_on_the_second_attempt_uses_the_hidden_ids(core: FunctionIndex) -> None:
    """ep1 attempt id0; TaskFailed(0) → TimerCreated id1 at +5 s; TimerFired(1) → TaskScheduled id2, same
    name and input; TaskCompleted(2) → the code goes on and its next action is id3 (protocol §2.5)."""
    run = Episodes.start(core, "retry", {"k": 1})
    run.run()
    expected = History("retry").started({"k": 1}).activity(0, "flaky", {"k": 1}, retry=Retry(3, 5000)).end()
    assert run.history == expected.events

    run.fail(0, "Activity function 'flaky' failed: ValueError: boom", "details", after=SECOND)
    run.run()
    retry_at = T0 + SECOND + timedelta(seconds=5)
    expected.episode(after=SECOND).failed(0, "Activity function 'flaky' failed: ValueError: boom", "details")
    expected.retry_timer(1, of=0, fire_at=retry_at).end()
    assert run.history == expected.events
    assert run.new_work() == [(1, "timer", "flaky")]

    run.fire(1)
    run.run()
    expected.episode(at=retry_at).fired(1).retry_attempt(2, "flaky", {"k": 1}, of=0).end()
    assert run.history == expected.events
    assert run.new_work() == [(2, "activity", "flaky")]
    attempt = run.last.new_work[0]
    assert attempt.retry is not None and (attempt.retry.chain_id, attempt.retry.attempt) == (0, 2)

    run.complete(2, "ok", after=SECOND)
    run.run()
    expected.episode(after=SECOND).completed(2, "ok").activity(3, "hello", "after").end()
    assert run.history == expected.events

    run.complete(3, "Hello after!")
    run.run()
    assert json.loads(run.record.output or "") == ["ok", "Hello after!"]


def test_exhausted_retries_take_ids_0_to_4_then_the_dummy_timer_5(core: FunctionIndex) -> None:
    run = Episodes.start(core, "retry", None)
    run.run()
    expected = History("retry").started(None).activity(0, "flaky", None, retry=Retry(3, 5000))
    for attempt, (task, timer) in enumerate([(0, 1), (2, 3)], start=1):
        run.fail(task, f"boom {attempt}", after=SECOND)
        run.run()
        due = run.now + timedelta(seconds=5)
        expected.episode(at=run.now).failed(task, f"boom {attempt}").retry_timer(timer, of=0, fire_at=due)
        run.fire(timer)
        run.run()
        expected.episode(at=due).fired(timer).retry_attempt(timer + 1, "flaky", None, of=0)
    run.fail(4, "boom 3", "the details", after=SECOND)
    run.run()
    # DTFx's "dummy timer for back-compat" after the last attempt fires at once (RetryInterceptor).
    expected.episode(at=run.now).failed(4, "boom 3", "the details").retry_timer(5, of=0, fire_at=run.now)
    assert comparable(run.history) == expected.end().events
    assert run.state.tasks[5].final_retry_timer
    run.fire(5)
    run.run()
    # The user sees Exception(f"{Reason} \n {Details}") of the last failure (protocol §2.5, §1.4 row 6).
    message = "Orchestrator function 'retry' failed: boom 3 \n the details"
    expected.episode(at=run.now).fired(5).failed_execution(message).end()
    assert run.history == expected.events
    assert run.record.status is RuntimeStatus.FAILED and json.loads(run.record.output or "") == message
    [done] = [e for e in run.history if e["EventType"] == EventType.EXECUTION_COMPLETED]
    assert done["EventId"] == 6


@pytest.mark.parametrize(
    "failure_first", [True, False], ids=["failure-arrives-first", "completion-arrives-first"]
)
def test_hidden_ids_come_before_the_ids_of_actions_of_the_same_episode(
    core: FunctionIndex, failure_first: bool
) -> None:
    """§2.5 host ordering rule: a failed retry attempt allocates its timer's id when the SDK processes it,
    so it goes into history before the completion that resumes the code, whatever their arrival order."""
    steps = [["any", [["retry", "flaky", None, 1000, 3], ["activity", "quick"]]], ["activity", "next"]]
    run = Episodes.start(core, "script", steps)
    run.run()
    assert [t for t, _, _ in run.new_work()] == [0, 1]
    if failure_first:
        run.fail(0, "boom", after=SECOND)
        run.complete(1, "fast", after=SECOND)
    else:
        run.complete(1, "fast", after=SECOND)
        run.fail(0, "boom", after=SECOND)
    result = run.run()
    assert [(e["EventType"], e["EventId"], e.get("TaskScheduledId")) for e in result.new_history[1:-1]] == [
        (EventType.TASK_FAILED, -1, 0),
        (EventType.TASK_COMPLETED, -1, 1),
        (EventType.TIMER_CREATED, 2, None),
        (EventType.TASK_SCHEDULED, 3, None),
    ]
    # The SDK agrees: the completion of id 3 reaches "next", not the retry timer.
    run.complete(3, "then")
    run.run()
    assert json.loads(run.record.output or "") == [1, "then"]


def test_two_chains_failing_and_firing_in_one_episode_take_hidden_ids_in_chain_order(
    core: FunctionIndex,
) -> None:
    """Pure allocating events go first, by task id, and the SDK allocates in history order (§2.5): both
    chains' timers, then both chains' next attempts, and each attempt's result reaches its own chain."""
    steps = [["all", [["retry", "left", None, 1000, 3], ["retry", "right", None, 1000, 3]]]]
    run = Episodes.start(core, "script", steps)
    run.run()
    run.fail(1, "right failed", after=SECOND)  # the later chain's failure arrives first
    run.fail(0, "left failed", after=SECOND)
    result = run.run()
    assert [(e["EventType"], e.get("TaskScheduledId", e["EventId"])) for e in result.new_history[1:-1]] == [
        (EventType.TASK_FAILED, 0),
        (EventType.TASK_FAILED, 1),
        (EventType.TIMER_CREATED, 2),
        (EventType.TIMER_CREATED, 3),
    ]
    assert [(t.task_id, t.name) for t in result.new_work] == [(2, "left"), (3, "right")]
    run.fire(3)
    run.fire(2)
    result = run.run()
    assert [(t.task_id, t.name) for t in result.new_work] == [(4, "left"), (5, "right")]
    run.complete(5, "R")
    run.complete(4, "L")
    run.run()
    assert json.loads(run.record.output or "") == [["L", "R"]]


def test_a_retry_timer_firing_with_a_completion_gives_the_attempt_the_first_id(core: FunctionIndex) -> None:
    steps = [["any", [["retry", "flaky", None, 1000, 3], ["activity", "quick"]]], ["activity", "next"]]
    run = Episodes.start(core, "script", steps)
    run.run()
    run.fail(0, "boom")
    run.run()
    assert run.new_work() == [(2, "timer", "flaky")]
    run.fire(2)
    run.complete(1, "fast")  # in the same episode: the code resumes and schedules "next"
    result = run.run()
    assert [(t.task_id, t.name) for t in result.new_work] == [(3, "flaky"), (4, "next")]
    run.complete(4, "then")
    run.run()
    assert json.loads(run.record.output or "") == [1, "then"]


def test_a_sub_orchestration_retry_gives_each_unnamed_attempt_its_own_child_id(core: FunctionIndex) -> None:
    run = Episodes.start(core, "sub_retry", 21)
    run.run()
    assert run.last.new_work[0].child_instance_id == "execution:0"
    run.fail(0, "Sub-orchestration 'child' failed", after=SECOND)
    run.run()
    assert run.new_work() == [(1, "timer", "child")]
    run.fire(1)
    run.run()
    [attempt] = run.last.new_work
    assert (attempt.task_id, attempt.kind, attempt.child_instance_id) == (
        2,
        TaskKind.SUB_ORCHESTRATION,
        "execution:2",
    )
    created = run.last.new_history[-2]
    assert (created["EventType"], created["EventId"], created["InstanceId"]) == (
        EventType.SUB_ORCHESTRATION_CREATED,
        2,
        "execution:2",
    )
    run.complete(2, 42)
    run.run()
    assert json.loads(run.record.output or "") == 42


# ------------------------------------------------------------------ timers


def test_a_timer_fires_at_its_time_and_the_episode_is_stamped_no_earlier(core: FunctionIndex) -> None:
    run = Episodes.start(core, "sleeper", 300)
    run.run()
    due = T0 + timedelta(seconds=300)
    assert run.history[2]["FireAt"] == format_timestamp(due)
    run.fire(0)
    run.now = T0 + SECOND  # the clock lags behind the timer (a skewed host): the episode may not
    run.run()
    expected = History("sleeper").started(300).timer(0, due).episode(at=due).fired(0)
    expected.completed_execution(due.isoformat()).end()
    assert run.history == expected.events
    assert parse_timestamp(run.last.new_history[0]["Timestamp"]) == due


@pytest.mark.parametrize("days", [7, 14, 30])
def test_a_long_timer_is_one_durable_timer(core: FunctionIndex, days: int) -> None:
    """durablehost sends no timer limits (§1.2, §2.6), so the SDK never slices: one id, one TimerCreated."""
    run = Episodes.start(core, "sleeper", days * 86400)
    run.run()
    due = T0 + timedelta(days=days)
    assert [(t.task_id, t.fire_at) for t in run.last.new_work] == [(0, due)]
    run.fire(0)
    run.run()
    assert run.record.status is RuntimeStatus.COMPLETED
    assert json.loads(run.record.output or "") == due.isoformat()


def test_a_long_timer_is_sliced_as_azure_storage_does_in_azure_fidelity(core: FunctionIndex) -> None:
    """7 days, max 6 d, interval 3 d: timers +3 d (id 0), then the fire time itself, +7 d (id 1) (§2.6)."""
    run = Episodes.start(core, "sleeper", 7 * 86400, fidelity=Fidelity.AZURE)
    run.run()
    assert [(t.task_id, t.fire_at) for t in run.last.new_work] == [(0, T0 + timedelta(days=3))]
    run.fire(0)
    run.run()
    assert [(t.task_id, t.fire_at) for t in run.last.new_work] == [(1, T0 + timedelta(days=7))]
    assert not run.last.finished
    run.fire(1)
    run.run()
    assert json.loads(run.record.output or "") == (T0 + timedelta(days=7)).isoformat()
    assert _ids(run.history, EventType.TIMER_CREATED) == [0, 1]


def test_the_winning_event_cancels_the_deadline(core: FunctionIndex) -> None:
    run = Episodes.start(core, "race", 24)
    run.run()
    assert run.record.waits == {"approval": 1}
    run.raise_event("approval", {"by": "alice"}, after=SECOND)
    result = run.run()
    assert json.loads(run.record.output or "") == {"approved": {"by": "alice"}}
    # task_any's loser is cancelled (§2.4): the timer row is written back as canceled, no new work.
    assert [(t.task_id, t.state) for t in result.canceled] == [(0, TaskState.CANCELED)]
    assert result.tasks_to_write == result.canceled and not result.new_work
    assert run.record.waits == {}


def test_the_deadline_wins_when_no_event_came(core: FunctionIndex) -> None:
    run = Episodes.start(core, "race", 2)
    run.run()
    run.fire(0)
    result = run.run()
    assert json.loads(run.record.output or "") == {"expired": True}
    assert not result.canceled and run.record.waits == {}
    assert parse_timestamp(result.new_history[0]["Timestamp"]) == T0 + timedelta(hours=2)


def test_a_losing_timer_the_code_does_not_cancel_stays_scheduled(core: FunctionIndex) -> None:
    steps = [["any", [["wait", "go"], ["timer", 3600]]], ["activity", "after"]]
    run = Episodes.start(core, "script", steps)
    run.run()
    run.raise_event("go", 1, after=SECOND)
    result = run.run()
    # The script does not cancel its loser: the timer stays scheduled, and "after" takes id 1.
    assert not result.canceled
    assert run.new_work() == [(1, "activity", "after")]
    assert run.state.tasks[0].state is TaskState.SCHEDULED


# ------------------------------------------------------------------ external events (§3 surprise 5)


def test_events_are_delivered_one_per_outstanding_wait_in_arrival_order(core: FunctionIndex) -> None:
    run = Episodes.start(core, "script", [["wait", "step"], ["wait", "step"]])
    first = run.raise_event("step", "a")  # both arrive before anything waits
    second = run.raise_event("step", "b", after=SECOND)
    run.run()
    assert not run.last.delivered and run.record.waits == {"step": 1}
    run.run()
    assert run.last.delivered == [first]  # one per wait: "b" stays in the inbox
    assert run.state.events == [second]
    assert run.record.waits == {"step": 1}
    run.run()
    assert run.last.delivered == [second]
    assert json.loads(run.record.output or "") == ["a", "b"]
    raised = [e for e in run.history if e["EventType"] == EventType.EVENT_RAISED]
    assert [(e["Name"], e["Input"], e["DhInboxKey"]) for e in raised] == [
        ("step", '"a"', first.row_key),
        ("step", '"b"', second.row_key),
    ]


def test_an_event_nobody_waits_for_stays_in_the_inbox(core: FunctionIndex) -> None:
    run = Episodes.start(core, "script", [["wait", "go"], ["activity", "x"]])
    run.run()
    stray = run.raise_event("other", 1)
    go = run.raise_event("go", 2)
    result = run.run()
    assert result.delivered == [go]
    assert run.state.events == [stray]
    assert run.state.deliverable_events() == [] and not run.state.has_work()


@pytest.mark.filterwarnings("ignore:Potential duplicate Task completion")  # the SDK's, on the early events
@pytest.mark.parametrize(
    ("fidelity", "output"), [(Fidelity.DURABLEHOST, ["X", "a", "b"]), (Fidelity.AZURE, ["X", "b", "b"])]
)
def test_early_events_are_held_back_unless_azure_fidelity_appends_them_as_they_arrive(
    core: FunctionIndex, fidelity: Fidelity, output: list[str]
) -> None:
    """Two events raised while the code waits for an activity. durablehost keeps them until a wait is
    open; the extension appends every EventRaised at once, and the SDK then hands the last early event
    to every later wait of its name (protocol §3 surprise 5, fidelity.py, azure-functions-durable-python
    #507)."""
    run = Episodes.start(
        core, "script", [["activity", "x"], ["wait", "step"], ["wait", "step"]], fidelity=fidelity
    )
    run.run()
    run.raise_event("step", "a", after=SECOND)
    run.raise_event("step", "b", after=SECOND)
    run.run()
    assert len(run.last.delivered) == (2 if fidelity is Fidelity.AZURE else 0)
    run.complete(0, "X", after=SECOND)
    while not run.record.status.is_finished:
        run.run()
    assert json.loads(run.record.output or "") == output


@pytest.mark.parametrize(("event_first", "winner"), [(True, 0), (False, 1)])
def test_an_event_and_a_fired_timer_of_one_episode_enter_history_in_arrival_order(
    core: FunctionIndex, event_first: bool, winner: int
) -> None:
    run = Episodes.start(core, "script", [["any", [["wait", "go"], ["timer", 60]]]])
    run.run()
    due = T0 + timedelta(seconds=60)
    if event_first:
        run.raise_event("go", "yes", after=timedelta(seconds=30))
        run.fire(0)
    else:
        run.fire(0)
        run.raise_event("go", "yes", after=SECOND)
    result = run.run()
    inbound = [e["EventType"] for e in result.new_history[1:3]]
    order = [EventType.EVENT_RAISED, EventType.TIMER_FIRED]
    assert inbound == (order if event_first else order[::-1])
    assert json.loads(run.record.output or "") == [winner]
    assert parse_timestamp(result.new_history[0]["Timestamp"]) >= due


# ------------------------------------------------------------------ continue-as-new, failure, status


def test_continue_as_new_ends_the_execution_without_completing_it(core: FunctionIndex) -> None:
    run = Episodes.start(core, "counter", 0)
    run.run()
    run.complete(0, "Hello 0!")
    result = run.run()
    assert result.continued and not result.finished
    assert result.continue_as_new_input == "1"
    assert EventType.EXECUTION_COMPLETED not in [e["EventType"] for e in run.history]
    assert run.record.status is RuntimeStatus.RUNNING
    assert not result.new_work
    # ContinueAsNew takes an id of its own (protocol §2.3, _record_fire_and_forget_action).
    assert run.record.next_task_id == 2


def test_the_last_generation_completes_normally(core: FunctionIndex) -> None:
    run = Episodes.start(core, "counter", 2, execution_id="generation-3")
    run.run()
    run.complete(0, "Hello 2!")
    result = run.run()
    assert result.finished and not result.continued
    assert json.loads(run.record.output or "") == 2


def test_an_orchestrator_that_raises_fails_with_the_extension_message(core: FunctionIndex) -> None:
    run = Episodes.start(core, "raises")
    run.run()
    run.complete(0, "Hello x!", after=SECOND)
    result = run.run()
    message = "Orchestrator function 'raises' failed: orchestrator exploded"
    expected = History("raises").started().activity(0, "hello", "x").episode(after=SECOND)
    expected.completed(0, "Hello x!").failed_execution(message).end()
    assert run.history == expected.events
    assert result.finished and not result.new_work
    assert run.record.status is RuntimeStatus.FAILED
    assert json.loads(run.record.output or "") == message
    assert run.record.completed_time == T0 + SECOND
    # The user's traceback, split from $OutOfProcData$ (protocol §1.3), for the failure details.
    assert (
        result.failure_details is not None and "RuntimeError: orchestrator exploded" in result.failure_details
    )


def test_a_failure_in_the_first_episode_schedules_nothing(core: FunctionIndex) -> None:
    run = Episodes.start(core, "script", [["raise", "at once"]])
    result = run.run()
    assert kinds(result.new_history) == [
        "ORCHESTRATOR_STARTED",
        "EXECUTION_STARTED",
        "EXECUTION_COMPLETED",
        "ORCHESTRATOR_COMPLETED",
    ]
    assert json.loads(run.record.output or "") == "Orchestrator function 'script' failed: at once"


def test_the_custom_status_is_the_value_after_each_episode(core: FunctionIndex) -> None:
    steps = [["status", {"step": 1}], ["activity", "a"], ["status", {"step": 2}], ["activity", "b"]]
    run = Episodes.start(core, "script", steps)
    run.run()
    assert run.record.custom_status == json.dumps({"step": 1})
    run.complete(0, None)
    run.run()
    assert run.record.custom_status == json.dumps({"step": 2})


@pytest.mark.parametrize("falsy", [0, "", {}, []])
def test_a_falsy_custom_status_clears_it(core: FunctionIndex, falsy: Any) -> None:
    """The SDK leaves customStatus out when it is falsy (protocol §1.3, §3 surprise 8)."""
    run = Episodes.start(
        core, "script", [["status", "busy"], ["activity", "a"], ["status", falsy], ["activity", "b"]]
    )
    run.run()
    assert run.record.custom_status == '"busy"'
    run.complete(0, None)
    run.run()
    assert run.record.custom_status is None


# ------------------------------------------------------------------ time and replay


def _new_uuid(instance_id: str, moment: datetime, counter: int) -> str:
    """new_uuid as protocol §1.6 gives it."""
    namespace = uuid.uuid5(uuid.NAMESPACE_OID, "9e952958-5e33-4daf-827f-2fa12937b875")
    return str(uuid.uuid5(namespace, f"{instance_id}_{moment:%Y-%m-%dT%H:%M:%S.%fZ}_{counter}"))


def test_the_code_sees_the_time_of_the_episode_that_resumed_it_and_stable_uuids(core: FunctionIndex) -> None:
    run = Episodes.start(core, "clock", instance_id="clocked")
    run.run()
    run.complete(0, None, after=timedelta(minutes=1))
    run.run()
    second = run.now
    run.fire(1)
    run.run()
    fired = second + timedelta(minutes=5)
    assert json.loads(run.record.output or "") == [
        [T0.isoformat(), _new_uuid("clocked", T0, 0)],
        [second.isoformat(), _new_uuid("clocked", second, 1)],
        [fired.isoformat(), _new_uuid("clocked", fired, 2)],
    ]


def test_an_episode_run_again_decides_exactly_the_same(core: FunctionIndex) -> None:
    """An episode whose commit failed (a crash, an ETag conflict) runs again on the same state: it must
    write the same events with the same ids, and send an entity the same request id, so that the
    message, if it went out before, is recognised as the same request."""
    steps = [["activity", "a"], ["all", [["call_entity", "counter_entity", "c", "get"], ["timer", 60]]]]
    run = Episodes.start(core, "script", steps)
    run.run()
    run.complete(0, "A", after=SECOND)
    state = run.state.snapshot()
    first = run_episode(state.snapshot(), core, run.now)
    again = run_episode(state.snapshot(), core, run.now)
    assert first.new_history == again.new_history
    assert [(e["EventType"], e["EventId"]) for e in first.new_history[2:-1]] == [
        (EventType.EVENT_SENT, 1),
        (EventType.TIMER_CREATED, 2),
    ]
    assert first.record == again.record
    assert run.state.history == state.history  # running it changed nothing it was given


def _timer_state(*fire_at_offsets: int) -> InstanceState:
    history = History("script").started(None)
    for task_id, offset in enumerate(fire_at_offsets):
        history.timer(task_id, timedelta(seconds=offset))
    return history.state()


def test_episode_timestamp_is_the_clock_when_nothing_is_later() -> None:
    state = _timer_state(60)
    assert episode_timestamp(state, T0 + SECOND) == T0 + SECOND


def test_episode_timestamp_never_goes_back_before_the_last_episode() -> None:
    state = _timer_state()
    assert episode_timestamp(state, T0 - timedelta(hours=1)) == T0


def test_episode_timestamp_is_at_or_after_every_timer_it_fires() -> None:
    state = _timer_state(60, 3600, 7200)
    for task_id in (0, 1):  # two fired, the third still waiting
        state.tasks[task_id].state = TaskState.COMPLETED
    assert episode_timestamp(state, T0 + SECOND) == T0 + timedelta(seconds=3600)


def test_episode_timestamp_ignores_timers_fired_in_earlier_episodes() -> None:
    history = (
        History("script").started(None).timer(0, timedelta(days=1)).episode(after=timedelta(days=1)).fired(0)
    )
    assert episode_timestamp(history.state(), T0 + SECOND) == T0 + timedelta(days=1)  # the last episode
    assert episode_timestamp(history.state(), T0 + timedelta(days=2)) == T0 + timedelta(days=2)


# ------------------------------------------------------------------ built histories


def test_run_episode_continues_a_built_history(core: FunctionIndex) -> None:
    """The history of a chain at its second step, written by hand: the next episode schedules id 2."""
    built = (
        History("chain", instance_id="by-hand")
        .started(["a", "b", "c"])
        .activity(0, "hello", "a")
        .episode(after=SECOND)
        .completed(0, "A")
        .activity(1, "hello", "b")
    )
    run = Episodes.resume(core, built)
    run.complete(1, "B", after=SECOND)
    result = run.run()
    built.episode(at=run.now).completed(1, "B").activity(2, "hello", "c").end()
    assert run.history == built.events
    assert run.new_work() == [(2, "activity", "hello")]
    assert result.record.history_count == len(built.events)


def _same_state(built: InstanceState, engine: InstanceState) -> None:
    fields = ("history_count", "next_task_id", "action_count", "waits", "status", "input", "output")
    assert {f: getattr(built.record, f) for f in fields} == {f: getattr(engine.record, f) for f in fields}
    assert built.history == comparable(engine.history)
    keys = ["kind", "name", "input", "state", "result", "reason", "fire_at", "child_instance_id", "retry"]
    keys += ["final_retry_timer", "consumed", "history_seq"]
    assert {t: {k: getattr(r, k) for k in keys} for t, r in built.tasks.items()} == {
        t: {k: getattr(r, k) for k in keys} for t, r in engine.tasks.items()
    }


def test_the_builders_state_is_the_engines_for_a_chain(core: FunctionIndex) -> None:
    """History.state() agrees with the state the engine keeps (counters, waits, task rows), so a test
    that starts from a built history starts where the engine would be."""
    run = Episodes.start(core, "chain", ["x", "y"])
    run.run()
    run.complete(0, "X")
    run.run()
    built = History("chain").started(["x", "y"]).activity(0, "hello", "x").episode().completed(0, "X")
    _same_state(built.activity(1, "hello", "y").state(), run.state)


def test_the_builders_state_is_the_engines_for_a_retry_chain(core: FunctionIndex) -> None:
    run = Episodes.start(core, "retry", None)
    run.run()
    for task_id in (0, 2, 4):
        run.fail(task_id, "boom")
        run.run()
        if task_id < 4:
            run.fire(task_id + 1)
            run.run()
    built = History("retry").started(None).activity(0, "flaky", None, retry=Retry(3, 5000))
    due = T0
    for task_id in (0, 2):
        built.episode(at=due).failed(task_id, "boom")
        due = built.now + timedelta(seconds=5)
        built.retry_timer(task_id + 1, of=0, fire_at=due).episode(at=due).fired(task_id + 1)
        built.retry_attempt(task_id + 2, "flaky", None, of=0)
    built.episode().failed(4, "boom").retry_timer(5, of=0, fire_at=due)
    _same_state(built.state(), run.state)
    assert run.state.tasks[5].final_retry_timer and not run.state.tasks[3].final_retry_timer


def test_the_builders_state_is_the_engines_for_waits_and_a_child(core: FunctionIndex) -> None:
    steps = [["wait", "a"], ["sub", "child", 1], ["wait", "a"], ["wait", "b"]]
    run = Episodes.start(core, "script", steps)
    run.run()
    run.raise_event("a", 1)
    run.run()
    run.complete(0, 2)
    run.run()
    built = (
        History("script").started(steps).wait("a").episode().raised("a", 1).sub_orchestration(0, "child", 1)
    )
    built.episode().sub_completed(0, 2).wait("a")
    state = built.state()
    _same_state(state, run.state)
    assert state.record.waits == {"a": 1}


# ------------------------------------------------------------------ what the code receives


@pytest.mark.parametrize("step", [["activity", "flaky"], ["sub", "child", 1]], ids=["activity", "sub"])
def test_a_failed_task_raises_reason_and_details_in_the_code(core: FunctionIndex, step: list[Any]) -> None:
    """TaskFailed and SubOrchestrationInstanceFailed become Exception(f"{Reason} \\n {Details}") (§1.4)."""
    run = Episodes.start(core, "script", [step])
    run.run()
    run.fail(0, "Activity function 'flaky' failed: ValueError: boom", '{"stack": "…"}')
    result = run.run()
    failed = result.new_history[1]
    expected = EventType.TASK_FAILED if step[0] == "activity" else EventType.SUB_ORCHESTRATION_FAILED
    assert (failed["EventType"], failed["TaskScheduledId"]) == (expected, 0)
    assert (failed["Reason"], failed["Details"]) == (
        "Activity function 'flaky' failed: ValueError: boom",
        '{"stack": "…"}',
    )
    assert json.loads(run.record.output or "") == [
        {"failed": 'Activity function \'flaky\' failed: ValueError: boom \n {"stack": "…"}'}
    ]


def test_a_sub_orchestrations_result_reaches_the_code(core: FunctionIndex) -> None:
    run = Episodes.start(core, "parent", 4)
    run.run()
    run.complete(0, {"doubled": 8})
    result = run.run()
    completed = result.new_history[1]
    assert (completed["EventType"], completed["TaskScheduledId"], completed["Result"]) == (
        EventType.SUB_ORCHESTRATION_COMPLETED,
        0,
        '{"doubled": 8}',
    )
    assert json.loads(run.record.output or "") == {"doubled": 8}


def test_an_http_response_reaches_the_code_as_a_dict(core: FunctionIndex) -> None:
    run = Episodes.start(core, "script", [["http", "POST", "https://example.com/api"]])
    run.run()
    [task] = run.last.new_work
    assert (task.kind, task.name) == (TaskKind.HTTP, "BuiltIn::HttpActivity")
    request = json.loads(task.input or "")  # the action's httpRequest, as the SDK serialised it
    assert (request["method"], request["uri"]) == ("POST", "https://example.com/api")
    response = {"statusCode": 201, "headers": {"Location": "/x"}, "content": '{"ok": true}'}
    run.complete(0, response)
    run.run()
    assert json.loads(run.record.output or "") == [response]


def test_task_all_fails_at_its_first_failure_with_others_still_running(core: FunctionIndex) -> None:
    """§2.4: the first failed child fails task_all at once; the code goes on (here it returns) and the
    instance finishes with tasks never completed, which start no work."""
    steps = [["all", [["activity", "square", n] for n in range(4)]]]
    run = Episodes.start(core, "script", steps)
    run.run()
    run.complete(0, 0)
    run.fail(2, "two failed")
    result = run.run()
    assert result.finished and not result.new_work
    assert json.loads(run.record.output or "") == [{"failed": "two failed \n None"}]
    assert {t: run.state.tasks[t].state for t in (1, 3)} == {1: TaskState.SCHEDULED, 3: TaskState.SCHEDULED}


def test_a_deadline_cancelled_while_the_code_goes_on_is_written_back_with_the_next_task(
    core: FunctionIndex,
) -> None:
    run = Episodes.start(core, "approve_then_act")
    run.run()
    run.raise_event("approval", "yes", after=SECOND)
    result = run.run()
    assert [(t.task_id, t.state) for t in result.canceled] == [(0, TaskState.CANCELED)]
    assert [(t.task_id, t.state) for t in result.new_work] == [(1, TaskState.SCHEDULED)]
    assert sorted((t.task_id, t.state) for t in result.tasks_to_write) == [
        (0, TaskState.CANCELED),
        (1, TaskState.SCHEDULED),
    ]
    # The cancellation leaves no event: TimerCreated(0) stays, nothing else is written for it.
    assert [e["EventType"] for e in result.new_history[1:-1]] == [
        EventType.EVENT_RAISED,
        EventType.TASK_SCHEDULED,
    ]
    run.complete(1, "done")
    run.run()
    assert json.loads(run.record.output or "") == [True, "done"]


def test_a_timer_created_already_cancelled_starts_no_work(core: FunctionIndex) -> None:
    """Azure fidelity delivers an early event in the first episode, so the deadline is created and
    cancelled in the same run: it is recorded (TimerCreated, canceled) but never armed."""
    run = Episodes.start(core, "approve_then_act", fidelity=Fidelity.AZURE)
    run.raise_event("approval", "early")
    result = run.run()
    timer = next(t for t in result.tasks_to_write if t.task_id == 0)
    assert timer.kind is TaskKind.TIMER and timer.state is TaskState.CANCELED
    assert [t.task_id for t in result.new_work if t.state is TaskState.SCHEDULED] == [1]
    assert _ids(result.new_history, EventType.TIMER_CREATED) == [0]


# ------------------------------------------------------------------ versions


def test_the_instance_version_is_in_execution_started_and_context_version(core: FunctionIndex) -> None:
    run = Episodes.start(core, "script", [["version"]], version="1.5")
    run.run()
    assert run.history[1]["Version"] == "1.5"
    assert json.loads(run.record.output or "") == ["1.5"]


@pytest.mark.parametrize(
    ("step", "version"),
    [
        (["sub", "child", 1], "2.0"),  # none named: the app's defaultVersion
        (["sub", "child", 1, None, "3.1"], "3.1"),  # named: as named
    ],
)
def test_a_child_gets_the_default_version_unless_the_code_names_one(
    core: FunctionIndex, step: list[Any], version: str
) -> None:
    run = Episodes.start(core, "script", [step], version="1.0")
    result = run.run(default_version="2.0")
    created = result.new_history[2]
    assert (created["EventType"], created["Version"]) == (EventType.SUB_ORCHESTRATION_CREATED, version)
    assert result.new_work[0].version == version
