"""Running the work an episode scheduled (durablehost.engine.tasks.TaskRunner) with the real functions of
tests/engine/apps/core and the real UserCode, against a recording stand-in for the dispatcher: each
task's outcome recorded once, nothing started without ownership, activity slots held until outcomes
are stored, sub-orchestration ids refused as the extension refuses them, entity messages in order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from durablehost.engine.clock import WallClock
from durablehost.engine.owed import StoreOutage
from durablehost.engine.records import InstanceRecord, Outcome, RuntimeStatus, TaskKind, TaskRecord, TaskState
from durablehost.engine.tasks import TaskRunner
from durablehost.functions import FunctionIndex, load_app
from durablehost.functions.workers import UserCode

from .conftest import APPS

NOW = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def core() -> FunctionIndex:
    return load_app(APPS / "core")


@pytest.fixture
def gates(core: FunctionIndex) -> Iterator[dict[str, Any]]:
    """The core app's gated activity: its release event and its counters, reset for each test."""
    module = core.activity("gated").function.__globals__
    module["RELEASE"].clear()
    module["RUNNING"].update(now=0, peak=0, started=0)
    yield module
    module["RELEASE"].set()


@dataclass
class Host:
    """The dispatcher as the task runner sees it (tasks.TaskHost), recording what it is asked."""

    owned: bool = True
    outcomes: list[tuple[str, int, Outcome]] = field(default_factory=list)
    created: list[InstanceRecord] = field(default_factory=list)
    sent: list[tuple[str, int]] = field(default_factory=list)
    existing: InstanceRecord | None = None  # what create_instance finds in the way
    grandparent: str | None = None
    store_outcome: asyncio.Event | None = None  # when set, recording an outcome waits for it
    send_delays: dict[int, float] = field(default_factory=dict)
    kept: list[bool] = field(default_factory=list)

    def may_start(self, instance_id: str) -> bool:
        return self.owned

    async def record_outcome(
        self, instance_id: str, execution_id: str, task_id: int, outcome: Outcome
    ) -> bool:
        if self.store_outcome is not None:
            await self.store_outcome.wait()
        self.outcomes.append((instance_id, task_id, outcome))
        return True

    async def create_instance(
        self, record: InstanceRecord, *, keep: Callable[[InstanceRecord], bool] | None = None
    ) -> InstanceRecord | None:
        self.created.append(record)
        if self.existing is not None and keep is not None:
            self.kept.append(keep(self.existing))
        return self.existing

    async def send_entity_request(self, sender: str, task: TaskRecord) -> None:
        await asyncio.sleep(self.send_delays.get(task.task_id, 0))
        self.sent.append((sender, task.task_id))

    async def parent_of(self, instance_id: str) -> str | None:
        return self.grandparent


@pytest.fixture
async def user() -> AsyncIterator[UserCode]:
    code = UserCode(orchestrator_threads=2, activity_threads=8)
    yield code
    code.shutdown()


def _runner(host: Host, core: FunctionIndex, user: UserCode, *, slots: int = 4) -> TaskRunner:
    return TaskRunner(
        host,
        core,
        user,
        WallClock(),
        max_concurrent_activities=slots,
        activity_timeout=None,
        activity_redeliveries=0,
        outage=StoreOutage(),
    )


def _task(task_id: int, kind: TaskKind, name: str, input: str | None = None, **fields: Any) -> TaskRecord:
    return TaskRecord("exec", task_id, kind, name, NOW, history_seq=task_id, input=input, **fields)


async def _idle(runner: TaskRunner) -> None:
    async with asyncio.timeout(10):
        while runner.busy:  # noqa: ASYNC110 - the runner's own tasks finish on the loop
            await asyncio.sleep(0.005)


# ------------------------------------------------------------------ activities


async def test_an_activity_runs_once_and_its_outcome_is_recorded(core: FunctionIndex, user: UserCode) -> None:
    host = Host()
    runner = _runner(host, core, user)
    task = _task(3, TaskKind.ACTIVITY, "hello", '"Tokyo"')
    runner.start("i1", task)
    runner.start("i1", task)  # already running in this process: not again
    assert runner.busy
    await _idle(runner)
    assert host.outcomes == [("i1", 3, Outcome(TaskState.COMPLETED, result='"Hello Tokyo!"'))]
    assert runner.executions == 1


async def test_a_failing_activity_records_the_extensions_reason(core: FunctionIndex, user: UserCode) -> None:
    host = Host()
    runner = _runner(host, core, user)
    runner.start("i1", _task(0, TaskKind.ACTIVITY, "flaky", "null"))
    await _idle(runner)
    [(_, _, outcome)] = host.outcomes
    assert outcome.state is TaskState.FAILED
    assert (
        outcome.reason
        == "Activity function 'flaky' failed: ValueError: flaky always fails when it really runs"
    )
    assert outcome.details is not None and "Traceback" in outcome.details


async def test_an_unknown_activity_fails_without_running_anything(
    core: FunctionIndex, user: UserCode
) -> None:
    host = Host()
    runner = _runner(host, core, user)
    runner.start("i1", _task(0, TaskKind.ACTIVITY, "no_such_activity"))
    await _idle(runner)
    [(_, _, outcome)] = host.outcomes
    assert outcome.state is TaskState.FAILED and "no_such_activity" in (outcome.reason or "")
    assert runner.executions == 0


async def test_nothing_starts_on_an_instance_this_process_does_not_own(
    core: FunctionIndex, user: UserCode
) -> None:
    host = Host(owned=False)
    runner = _runner(host, core, user)
    runner.start("i1", _task(0, TaskKind.ACTIVITY, "hello", '"x"'))
    runner.start("i1", _task(1, TaskKind.SUB_ORCHESTRATION, "child", "1", child_instance_id="c"))
    runner.start("i1", _task(2, TaskKind.ENTITY_MESSAGE, "@counter_entity@c", "{}"))
    await _idle(runner)
    assert host.outcomes == [] and host.created == [] and host.sent == [] and runner.executions == 0


async def test_a_timed_out_attempt_is_not_redelivered_once_the_instance_is_lost(
    core: FunctionIndex, user: UserCode, gates: dict[str, Any]
) -> None:
    """The ownership check comes before every attempt, not only the first: a process that lost the
    partition while an attempt hung (a pause, a hand-over) leaves the task to its new owner."""
    host = Host()
    runner = TaskRunner(
        host,
        core,
        user,
        WallClock(),
        max_concurrent_activities=4,
        activity_timeout=0.2,
        activity_redeliveries=2,
        outage=StoreOutage(),
    )
    runner.start("i1", _task(0, TaskKind.ACTIVITY, "gated", '"a"'))
    async with asyncio.timeout(10):
        while gates["RUNNING"]["started"] < 1:  # noqa: ASYNC110 - the attempt starts on a thread
            await asyncio.sleep(0.005)
    host.owned = False  # lost while the first attempt hangs past its timeout
    await _idle(runner)
    assert gates["RUNNING"]["started"] == 1 and host.outcomes == []


async def test_an_activity_waiting_for_a_thread_does_not_start_once_the_instance_is_lost(
    core: FunctionIndex, gates: dict[str, Any]
) -> None:
    """Ownership is asked again on the worker thread: a call queued behind a busy pool (here one thread,
    held by a first attempt) while the process loses the instance never runs and records nothing."""
    host = Host()
    one_thread = UserCode(orchestrator_threads=1, activity_threads=1)
    try:
        runner = _runner(host, core, one_thread)
        runner.start("i1", _task(0, TaskKind.ACTIVITY, "gated", '"first"'))
        async with asyncio.timeout(10):
            while gates["RUNNING"]["started"] < 1:  # noqa: ASYNC110 - the attempt starts on a thread
                await asyncio.sleep(0.005)
        runner.start("i1", _task(1, TaskKind.ACTIVITY, "gated", '"queued"'))
        await asyncio.sleep(0.05)  # the second call passed its first check and waits for the thread
        host.owned = False
        gates["RELEASE"].set()
        await _idle(runner)
        assert gates["RUNNING"]["started"] == 1
        assert [task_id for _, task_id, _ in host.outcomes] == [0]  # the first one's, which had started
    finally:
        one_thread.shutdown()


async def test_timers_and_finished_tasks_are_not_started(core: FunctionIndex, user: UserCode) -> None:
    host = Host()
    runner = _runner(host, core, user)
    runner.start("i1", _task(0, TaskKind.TIMER, "timer", fire_at=NOW))
    runner.start("i1", _task(1, TaskKind.ACTIVITY, "hello", '"x"', state=TaskState.COMPLETED))
    assert not runner.busy and host.outcomes == []


async def test_an_activity_slot_is_held_until_the_outcome_is_stored(
    core: FunctionIndex, user: UserCode, gates: dict[str, Any]
) -> None:
    """At most ``max_concurrent_activities`` outcomes are ever unacknowledged (tasks.py docstring)."""
    host = Host(store_outcome=asyncio.Event())
    runner = _runner(host, core, user, slots=2)
    for task_id in range(5):
        runner.start("i1", _task(task_id, TaskKind.ACTIVITY, "gated", f'"t{task_id}"'))
    gates["RELEASE"].set()  # every activity may finish at once; storing the outcomes may not
    await asyncio.sleep(0.2)
    assert gates["RUNNING"]["started"] == 2  # the other three wait for a slot
    host.store_outcome.set()
    await _idle(runner)
    assert gates["RUNNING"]["started"] == 5 and gates["RUNNING"]["peak"] <= 2
    assert sorted(task_id for _, task_id, _ in host.outcomes) == [0, 1, 2, 3, 4]


async def test_stop_cancels_the_tasks_in_flight(
    core: FunctionIndex, user: UserCode, gates: dict[str, Any]
) -> None:
    host = Host()
    runner = _runner(host, core, user)
    runner.start("i1", _task(0, TaskKind.ACTIVITY, "gated", '"x"'))
    await asyncio.sleep(0.05)
    assert runner.inflight_for(lambda instance_id: instance_id == "i1")
    await runner.stop()
    assert not runner.busy and host.outcomes == []  # never recorded: the next owner runs it again


# ------------------------------------------------------------------ sub-orchestrations


async def test_a_child_is_created_with_its_parent_and_version(core: FunctionIndex, user: UserCode) -> None:
    host = Host()
    runner = _runner(host, core, user)
    runner.start(
        "parent-1",
        _task(4, TaskKind.SUB_ORCHESTRATION, "CHILD", "21", child_instance_id="exec:4", version="2.0"),
    )
    await _idle(runner)
    [record] = host.created
    assert (record.instance_id, record.name, record.input, record.version) == ("exec:4", "child", "21", "2.0")
    assert (record.parent_instance_id, record.parent_execution_id, record.parent_task_id) == (
        "parent-1",
        "exec",
        4,
    )
    assert record.status is RuntimeStatus.PENDING
    assert host.outcomes == []  # the child's own completion records it later


@pytest.mark.parametrize(
    ("child_id", "grandparent", "message"),
    [
        ("", None, "a sub-orchestration instance id cannot be empty"),
        (
            "@counter@c",
            None,
            "sub-orchestration instance id '@counter@c' cannot start with '@' (reserved for entities)",
        ),
        (
            "parent-1",
            None,
            "sub-orchestration instance id 'parent-1' cannot be the id of its parent or grandparent",
        ),
        (
            "root",
            "root",
            "sub-orchestration instance id 'root' cannot be the id of its parent or grandparent",
        ),
    ],
)
async def test_child_ids_the_extension_refuses_fail_the_task(
    core: FunctionIndex, user: UserCode, child_id: str, grandparent: str | None, message: str
) -> None:
    host = Host(grandparent=grandparent)
    runner = _runner(host, core, user)
    runner.start("parent-1", _task(0, TaskKind.SUB_ORCHESTRATION, "child", "1", child_instance_id=child_id))
    await _idle(runner)
    assert host.outcomes == [("parent-1", 0, Outcome(TaskState.FAILED, reason=message))]
    assert host.created == []


async def test_an_unknown_child_orchestrator_fails_the_task(core: FunctionIndex, user: UserCode) -> None:
    host = Host()
    runner = _runner(host, core, user)
    runner.start("p", _task(0, TaskKind.SUB_ORCHESTRATION, "nobody", "1", child_instance_id="exec:0"))
    await _idle(runner)
    [(_, _, outcome)] = host.outcomes
    assert outcome.state is TaskState.FAILED and "nobody" in (outcome.reason or "") and host.created == []


async def test_a_child_this_task_created_before_a_crash_is_kept(core: FunctionIndex, user: UserCode) -> None:
    existing = InstanceRecord(
        "exec:0",
        "child",
        RuntimeStatus.COMPLETED,
        "x",
        NOW,
        NOW,
        parent_execution_id="exec",
        parent_task_id=0,
    )
    host = Host(existing=existing)
    runner = _runner(host, core, user)
    runner.start("p", _task(0, TaskKind.SUB_ORCHESTRATION, "child", "1", child_instance_id="exec:0"))
    await _idle(runner)
    assert host.kept == [True] and host.outcomes == []  # its result is on its way


async def test_another_instance_in_the_way_fails_the_task(core: FunctionIndex, user: UserCode) -> None:
    existing = InstanceRecord("kid", "child", RuntimeStatus.RUNNING, "x", NOW, NOW)
    host = Host(existing=existing)
    runner = _runner(host, core, user)
    runner.start("p", _task(0, TaskKind.SUB_ORCHESTRATION, "child", "1", child_instance_id="kid"))
    await _idle(runner)
    assert host.kept == [False]
    assert host.outcomes == [
        (
            "p",
            0,
            Outcome(
                TaskState.FAILED,
                reason="cannot start sub-orchestration 'child': an instance with id 'kid' already exists "
                "and is Running",
            ),
        )
    ]


# ------------------------------------------------------------------ entity messages


async def test_one_senders_entity_messages_go_out_in_order(core: FunctionIndex, user: UserCode) -> None:
    host = Host(send_delays={0: 0.05, 1: 0.0, 2: 0.02})
    runner = _runner(host, core, user)
    for task_id in range(3):
        runner.start("sender", _task(task_id, TaskKind.ENTITY_MESSAGE, "@counter_entity@c", "{}"))
    runner.start("other", _task(7, TaskKind.ENTITY_MESSAGE, "@counter_entity@c", "{}"))
    await _idle(runner)
    assert [t for s, t in host.sent if s == "sender"] == [0, 1, 2]  # the slow first is not overtaken
    assert host.sent.index(("other", 7)) < host.sent.index(("sender", 0))  # other senders don't wait
    assert sorted(t for _, t, o in host.outcomes if o.state is TaskState.COMPLETED) == [0, 1, 2, 7]
