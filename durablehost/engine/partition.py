"""Reading and committing instance partitions (layout: durablehost.engine.records).

Everything of one instance lives in its own partition of ``<hub>Instances``; the rest of the task hub
(leases, markers, wake-ups, the index) is in the control table (durablehost.engine.control).

An episode commits as one entity-group transaction when it fits (≤100 operations). A larger episode is
split DTFx-style (backend-notes §1.2): every batch carries an If-Match merge of the instance row, and the
ETag it returns guards the next batch, so a stale writer cannot overwrite anything after losing the
race. Only the last batch moves ``HistoryCount`` forward; until then readers ignore the new rows.
Deletions of consumed inbox rows go into the last batch or, when it is full, run after it; rows left
behind by a crash are recognised on load (their events are in history) and removed then.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from durablehost.engine.history import EventType, HistoryEvent
from durablehost.engine.records import (
    EVENT_PREFIX,
    HISTORY_PREFIX,
    INSTANCE_ROW,
    KEY_PREFIX,
    TASK_PREFIX,
    EventMessage,
    InstanceRecord,
    TaskRecord,
    history_from_properties,
    history_row_key,
    history_to_properties,
    idempotency_row_key,
    task_row_key,
)
from durablehost.errors import EntityAlreadyExists, EntityNotFound, EtagMismatch, TransactionFailed
from durablehost.store.base import Entity, Op, OpKind, TableStore, UpdateMode

MAX_BATCH = 100
_SCHEDULING_EVENTS = {
    EventType.TASK_SCHEDULED,
    EventType.TIMER_CREATED,
    EventType.SUB_ORCHESTRATION_CREATED,
    EventType.EVENT_SENT,
}


@dataclass
class LoadedInstance:
    record: InstanceRecord
    history: list[HistoryEvent]
    tasks: dict[int, TaskRecord]
    events: list[EventMessage]
    # Rows that a crash left behind: consumed events, tasks of earlier executions.
    leftovers: list[str] = field(default_factory=list)


def event_fingerprint(name: str, input_text: str | None) -> str:
    """What an idempotency key was first used for: the event's name and its input text."""
    return hashlib.sha256(json.dumps([name, input_text]).encode("utf-8")).hexdigest()


def _ops_in_batches(ops: Sequence[Op], size: int) -> Iterable[list[Op]]:
    for start in range(0, len(ops), size):
        yield list(ops[start : start + size])


class OutcomeConflict(Exception):
    """A task's outcome was recorded by someone else first (a duplicate, a re-run): ours is dropped."""


class InstanceRepository:
    """Storage access to instance partitions, in ``<hub>Instances``."""

    def __init__(self, store: TableStore, hub: str) -> None:
        self.store = store
        self.hub = hub
        self.table = f"{hub}Instances"

    async def initialize(self) -> None:
        await self.store.create_table(self.table)

    # ---------------------------------------------------------------- reading

    async def get_record(self, instance_id: str) -> InstanceRecord | None:
        try:
            entity = await self.store.get(self.table, instance_id, INSTANCE_ROW)
        except EntityNotFound:
            return None
        return InstanceRecord.from_properties(instance_id, entity.properties, entity.etag)

    async def load(self, instance_id: str) -> LoadedInstance | None:
        """Read a whole partition and interpret it relative to the committed instance row."""
        rows = [e async for e in self.store.query(self.table, partition_key=instance_id)]
        instance_rows = [e for e in rows if e.row_key == INSTANCE_ROW]
        if not instance_rows:
            return None
        head = instance_rows[0]
        record = InstanceRecord.from_properties(instance_id, head.properties, head.etag)
        history: list[HistoryEvent] = []
        task_rows: list[Entity] = []
        event_rows: list[Entity] = []
        for entity in rows:
            key = entity.row_key
            if key.startswith(HISTORY_PREFIX):
                if int(key[1:]) < record.history_count:
                    history.append(history_from_properties(entity.properties))
            elif key.startswith(TASK_PREFIX):
                task_rows.append(entity)
            elif key.startswith(EVENT_PREFIX):
                event_rows.append(entity)
        if len(history) != record.history_count:
            raise RuntimeError(
                f"instance {instance_id!r}: {len(history)} of {record.history_count} committed history "
                "rows were found; the partition has been modified outside durablehost"
            )
        scheduled = {e["EventId"] for e in history if e["EventType"] in _SCHEDULING_EVENTS}
        completed = {int(e["TaskScheduledId"]) for e in history if "TaskScheduledId" in e} | {
            int(e["TimerId"]) for e in history if e["EventType"] == EventType.TIMER_FIRED
        }
        delivered = {e.get("DhInboxKey") for e in history if e["EventType"] == EventType.EVENT_RAISED}
        leftovers: list[str] = []
        tasks: dict[int, TaskRecord] = {}
        for entity in task_rows:
            execution_id, _, task_text = entity.row_key[1:].rpartition("-")
            task_id = int(task_text)
            if execution_id != record.execution_id:
                leftovers.append(entity.row_key)
            elif task_id in scheduled:
                task = TaskRecord.from_properties(execution_id, task_id, entity.properties, entity.etag)
                task.consumed = task_id in completed
                tasks[task_id] = task
            # else: written by an episode that never reached its final batch; ignored, overwritten later.
        events: list[EventMessage] = []
        for entity in event_rows:
            if entity.row_key in delivered:
                leftovers.append(entity.row_key)
            else:
                events.append(EventMessage.from_properties(entity.row_key, entity.properties))
        return LoadedInstance(record, history, tasks, events, leftovers)

    async def read_history(self, instance_id: str, count: int) -> list[HistoryEvent]:
        rows = self.store.query(
            self.table,
            partition_key=instance_id,
            row_key_from=HISTORY_PREFIX,
            row_key_to=history_row_key(count),
        )
        return [history_from_properties(e.properties) async for e in rows]

    async def list_tasks(self, instance_id: str) -> list[Entity]:
        rows = self.store.query(
            self.table,
            partition_key=instance_id,
            row_key_from=TASK_PREFIX,
            row_key_to=chr(ord(TASK_PREFIX) + 1),
        )
        return [e async for e in rows]

    async def list_pending_events(self, instance_id: str) -> list[EventMessage]:
        rows = self.store.query(
            self.table, partition_key=instance_id, row_key_from=EVENT_PREFIX, row_key_to=HISTORY_PREFIX
        )
        return [EventMessage.from_properties(e.row_key, e.properties) async for e in rows]

    # ---------------------------------------------------------------- writing

    async def insert_instance(self, record: InstanceRecord) -> str:
        """Create the instance row; raises EntityAlreadyExists if the id is taken."""
        etag = await self.store.insert(self.table, record.instance_id, INSTANCE_ROW, record.to_properties())
        record.etag = etag
        return etag

    async def replace_instance(self, record: InstanceRecord, expected_etag: str) -> str:
        """Overwrite a finished instance with a new execution (starting an id again, as in Azure)."""
        etag = await self.store.update(
            self.table,
            record.instance_id,
            INSTANCE_ROW,
            record.to_properties(),
            etag=expected_etag,
            mode=UpdateMode.REPLACE,
        )
        record.etag = etag
        return etag

    async def update_record(self, record: InstanceRecord) -> str:
        """Write the instance row alone, conditional on the ETag it was read with."""
        etag = await self.store.update(
            self.table,
            record.instance_id,
            INSTANCE_ROW,
            record.to_properties(),
            etag=record.etag,
            mode=UpdateMode.REPLACE,
        )
        record.etag = etag
        return etag

    async def commit(
        self,
        record: InstanceRecord,
        *,
        history_start: int,
        new_history: Sequence[HistoryEvent],
        upsert_tasks: Sequence[TaskRecord],
        delete_rows: Sequence[str],
        outcomes: Sequence[TaskRecord] = (),
    ) -> str:
        """Commit an episode: history, tasks and the instance row (with ``record.etag`` as If-Match).

        ``record.history_count`` must already include ``new_history``. ``outcomes`` are task outcomes held
        in memory (``stored`` false): each is written conditionally on the ETag its row had when
        scheduled, in the first batch, so that the completion enters history exactly once; if any was
        recorded by someone else first, nothing is committed and OutcomeConflict is raised. Returns the
        new ETag and stores it on the record; each task written gets the ETag of its new row, so that its
        outcome is later written conditionally on it. Raises EtagMismatch if another writer committed first.
        """
        instance_id = record.instance_id
        guarded: list[Op] = [_outcome_op(instance_id, task) for task in outcomes]
        body: list[Op] = [
            Op.upsert(
                instance_id,
                history_row_key(history_start + offset),
                history_to_properties(event, record.execution_id),
                UpdateMode.REPLACE,
            )
            for offset, event in enumerate(new_history)
        ]
        body += [
            Op.upsert(instance_id, t.row_key, t.to_properties(), UpdateMode.REPLACE) for t in upsert_tasks
        ]
        body = guarded + body
        sources = [t.source_row for t in outcomes if t.source_row is not None]
        deletes = [Op.delete(instance_id, key) for key in [*delete_rows, *sources]]
        etag = record.etag
        per_batch = MAX_BATCH - 1  # every batch also carries the If-Match instance-row update
        head: list[Op] = []
        if len(body) + len(deletes) <= per_batch:
            final_body, deletes = body + deletes, []
        else:
            # The conditional outcome writes come first, so a conflict on one aborts before any history
            # row is written. (An outcome written by an earlier batch of an episode that then fails is
            # merely recorded, not consumed: the next episode takes it, so it still enters history once.)
            split = len(body) - (len(body) % per_batch or per_batch)
            head, final_body = body[:split], body[split:]
            room = per_batch - len(final_body)
            final_body += deletes[:room]
            deletes = deletes[room:]
        written: dict[str, str | None] = {}
        conditional = {id(op): task for op, task in zip(guarded, outcomes, strict=True)}
        for chunk in _ops_in_batches(head, per_batch):
            marker = Op.update(instance_id, INSTANCE_ROW, {"CommitInProgress": True}, etag=etag)
            etag = await self._transact_guarded(instance_id, [*chunk, marker], written, conditional)
        final = Op.update(
            instance_id, INSTANCE_ROW, record.to_properties(), etag=etag, mode=UpdateMode.REPLACE
        )
        etag = await self._transact_guarded(instance_id, [*final_body, final], written, conditional)
        record.etag = etag
        for task in (*upsert_tasks, *outcomes):
            task.etag = written.get(task.row_key, task.etag)
        for task in outcomes:
            task.stored, task.source_row = True, None
        if deletes:
            await self.delete_rows(instance_id, [op.row_key for op in deletes])
        return etag

    async def _transact_guarded(
        self,
        instance_id: str,
        ops: list[Op],
        written: dict[str, str | None],
        conditional: dict[int, TaskRecord],
    ) -> str:
        """Run a batch whose last operation is the If-Match instance-row update; return its ETag.

        The new ETag of every row the batch wrote goes into ``written``, keyed by row key. A failed
        conditional outcome write (an op in ``conditional``, keyed by ``id(op)``) raises OutcomeConflict.
        """
        try:
            etags = await self.store.transact(self.table, ops)
        except TransactionFailed as failure:
            conflict = isinstance(failure.cause, (EtagMismatch, EntityNotFound))
            if conflict and failure.index == len(ops) - 1:
                raise EtagMismatch(self.table, instance_id, INSTANCE_ROW) from failure
            loser = conditional.get(id(ops[failure.index])) if 0 <= failure.index < len(ops) else None
            if conflict and loser is not None:
                raise OutcomeConflict(
                    f"{instance_id}: task {loser.task_id} already has an outcome"
                ) from failure
            raise
        written.update((op.row_key, new) for op, new in zip(ops, etags, strict=True))
        etag = etags[-1]
        if etag is None:
            raise RuntimeError("the store returned no ETag for an update")
        return etag

    async def delete_rows(self, instance_id: str, row_keys: Sequence[str]) -> None:
        """Delete rows that may already be gone (idempotent cleanup)."""
        for chunk in _ops_in_batches([Op.delete(instance_id, k) for k in row_keys], MAX_BATCH):
            try:
                await self.store.transact(self.table, chunk)
            except TransactionFailed as failure:
                if not isinstance(failure.cause, EntityNotFound):
                    raise
                for op in chunk:
                    try:
                        await self.store.delete(self.table, instance_id, op.row_key)
                    except EntityNotFound:
                        continue

    async def record_outcomes(self, instance_id: str, tasks: Sequence[TaskRecord]) -> list[bool]:
        """Store task outcomes, each only if its task is still waiting for one.

        Every update is conditional on the ETag the task row had when it was scheduled, so of two
        completions of one task (a retried activity, a duplicate delivery) exactly one is recorded and
        the other is dropped by the store. Outcomes travel together in transactions of up to 100 rows
        (with the inbox rows that brought them, deleted in the same transaction). Returns, per task,
        whether its outcome was recorded (False: someone else's came first).
        """
        recorded = [False] * len(tasks)
        live = list(range(len(tasks)))
        while live:
            chunk = live[: MAX_BATCH // 2]  # an outcome may come with its inbox row to delete
            ops: list[Op] = []
            owners: list[int] = []
            for position in chunk:
                task = tasks[position]
                ops.append(_outcome_op(instance_id, task))
                owners.append(position)
                if task.source_row is not None:
                    ops.append(Op.delete(instance_id, task.source_row))
                    owners.append(position)
            try:
                etags = await self.store.transact(self.table, ops)
            except TransactionFailed as failure:
                if not isinstance(failure.cause, (EtagMismatch, EntityNotFound)):
                    raise
                loser = owners[failure.index]
                tasks[loser].stored = True  # nothing left to write: another outcome was recorded first
                live.remove(loser)
                continue
            for op, position, etag in zip(ops, owners, etags, strict=True):
                if op.kind is not OpKind.DELETE:
                    tasks[position].etag = etag
                    tasks[position].stored, tasks[position].source_row = True, None
                    recorded[position] = True
            live = live[len(chunk) :]
        return recorded

    async def read_task(self, instance_id: str, execution_id: str, task_id: int) -> TaskRecord | None:
        try:
            entity = await self.store.get(self.table, instance_id, task_row_key(execution_id, task_id))
        except EntityNotFound:
            return None
        return TaskRecord.from_properties(execution_id, task_id, entity.properties, entity.etag)

    async def add_event(self, instance_id: str, event: EventMessage) -> bool:
        """Put an external event into the inbox. Returns False if its idempotency key was seen before.

        The key's tombstone keeps a fingerprint of the event (name and input), so that a repeat can be
        told from another event sent under the same key (:meth:`idempotency_fingerprint`).
        """
        if event.idempotency_key is None:
            await self.store.insert(self.table, instance_id, event.row_key, event.to_properties())
            return True
        tombstone = Op.insert(
            instance_id,
            idempotency_row_key(event.idempotency_key),
            {
                "IdempotencyKey": event.idempotency_key,
                "EventRowKey": event.row_key,
                "Fingerprint": event_fingerprint(event.name, event.input),
            },
        )
        try:
            await self.store.transact(
                self.table, [tombstone, Op.insert(instance_id, event.row_key, event.to_properties())]
            )
        except TransactionFailed as failure:
            if failure.index == 0 and isinstance(failure.cause, EntityAlreadyExists):
                return False
            raise
        return True

    async def idempotency_fingerprint(self, instance_id: str, key: str) -> str | None:
        """The fingerprint stored with an accepted idempotency key ("" for a tombstone written before
        fingerprints were kept), or None if the key was not seen in this execution."""
        try:
            tombstone = await self.store.get(self.table, instance_id, idempotency_row_key(key))
        except EntityNotFound:
            return None
        return str(tombstone.get("Fingerprint") or "")

    async def purge_partition(self, instance_id: str) -> int:
        """Delete every row of an instance. Returns the number of rows deleted."""
        keys = [e.row_key async for e in self.store.query(self.table, partition_key=instance_id, select=[])]
        # The instance row goes last so that a crash midway leaves a purgeable instance, not orphans.
        keys.sort(key=lambda k: k == INSTANCE_ROW)
        await self.delete_rows(instance_id, keys)
        return len(keys)

    async def delete_stale_rows(self, instance_id: str, keep_execution: str) -> None:
        """Remove task rows of earlier executions and all history rows past the committed count."""
        stale = [
            e.row_key
            for e in await self.list_tasks(instance_id)
            if not e.row_key.startswith(f"{TASK_PREFIX}{keep_execution}-")
        ]
        if stale:
            await self.delete_rows(instance_id, stale)

    async def clear_idempotency_keys(self, instance_id: str) -> None:
        keys = [
            e.row_key
            async for e in self.store.query(
                self.table, partition_key=instance_id, row_key_from=KEY_PREFIX, row_key_to="L", select=[]
            )
        ]
        await self.delete_rows(instance_id, keys)


def _outcome_op(instance_id: str, task: TaskRecord) -> Op:
    return Op.update(instance_id, task.row_key, task.to_properties(), etag=task.etag, mode=UpdateMode.REPLACE)
