"""One history builder for every test: DTFx history events exactly as the host writes them (protocol §1.4).

A test says what happened, episode by episode, and gets the events (``.events``), the trigger payload
the Durable extension would send the SDK (``.payload()``, protocol §1.2), or the engine's view of the
instance (``.state()``, an InstanceState for ``run_episode`` and ``check_determinism``)::

    h = (History("chain").started(["Tokyo", "Seattle"])
         .activity(0, "hello", "Tokyo")                      # TaskScheduled, id 0, action #0
         .episode().completed(0, "Hello Tokyo!")             # OrchestratorCompleted, then the next episode
         .activity(1, "hello", "Seattle"))

Every event comes from ``durablehost.engine.history``, so the shapes are the engine's. Values are Python
values, JSON-encoded once as the SDK encodes them (``df_dumps``); :class:`Text` passes JSON text through
as it is (a ``null`` Result, an input encoded twice by the client).

Decisions the orchestrator code makes (``activity``, ``timer``, ``sub_orchestration``, ``entity_call``,
``signal``, ``http``) carry the engine's ``Dh*`` keys naming their flat action index, which the
determinism check compares (protocol §2.3 rule 5). Each takes the next action index; ``wait`` takes one
without an event, as a WaitForExternalEvent action does. Decisions the host makes for a retry chain
(``retry_timer``, ``retry_attempt``, protocol §2.5) take an id and no action index.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Self

from durablehost.engine import episode as ep
from durablehost.engine import history as h
from durablehost.engine.episode import InstanceState
from durablehost.engine.fidelity import Fidelity, payload_fields
from durablehost.engine.history import EventType, HistoryEvent, parse_timestamp
from durablehost.engine.records import (
    InstanceRecord,
    RetryInfo,
    RuntimeStatus,
    TaskKind,
    TaskRecord,
    TaskState,
)

T0 = datetime(2024, 1, 1, 9, 0, tzinfo=UTC)


class Text(str):
    """JSON text used as it is, where the builder would otherwise JSON-encode a value."""


def encode(value: Any) -> str:
    """The JSON text of ``value`` (``df_dumps`` of a plain value), or ``value`` itself if it is Text."""
    return str(value) if isinstance(value, Text) else json.dumps(value)


@dataclass(frozen=True)
class Retry:
    """A retry policy as the SDK sends it (protocol §2.5: the first interval and the attempts)."""

    attempts: int
    interval_ms: int


@dataclass
class _Chain:
    chain_id: int
    retry: Retry
    attempts: int = 1  # attempts scheduled so far


class History:
    """A history, built event by event; every method returns the builder."""

    def __init__(
        self,
        name: str = "orchestrator",
        *,
        instance_id: str = "instance",
        execution_id: str = "execution",
        at: datetime = T0,
        parent_instance_id: str | None = None,
        version: str = "",
    ) -> None:
        self.name = name
        self.instance_id = instance_id
        self.execution_id = execution_id
        self.parent_instance_id = parent_instance_id
        self.version = version
        self.now = at
        self.input_text: str | None = None
        self.events: list[HistoryEvent] = []
        self.action_count = 0  # flat actions so far, waits included (protocol §2.3)
        self.next_task_id = 0
        self._open = False
        self._waits: dict[str, int] = {}
        self._chains: dict[int, _Chain] = {}  # task id of each attempt and retry timer -> its chain
        self._attempt_of: dict[int, int] = {}  # task id -> attempt number, for attempts
        self._timers: dict[int, datetime] = {}

    # ---------------------------------------------------------------- episodes

    def started(self, input: Any = None) -> Self:
        """The first episode: OrchestratorStarted, ExecutionStarted(input)."""
        self.input_text = None if input is None else encode(input)
        self._append(h.orchestrator_started(self.now))
        self._open = True
        return self._append(
            h.execution_started(
                self.now,
                name=self.name,
                input_text=self.input_text,
                instance_id=self.instance_id,
                execution_id=self.execution_id,
                parent_instance_id=self.parent_instance_id,
                version=self.version,
            )
        )

    def episode(self, *, at: datetime | None = None, after: timedelta | None = None) -> Self:
        """End the episode (OrchestratorCompleted) and start the next (OrchestratorStarted), at ``at``
        or ``after`` later (default: the same time)."""
        self.end()
        if at is not None:
            self.now = at
        if after is not None:
            self.now += after
        self._open = True
        return self._append(h.orchestrator_started(self.now))

    def end(self) -> Self:
        """End the episode with OrchestratorCompleted (if one is open)."""
        if self._open:
            self._append(h.orchestrator_completed(self.now))
            self._open = False
        return self

    # ---------------------------------------------------------------- decisions of the code

    def activity(self, task_id: int, name: str, input: Any = None, *, retry: Retry | None = None) -> Self:
        """TaskScheduled: ``call_activity`` (or ``call_activity_with_retry``, its first attempt)."""
        kind = ep.CALL_ACTIVITY if retry is None else ep.CALL_ACTIVITY_WITH_RETRY
        if retry is not None:
            self._chains[task_id] = _Chain(task_id, retry)
            self._attempt_of[task_id] = 1
        return self._decision(h.task_scheduled(self.now, task_id, name, encode(input)), kind, name)

    def sub_orchestration(
        self,
        task_id: int,
        name: str,
        input: Any = None,
        *,
        instance_id: str | None = None,
        version: str = "",
        retry: Retry | None = None,
    ) -> Self:
        """SubOrchestrationInstanceCreated; an unnamed child is ``{executionId}:{id}`` (protocol §2.7)."""
        kind = ep.CALL_SUB_ORCHESTRATOR if retry is None else ep.CALL_SUB_ORCHESTRATOR_WITH_RETRY
        if retry is not None:
            self._chains[task_id] = _Chain(task_id, retry)
            self._attempt_of[task_id] = 1
        child = instance_id or f"{self.execution_id}:{task_id}"
        event = h.sub_orchestration_created(self.now, task_id, name, child, encode(input), version)
        return self._decision(event, kind, name)

    def timer(self, task_id: int, fire_at: datetime | timedelta) -> Self:
        """TimerCreated; ``fire_at`` may be relative to the builder's time."""
        due = self.now + fire_at if isinstance(fire_at, timedelta) else fire_at
        self._timers[task_id] = due
        return self._decision(h.timer_created(self.now, task_id, due), ep.CREATE_TIMER, "timer")

    def entity_call(self, task_id: int, entity_id: str, operation: str, message: dict[str, Any]) -> Self:
        """EventSent of ``call_entity`` with the request ``message`` (protocol §2.7)."""
        event = h.event_sent(self.now, task_id, entity_id, operation, json.dumps(message))
        return self._decision(event, ep.CALL_ENTITY, f"{entity_id}.{operation}")

    def signal(self, task_id: int, entity_id: str, operation: str, message: dict[str, Any]) -> Self:
        """EventSent of ``signal_entity``: fire-and-forget, but it takes an id (protocol §2.3)."""
        event = h.event_sent(self.now, task_id, entity_id, operation, json.dumps(message))
        return self._decision(event, ep.SIGNAL_ENTITY, f"{entity_id}.{operation}")

    def http(self, task_id: int, request: dict[str, Any]) -> Self:
        """TaskScheduled of the built-in HTTP activity for ``call_http`` (protocol §2.1, type 8)."""
        event = h.task_scheduled(self.now, task_id, ep.HTTP_ACTIVITY_NAME, json.dumps(request))
        name = f"{request.get('method', 'GET')} {request.get('uri', '')}"
        return self._decision(event, ep.CALL_HTTP, name)

    def wait(self, name: str) -> Self:
        """A WaitForExternalEvent action: it takes an action index, but no id and no event (§2.3)."""
        self.action_count += 1
        self._waits[name] = self._waits.get(name, 0) + 1
        return self

    def actions(self, count: int) -> Self:
        """Actions that leave no event and take no id here (a trailing ContinueAsNew takes one: use
        ``next_task_id``); rarely needed."""
        self.action_count += count
        return self

    # ---------------------------------------------------------------- decisions of the host (§2.5)

    def retry_timer(self, task_id: int, *, of: int, fire_at: datetime | timedelta) -> Self:
        """The TimerCreated DTFx's RetryInterceptor adds after a failed attempt of chain ``of``."""
        due = self.now + fire_at if isinstance(fire_at, timedelta) else fire_at
        self._chains[task_id] = self._chains[of]
        self._timers[task_id] = due
        return self._append(h.timer_created(self.now, task_id, due), task_id)

    def retry_attempt(self, task_id: int, name: str, input: Any = None, *, of: int) -> Self:
        """The TaskScheduled of the next attempt of chain ``of`` (same name and input)."""
        chain = self._chains[of]
        chain.attempts += 1
        self._chains[task_id] = chain
        self._attempt_of[task_id] = chain.attempts
        return self._append(h.task_scheduled(self.now, task_id, name, encode(input)), task_id)

    def retry_sub_attempt(
        self, task_id: int, name: str, input: Any = None, *, of: int, instance_id: str | None = None
    ) -> Self:
        """The SubOrchestrationInstanceCreated of the next attempt of chain ``of``."""
        chain = self._chains[of]
        chain.attempts += 1
        self._chains[task_id] = chain
        self._attempt_of[task_id] = chain.attempts
        child = instance_id or f"{self.execution_id}:{task_id}"
        event = h.sub_orchestration_created(self.now, task_id, name, child, encode(input))
        return self._append(event, task_id)

    # ---------------------------------------------------------------- what comes in

    def completed(self, task_id: int, result: Any = None) -> Self:
        """TaskCompleted with ``result`` (JSON-encoded; ``Text("null")`` for a null Result text)."""
        return self._append(h.task_completed(self.now, task_id, encode(result)))

    def failed(self, task_id: int, reason: str, details: str | None = None) -> Self:
        return self._append(h.task_failed(self.now, task_id, reason, details))

    def sub_completed(self, task_id: int, result: Any = None) -> Self:
        return self._append(h.sub_orchestration_completed(self.now, task_id, encode(result)))

    def sub_failed(self, task_id: int, reason: str, details: str | None = None) -> Self:
        return self._append(h.sub_orchestration_failed(self.now, task_id, reason, details))

    def fired(self, timer_id: int, fire_at: datetime | None = None) -> Self:
        """TimerFired; FireAt defaults to the time the timer was created for."""
        due = fire_at or self._timers.get(timer_id, self.now)
        return self._append(h.timer_fired(self.now, timer_id, due))

    def raised(self, name: str, value: Any = None) -> Self:
        """EventRaised ``name`` with ``value`` as its input (None: a null Input)."""
        return self._append(h.event_raised(self.now, name, None if value is None else encode(value)))

    def event(self, event: HistoryEvent) -> Self:
        """Any other event, as it is."""
        return self._append(event)

    # ---------------------------------------------------------------- the end

    def completed_execution(self, output: Any = None) -> Self:
        """ExecutionCompleted(Completed); it takes the next id without using it up (episode.py)."""
        event = h.execution_completed(self.now, self.next_task_id, "Completed", encode(output))
        return self._append(event)

    def failed_execution(self, message: str) -> Self:
        """ExecutionCompleted(Failed) with the output the host writes: the failure message as JSON."""
        event = h.execution_completed(self.now, self.next_task_id, "Failed", json.dumps(message))
        return self._append(event)

    # ---------------------------------------------------------------- what a test gets

    def payload(self, *, fidelity: Fidelity = Fidelity.DURABLEHOST, **overrides: Any) -> str:
        """The trigger payload of protocol §1.2 over the events so far (as JSON text)."""
        payload: dict[str, Any] = {
            "history": self.events,
            "input": self.input_text,
            "instanceId": self.instance_id,
            "isReplaying": False,
            "parentInstanceId": self.parent_instance_id,
            **ep.SCHEMA_FIELDS,
            **payload_fields(fidelity),
            **overrides,
        }
        return json.dumps(payload)

    def state(self, *, fidelity: Fidelity = Fidelity.DURABLEHOST) -> InstanceState:
        """The engine's view of the instance after these events: its record (counters, waits), its
        history, and a task row per decision with its outcome where history has it (consumed)."""
        self.end()
        first = parse_timestamp(self.events[0]["Timestamp"]) if self.events else self.now
        record = InstanceRecord(
            instance_id=self.instance_id,
            name=self.name,
            status=RuntimeStatus.RUNNING if self.events else RuntimeStatus.PENDING,
            execution_id=self.execution_id,
            created_time=first,
            last_updated_time=self.now,
            input=self.input_text,
            parent_instance_id=self.parent_instance_id,
            history_count=len(self.events),
            next_task_id=self.next_task_id,
            action_count=self.action_count,
            waits=self._outstanding_waits(),
            version=self.version,
            fidelity=fidelity,
        )
        tasks: dict[int, TaskRecord] = {}
        for seq, event in enumerate(self.events):
            kind = event["EventType"]
            if kind == EventType.EXECUTION_COMPLETED:
                status = {1: RuntimeStatus.COMPLETED, 3: RuntimeStatus.FAILED}[event["OrchestrationStatus"]]
                record.status, record.output = status, event["Result"]
                record.completed_time = parse_timestamp(event["Timestamp"])
            task = self._task_of(event, seq)
            if task is not None:
                tasks[task.task_id] = task
            done = _outcome_of(event)
            if done is not None:
                task_id, state, result, reason, details = done
                stamp = parse_timestamp(event["Timestamp"])
                tasks[task_id].state, tasks[task_id].consumed = state, True
                tasks[task_id].result, tasks[task_id].reason, tasks[task_id].details = result, reason, details
                tasks[task_id].completed_time = stamp
        return InstanceState(record=record, history=list(self.events), tasks=tasks, events=[])

    # ---------------------------------------------------------------- internals

    def _decision(self, event: HistoryEvent, action_type: int, name: str) -> Self:
        event["DhAction"] = self.action_count
        event["DhActionType"] = action_type
        event["DhActionName"] = name
        self.action_count += 1
        return self._append(event, event["EventId"])

    def _append(self, event: HistoryEvent, task_id: int | None = None) -> Self:
        self.events.append(event)
        if task_id is not None:
            self.next_task_id = max(self.next_task_id, task_id + 1)
        return self

    def _outstanding_waits(self) -> dict[str, int]:
        delivered: dict[str, int] = {}
        for event in self.events:
            if event["EventType"] == EventType.EVENT_RAISED:
                delivered[event["Name"]] = delivered.get(event["Name"], 0) + 1
        return {n: c - delivered.get(n, 0) for n, c in self._waits.items() if c > delivered.get(n, 0)}

    def _task_of(self, event: HistoryEvent, seq: int) -> TaskRecord | None:
        kind, task_id = event["EventType"], event["EventId"]
        stamp = parse_timestamp(event["Timestamp"])
        retry = self._retry_info(task_id)
        common: dict[str, Any] = {"scheduled_time": stamp, "history_seq": seq, "retry": retry}
        if kind == EventType.TASK_SCHEDULED:
            is_http = event["Name"] == ep.HTTP_ACTIVITY_NAME
            task_kind = TaskKind.HTTP if is_http else TaskKind.ACTIVITY
            return TaskRecord(
                self.execution_id, task_id, task_kind, event["Name"], input=event["Input"], **common
            )
        if kind == EventType.SUB_ORCHESTRATION_CREATED:
            return TaskRecord(
                self.execution_id,
                task_id,
                TaskKind.SUB_ORCHESTRATION,
                event["Name"],
                input=event["Input"],
                child_instance_id=event["InstanceId"],
                version=event["Version"],
                **common,
            )
        if kind == EventType.TIMER_CREATED:
            final = retry is not None and task_id not in self._attempt_of and self._is_final_timer(task_id)
            return TaskRecord(
                self.execution_id,
                task_id,
                TaskKind.TIMER,
                "timer" if retry is None else self._attempt_name(task_id),
                fire_at=parse_timestamp(event["FireAt"]),
                final_retry_timer=final,
                **common,
            )
        if kind == EventType.EVENT_SENT:
            # The outbox record of an entity message: sending it completes it (records.TaskKind).
            return TaskRecord(
                self.execution_id,
                task_id,
                TaskKind.ENTITY_MESSAGE,
                event["InstanceId"],
                input=event["Input"],
                state=TaskState.COMPLETED,
                consumed=True,
                **common,
            )
        return None

    def _retry_info(self, task_id: int) -> RetryInfo | None:
        chain = self._chains.get(task_id)
        if chain is None:
            return None
        attempt = self._attempt_of.get(task_id)
        if attempt is None:  # a retry timer: it belongs to the attempt before it
            attempt = max(
                a for t, a in self._attempt_of.items() if self._chains.get(t) is chain and t < task_id
            )
        return RetryInfo(chain.chain_id, attempt, chain.retry.attempts, chain.retry.interval_ms)

    def _is_final_timer(self, task_id: int) -> bool:
        info = self._retry_info(task_id)
        return info is not None and info.attempt >= info.max_attempts

    def _attempt_name(self, timer_id: int) -> str:
        info = self._retry_info(timer_id)
        for event in self.events:
            if event["EventId"] == (info.chain_id if info else -2) and "Name" in event:
                return str(event["Name"])
        return "timer"


def _outcome_of(event: HistoryEvent) -> tuple[int, TaskState, str | None, str | None, str | None] | None:
    kind = event["EventType"]
    if kind in (EventType.TASK_COMPLETED, EventType.SUB_ORCHESTRATION_COMPLETED):
        return int(event["TaskScheduledId"]), TaskState.COMPLETED, event["Result"], None, None
    if kind in (EventType.TASK_FAILED, EventType.SUB_ORCHESTRATION_FAILED):
        return int(event["TaskScheduledId"]), TaskState.FAILED, None, event["Reason"], event["Details"]
    if kind == EventType.TIMER_FIRED:
        return int(event["TimerId"]), TaskState.COMPLETED, None, None, None
    return None


def comparable(events: list[HistoryEvent]) -> list[HistoryEvent]:
    """Events without the inbox row key a delivered EventRaised carries (``DhInboxKey``), which names
    a storage row, not anything the protocol knows."""
    return [{k: v for k, v in e.items() if k != "DhInboxKey"} for e in events]


def kinds(events: list[HistoryEvent]) -> list[str]:
    """The events' type names, for messages that say what a history holds."""
    return [EventType(e["EventType"]).name for e in events]
