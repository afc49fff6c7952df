"""Durable entities: their messages and their batches (protocol §7).

An entity is an instance with the id ``@name@key`` whose state lives on its instance row; it exists
implicitly (its row is created on first use). Requests (an orchestration's ``call_entity`` or
``signal_entity``, a client's signal) are inbox messages of the entity, answers are inbox messages of the
caller, named after the request id, each deduplicated by an idempotency key, so a message re-sent after
a crash is delivered once.

The owner of the entity's partition runs its queued operations as one batch, strictly in order, on a
worker thread (an entity handle is sync user code, durablehost.functions.workers). Answers go out before
the new state commits: after a crash the batch runs again from the old state and the repeated answers
are dropped by their idempotency keys, so every operation takes effect on the state exactly once.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from datetime import datetime

from durablehost.engine.clock import Clock
from durablehost.engine.episode import InstanceState
from durablehost.engine.partition import MAX_BATCH, InstanceRepository
from durablehost.engine.records import EventMessage, InstanceRecord, MessageKind, RuntimeStatus, TaskRecord
from durablehost.errors import EntityAlreadyExists, InvocationError, UnknownFunction
from durablehost.functions import FunctionIndex, call_entity
from durablehost.functions.workers import UserCode

log = logging.getLogger("durablehost.entities")

Deliver = Callable[[str, EventMessage], Awaitable[object]]
_KNOWN_LIMIT = 100_000


def split_entity_id(entity_id: str) -> tuple[str, str]:
    """``@name@key`` -> (name, key), as EntityId.get_scheduler_id writes it (protocol §6)."""
    name, _, key = entity_id[1:].partition("@")
    return name, key


def new_event_row_key() -> str:
    """Inbox rows sort by arrival: the time in nanoseconds, then randomness against ties."""
    return f"E{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"


def request_from_orchestration(sender: str, task: TaskRecord, now: datetime) -> EventMessage:
    """The inbox message an entity receives for an orchestration's call or signal (protocol §2.7, §7)."""
    message = json.loads(task.input or "{}")
    request_id = str(message["id"])
    is_signal = bool(message.get("signal"))
    operation_input = message.get("input")
    return EventMessage(
        row_key=new_event_row_key(),
        name=str(message.get("op")),
        # The batch input is encoded twice (protocol §7): the entity does df_loads(json.loads(input)).
        input=json.dumps(operation_input if operation_input is not None else "null"),
        raised_time=now,
        idempotency_key=f"entity-request:{request_id}",
        requester=None if is_signal else sender,
        request_id=request_id,
        is_signal=is_signal,
    )


def answer(request_id: str, body: Mapping[str, object], now: datetime) -> EventMessage:
    """The caller's inbox message with an operation's result (an EventRaised named after the request)."""
    return EventMessage(
        row_key=new_event_row_key(),
        name=request_id,
        input=json.dumps(body),
        raised_time=now,
        idempotency_key=f"entity-response:{request_id}",
    )


class Entities:
    def __init__(
        self,
        repo: InstanceRepository,
        functions: FunctionIndex,
        user: UserCode,
        clock: Clock,
        *,
        batch_size: int,
        deliver: Deliver,
        publish: Callable[[InstanceRecord], None],
        mark_active: Callable[[str], Awaitable[None]],
    ) -> None:
        self._repo = repo
        self._functions = functions
        self._user = user
        self._clock = clock
        # The batch's inbox rows are deleted in the transaction that commits the new state, which holds
        # 100 operations with the instance row: a bigger batch would delete some rows after the commit,
        # and a reload in between would run their operations twice.
        self._batch_size = min(batch_size, MAX_BATCH - 1)
        self._deliver = deliver
        # Entity rows go into the instance index too, which `GET entities/{name}` lists (the owner writes
        # them: the dispatcher's publish).
        self._publish = publish
        self._mark_active = mark_active
        self._known: set[str] = set()  # entities this process created or found existing (bounded)

    async def ensure(self, entity_id: str) -> None:
        """Create an entity's instance row on first use (protocol §7: entities exist implicitly)."""
        name, _key = split_entity_id(entity_id)
        entity = self._functions.entity(name)
        if entity_id in self._known:
            return
        now = self._clock.now()
        record = InstanceRecord(
            instance_id=entity_id,
            name=entity.name,
            status=RuntimeStatus.RUNNING,
            execution_id="entity",
            created_time=now,
            last_updated_time=now,
        )
        # Marked active before its row exists, like an orchestration (recovery finds its inbox after a
        # crash); an entity never finishes, so the marker stays.
        await self._mark_active(entity_id)
        try:
            await self._repo.insert_instance(record)
        except EntityAlreadyExists:
            self._remember(entity_id)
            return
        self._publish(record)
        self._remember(entity_id)

    def _remember(self, entity_id: str) -> None:
        if len(self._known) >= _KNOWN_LIMIT:
            self._known.clear()
        self._known.add(entity_id)

    async def send_request(self, sender: str, task: TaskRecord) -> None:
        """Deliver an orchestration's call or signal; a call to an unknown entity gets an error answer."""
        event = request_from_orchestration(sender, task, self._clock.now())
        try:
            await self.ensure(task.name)
        except UnknownFunction as unknown:
            if event.is_signal or event.request_id is None:
                log.error("signal to %s dropped: %s", task.name, unknown)
                return
            body = {"result": json.dumps(str(unknown)), "exceptionType": "UnknownFunction"}
            await self._deliver(sender, answer(event.request_id, body, self._clock.now()))
            return
        await self._deliver(task.name, event)

    def batch_of(self, state: InstanceState) -> list[EventMessage]:
        return [e for e in state.events if e.kind is MessageKind.EVENT][: self._batch_size]

    async def run_batch(self, state: InstanceState) -> tuple[InstanceRecord, list[EventMessage]]:
        """Run the queued operations; deliver their answers; return the row to commit and what it consumes."""
        record = state.record
        batch = self.batch_of(state)
        name, key = split_entity_id(record.instance_id)
        request = {
            "self": {"name": name, "key": key},
            "exists": record.entity_exists,
            "state": record.entity_state,
            "batch": [{"name": e.name, "input": e.input, "isSignal": e.is_signal} for e in batch],
        }
        try:
            entity = self._functions.entity(name)
            output = await self._user.run_orchestrator(call_entity, entity, json.dumps(request))
            results = list(output.get("results") or [])
        except (UnknownFunction, InvocationError) as problem:
            log.error("entity %s: %s", record.instance_id, problem)
            output = {"entityExists": record.entity_exists, "entityState": record.entity_state}
            results = [{"isError": True, "result": json.dumps(str(problem))} for _ in batch]
        now = self._clock.now()
        for event, result in zip(batch, results, strict=False):
            if event.is_signal or event.requester is None or event.request_id is None:
                continue
            body: dict[str, object] = {"result": result.get("result")}
            if result.get("isError"):
                body["exceptionType"] = "Exception"
            await self._deliver(event.requester, answer(event.request_id, body, now))
        updated = replace(
            record,
            entity_state=output.get("entityState"),
            entity_exists=bool(output.get("entityExists")),
            last_updated_time=now,
        )
        return updated, batch
