"""What the engine stores about an instance, and how each record maps onto table entities.

One partition per instance (partition key = instance id) holds:

=====================  ==========================================================================
row key                what
=====================  ==========================================================================
``I``                  the instance row: status, input/output, counters. Its ETag is the
                       concurrency token of the whole partition (DTFx's sentinel row, merged with
                       its Instances row: backend-notes §4.3).
``H00000042``          history event 42 of the current execution (JSON text).
``T<exec>-00000007``   task 7 of execution <exec>: an activity attempt, timer, sub-orchestration or
                       HTTP call, with its outcome once known.
``E<ticks>-<rand>``    an inbox message waiting to be consumed (FIFO by arrival): an external event, an
                       entity request or answer, or the outcome of a task that another partition's
                       owner produced (a sub-orchestration's result).
``K<hash>``            an idempotency-key tombstone for raised events: its insert conflicts when a
                       key is raised twice, so the store drops the duplicate.
=====================  ==========================================================================

The instance row is the commit point: ``HistoryCount`` says how many history rows are committed, so
rows beyond it (written by the earlier batches of an episode that did not reach its final batch) are
ignored by readers and overwritten later.
"""

from __future__ import annotations

import enum
import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from durablehost.engine.fidelity import Fidelity
from durablehost.errors import PayloadTooLarge
from durablehost.store.base import PropertyValue

INSTANCE_ROW = "I"
HISTORY_PREFIX = "H"
TASK_PREFIX = "T"
EVENT_PREFIX = "E"
KEY_PREFIX = "K"

# A string property may hold 64 KiB as UTF-16; longer text is stored as UTF-8 bytes in 64,000-byte
# chunks (binary properties hold 64 KiB). An entity holds 1 MiB, so one value is capped well below.
_CHUNK_BYTES = 64_000
_MAX_STRING_UTF16 = 65_536
MAX_VALUE_BYTES = 900_000


class RuntimeStatus(enum.StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    COMPLETED = "Completed"
    CONTINUED_AS_NEW = "ContinuedAsNew"
    FAILED = "Failed"
    CANCELED = "Canceled"
    TERMINATED = "Terminated"
    SUSPENDED = "Suspended"

    @property
    def is_finished(self) -> bool:
        return self in (
            RuntimeStatus.COMPLETED,
            RuntimeStatus.FAILED,
            RuntimeStatus.CANCELED,
            RuntimeStatus.TERMINATED,
        )


class TaskKind(enum.StrEnum):
    ACTIVITY = "activity"
    TIMER = "timer"
    SUB_ORCHESTRATION = "suborchestration"
    HTTP = "http"
    # The outbox record of a message to a durable entity (call or signal): sending it completes it, and
    # it never adds a completion to history (a call's answer comes back as an event).
    ENTITY_MESSAGE = "entitymessage"


class TaskState(enum.StrEnum):
    SCHEDULED = "scheduled"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"


def history_row_key(seq: int) -> str:
    return f"{HISTORY_PREFIX}{seq:08d}"


def task_row_key(execution_id: str, task_id: int) -> str:
    return f"{TASK_PREFIX}{execution_id}-{task_id:08d}"


def idempotency_row_key(key: str) -> str:
    return KEY_PREFIX + hashlib.sha256(key.encode("utf-8")).hexdigest()[:40]


def put_text(props: dict[str, PropertyValue | None], name: str, text: str | None, what: str) -> None:
    """Store possibly long text under ``name``, chunked into binary properties when needed."""
    if text is None:
        props[name] = None
        return
    if len(text) * 2 <= _MAX_STRING_UTF16 or len(text.encode("utf-16-le")) <= _MAX_STRING_UTF16:
        props[name] = text
        return
    data = text.encode("utf-8")
    if len(data) > MAX_VALUE_BYTES:
        raise PayloadTooLarge(
            f"{what} is {len(data):,} bytes of JSON; durablehost stores at most {MAX_VALUE_BYTES:,} bytes "
            "per value (Azure Table storage caps an entity at 1 MiB). Pass a reference (a blob URL, a "
            "table key) instead of the data itself."
        )
    chunks = [data[i : i + _CHUNK_BYTES] for i in range(0, len(data), _CHUNK_BYTES)]
    props[name] = None
    props[f"{name}__n"] = len(chunks)
    for index, chunk in enumerate(chunks):
        props[f"{name}__{index}"] = chunk


def get_text(props: dict[str, PropertyValue], name: str) -> str | None:
    value = props.get(name)
    if isinstance(value, str):
        return value
    count = props.get(f"{name}__n")
    if isinstance(count, int) and not isinstance(count, bool):
        parts = [props[f"{name}__{index}"] for index in range(count)]
        return b"".join(p for p in parts if isinstance(p, bytes)).decode("utf-8")
    return None


def _opt_str(props: dict[str, PropertyValue], name: str) -> str | None:
    value = props.get(name)
    return value if isinstance(value, str) else None


def _opt_int(props: dict[str, PropertyValue], name: str) -> int | None:
    value = props.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _opt_time(props: dict[str, PropertyValue], name: str) -> datetime | None:
    value = props.get(name)
    return value if isinstance(value, datetime) else None


@dataclass
class InstanceRecord:
    """The instance row."""

    instance_id: str
    name: str
    status: RuntimeStatus
    execution_id: str
    created_time: datetime
    last_updated_time: datetime
    input: str | None = None
    output: str | None = None
    custom_status: str | None = None
    completed_time: datetime | None = None
    parent_instance_id: str | None = None
    parent_execution_id: str | None = None
    parent_task_id: int | None = None
    history_count: int = 0
    next_task_id: int = 0
    action_count: int = 0
    generation: int = 0
    # Outstanding WaitForExternalEvent actions per event name after the last run (protocol §3 #5).
    waits: dict[str, int] = field(default_factory=dict)
    suspended_from: RuntimeStatus | None = None
    # Durable entities (instance ids "@name@key") keep their state on the instance row.
    entity_state: str | None = None
    entity_exists: bool = False
    # The orchestration version, fixed at creation and kept across continue-as-new (ExecutionStarted
    # Version); "" for an unversioned instance (durablehost.engine.versioning).
    version: str = ""
    # How its episodes are built, fixed at creation so its history replays as it was made (fidelity.py).
    fidelity: Fidelity = Fidelity.DURABLEHOST
    etag: str | None = None

    @property
    def is_entity(self) -> bool:
        return self.instance_id.startswith("@")

    def to_properties(self) -> dict[str, PropertyValue | None]:
        props: dict[str, PropertyValue | None] = {
            "Name": self.name,
            "EntityExists": self.entity_exists,
            "RuntimeStatus": self.status.value,
            "ExecutionId": self.execution_id,
            "CreatedTime": self.created_time,
            "LastUpdatedTime": self.last_updated_time,
            "CompletedTime": self.completed_time,
            "ParentInstanceId": self.parent_instance_id,
            "ParentExecutionId": self.parent_execution_id,
            "ParentTaskId": self.parent_task_id,
            "HistoryCount": self.history_count,
            "NextTaskId": self.next_task_id,
            "ActionCount": self.action_count,
            "Generation": self.generation,
            "Waits": json.dumps(self.waits, sort_keys=True),
            "SuspendedFrom": self.suspended_from.value if self.suspended_from else None,
            "Version": self.version or None,
            "Fidelity": self.fidelity.value if self.fidelity is not Fidelity.DURABLEHOST else None,
        }
        put_text(props, "Input", self.input, "the orchestration input")
        put_text(props, "Output", self.output, "the orchestration output")
        put_text(props, "CustomStatus", self.custom_status, "the custom status")
        put_text(props, "EntityState", self.entity_state, "the entity state")
        return props

    @classmethod
    def from_properties(cls, instance_id: str, props: dict[str, PropertyValue], etag: str) -> InstanceRecord:
        suspended_from = _opt_str(props, "SuspendedFrom")
        created = _opt_time(props, "CreatedTime")
        updated = _opt_time(props, "LastUpdatedTime")
        if created is None or updated is None:
            raise ValueError(f"instance row of {instance_id!r} lacks its timestamps")
        return cls(
            instance_id=instance_id,
            name=str(props["Name"]),
            status=RuntimeStatus(str(props["RuntimeStatus"])),
            execution_id=str(props["ExecutionId"]),
            created_time=created,
            last_updated_time=updated,
            input=get_text(props, "Input"),
            output=get_text(props, "Output"),
            custom_status=get_text(props, "CustomStatus"),
            completed_time=_opt_time(props, "CompletedTime"),
            parent_instance_id=_opt_str(props, "ParentInstanceId"),
            parent_execution_id=_opt_str(props, "ParentExecutionId"),
            parent_task_id=_opt_int(props, "ParentTaskId"),
            history_count=_opt_int(props, "HistoryCount") or 0,
            next_task_id=_opt_int(props, "NextTaskId") or 0,
            action_count=_opt_int(props, "ActionCount") or 0,
            generation=_opt_int(props, "Generation") or 0,
            waits=json.loads(_opt_str(props, "Waits") or "{}"),
            suspended_from=RuntimeStatus(suspended_from) if suspended_from else None,
            entity_state=get_text(props, "EntityState"),
            entity_exists=bool(props.get("EntityExists", False)),
            version=_opt_str(props, "Version") or "",
            fidelity=Fidelity(_opt_str(props, "Fidelity") or Fidelity.DURABLEHOST.value),
            etag=etag,
        )


@dataclass(frozen=True)
class RetryInfo:
    """Where a task sits in a retry chain (protocol §2.5)."""

    chain_id: int  # the id of the first attempt, which the SDK's RetryAbleTask wraps
    attempt: int  # 1-based attempt number this task belongs to
    max_attempts: int
    interval_ms: int

    def to_json(self) -> str:
        return json.dumps([self.chain_id, self.attempt, self.max_attempts, self.interval_ms])

    @classmethod
    def from_json(cls, text: str) -> RetryInfo:
        chain_id, attempt, max_attempts, interval_ms = json.loads(text)
        return cls(int(chain_id), int(attempt), int(max_attempts), int(interval_ms))


@dataclass
class TaskRecord:
    """A scheduled task and, once known, its outcome."""

    execution_id: str
    task_id: int
    kind: TaskKind
    name: str
    scheduled_time: datetime
    history_seq: int  # seq of the history event that scheduled it (rows at or past HistoryCount are void)
    input: str | None = None
    state: TaskState = TaskState.SCHEDULED
    result: str | None = None
    reason: str | None = None
    details: str | None = None
    fire_at: datetime | None = None
    completed_time: datetime | None = None
    child_instance_id: str | None = None
    retry: RetryInfo | None = None
    # Set on the retry timer that follows a chain's last failed attempt ("dummy timer", §2.5).
    final_retry_timer: bool = False
    version: str | None = None  # a sub-orchestration's version, resolved when it was scheduled
    consumed: bool = False  # its completion is in committed history
    etag: str | None = None
    # Not stored: an outcome this process holds in memory until the next commit of the partition writes
    # it (an episode, or a flush of outcomes), conditionally on ``etag``, the row's ETag as scheduled.
    stored: bool = True
    source_row: str | None = None  # the inbox row that brought this outcome, deleted when it is stored

    @property
    def row_key(self) -> str:
        return task_row_key(self.execution_id, self.task_id)

    @property
    def is_done(self) -> bool:
        return self.state in (TaskState.COMPLETED, TaskState.FAILED)

    def to_properties(self) -> dict[str, PropertyValue | None]:
        props: dict[str, PropertyValue | None] = {
            "Kind": self.kind.value,
            "TaskName": self.name,
            "State": self.state.value,
            "ScheduledTime": self.scheduled_time,
            "HistorySeq": self.history_seq,
            "FireAt": self.fire_at,
            "CompletedTime": self.completed_time,
            "ChildInstanceId": self.child_instance_id,
            "Retry": self.retry.to_json() if self.retry else None,
            "FinalRetryTimer": self.final_retry_timer,
            "Version": self.version,
        }
        put_text(props, "Input", self.input, f"the input of task {self.task_id} ({self.name})")
        put_text(props, "Result", self.result, f"the result of task {self.task_id} ({self.name})")
        put_text(props, "Reason", self.reason, f"the failure reason of task {self.task_id}")
        put_text(props, "Details", self.details, f"the failure details of task {self.task_id}")
        return props

    @classmethod
    def from_properties(
        cls, execution_id: str, task_id: int, props: dict[str, PropertyValue], etag: str
    ) -> TaskRecord:
        retry = _opt_str(props, "Retry")
        scheduled = _opt_time(props, "ScheduledTime")
        if scheduled is None:
            raise ValueError(f"task row {task_id} lacks ScheduledTime")
        return cls(
            execution_id=execution_id,
            task_id=task_id,
            kind=TaskKind(str(props["Kind"])),
            name=str(props["TaskName"]),
            scheduled_time=scheduled,
            history_seq=_opt_int(props, "HistorySeq") or 0,
            input=get_text(props, "Input"),
            state=TaskState(str(props["State"])),
            result=get_text(props, "Result"),
            reason=get_text(props, "Reason"),
            details=get_text(props, "Details"),
            fire_at=_opt_time(props, "FireAt"),
            completed_time=_opt_time(props, "CompletedTime"),
            child_instance_id=_opt_str(props, "ChildInstanceId"),
            retry=RetryInfo.from_json(retry) if retry else None,
            final_retry_timer=bool(props.get("FinalRetryTimer", False)),
            version=_opt_str(props, "Version"),
            etag=etag,
        )


class MessageKind(enum.StrEnum):
    EVENT = "event"  # an external event, or an entity request or answer
    OUTCOME = "outcome"  # a task outcome from another partition's owner; ``input`` is an Outcome's JSON


@dataclass
class EventMessage:
    """A message waiting in the inbox."""

    row_key: str
    name: str
    input: str | None
    raised_time: datetime
    idempotency_key: str | None = None
    # Entity operations: who asked (None for a signal from a client) and the id to answer under.
    requester: str | None = None
    request_id: str | None = None
    is_signal: bool = False
    kind: MessageKind = MessageKind.EVENT
    # Outcome messages: the task they complete.
    execution_id: str | None = None
    task_id: int | None = None

    def to_properties(self) -> dict[str, PropertyValue | None]:
        props: dict[str, PropertyValue | None] = {
            "EventName": self.name,
            "RaisedTime": self.raised_time,
            "IdempotencyKey": self.idempotency_key,
            "Requester": self.requester,
            "RequestId": self.request_id,
            "IsSignal": self.is_signal,
            "Kind": self.kind.value if self.kind is not MessageKind.EVENT else None,
            "ExecutionId": self.execution_id,
            "TaskId": self.task_id,
        }
        put_text(props, "Input", self.input, f"the payload of event {self.name!r}")
        return props

    @classmethod
    def from_properties(cls, row_key: str, props: dict[str, PropertyValue]) -> EventMessage:
        raised = _opt_time(props, "RaisedTime")
        if raised is None:
            raise ValueError(f"event row {row_key} lacks RaisedTime")
        return cls(
            row_key=row_key,
            name=str(props["EventName"]),
            input=get_text(props, "Input"),
            raised_time=raised,
            idempotency_key=_opt_str(props, "IdempotencyKey"),
            requester=_opt_str(props, "Requester"),
            request_id=_opt_str(props, "RequestId"),
            is_signal=bool(props.get("IsSignal", False)),
            kind=MessageKind(_opt_str(props, "Kind") or MessageKind.EVENT.value),
            execution_id=_opt_str(props, "ExecutionId"),
            task_id=_opt_int(props, "TaskId"),
        )


@dataclass(frozen=True)
class Outcome:
    """A task's outcome, as recorded in its row (and carried by outcome messages)."""

    state: TaskState
    result: str | None = None
    reason: str | None = None
    details: str | None = None

    def to_json(self) -> str:
        return json.dumps(
            {"state": self.state.value, "result": self.result, "reason": self.reason, "details": self.details}
        )

    @classmethod
    def from_json(cls, text: str) -> Outcome:
        data = json.loads(text)
        return cls(TaskState(data["state"]), data.get("result"), data.get("reason"), data.get("details"))


def history_to_properties(event: dict[str, Any], execution_id: str) -> dict[str, PropertyValue | None]:
    props: dict[str, PropertyValue | None] = {"ExecutionId": execution_id}
    put_text(props, "Event", json.dumps(event, separators=(",", ":")), "a history event")
    return props


def history_from_properties(props: dict[str, PropertyValue]) -> dict[str, Any]:
    text = get_text(props, "Event")
    if text is None:
        raise ValueError("history row without an Event")
    event: dict[str, Any] = json.loads(text)
    return event
