"""History events exactly as the Durable extension sends them to the SDK (protocol §1.4).

Events are plain dicts with DTFx's PascalCase keys, because that is what crosses into the SDK's
``HistoryEvent(**e)``. Keys the SDK requires even when empty (``Version``, ``Result``, ``TimerId``)
are always present (protocol §3, surprise 4). Keys starting with ``Dh`` are durablehost's own
bookkeeping; the SDK stores unknown keys as attributes and ignores them.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

HistoryEvent = dict[str, Any]


class EventType(enum.IntEnum):
    """DTFx ``EventType`` numbering (dtfx:History/EventType.cs)."""

    EXECUTION_STARTED = 0
    EXECUTION_COMPLETED = 1
    EXECUTION_FAILED = 2
    EXECUTION_TERMINATED = 3
    TASK_SCHEDULED = 4
    TASK_COMPLETED = 5
    TASK_FAILED = 6
    SUB_ORCHESTRATION_CREATED = 7
    SUB_ORCHESTRATION_COMPLETED = 8
    SUB_ORCHESTRATION_FAILED = 9
    TIMER_CREATED = 10
    TIMER_FIRED = 11
    ORCHESTRATOR_STARTED = 12
    ORCHESTRATOR_COMPLETED = 13
    EVENT_SENT = 14
    EVENT_RAISED = 15
    CONTINUE_AS_NEW = 16
    GENERIC = 17
    HISTORY_STATE = 18
    EXECUTION_SUSPENDED = 19
    EXECUTION_RESUMED = 20


# DTFx OrchestrationStatus numbering, used in ExecutionCompleted.OrchestrationStatus.
ORCHESTRATION_STATUS_CODES = {"Completed": 1, "Failed": 3, "Terminated": 5}


def format_timestamp(moment: datetime) -> str:
    """``…Z`` with microseconds: the SDK parses it with dateutil and yields an aware datetime (§8-R2)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_timestamp(text: str) -> datetime:
    """Parse a timestamp written by format_timestamp (or any ISO-8601 form with an offset)."""
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _event(event_type: EventType, event_id: int, timestamp: datetime, **fields: Any) -> HistoryEvent:
    return {
        "EventType": int(event_type),
        "EventId": event_id,
        "IsPlayed": False,
        "Timestamp": format_timestamp(timestamp),
        **fields,
    }


def orchestrator_started(ts: datetime) -> HistoryEvent:
    return _event(EventType.ORCHESTRATOR_STARTED, -1, ts)


def orchestrator_completed(ts: datetime) -> HistoryEvent:
    return _event(EventType.ORCHESTRATOR_COMPLETED, -1, ts)


def execution_started(
    ts: datetime,
    *,
    name: str,
    input_text: str | None,
    instance_id: str,
    execution_id: str,
    parent_instance_id: str | None,
    version: str = "",
) -> HistoryEvent:
    # `Version` must exist (protocol §1.4, row 0): the SDK reads it unconditionally, as context.version.
    return _event(
        EventType.EXECUTION_STARTED,
        -1,
        ts,
        Name=name,
        Version=version,
        Input=input_text,
        OrchestrationInstance={"InstanceId": instance_id, "ExecutionId": execution_id},
        ParentInstance=(
            {"OrchestrationInstance": {"InstanceId": parent_instance_id}} if parent_instance_id else None
        ),
    )


def execution_completed(
    ts: datetime,
    event_id: int,
    status: str,
    result: str | None,
    failure_details: dict[str, Any] | None = None,
) -> HistoryEvent:
    event = _event(
        EventType.EXECUTION_COMPLETED,
        event_id,
        ts,
        OrchestrationStatus=ORCHESTRATION_STATUS_CODES[status],
        Result=result,
    )
    if failure_details is not None:
        event["FailureDetails"] = failure_details  # DTFx FailureDetails, PascalCase as DTFx writes it
    return event


def task_scheduled(ts: datetime, task_id: int, name: str, input_text: str | None) -> HistoryEvent:
    return _event(EventType.TASK_SCHEDULED, task_id, ts, Name=name, Version="", Input=input_text)


def task_completed(ts: datetime, task_id: int, result: str | None) -> HistoryEvent:
    # `Result` must be present and valid JSON text or null (protocol §1.4, row 5).
    return _event(EventType.TASK_COMPLETED, -1, ts, TaskScheduledId=task_id, Result=result)


def task_failed(ts: datetime, task_id: int, reason: str, details: str | None) -> HistoryEvent:
    return _event(EventType.TASK_FAILED, -1, ts, TaskScheduledId=task_id, Reason=reason, Details=details)


def sub_orchestration_created(
    ts: datetime, task_id: int, name: str, instance_id: str, input_text: str | None, version: str = ""
) -> HistoryEvent:
    return _event(
        EventType.SUB_ORCHESTRATION_CREATED,
        task_id,
        ts,
        Name=name,
        Version=version,
        InstanceId=instance_id,
        Input=input_text,
    )


def sub_orchestration_completed(ts: datetime, task_id: int, result: str | None) -> HistoryEvent:
    return _event(EventType.SUB_ORCHESTRATION_COMPLETED, -1, ts, TaskScheduledId=task_id, Result=result)


def sub_orchestration_failed(ts: datetime, task_id: int, reason: str, details: str | None) -> HistoryEvent:
    return _event(
        EventType.SUB_ORCHESTRATION_FAILED, -1, ts, TaskScheduledId=task_id, Reason=reason, Details=details
    )


def timer_created(ts: datetime, task_id: int, fire_at: datetime) -> HistoryEvent:
    return _event(EventType.TIMER_CREATED, task_id, ts, FireAt=format_timestamp(fire_at))


def timer_fired(ts: datetime, task_id: int, fire_at: datetime) -> HistoryEvent:
    # `TimerId` must be present (protocol §1.4, row 11).
    return _event(EventType.TIMER_FIRED, -1, ts, TimerId=task_id, FireAt=format_timestamp(fire_at))


def event_sent(ts: datetime, task_id: int, target: str, name: str, input_text: str | None) -> HistoryEvent:
    return _event(EventType.EVENT_SENT, task_id, ts, InstanceId=target, Name=name, Input=input_text)


def event_raised(ts: datetime, name: str, input_text: str | None) -> HistoryEvent:
    return _event(EventType.EVENT_RAISED, -1, ts, Name=name, Input=input_text)


def execution_terminated(ts: datetime, reason: str | None) -> HistoryEvent:
    return _event(EventType.EXECUTION_TERMINATED, -1, ts, Input=reason)


def execution_suspended(ts: datetime, reason: str | None) -> HistoryEvent:
    return _event(EventType.EXECUTION_SUSPENDED, -1, ts, Reason=reason)


def execution_resumed(ts: datetime, reason: str | None) -> HistoryEvent:
    return _event(EventType.EXECUTION_RESUMED, -1, ts, Reason=reason)


def generic(ts: datetime, data: str) -> HistoryEvent:
    """A GenericEvent (type 17), which the SDK ignores (protocol §1.4)."""
    return _event(EventType.GENERIC, -1, ts, Data=data)


def neutralized(event: HistoryEvent, ts: datetime, reason: str) -> HistoryEvent:
    """A GenericEvent standing where ``event`` was: the SDK ignores type 17 (protocol §1.4), so a rewind
    can take a failure out of history without renumbering anything. The original is kept for readers."""
    return {**_event(EventType.GENERIC, -1, ts, Data=reason), "DhRewound": event}
