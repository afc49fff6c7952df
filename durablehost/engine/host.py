"""DurableHost: one task hub on one store, with the management operations of the Durable Functions API.

Inputs and outputs cross this interface as JSON text, exactly as they are stored and as the SDK reads
them; the HTTP layer and the in-process test client do the encoding their callers expect.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from durablehost.engine.clock import Clock
from durablehost.engine.control import ControlTable
from durablehost.engine.dispatcher import Dispatcher, DispatcherOptions
from durablehost.engine.entities import new_event_row_key
from durablehost.engine.episode import InstanceState
from durablehost.engine.export import history_document
from durablehost.engine.fidelity import Fidelity
from durablehost.engine.history import (
    EventType,
    HistoryEvent,
    execution_completed,
    execution_resumed,
    execution_suspended,
    execution_terminated,
    format_timestamp,
    orchestrator_completed,
    orchestrator_started,
)
from durablehost.engine.owed import StoreOutage
from durablehost.engine.partition import InstanceRepository, event_fingerprint
from durablehost.engine.records import EventMessage, InstanceRecord, RuntimeStatus, TaskKind, TaskState
from durablehost.engine.rewind import plan_rewind
from durablehost.errors import (
    EtagMismatch,
    IdempotencyKeyReused,
    InstanceAlreadyRunning,
    InstanceFinished,
    InstanceNotFailed,
    InstanceNotFound,
    InvalidRequest,
)
from durablehost.functions import FunctionIndex
from durablehost.functions.workers import UserCode
from durablehost.store.base import Condition, TableStore

# Azure's rules for instance ids (ext: no '/', '\\', '#', '?', control characters; at most 256 chars)
# and durablehost's for event names.
_BAD_ID = re.compile(r"[/\\#?\x00-\x1f\x7f-\x9f]")
MAX_INSTANCE_ID = 256
_EVENT_NAME = re.compile(r"^[^\x00-\x1f\x7f/\\#?]{1,128}$")


def validate_instance_id(instance_id: str) -> None:
    if not instance_id or len(instance_id) > MAX_INSTANCE_ID:
        raise InvalidRequest(f"instance ids must be 1-{MAX_INSTANCE_ID} characters long")
    if _BAD_ID.search(instance_id):
        raise InvalidRequest("instance ids cannot contain '/', '\\', '#', '?' or control characters")
    if instance_id.startswith("@"):
        raise InvalidRequest("instance ids cannot start with '@' (reserved for durable entities)")


def entity_instance_id(name: str, key: str) -> str:
    """The instance id of an entity: ``@{name lower-cased}@{key}`` (EntityId.get_scheduler_id, §6)."""
    if not name or "@" in name:
        raise InvalidRequest("entity names must be non-empty and cannot contain '@'")
    if _BAD_ID.search(key):
        raise InvalidRequest("entity keys cannot contain '/', '\\', '#', '?' or control characters")
    return f"@{name.lower()}@{key}"


def validate_event_name(name: str) -> None:
    if not _EVENT_NAME.match(name):
        raise InvalidRequest(
            "event names must be 1-128 characters without '/', '\\', '#', '?' or control characters"
        )


_Change = Callable[[InstanceRecord], tuple[InstanceRecord, list[HistoryEvent]] | None]


class DurableHost:
    """The engine for one task hub: a dispatcher plus the client operations."""

    def __init__(
        self,
        store: TableStore,
        functions: FunctionIndex,
        clock: Clock,
        *,
        hub: str = "DurableHost",
        options: DispatcherOptions | None = None,
    ) -> None:
        self.store = store
        self.functions = functions
        self.clock = clock
        self.outage = StoreOutage()
        self.repo = InstanceRepository(store, hub)
        self.control = ControlTable(store, hub, self.outage)
        self.dispatcher = Dispatcher(self.repo, self.control, functions, clock, options, outage=self.outage)
        self._dispatching = False

    async def start(self, *, run_dispatcher: bool = True, own_all: bool = False) -> None:
        """Open the hub's tables; with ``run_dispatcher`` join the hub as a worker (as soon as this
        returns, clients can be served; ``own_all`` waits until this process owns every partition)."""
        await self.repo.initialize()
        await self.control.initialize()
        if run_dispatcher:
            await self.dispatcher.start(own_all=own_all)
            self._dispatching = True
        else:
            # A process that only serves clients still needs the partition count to address owners.
            count = self.dispatcher.options.partition_count
            self.dispatcher.partition_count = await self.control.partition_count(count)

    @property
    def user_code(self) -> UserCode:
        """Where the app's functions run (worker threads and the user-code event loop)."""
        return self.dispatcher.user

    async def stop(self, *, drain: bool = True) -> None:
        if self._dispatching:
            await self.dispatcher.stop(drain=drain)

    # ------------------------------------------------------------------ starting

    @property
    def fidelity(self) -> Fidelity:
        return self.dispatcher.options.fidelity

    async def start_new(
        self,
        name: str,
        instance_id: str | None = None,
        input_text: str | None = None,
        *,
        version: str | None = None,
    ) -> str:
        """Create an instance. Refused while an instance with the id runs; a finished one is replaced.

        ``version`` (the start route's ``?version=``, an empty string included) overrides host.json's
        defaultVersion for this instance; None takes the default.
        """
        orchestrator = self.functions.orchestrator(name)
        instance_id = instance_id if instance_id is not None else uuid.uuid4().hex
        validate_instance_id(instance_id)
        if input_text is not None:
            json.loads(input_text)  # refuse invalid JSON before anything is stored
        now = self.clock.now()
        record = InstanceRecord(
            instance_id=instance_id,
            # Azure stores the caller's spelling of the name; durablehost the orchestrator's own (README).
            name=name if self.fidelity is Fidelity.AZURE else orchestrator.name,
            status=RuntimeStatus.PENDING,
            execution_id=uuid.uuid4().hex,
            created_time=now,
            last_updated_time=now,
            input=input_text,
            version=self.dispatcher.options.versioning.version_for(version),
            fidelity=self.fidelity,
        )
        blocked_by = await self.dispatcher.create_instance(record)
        if blocked_by is not None:
            raise InstanceAlreadyRunning(instance_id, blocked_by.status.value)
        return instance_id

    # ------------------------------------------------------------------ events

    async def raise_event(
        self, instance_id: str, name: str, input_text: str | None, *, idempotency_key: str | None = None
    ) -> bool:
        """Put an event into the inbox. Returns False for a repeated idempotency key: that event was
        accepted before (perhaps before it finished the instance) and is not delivered again.

        Raises IdempotencyKeyReused when the key was accepted with another event name or input.
        Azure-exact, the key is ignored: the extension knows no such thing, so a repeat is delivered again.
        """
        validate_event_name(name)
        if self.fidelity is Fidelity.AZURE:
            idempotency_key = None
        if idempotency_key is not None and await self._key_seen(
            instance_id, name, input_text, idempotency_key
        ):
            return False
        record = await self.repo.get_record(instance_id)
        if record is None:
            raise InstanceNotFound(instance_id)
        if record.status.is_finished:
            raise InstanceFinished(instance_id, record.status.value, f"raise event {name!r}")
        if input_text is not None:
            json.loads(input_text)
        now = self.clock.now()
        event = EventMessage(
            row_key=new_event_row_key(),
            name=name,
            input=input_text,
            raised_time=now,
            idempotency_key=idempotency_key,
        )
        if not await self.repo.add_event(instance_id, event):
            # A concurrent request with the key was accepted first: a replay only if it was this event.
            if idempotency_key is not None:
                await self._key_seen(instance_id, name, input_text, idempotency_key)
            return False
        if not self.dispatcher.add_event(instance_id, event):
            await self.dispatcher.notify(instance_id)
        return True

    async def _key_seen(self, instance_id: str, name: str, input_text: str | None, key: str) -> bool:
        fingerprint = await self.repo.idempotency_fingerprint(instance_id, key)
        if fingerprint is None:
            return False
        if fingerprint and fingerprint != event_fingerprint(name, input_text):
            raise IdempotencyKeyReused(instance_id, key)
        return True

    # ------------------------------------------------------------------ entities

    async def signal_entity(self, name: str, key: str, operation: str, input_text: str | None) -> None:
        """Queue an operation for an entity (created on first use), as the client's signal_entity does.

        ``input_text`` is the request body. The SDK client double-encodes it (protocol §5.4), which is
        what the entity batch expects (§7); a body that decodes to anything but a string (``curl -d 5``)
        is encoded once more, so the entity still receives the value rather than a TypeError (which is
        what Azure gives it, and what Azure-exact fidelity keeps).
        """
        entity_id = entity_instance_id(name, key)
        validate_event_name(operation)
        if input_text is None:
            batch_input = json.dumps("null")
        elif self.fidelity is Fidelity.AZURE or isinstance(json.loads(input_text), str):
            batch_input = input_text
        else:
            batch_input = json.dumps(input_text)
        await self.dispatcher.entities.ensure(entity_id)
        event = EventMessage(
            row_key=new_event_row_key(),
            name=operation,
            input=batch_input,
            raised_time=self.clock.now(),
            is_signal=True,
        )
        await self.repo.add_event(entity_id, event)
        if not self.dispatcher.add_event(entity_id, event):
            await self.dispatcher.notify(entity_id)

    async def read_entity_state(self, name: str, key: str) -> str | None:
        """The entity's state as JSON text, or None if it does not exist (never created or deleted)."""
        self.functions.entity(name)
        record = await self.repo.get_record(entity_instance_id(name, key))
        if record is None or not record.entity_exists:
            return None
        return record.entity_state

    # ------------------------------------------------------------------ state changes

    async def _change(self, instance_id: str, action: str, change: _Change) -> InstanceRecord:
        """Apply ``change(record) -> (record, events)`` under the instance ETag, retrying on races."""
        for _ in range(20):
            loaded = await self.repo.load(instance_id)
            if loaded is None:
                raise InstanceNotFound(instance_id)
            record = replace(loaded.record)
            if record.status.is_finished:
                raise InstanceFinished(instance_id, record.status.value, action)
            changed = change(record)
            if changed is None:
                return record
            new_record, events = changed
            start = loaded.record.history_count
            new_record.history_count = start + len(events)
            try:
                await self.repo.commit(
                    new_record, history_start=start, new_history=events, upsert_tasks=[], delete_rows=[]
                )
            except EtagMismatch:
                continue
            # The owner (this process or another) revalidates its copy and acts on the change: it runs
            # a resumed instance, finishes the bookkeeping of a terminated one (its parent's outcome),
            # and writes the index copy.
            await self.dispatcher.notify(instance_id)
            return new_record
        raise RuntimeError(f"could not {action} {instance_id!r}: the instance kept changing")

    async def terminate(
        self, instance_id: str, reason: str | None = None, *, recursive: bool = False
    ) -> None:
        """Terminate an instance; with ``recursive`` (beyond Azure), its running sub-orchestrations too."""
        await self._terminate_one(instance_id, reason)
        if not recursive:
            return
        loaded = await self.repo.load(instance_id)
        children = [
            t.child_instance_id
            for t in (loaded.tasks.values() if loaded else [])
            if t.kind is TaskKind.SUB_ORCHESTRATION and t.state is TaskState.SCHEDULED and t.child_instance_id
        ]
        for child in children:
            try:
                await self.terminate(child, reason, recursive=True)
            except (InstanceFinished, InstanceNotFound):
                continue  # finished or never created meanwhile: nothing to stop

    async def _terminate_one(self, instance_id: str, reason: str | None) -> None:
        def change(record: InstanceRecord) -> tuple[InstanceRecord, list[HistoryEvent]]:
            now = self.clock.now()
            output = json.dumps(reason) if reason is not None else None
            record.status = RuntimeStatus.TERMINATED
            record.output = output
            record.completed_time = now
            record.last_updated_time = now
            events = [
                orchestrator_started(now),
                execution_terminated(now, reason),
                execution_completed(now, record.next_task_id, "Terminated", output),
                orchestrator_completed(now),
            ]
            return record, events

        await self._change(instance_id, "terminate", change)

    async def suspend(self, instance_id: str, reason: str | None = None) -> None:
        def change(record: InstanceRecord) -> tuple[InstanceRecord, list[HistoryEvent]] | None:
            if record.status is RuntimeStatus.SUSPENDED:
                return None
            now = self.clock.now()
            record.suspended_from = record.status
            record.status = RuntimeStatus.SUSPENDED
            record.last_updated_time = now
            return record, [
                orchestrator_started(now),
                execution_suspended(now, reason),
                orchestrator_completed(now),
            ]

        await self._change(instance_id, "suspend", change)

    async def resume(self, instance_id: str, reason: str | None = None) -> None:
        def change(record: InstanceRecord) -> tuple[InstanceRecord, list[HistoryEvent]] | None:
            if record.status is not RuntimeStatus.SUSPENDED:
                return None
            now = self.clock.now()
            record.status = record.suspended_from or RuntimeStatus.RUNNING
            record.suspended_from = None
            record.last_updated_time = now
            return record, [
                orchestrator_started(now),
                execution_resumed(now, reason),
                orchestrator_completed(now),
            ]

        await self._change(instance_id, "resume", change)

    async def restart(self, instance_id: str, *, new_instance_id: bool = True) -> str:
        """Start the instance's orchestrator again with its original input; returns the new instance id."""
        record = await self.repo.get_record(instance_id)
        if record is None:
            raise InstanceNotFound(instance_id)
        target = uuid.uuid4().hex if new_instance_id else instance_id
        return await self.start_new(record.name, target, record.input)

    async def rewind(self, instance_id: str, reason: str | None = None) -> None:
        """Run a failed instance's failed tasks (and failed sub-orchestrations) again."""
        for _ in range(20):
            loaded = await self.repo.load(instance_id)
            if loaded is None:
                raise InstanceNotFound(instance_id)
            if loaded.record.status is not RuntimeStatus.FAILED:
                raise InstanceNotFailed(instance_id, loaded.record.status.value)
            plan = plan_rewind(loaded, self.clock.now(), reason or "rewound")
            try:
                await self.repo.commit(
                    plan.record,
                    history_start=0,
                    new_history=plan.history,
                    upsert_tasks=plan.reset_tasks,
                    delete_rows=plan.removed_rows,
                )
            except EtagMismatch:
                continue
            await self.control.mark_active(self.dispatcher.partition(instance_id), instance_id)
            await self.dispatcher.notify(instance_id)  # the owner reloads it, runs it and indexes it
            # Children only now: a child that finishes reports into its parent's task row, which must
            # already be waiting again (scheduled), or its result would be dropped.
            for child in plan.failed_children:
                child_record = await self.repo.get_record(child)
                if child_record is not None and child_record.status is RuntimeStatus.FAILED:
                    await self.rewind(child, reason)
            return
        raise RuntimeError(f"could not rewind {instance_id!r}: the instance kept changing")

    async def purge_where(
        self,
        *,
        created_from: datetime,
        created_to: datetime | None = None,
        runtime_status: list[RuntimeStatus] | None = None,
    ) -> int:
        """Purge every finished instance created in the range (and in the statuses, if given)."""
        wanted = [s for s in (runtime_status or list(RuntimeStatus)) if s.is_finished]
        purged = 0
        for status in wanted:
            continuation: str | None = None
            while True:
                records, continuation = await self.list_instances(
                    runtime_status=[status],
                    created_from=created_from,
                    created_to=created_to,
                    page_size=1000,
                    continuation=continuation,
                )
                for record in records:
                    purged += await self.purge(record.instance_id)
                if continuation is None:
                    break
        return purged

    async def purge(self, instance_id: str) -> int:
        """Delete a finished instance's partition. Returns 1, or 0 if there was no such instance."""
        record = await self.repo.get_record(instance_id)
        if record is None:
            return 0
        if not record.status.is_finished:
            raise InstanceAlreadyRunning(instance_id, record.status.value)
        await self.repo.purge_partition(instance_id)
        await self.control.unmark_active(self.dispatcher.partition(instance_id), instance_id)
        await self.control.unpublish(instance_id)
        self.dispatcher.cache.drop(instance_id)
        return 1

    # ------------------------------------------------------------------ reading

    async def get_record(self, instance_id: str) -> InstanceRecord | None:
        return await self.repo.get_record(instance_id)

    async def get_status(
        self,
        instance_id: str,
        *,
        show_history: bool = False,
        show_history_output: bool = False,
        show_input: bool = True,
    ) -> dict[str, Any] | None:
        """The status JSON of the extension (protocol §5.3), or None for an unknown instance."""
        record = await self.repo.get_record(instance_id)
        if record is None:
            return None
        status = status_json(record, show_input=show_input)
        if show_history:
            events = await self.repo.read_history(instance_id, record.history_count)
            status["historyEvents"] = public_history(
                events, show_output=show_history_output, show_input=show_input
            )
        return status

    async def export_history(self, instance_id: str) -> dict[str, Any]:
        """The instance's current execution as a history document (``durablehost.replay``)."""
        record = await self.repo.get_record(instance_id)
        if record is None:
            raise InstanceNotFound(instance_id)
        # Bounded by the record's count: rows past it are an uncommitted tail (README, Storage).
        events = await self.repo.read_history(instance_id, record.history_count)
        return history_document(record, events)

    async def list_instances(
        self,
        *,
        runtime_status: list[RuntimeStatus] | None = None,
        created_from: datetime | None = None,
        created_to: datetime | None = None,
        prefix: str | None = None,
        name: str | None = None,
        page_size: int = 100,
        continuation: str | None = None,
    ) -> tuple[list[InstanceRecord], str | None]:
        where: list[Condition] = []
        if created_from is not None:
            where.append(Condition("CreatedTime", "ge", created_from))
        if created_to is not None:
            where.append(Condition("CreatedTime", "le", created_to))
        if name is not None:
            where.append(Condition("Name", "eq", name))
        if runtime_status and len(runtime_status) == 1:
            where.append(Condition("RuntimeStatus", "eq", runtime_status[0].value))
        records, token = await self.control.query_records(
            where, prefix=prefix, page_size=page_size, continuation=continuation
        )
        # Entities share the index (their ids start with '@'); they are listed by list_entities.
        records = [r for r in records if not r.is_entity]
        if runtime_status:
            wanted = set(runtime_status)
            records = [r for r in records if r.status in wanted]
        return records, token

    async def list_entities(
        self,
        name: str,
        *,
        fetch_state: bool = False,
        top: int = 100,
        last_operation_from: datetime | None = None,
        last_operation_to: datetime | None = None,
        continuation: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of the existing entities named ``name``, and the next page's continuation token.

        Shaped like the extension's answer to ``GET entities/{name}`` (``HttpApiHandler.
        HandleListEntitiesRequestAsync``, a list of ``DurableEntityStatus``): ``{"entityId": {"name",
        "key"}, "lastOperationTime"}`` plus ``"state"`` (the state's JSON value) with ``fetch_state``.
        Read from the instance index, where entity rows (ids ``@name@key``) are published when created
        and after every batch; deleted entities are not listed.
        """
        prefix = entity_instance_id(name, "")
        where = [Condition("EntityExists", "eq", True)]
        if last_operation_from is not None:
            where.append(Condition("LastUpdatedTime", "ge", last_operation_from))
        if last_operation_to is not None:
            where.append(Condition("LastUpdatedTime", "le", last_operation_to))
        records, token = await self.control.query_records(
            where, prefix=prefix, page_size=top, continuation=continuation
        )
        entities: list[dict[str, Any]] = []
        for record in records:
            entity_name, _, key = record.instance_id[1:].partition("@")
            status: dict[str, Any] = {
                "entityId": {"name": entity_name, "key": key},
                "lastOperationTime": _seconds(record.last_updated_time),
            }
            if fetch_state:
                status["state"] = json.loads(record.entity_state) if record.entity_state else None
            entities.append(status)
        return entities, token

    async def state_of(self, instance_id: str) -> InstanceState | None:
        """The instance as this process knows it: its cached state, else as stored (not cached)."""
        cached = self.dispatcher.cache.get(instance_id)
        if cached is not None:
            return cached
        loaded = await self.repo.load(instance_id)
        if loaded is None:
            return None
        return InstanceState(loaded.record, loaded.history, loaded.tasks, loaded.events)


def status_json(record: InstanceRecord, *, show_input: bool = True) -> dict[str, Any]:
    status: dict[str, Any] = {
        "name": record.name,
        "instanceId": record.instance_id,
        "runtimeStatus": record.status.value,
        # Python-started instances show their input as a string: the client double-encodes (§5.3).
        "input": record.input if show_input else None,
        "customStatus": json.loads(record.custom_status) if record.custom_status else None,
        "output": json.loads(record.output) if record.output else None,
        "createdTime": _seconds(record.created_time),
        "lastUpdatedTime": _seconds(record.last_updated_time),
    }
    return status


def _seconds(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


_HIDDEN = {
    EventType.ORCHESTRATOR_STARTED,
    EventType.ORCHESTRATOR_COMPLETED,
    EventType.TASK_SCHEDULED,
    EventType.SUB_ORCHESTRATION_CREATED,
}


def public_history(
    events: list[HistoryEvent], *, show_output: bool, show_input: bool
) -> list[dict[str, Any]]:
    """``historyEvents`` as the extension shapes them (ext DurableClient.cs:938-1040, protocol §5.3)."""
    scheduled = {
        e["EventId"]: e
        for e in events
        if e["EventType"] in (EventType.TASK_SCHEDULED, EventType.SUB_ORCHESTRATION_CREATED)
    }
    shaped = []
    for event in events:
        kind = EventType(event["EventType"])
        if kind in _HIDDEN:
            continue
        item: dict[str, Any] = {"EventType": _pascal(kind), "Timestamp": event["Timestamp"]}
        if kind is EventType.EXECUTION_STARTED:
            item["FunctionName"] = event.get("Name")
            if show_input:
                item["Input"] = _maybe_json(event.get("Input"))
        elif "TaskScheduledId" in event:
            origin = scheduled.get(event["TaskScheduledId"], {})
            item["FunctionName"] = origin.get("Name")
            item["ScheduledTime"] = origin.get("Timestamp")
            if show_output and "Result" in event:
                item["Result"] = _maybe_json(event.get("Result"))
            if "Reason" in event:
                item["Reason"] = event.get("Reason")
                item["Details"] = event.get("Details")
        elif kind in (EventType.EXECUTION_COMPLETED, EventType.EXECUTION_TERMINATED):
            item["OrchestrationStatus"] = {1: "Completed", 3: "Failed", 5: "Terminated"}.get(
                int(event.get("OrchestrationStatus", 5)), "Terminated"
            )
            if show_output:
                item["Result"] = _maybe_json(event.get("Result"))
        elif kind is EventType.EVENT_RAISED:
            item["Name"] = event.get("Name")
            if show_input:
                item["Input"] = _maybe_json(event.get("Input"))
        elif kind in (EventType.TIMER_CREATED, EventType.TIMER_FIRED):
            item["FireAt"] = event.get("FireAt")
        shaped.append(item)
    return shaped


def _pascal(kind: EventType) -> str:
    return (
        "".join(part.capitalize() for part in kind.name.split("_"))
        .replace("SubOrchestrationCreated", "SubOrchestrationInstanceCreated")
        .replace("SubOrchestrationCompleted", "SubOrchestrationInstanceCompleted")
        .replace("SubOrchestrationFailed", "SubOrchestrationInstanceFailed")
    )


def _maybe_json(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


__all__ = ["DurableHost", "format_timestamp", "status_json", "validate_event_name", "validate_instance_id"]
