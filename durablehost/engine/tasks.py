"""Running the work an episode scheduled: activities, HTTP calls, sub-orchestration starts and entity
messages (timers are the dispatcher's TimerQueue).

Activities run on the owner of the scheduling instance's partition, at least once: a task is started
when its episode commits, and again by whoever owns the partition after a crash or a hand-over. An
activity slot is held until the outcome is stored, so at most ``max_concurrent_activities`` outcomes are
ever unacknowledged: that bounds re-executions after a crash. Ownership is checked when a slot is
acquired, right before user code starts, and again before a timed-out attempt is made again, so a process
that lost its lease starts nothing more.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from durablehost.engine.clock import Clock
from durablehost.engine.fidelity import Fidelity
from durablehost.engine.http_activity import perform_http_call
from durablehost.engine.owed import StoreOutage, until_stored
from durablehost.engine.records import (
    InstanceRecord,
    Outcome,
    RuntimeStatus,
    TaskKind,
    TaskRecord,
    TaskState,
)
from durablehost.errors import UnknownFunction, WorkAbandoned
from durablehost.functions import ActivityFunction, ActivitySuccess, FunctionIndex, call_activity
from durablehost.functions.workers import UserCode

log = logging.getLogger("durablehost.tasks")


class TaskHost(Protocol):
    """What the task runner needs from the dispatcher."""

    def may_start(self, instance_id: str) -> bool: ...

    async def record_outcome(
        self, instance_id: str, execution_id: str, task_id: int, outcome: Outcome
    ) -> bool: ...

    async def create_instance(
        self, record: InstanceRecord, *, keep: Callable[[InstanceRecord], bool] | None = None
    ) -> InstanceRecord | None: ...

    async def send_entity_request(self, sender: str, task: TaskRecord) -> None: ...

    async def parent_of(self, instance_id: str) -> str | None: ...


class TaskRunner:
    def __init__(
        self,
        host: TaskHost,
        functions: FunctionIndex,
        user: UserCode,
        clock: Clock,
        *,
        max_concurrent_activities: int,
        activity_timeout: float | None,
        activity_redeliveries: int,
        outage: StoreOutage,
        fidelity: Fidelity = Fidelity.DURABLEHOST,
    ) -> None:
        self._host = host
        self._fidelity = fidelity
        self._outage = outage
        self._functions = functions
        self._user = user
        self._clock = clock
        self._slots = asyncio.Semaphore(max_concurrent_activities)
        self._timeout = activity_timeout
        self._redeliveries = activity_redeliveries
        self._inflight: dict[tuple[str, str, int], asyncio.Task[None]] = {}
        self._entity_sends: dict[str, asyncio.Task[Any]] = {}  # the last entity message per sender
        self.executions = 0  # activity executions started (user code), for tests and benchmarks

    @property
    def busy(self) -> bool:
        return bool(self._inflight)

    def inflight_for(self, predicate: Callable[[str], bool]) -> list[asyncio.Task[None]]:
        return [task for (instance_id, _, _), task in self._inflight.items() if predicate(instance_id)]

    def start(self, instance_id: str, task: TaskRecord) -> None:
        """Start a scheduled task (not a timer) unless it is already running in this process."""
        if task.state is not TaskState.SCHEDULED or task.kind is TaskKind.TIMER:
            return
        key = (instance_id, task.execution_id, task.task_id)
        if key in self._inflight:
            return
        if task.kind is TaskKind.SUB_ORCHESTRATION:
            work = self._start_child(instance_id, task)
        elif task.kind is TaskKind.ENTITY_MESSAGE:
            work = self._send_in_order(instance_id, task)
        elif task.kind is TaskKind.HTTP:
            work = self._run_http(instance_id, task)
        else:
            work = self._run_activity(instance_id, task)
        running = asyncio.create_task(work, name=f"task-{instance_id}-{task.task_id}")
        self._inflight[key] = running
        running.add_done_callback(lambda done: self._finished(key, done))

    def _finished(self, key: tuple[str, str, int], done: asyncio.Task[None]) -> None:
        if self._inflight.get(key) is done:
            del self._inflight[key]
        if not done.cancelled() and done.exception() is not None:
            # Only a bug gets here (outcomes and store outages are handled inside): the task stays
            # scheduled in storage and runs again at the next recovery or sweep.
            log.error("task %s of %s failed in the host", key[2], key[0], exc_info=done.exception())

    async def stop(self) -> None:
        tasks = list(self._inflight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ------------------------------------------------------------------ activities

    async def _run_activity(self, instance_id: str, task: TaskRecord) -> None:
        async with self._slots:
            if not self._host.may_start(instance_id):
                return  # another process owns the instance now; it runs the task
            try:
                activity = self._functions.activity(task.name)
            except UnknownFunction as unknown:
                outcome = Outcome(TaskState.FAILED, reason=str(unknown))
            else:
                self.executions += 1
                attempted = await self._attempt(activity, task, instance_id)
                if attempted is None:
                    return  # lost the instance while an attempt hung; its new owner runs the task
                outcome = attempted
            # The slot is held until the outcome is stored (module docstring).
            await self._host.record_outcome(instance_id, task.execution_id, task.task_id, outcome)

    async def _attempt(
        self, activity: ActivityFunction, task: TaskRecord, instance_id: str
    ) -> Outcome | None:
        """Run an activity; a timed-out attempt is abandoned (its late result is never recorded), and
        picked up again only while this process may still start work for the instance (else None)."""
        for attempt in range(1, self._redeliveries + 2):
            if attempt > 1 and not self._host.may_start(instance_id):
                return None
            try:
                async with asyncio.timeout(self._timeout):
                    done = await call_activity(
                        activity,
                        task.input,
                        workers=self._user,
                        still_ours=functools.partial(self._host.may_start, instance_id),
                    )
            except WorkAbandoned:
                return None  # lost the instance while the call waited for a thread
            except TimeoutError:
                # A sync activity's thread cannot be stopped; it finishes in the background and its
                # result is discarded, like a worker that the Functions host recycles.
                log.warning(
                    "activity %s (task %s) timed out after %ss, attempt %d",
                    task.name,
                    task.task_id,
                    self._timeout,
                    attempt,
                )
                continue
            if isinstance(done, ActivitySuccess):
                return Outcome(TaskState.COMPLETED, result=done.result_json)
            return Outcome(TaskState.FAILED, reason=done.reason, details=done.details)
        attempts = self._redeliveries + 1
        return Outcome(
            TaskState.FAILED,
            reason=f"Activity function '{task.name}' failed: TimeoutError: timed out after {self._timeout} s "
            f"in each of {attempts} attempts",
        )

    async def _run_http(self, instance_id: str, task: TaskRecord) -> None:
        async with self._slots:
            if not self._host.may_start(instance_id):
                return
            done = await perform_http_call(task.input)
            outcome = Outcome(done.state, result=done.result, reason=done.reason, details=done.details)
            await self._host.record_outcome(instance_id, task.execution_id, task.task_id, outcome)

    # ------------------------------------------------------------------ sub-orchestrations

    async def _start_child(self, instance_id: str, task: TaskRecord) -> None:
        if not self._host.may_start(instance_id):
            return
        child_id = task.child_instance_id or ""
        problem = _refused_child_id(child_id, instance_id, await self._host.parent_of(instance_id))
        if problem:
            await self._fail(instance_id, task, problem)
            return
        try:
            orchestrator = self._functions.orchestrator(task.name)
        except UnknownFunction as unknown:
            await self._fail(instance_id, task, str(unknown))
            return
        now = self._clock.now()
        # Azure stores the caller's spelling of the name; durablehost the orchestrator's own (README).
        spelling = task.name if self._fidelity is Fidelity.AZURE else orchestrator.name
        record = InstanceRecord(
            instance_id=child_id,
            name=spelling,
            status=RuntimeStatus.PENDING,
            execution_id=uuid.uuid4().hex,
            created_time=now,
            last_updated_time=now,
            input=task.input,
            parent_instance_id=instance_id,
            parent_execution_id=task.execution_id,
            parent_task_id=task.task_id,
            version=task.version or "",  # resolved when scheduled; none on rows from before versioning
            fidelity=self._fidelity,
        )

        def ours(existing: InstanceRecord) -> bool:
            # Created by this very task before a crash: keep it (even finished: its result is on its way).
            return (
                existing.parent_execution_id == task.execution_id and existing.parent_task_id == task.task_id
            )

        blocked_by = await until_stored(
            self._outage,
            "starting a sub-orchestration",
            lambda: self._host.create_instance(record, keep=ours),
        )
        if blocked_by is not None and not ours(blocked_by):
            await self._fail(
                instance_id,
                task,
                f"cannot start sub-orchestration '{task.name}': an instance with id {child_id!r} already "
                f"exists and is {blocked_by.status.value}",
            )

    async def _fail(self, instance_id: str, task: TaskRecord, reason: str) -> None:
        await self._host.record_outcome(
            instance_id, task.execution_id, task.task_id, Outcome(TaskState.FAILED, reason=reason)
        )

    # ------------------------------------------------------------------ entity messages

    async def _send_in_order(self, instance_id: str, task: TaskRecord) -> None:
        """Send an instance's entity messages one after another, in the order it scheduled them.

        A signal followed by a call to the same entity must arrive in that order, as the extension
        guarantees per sender; sending them concurrently would let the second overtake the first.
        """
        previous = self._entity_sends.get(instance_id)
        current = asyncio.current_task()
        if current is not None:
            self._entity_sends[instance_id] = current
        try:
            if previous is not None and not previous.done():
                await asyncio.wait({previous})
            if not self._host.may_start(instance_id):
                return
            await self._host.send_entity_request(instance_id, task)
            await self._host.record_outcome(
                instance_id, task.execution_id, task.task_id, Outcome(TaskState.COMPLETED)
            )
        finally:
            if self._entity_sends.get(instance_id) is current:
                del self._entity_sends[instance_id]


def _refused_child_id(child_id: str, parent_id: str, grandparent_id: str | None) -> str | None:
    """The extension refuses these sub-orchestration ids (protocol §2.7)."""
    if not child_id:
        return "a sub-orchestration instance id cannot be empty"
    if child_id.startswith("@"):
        return f"sub-orchestration instance id {child_id!r} cannot start with '@' (reserved for entities)"
    if child_id in (parent_id, grandparent_id):
        return f"sub-orchestration instance id {child_id!r} cannot be the id of its parent or grandparent"
    return None
