"""The episode runner: one orchestrator invocation over the stored history (protocol §1-2, §2.8).

It builds the trigger payload the Durable extension would send, lets the SDK replay (the SDK's code,
never ours), and turns the cumulative actions it returns into new history events and new tasks. It does
no I/O: the dispatcher loads state, calls ``run_episode`` and commits what it returns.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from durablehost.engine import history as h
from durablehost.engine.fidelity import Fidelity, payload_fields
from durablehost.engine.history import EventType, HistoryEvent, parse_timestamp
from durablehost.engine.records import (
    EventMessage,
    InstanceRecord,
    MessageKind,
    RetryInfo,
    RuntimeStatus,
    TaskKind,
    TaskRecord,
    TaskState,
)
from durablehost.functions import FunctionIndex, call_orchestrator
from durablehost.functions.timestamps import memoize_sdk_timestamp_parsing

memoize_sdk_timestamp_parsing()

# Protocol §1.2: advertise what the extension advertises; the SDK answers with schema V3. The two long-timer
# durations are left out on purpose, so the SDK never slices long timers and a timer is one durable timer.
SCHEMA_FIELDS = {"upperSchemaVersion": 1, "upperSchemaVersionNew": 2}

# actionType numbers (protocol §2.1)
CALL_ACTIVITY = 0
CALL_ACTIVITY_WITH_RETRY = 1
CALL_SUB_ORCHESTRATOR = 2
CALL_SUB_ORCHESTRATOR_WITH_RETRY = 3
CONTINUE_AS_NEW = 4
CREATE_TIMER = 5
WAIT_FOR_EXTERNAL_EVENT = 6
CALL_ENTITY = 7
CALL_HTTP = 8
SIGNAL_ENTITY = 9
WHEN_ANY = 11
WHEN_ALL = 12

ACTION_NAMES = {
    CALL_ACTIVITY: "CallActivity",
    CALL_ACTIVITY_WITH_RETRY: "CallActivityWithRetry",
    CALL_SUB_ORCHESTRATOR: "CallSubOrchestrator",
    CALL_SUB_ORCHESTRATOR_WITH_RETRY: "CallSubOrchestratorWithRetry",
    CONTINUE_AS_NEW: "ContinueAsNew",
    CREATE_TIMER: "CreateTimer",
    WAIT_FOR_EXTERNAL_EVENT: "WaitForExternalEvent",
    CALL_ENTITY: "CallEntity",
    CALL_HTTP: "CallHttp",
    SIGNAL_ENTITY: "SignalEntity",
}
HTTP_ACTIVITY_NAME = "BuiltIn::HttpActivity"


@dataclass
class InstanceState:
    """Everything the engine knows of one instance: its committed partition, held in memory."""

    record: InstanceRecord
    history: list[HistoryEvent]
    tasks: dict[int, TaskRecord]
    events: list[EventMessage]  # undelivered external events, oldest first

    def pending_completions(self) -> list[TaskRecord]:
        return [
            t
            for t in self.tasks.values()
            if t.is_done and not t.consumed and t.kind is not TaskKind.ENTITY_MESSAGE
        ]

    def deliverable_events(self) -> list[EventMessage]:
        """The events the next episode puts into history: one per outstanding wait (protocol §3 #5), or,
        Azure-exact, every event as it arrived (fidelity.py)."""
        if self.record.fidelity is Fidelity.AZURE:
            return [e for e in self.events if e.kind is MessageKind.EVENT]
        budget = dict(self.record.waits)
        ready = []
        for event in self.events:
            if event.kind is not MessageKind.EVENT:
                continue
            if budget.get(event.name, 0) > 0:
                budget[event.name] -= 1
                ready.append(event)
        return ready

    def outcome_messages(self) -> list[EventMessage]:
        return [e for e in self.events if e.kind is MessageKind.OUTCOME]

    @property
    def runnable(self) -> bool:
        return not (self.record.status.is_finished or self.record.status is RuntimeStatus.SUSPENDED)

    def has_work(self) -> bool:
        if not self.runnable:
            return False
        return (
            self.record.history_count == 0
            or self.history[-1]["EventType"] != EventType.ORCHESTRATOR_COMPLETED
            or bool(self.pending_completions())
            or bool(self.deliverable_events())
            or bool(self.outcome_messages())
        )

    def snapshot(self) -> InstanceState:
        """A copy an episode thread can read while the loop keeps changing this state."""
        return InstanceState(self.record, list(self.history), dict(self.tasks), list(self.events))


@dataclass
class EpisodeResult:
    record: InstanceRecord  # the instance row as it must be committed
    new_history: list[HistoryEvent]
    tasks_to_write: list[TaskRecord]  # new tasks, and timers whose cancellation is new
    new_work: list[TaskRecord]  # tasks to start once committed
    canceled: list[TaskRecord]
    delivered: list[EventMessage]
    consumed: list[TaskRecord] = field(default_factory=list)  # completions this episode put in history
    continue_as_new_input: str | None = None
    continued: bool = False
    finished: bool = False
    failure_details: str | None = None
    warnings: list[str] = field(default_factory=list)


class NonDeterminismError(Exception):
    """The code no longer yields what history recorded (protocol §2.3 rule 5, §8-R1)."""


def flatten_actions(actions: list[Any]) -> list[dict[str, Any]]:
    """Depth-first over the V2/V3 shape ``[[a0, a1, …]]``, descending into compound actions."""
    flat: list[dict[str, Any]] = []

    def visit(action: dict[str, Any]) -> None:
        if action.get("actionType") in (WHEN_ALL, WHEN_ANY):
            for child in action.get("compoundActions") or []:
                visit(child)
        else:
            flat.append(action)

    for group in actions:
        for action in group if isinstance(group, list) else [group]:
            visit(action)
    return flat


def action_name(action: dict[str, Any]) -> str:
    kind = action.get("actionType")
    if kind in (
        CALL_ACTIVITY,
        CALL_ACTIVITY_WITH_RETRY,
        CALL_SUB_ORCHESTRATOR,
        CALL_SUB_ORCHESTRATOR_WITH_RETRY,
    ):
        return str(action.get("functionName"))
    if kind == WAIT_FOR_EXTERNAL_EVENT:
        return str(action.get("externalEventName"))
    if kind == CALL_HTTP:
        request = action.get("httpRequest") or {}
        return f"{request.get('method', 'GET')} {request.get('uri', '')}"
    if kind in (CALL_ENTITY, SIGNAL_ENTITY):
        return f"{action.get('instanceId')}.{action.get('operation')}"
    if kind == CREATE_TIMER:
        return "timer"
    return ""


def describe_action(kind: int, name: str) -> str:
    label = ACTION_NAMES.get(kind, f"action type {kind}")
    return f"{label} '{name}'" if name and kind != CREATE_TIMER else label


def _completion_event(task: TaskRecord, ts: datetime) -> HistoryEvent:
    if task.kind is TaskKind.TIMER:
        return h.timer_fired(ts, task.task_id, task.fire_at or ts)
    if task.kind is TaskKind.SUB_ORCHESTRATION:
        if task.state is TaskState.COMPLETED:
            return h.sub_orchestration_completed(ts, task.task_id, task.result)
        return h.sub_orchestration_failed(ts, task.task_id, task.reason or "", task.details)
    if task.state is TaskState.COMPLETED:
        return h.task_completed(ts, task.task_id, task.result)
    return h.task_failed(ts, task.task_id, task.reason or "", task.details)


def _is_pure_allocation(task: TaskRecord) -> bool:
    """Events that only make the SDK allocate hidden retry ids and never resume user code (§2.5)."""
    if task.retry is None:
        return False
    if task.kind is TaskKind.TIMER:
        return not task.final_retry_timer
    return task.state is TaskState.FAILED


def episode_timestamp(state: InstanceState, now: datetime) -> datetime:
    """At or after the clock, the previous episode and every timer this episode fires (§8-R2)."""
    ts = now
    if state.history:
        last = parse_timestamp(state.history[-1]["Timestamp"])
        ts = max(ts, last)
    for task in state.pending_completions():
        if task.kind is TaskKind.TIMER and task.fire_at is not None:
            ts = max(ts, task.fire_at)
    return ts


def recorded_actions(history: list[HistoryEvent]) -> dict[int, tuple[int, str, int]]:
    """flat action index -> (actionType, name, task id) from the decision events durablehost wrote."""
    recorded: dict[int, tuple[int, str, int]] = {}
    for event in history:
        index = event.get("DhAction")
        if isinstance(index, int):
            recorded[index] = (
                int(event["DhActionType"]),
                str(event.get("DhActionName", "")),
                event["EventId"],
            )
    return recorded


def run_episode(
    state: InstanceState, functions: FunctionIndex, now: datetime, *, default_version: str = ""
) -> EpisodeResult:
    """Run one episode. Raises NonDeterminismError when the code diverges from recorded history.

    ``default_version`` (host.json defaultVersion) is the version of sub-orchestrations the code starts
    without naming one.
    """
    record = replace(state.record)
    ts = episode_timestamp(state, now)
    history_start = record.history_count
    inbound: list[HistoryEvent] = [h.orchestrator_started(ts)]
    decisions: list[HistoryEvent] = []
    new_tasks: list[TaskRecord] = []
    next_id = record.next_task_id

    if record.history_count == 0:
        inbound.append(
            h.execution_started(
                ts,
                name=record.name,
                input_text=record.input,
                instance_id=record.instance_id,
                execution_id=record.execution_id,
                parent_instance_id=record.parent_instance_id,
                version=record.version,
            )
        )
        record.status = RuntimeStatus.RUNNING

    completions = state.pending_completions()
    pure = sorted((t for t in completions if _is_pure_allocation(t)), key=lambda t: t.task_id)
    others = sorted(
        (t for t in completions if not _is_pure_allocation(t)),
        key=lambda t: (t.completed_time or ts, t.task_id),
    )
    # §2.5 host ordering rule: pure allocating events first, their hidden ids in that order, then the
    # ids of the actions the run returns.
    for task in pure:
        inbound.append(_completion_event(task, ts))
        retry = task.retry
        if retry is None:  # narrowed by _is_pure_allocation
            continue
        if task.kind is TaskKind.TIMER:
            attempt = _attempt_task(state, retry)
            task_id, next_id = next_id, next_id + 1
            follow = replace(
                attempt,
                task_id=task_id,
                scheduled_time=ts,
                state=TaskState.SCHEDULED,
                result=None,
                reason=None,
                details=None,
                completed_time=None,
                consumed=False,
                etag=None,
                retry=replace(retry, attempt=retry.attempt + 1),
                child_instance_id=(
                    _retry_child_id(attempt, record, task_id)
                    if attempt.kind is TaskKind.SUB_ORCHESTRATION
                    else None
                ),
                history_seq=-1,  # set once the decision's seq is known
            )
            decisions.append(_scheduling_event(follow, ts))
            new_tasks.append(follow)
        else:
            task_id, next_id = next_id, next_id + 1
            final = retry.attempt >= retry.max_attempts
            # DTFx's RetryInterceptor: after the last attempt, one "dummy timer for back-compat" at now.
            fire_at = ts if final else ts + timedelta(milliseconds=retry.interval_ms)
            timer = TaskRecord(
                execution_id=record.execution_id,
                task_id=task_id,
                kind=TaskKind.TIMER,
                name=task.name,
                scheduled_time=ts,
                history_seq=-1,
                fire_at=fire_at,
                retry=retry,
                final_retry_timer=final,
            )
            decisions.append(h.timer_created(ts, task_id, fire_at))
            new_tasks.append(timer)
    # Everything else enters history in arrival order, as DTFx appends messages as they arrive: an
    # approval raised before a deadline fired must win the task_any even when both wait for one episode
    # (e.g. while the instance was suspended).
    delivered = state.deliverable_events()
    arrivals: list[tuple[datetime, int, HistoryEvent]] = [
        (task.completed_time or ts, 0, _completion_event(task, ts)) for task in others
    ]
    for event in delivered:
        raised = h.event_raised(ts, event.name, event.input)
        raised["DhInboxKey"] = event.row_key
        arrivals.append((event.raised_time, 1, raised))
    arrivals.sort(key=lambda arrival: (arrival[0], arrival[1]))
    inbound.extend(event for _, _, event in arrivals)

    payload = {
        "history": state.history + inbound,
        "input": record.input,
        "instanceId": record.instance_id,
        "isReplaying": record.history_count > 0,
        "parentInstanceId": record.parent_instance_id,
        **SCHEMA_FIELDS,
        **payload_fields(record.fidelity),
    }
    outcome = call_orchestrator(functions.orchestrator(record.name), json.dumps(payload))
    flat = flatten_actions(outcome.state.get("actions") or [])
    check_determinism(state, flat, record.action_count)

    result = EpisodeResult(
        record=record,
        new_history=[],
        tasks_to_write=[],
        new_work=[],
        canceled=[],
        delivered=delivered,
        consumed=completions,
    )
    custom_status = outcome.state.get("customStatus")
    record.custom_status = json.dumps(custom_status) if custom_status is not None else None

    if outcome.failed:
        message = f"Orchestrator function '{record.name}' failed: {outcome.error}"
        result.failure_details = outcome.details
        _finish(record, result, decisions, ts, RuntimeStatus.FAILED, json.dumps(message), next_id)
    else:
        for index in range(record.action_count, len(flat)):
            action = flat[index]
            kind = int(action["actionType"])
            if kind == WAIT_FOR_EXTERNAL_EVENT:
                continue
            task_id, next_id = next_id, next_id + 1
            made = _decide(action, kind, index, task_id, record, ts, default_version)
            if made is None:
                continue  # ContinueAsNew and fire-and-forget signals take an id and nothing else
            decision, scheduled = made
            decisions.append(decision)
            if scheduled is not None:
                new_tasks.append(scheduled)
        result.canceled = [
            replace(task, state=TaskState.CANCELED)
            for task in _newly_canceled(state, flat, record.action_count)
        ]
        record.action_count = len(flat)
        record.waits = _outstanding_waits(state.history + inbound + decisions, flat)
        if outcome.state.get("isDone"):
            last = flat[-1] if flat else None
            if last is not None and last.get("actionType") == CONTINUE_AS_NEW:
                result.continued = True
                result.continue_as_new_input = last.get("input")
                record.next_task_id = next_id
            else:
                output = outcome.state.get("output")
                output_text = json.dumps(output) if "output" in outcome.state else None
                _finish(record, result, decisions, ts, RuntimeStatus.COMPLETED, output_text, next_id)
        record.next_task_id = next_id

    if result.finished:
        new_tasks = []  # a finished instance starts no more work; cancellations are still recorded
    new_history = inbound + decisions + [h.orchestrator_completed(ts)]
    first_decision_seq = history_start + len(inbound)
    by_id = {e["EventId"]: first_decision_seq + i for i, e in enumerate(decisions) if e["EventId"] >= 0}
    for task in new_tasks:
        task.history_seq = by_id.get(task.task_id, first_decision_seq)
    result.new_history = new_history
    result.tasks_to_write = new_tasks + result.canceled
    result.new_work = list(new_tasks)
    record.history_count = history_start + len(new_history)
    record.last_updated_time = ts
    return result


def _finish(
    record: InstanceRecord,
    result: EpisodeResult,
    decisions: list[HistoryEvent],
    ts: datetime,
    status: RuntimeStatus,
    output: str | None,
    next_id: int,
) -> None:
    record.status = status
    record.output = output
    record.completed_time = ts
    record.next_task_id = next_id
    record.waits = {}
    result.finished = True
    decisions.append(h.execution_completed(ts, next_id, status.value, output))


def _attempt_task(state: InstanceState, retry: RetryInfo) -> TaskRecord:
    for task in state.tasks.values():
        if task.retry == retry and task.kind is not TaskKind.TIMER:
            return task
    raise RuntimeError(
        f"retry chain {retry.chain_id}: attempt {retry.attempt} is missing from the task table"
    )


def _retry_child_id(attempt: TaskRecord, record: InstanceRecord, task_id: int) -> str:
    previous = attempt.child_instance_id or ""
    automatic = previous.startswith(f"{record.execution_id}:")
    return f"{record.execution_id}:{task_id}" if automatic else previous


def _scheduling_event(task: TaskRecord, ts: datetime) -> HistoryEvent:
    if task.kind is TaskKind.SUB_ORCHESTRATION:
        return h.sub_orchestration_created(
            ts, task.task_id, task.name, task.child_instance_id or "", task.input, task.version or ""
        )
    return h.task_scheduled(ts, task.task_id, task.name, task.input)


def _decide(
    action: dict[str, Any],
    kind: int,
    index: int,
    task_id: int,
    record: InstanceRecord,
    ts: datetime,
    default_version: str,
) -> tuple[HistoryEvent, TaskRecord | None] | None:
    """The history event and task for a newly scheduled action."""
    name = action_name(action)

    def new_task(kind: TaskKind, name: str, **fields: Any) -> TaskRecord:
        return TaskRecord(
            execution_id=record.execution_id,
            task_id=task_id,
            kind=kind,
            name=name,
            scheduled_time=ts,
            history_seq=-1,  # set once the decision's seq is known
            **fields,
        )

    retry: RetryInfo | None = None
    if kind in (CALL_ACTIVITY_WITH_RETRY, CALL_SUB_ORCHESTRATOR_WITH_RETRY):
        options = action.get("retryOptions") or {}
        retry = RetryInfo(
            chain_id=task_id,
            attempt=1,
            max_attempts=max(1, int(options.get("maxNumberOfAttempts", 1))),
            interval_ms=max(0, int(options.get("firstRetryIntervalInMilliseconds", 0))),
        )
    task: TaskRecord | None
    if kind in (CALL_ACTIVITY, CALL_ACTIVITY_WITH_RETRY):
        task = new_task(TaskKind.ACTIVITY, name, input=action.get("input"), retry=retry)
        event = h.task_scheduled(ts, task_id, name, task.input)
    elif kind in (CALL_SUB_ORCHESTRATOR, CALL_SUB_ORCHESTRATOR_WITH_RETRY):
        # DTFx names an unnamed child "{parentExecutionId}:{sequenceId}" (protocol §2.7).
        child_id = action.get("instanceId") or f"{record.execution_id}:{task_id}"
        # The SDK always sends "version", null unless given: null is this app's defaultVersion, not the
        # parent's version (extension PRs #3095, #3213; its e2e VersioningTests).
        requested = action.get("version")
        task = new_task(
            TaskKind.SUB_ORCHESTRATION,
            name,
            input=action.get("input"),
            retry=retry,
            child_instance_id=str(child_id),
            version=default_version if requested is None else str(requested),
        )
        event = h.sub_orchestration_created(ts, task_id, name, str(child_id), task.input, task.version or "")
    elif kind == CREATE_TIMER:
        fire_at = parse_timestamp(str(action["fireAt"]))
        task = new_task(TaskKind.TIMER, "timer", fire_at=fire_at)
        if action.get("isCanceled"):
            task.state = TaskState.CANCELED
        event = h.timer_created(ts, task_id, fire_at)
    elif kind == CALL_HTTP:
        request = action.get("httpRequest") or {}
        task = new_task(TaskKind.HTTP, HTTP_ACTIVITY_NAME, input=json.dumps(request))
        event = h.task_scheduled(ts, task_id, HTTP_ACTIVITY_NAME, task.input)
    elif kind in (CALL_ENTITY, SIGNAL_ENTITY):
        # Protocol §2.7: EventSent carries the extension-v2 request message; the SDK reads its "id" and
        # waits for an EventRaised of that name. The id is derived from the execution and task id, so a
        # re-sent message (after a crash) is recognised as the same request.
        target = str(action.get("instanceId"))
        request_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"durablehost:{record.execution_id}:{task_id}"))
        message = {
            "op": action.get("operation"),
            "signal": kind == SIGNAL_ENTITY,
            "input": action.get("input"),
            "id": request_id,
            "parent": record.instance_id,
            "parentExecution": record.execution_id,
        }
        task = new_task(TaskKind.ENTITY_MESSAGE, target, input=json.dumps(message))
        event = h.event_sent(ts, task_id, target, str(action.get("operation")), task.input)
    elif kind in (CONTINUE_AS_NEW,):
        return None
    else:
        raise UnsupportedAction(f"{describe_action(kind, name)} is not supported by durablehost")
    event["DhAction"] = index
    event["DhActionType"] = kind
    event["DhActionName"] = name
    return event, task


class UnsupportedAction(Exception):
    """An action the host cannot perform; the instance fails with this message."""


def check_determinism(state: InstanceState, flat: list[dict[str, Any]], action_count: int) -> None:
    recorded = recorded_actions(state.history)
    for index in sorted(recorded):
        kind, name, _task_id = recorded[index]
        if index >= len(flat):
            raise NonDeterminismError(
                nondeterminism_message(state, index, describe_action(kind, name), "nothing (fewer actions)")
            )
        now_kind = int(flat[index]["actionType"])
        now_name = action_name(flat[index])
        if now_kind != kind or now_name != name:
            raise NonDeterminismError(
                nondeterminism_message(
                    state, index, describe_action(kind, name), describe_action(now_kind, now_name)
                )
            )
    for index in range(min(action_count, len(flat))):
        if index not in recorded and int(flat[index]["actionType"]) not in (
            WAIT_FOR_EXTERNAL_EVENT,
            CONTINUE_AS_NEW,
            SIGNAL_ENTITY,
        ):
            raise NonDeterminismError(
                nondeterminism_message(
                    state,
                    index,
                    "an external-event wait",
                    describe_action(int(flat[index]["actionType"]), action_name(flat[index])),
                )
            )


def nondeterminism_message(state: InstanceState, index: int, recorded: str, now: str) -> str:
    return (
        f"Non-deterministic orchestrator '{state.record.name}' (instance {state.record.instance_id!r}): "
        f"at action #{index} the history recorded {recorded}, but the code now yields {now}. "
        "Usual causes: the orchestrator code changed while this instance was running (deploy changes "
        "under a new orchestrator name or version instead), or the orchestrator reads the wall clock, "
        "random numbers, uuid4, environment or I/O directly; use context.current_utc_datetime, "
        "context.new_uuid() and activities instead."
    )


def _newly_canceled(state: InstanceState, flat: list[dict[str, Any]], action_count: int) -> list[TaskRecord]:
    recorded = recorded_actions(state.history)
    canceled = []
    for index in range(min(action_count, len(flat))):
        action = flat[index]
        if action.get("actionType") != CREATE_TIMER or not action.get("isCanceled"):
            continue
        entry = recorded.get(index)
        task = state.tasks.get(entry[2]) if entry else None
        if task is not None and task.state is TaskState.SCHEDULED:
            canceled.append(task)
    return canceled


def _outstanding_waits(history: list[HistoryEvent], flat: list[dict[str, Any]]) -> dict[str, int]:
    """WaitForExternalEvent actions per name minus events of that name already delivered (§3 #5)."""
    wanted = Counter(
        str(a.get("externalEventName")) for a in flat if a.get("actionType") == WAIT_FOR_EXTERNAL_EVENT
    )
    # An entity call waits for its answer: an event named after the request id (protocol §2.7).
    wanted.update(
        json.loads(e["Input"])["id"]
        for e in history
        if e["EventType"] == EventType.EVENT_SENT and e.get("DhActionType") == CALL_ENTITY
    )
    delivered = Counter(str(e.get("Name")) for e in history if e["EventType"] == EventType.EVENT_RAISED)
    return {name: count - delivered[name] for name, count in wanted.items() if count > delivered[name]}
