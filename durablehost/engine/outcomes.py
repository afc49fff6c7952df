"""Task outcomes held in memory until a commit of their partition stores them.

An outcome of work this process ran (an activity, a timer, a sub-orchestration it owns) is not written
on its own when an episode can take it: the instance's next episode writes it in its own transaction
(one storage request per step of a sequence, backend-notes §4.3). When no episode can take it soon (the
instance is running one, is waiting for completions to pile up, or is suspended), a flush writes the
instance's held outcomes together instead (group commit of task rows, durablehost.engine.partition
``record_outcomes``). Either way each is written conditionally on the ETag its task row had when it was
scheduled, so of two outcomes of one task exactly one is recorded, and the other's waiter learns it was
dropped.

Outcome messages (outcomes another partition's owner sent, e.g. a sub-orchestration's result) are held
the same way, with the inbox row that brought them, which their commit deletes.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from durablehost.engine.cache import InstanceCache
from durablehost.engine.episode import InstanceState
from durablehost.engine.owed import StoreOutage, until_stored
from durablehost.engine.partition import InstanceRepository
from durablehost.engine.records import Outcome, TaskKind, TaskRecord, TaskState
from durablehost.errors import PayloadTooLarge


@dataclass
class Held:
    """One outcome waiting to be stored, and whoever waits for that."""

    execution_id: str
    task_id: int
    outcome: Outcome
    completed_time: datetime
    source_row: str | None = None  # the inbox message that brought it, deleted when it is stored
    waiters: list[asyncio.Future[bool]] = field(default_factory=list)

    def resolve(self, recorded: bool) -> None:
        for waiter in self.waiters:
            if not waiter.done():
                waiter.set_result(recorded)


class HeldOutcomes:
    def __init__(
        self,
        repo: InstanceRepository,
        cache: InstanceCache,
        outage: StoreOutage,
        *,
        schedule: Callable[[str], None],
        spawn: Callable[[Awaitable[object]], None],
    ) -> None:
        self._repo = repo
        self._cache = cache
        self._outage = outage
        self._schedule = schedule
        self._spawn = spawn
        self._pending: dict[str, dict[int, Held]] = {}  # waiting for an episode or a flush
        self._claimed: dict[str, dict[int, Held]] = {}  # taken by the episode running now
        self._flushing: set[str] = set()
        self._flush_again: set[str] = set()

    # ---------------------------------------------------------------- what is held

    def pending(self, instance_id: str) -> Mapping[int, Held]:
        return self._pending.get(instance_id, {})

    def pinned(self, instance_id: str) -> bool:
        """Must the instance stay cached (something of it is held or being written)?"""
        return (
            instance_id in self._flushing
            or bool(self._pending.get(instance_id))
            or bool(self._claimed.get(instance_id))
        )

    @property
    def busy(self) -> bool:
        return bool(self._flushing) or any(self._pending.values()) or any(self._claimed.values())

    def instances(self) -> list[str]:
        return [i for i in {*self._pending, *self._claimed, *self._flushing} if self.pinned(i)]

    def hold(
        self, instance_id: str, task: TaskRecord, outcome: Outcome, now: datetime
    ) -> asyncio.Future[bool] | None:
        """Hold a scheduled task's outcome; the future says whether it was recorded once it is stored.
        None when an outcome of that task is held already (the first one stands)."""
        instance_pending = self._pending.setdefault(instance_id, {})
        if task.task_id in instance_pending or task.task_id in self._claimed.get(instance_id, {}):
            return None
        item = Held(task.execution_id, task.task_id, _storable(task, outcome), now)
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        item.waiters.append(waiter)
        instance_pending[task.task_id] = item
        return waiter

    async def task_of(self, instance_id: str, execution_id: str, task_id: int) -> TaskRecord | None:
        """The scheduled task an outcome is for, from the cache or, if the cached copy predates the
        episode that scheduled it, from the store; None when it is not waiting for an outcome."""
        state = await until_stored(
            self._outage, "loading an instance", lambda: self._cache.get_or_load(instance_id)
        )
        task = _scheduled(state, execution_id, task_id)
        if task is None and state is not None:
            state = await until_stored(
                self._outage, "loading an instance", lambda: self._cache.load(instance_id)
            )
            task = _scheduled(state, execution_id, task_id)
        return task

    # ---------------------------------------------------------------- episodes

    def absorb_messages(self, state: InstanceState) -> list[str]:
        """Hold the outcome messages of the inbox; return the inbox rows of stale ones (duplicates, or
        for an earlier execution), to be deleted."""
        messages = state.outcome_messages()
        if not messages:
            return []
        instance_id = state.record.instance_id
        pending = self._pending.setdefault(instance_id, {})
        claimed = self._claimed.get(instance_id, {})
        stale: list[str] = []
        for message in messages:
            task = None
            if message.execution_id is not None and message.task_id is not None:  # task 0 is falsy
                task = _scheduled(state, message.execution_id, message.task_id)
            if task is None or message.input is None or task.task_id in pending or task.task_id in claimed:
                stale.append(message.row_key)
                continue
            pending[task.task_id] = Held(
                state.record.execution_id,
                task.task_id,
                Outcome.from_json(message.input),
                message.raised_time,
                source_row=message.row_key,
            )
        absorbed = {m.row_key for m in messages}
        state.events = [e for e in state.events if e.row_key not in absorbed]
        return stale

    def claim(self, state: InstanceState, snapshot: InstanceState) -> list[TaskRecord]:
        """Move the instance's held outcomes into an episode's snapshot, as completions to commit."""
        instance_id = state.record.instance_id
        pending = self._pending.pop(instance_id, {})
        claimed = self._claimed.setdefault(instance_id, {})
        outcomes: list[TaskRecord] = []
        for task_id, item in pending.items():
            task = _scheduled(state, item.execution_id, task_id)
            if task is None:
                item.resolve(False)  # another outcome was stored first, or it belongs to an old execution
                continue
            if task.kind is TaskKind.ENTITY_MESSAGE:
                # It only records that a message was sent: no episode waits for it, a flush stores it.
                self._pending.setdefault(instance_id, {})[task_id] = item
                continue
            done = _done(task, item)
            snapshot.tasks[task_id] = done
            claimed[task_id] = item
            outcomes.append(done)
        self.flush_soon(instance_id)
        return outcomes

    def unclaim(self, instance_id: str) -> None:
        """An episode that did not commit gives its claimed outcomes back."""
        claimed = self._claimed.pop(instance_id, {})
        if claimed:
            pending = self._pending.setdefault(instance_id, {})
            for task_id, item in claimed.items():
                pending.setdefault(task_id, item)

    def committed(self, instance_id: str) -> None:
        for item in self._claimed.pop(instance_id, {}).values():
            item.resolve(True)

    def drop(self, instance_id: str) -> None:
        """The instance is gone: nothing held for it will be recorded."""
        for item in self._pending.pop(instance_id, {}).values():
            item.resolve(False)

    def close(self) -> None:
        for held in (*self._pending.values(), *self._claimed.values()):
            for item in held.values():
                item.resolve(False)
        self._pending.clear()
        self._claimed.clear()

    # ---------------------------------------------------------------- flushes

    def flush_soon(self, instance_id: str) -> None:
        if not self._pending.get(instance_id):
            return
        if instance_id in self._flushing:
            self._flush_again.add(instance_id)
        else:
            self._flushing.add(instance_id)
            self._spawn(self._flush(instance_id))

    async def _flush(self, instance_id: str) -> None:
        try:
            while True:
                self._flush_again.discard(instance_id)
                pending = self._pending.pop(instance_id, {})
                if not pending:
                    return
                state = await until_stored(
                    self._outage, "loading an instance", lambda: self._cache.get_or_load(instance_id)
                )
                if await self._write(instance_id, state, pending.values()):
                    # Another outcome came first: what is cached of those tasks is stale.
                    await until_stored(
                        self._outage, "reloading an instance", lambda: self._cache.load(instance_id)
                    )
                if instance_id not in self._flush_again and not self._pending.get(instance_id):
                    return
        finally:
            self._flushing.discard(instance_id)
            self._schedule(instance_id)  # stored completions wait for the next episode

    def store_directly(self, instance_id: str) -> Awaitable[bool]:
        """After the partition was handed over: store what is held anyway (conditional writes), so the
        next owner finds it instead of running the work again.

        What is held, and the cached task rows it is written against, are taken at the call, not when
        the returned write runs: a release spawns the write and forgets the partition's instances at
        once (recovery.released), and a write that found them gone would drop every outcome."""
        items = [*self._pending.pop(instance_id, {}).values(), *self._claimed.pop(instance_id, {}).values()]
        return self._write(instance_id, self._cache.get(instance_id), items)

    async def _write(self, instance_id: str, state: InstanceState | None, items: Iterable[Held]) -> bool:
        """Store ``items`` against ``state``'s task rows; True if any was dropped for another outcome."""
        writes: list[tuple[Held, TaskRecord]] = []
        for item in items:
            task = _scheduled(state, item.execution_id, item.task_id)
            if task is None:
                item.resolve(False)
            else:
                writes.append((item, _done(task, item)))
        if not writes:
            return False
        store = functools.partial(self._repo.record_outcomes, instance_id, [task for _, task in writes])
        recorded = await until_stored(self._outage, "storing outcomes", store)
        current = self._cache.get(instance_id)
        for (item, task), ok in zip(writes, recorded, strict=True):
            if ok and current is not None and current.record.execution_id == task.execution_id:
                current.tasks[task.task_id] = task
            item.resolve(ok)
        return not all(recorded)


def _scheduled(state: InstanceState | None, execution_id: str, task_id: int) -> TaskRecord | None:
    """The task if it is still waiting for an outcome in this execution."""
    if state is None or state.record.execution_id != execution_id:
        return None
    task = state.tasks.get(task_id)
    return task if task is not None and task.state is TaskState.SCHEDULED else None


def _done(task: TaskRecord, item: Held) -> TaskRecord:
    """The task row with its outcome, to be written conditionally on the row's ETag as scheduled."""
    return replace(
        task,
        state=item.outcome.state,
        result=item.outcome.result,
        reason=item.outcome.reason,
        details=item.outcome.details,
        completed_time=item.completed_time,
        stored=False,
        source_row=item.source_row,
    )


def _storable(task: TaskRecord, outcome: Outcome) -> Outcome:
    """The outcome itself, or a failure saying why it cannot be stored (a result over the limits)."""
    try:
        _done(task, Held(task.execution_id, task.task_id, outcome, task.scheduled_time)).to_properties()
    except PayloadTooLarge as problem:
        return Outcome(TaskState.FAILED, reason=str(problem))
    return outcome
