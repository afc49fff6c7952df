"""Rewinding a failed instance: its failed tasks run again, the rest of its history stands.

Failures are replaced by GenericEvents, which the SDK ignores, so no sequence id moves (protocol §1.4,
§2.3). A retry chain that ran out of attempts gets its last attempt back: the attempt's TaskFailed and
the "dummy" back-compat timer the SDK allocated for it (§2.5) are neutralised together, and the id that
timer took is handed back; that is only sound when nothing was scheduled after it, so otherwise the
rewind is refused rather than desynchronising ids.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from durablehost.engine.history import EventType, HistoryEvent, generic, neutralized
from durablehost.engine.partition import LoadedInstance
from durablehost.engine.records import InstanceRecord, RuntimeStatus, TaskKind, TaskRecord, TaskState
from durablehost.errors import RewindRefused

_FAILURES = (EventType.TASK_FAILED, EventType.SUB_ORCHESTRATION_FAILED)


@dataclass
class RewindPlan:
    record: InstanceRecord
    history: list[HistoryEvent]
    reset_tasks: list[TaskRecord]
    removed_rows: list[str]
    failed_children: list[str]


def plan_rewind(loaded: LoadedInstance, ts: datetime, reason: str) -> RewindPlan:
    record = replace(loaded.record)
    tasks = loaded.tasks
    dummy_timers = {
        t.task_id: t for t in tasks.values() if t.kind is TaskKind.TIMER and t.final_retry_timer and t.retry
    }
    last_attempts = {timer.task_id: _attempt_before(tasks, timer) for timer in dummy_timers.values()}
    rewound_attempts = {attempt.task_id for attempt in last_attempts.values() if attempt is not None}
    for timer_id in dummy_timers:
        if timer_id != record.next_task_id - 1:
            raise RewindRefused(
                record.instance_id,
                f"cannot rewind {record.instance_id!r}: work was scheduled after a retry chain ran out of "
                f"attempts (its final timer is task {timer_id}), so giving the attempt back would move "
                "sequence ids",
            )
    history: list[HistoryEvent] = []
    reset: dict[int, TaskRecord] = {}
    for event in loaded.history:
        kind = event["EventType"]
        if kind == EventType.EXECUTION_COMPLETED:
            history.append(neutralized(event, ts, reason))
            continue
        if kind in _FAILURES:
            task = tasks.get(int(event["TaskScheduledId"]))
            if task is not None and (task.retry is None or task.task_id in rewound_attempts):
                history.append(neutralized(event, ts, reason))
                reset[task.task_id] = replace(
                    task, state=TaskState.SCHEDULED, result=None, reason=None, details=None, consumed=False
                )
                continue
        if kind in (EventType.TIMER_CREATED, EventType.TIMER_FIRED):
            timer_id = int(event["EventId"] if kind == EventType.TIMER_CREATED else event["TimerId"])
            if timer_id in dummy_timers:
                history.append(neutralized(event, ts, reason))
                continue
        history.append(event)
    # A marker at the end: history that does not end with OrchestratorCompleted asks for an episode, so
    # an orchestrator that failed in its own code (no task to re-run) is replayed too.
    history.append(generic(ts, f"rewound: {reason}"))
    if dummy_timers:
        record.next_task_id -= len(dummy_timers)
    record.status = RuntimeStatus.RUNNING
    record.output = None
    record.completed_time = None
    record.last_updated_time = ts
    record.history_count = len(history)
    children = [
        t.child_instance_id
        for t in reset.values()
        if t.kind is TaskKind.SUB_ORCHESTRATION and t.child_instance_id
    ]
    return RewindPlan(
        record=record,
        history=history,
        reset_tasks=list(reset.values()),
        removed_rows=[t.row_key for t in dummy_timers.values()],
        failed_children=children,
    )


def _attempt_before(tasks: dict[int, TaskRecord], timer: TaskRecord) -> TaskRecord | None:
    for task in tasks.values():
        if task.retry == timer.retry and task.kind is not TaskKind.TIMER and task.state is TaskState.FAILED:
            return task
    return None
