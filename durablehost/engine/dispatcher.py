"""The dispatcher: runs episodes, activities and timers for every instance of one task hub.

One process at a time owns a task hub (a lease row in the control table, renewed while it runs); other
processes on the same store serve clients and wake the owner through the control table, and take over
when its lease expires. Ownership only decides who does the work: every commit is still guarded by the
instance row's ETag, so a process that lost its lease without knowing cannot commit over a newer episode.

Within the owner, each instance runs at most one episode at a time; all pending completions and
deliverable events of an instance go into one episode (a fan-in of 1,000 results is a handful of
episodes, not 1,000 replays). Instance state stays cached between episodes and is trusted only while
the instance row's ETag matches; any mismatch drops it and reloads.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from durablehost.engine.clock import Clock, WallClock
from durablehost.engine.episode import (
    InstanceState,
    NonDeterminismError,
    UnsupportedAction,
    run_episode,
)
from durablehost.engine.history import execution_completed, orchestrator_completed, orchestrator_started
from durablehost.engine.http_activity import perform_http_call
from durablehost.engine.partition import InstanceRepository
from durablehost.engine.records import (
    EventMessage,
    InstanceRecord,
    RuntimeStatus,
    TaskKind,
    TaskRecord,
    TaskState,
)
from durablehost.engine.timers import TimerKey, TimerQueue
from durablehost.errors import (
    EntityAlreadyExists,
    EtagMismatch,
    InvocationError,
    PayloadTooLarge,
    UnknownFunction,
)
from durablehost.functions import ActivityFunction, ActivitySuccess, FunctionIndex, call_activity, call_entity

log = logging.getLogger("durablehost.dispatcher")


@dataclass(frozen=True)
class DispatcherOptions:
    max_concurrent_activities: int = 16
    max_concurrent_orchestrations: int = 16
    lease_duration: timedelta = timedelta(seconds=15)
    wake_poll_interval: float = 0.2  # seconds between checks for work woken by other processes
    sweep_interval: float = 30.0  # seconds between full scans of active instances (lost wake-ups)
    entity_batch_size: int = 100  # operations per entity batch (the extension uses 50-5,000)
    # host.json functionTimeout: an attempt running longer is abandoned and the work item picked up
    # again, at most activity_redeliveries times; then the task fails with a timeout.
    activity_timeout: float | None = None
    activity_redeliveries: int = 2
    # Replays costing more than this (seconds) make the next episode wait for more completions.
    batching_threshold: float = 0.01
    max_batching_delay: float = 2.0
    cache_size: int = 2048


@dataclass(frozen=True)
class Outcome:
    """A task's outcome, as recorded in its row."""

    state: TaskState
    result: str | None = None
    reason: str | None = None
    details: str | None = None


class Dispatcher:
    def __init__(
        self,
        repo: InstanceRepository,
        functions: FunctionIndex,
        clock: Clock,
        options: DispatcherOptions | None = None,
    ) -> None:
        self.repo = repo
        self.functions = functions
        self.clock = clock
        self.options = options or DispatcherOptions()
        self.owner = f"{uuid.uuid4().hex[:12]}"
        self.timers = TimerQueue()
        self._states: OrderedDict[str, InstanceState] = OrderedDict()
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._queued: set[str] = set()
        self._running: set[str] = set()
        self._again: set[str] = set()
        self._activity_slots = asyncio.Semaphore(self.options.max_concurrent_activities)
        self._executor = ThreadPoolExecutor(
            max_workers=self.options.max_concurrent_activities, thread_name_prefix="activity"
        )
        # Orchestrator episodes and entity batches are sync user code: the Functions Python worker runs
        # every sync function on a thread pool with no running event loop (azure_functions_runtime 1.3.0,
        # handle_event.py invocation_request: `await loop.run_in_executor(threadpool, run_sync_func, …)`
        # unless fi.is_async), so code that calls asyncio.run or Runner.run_sync works, and the server
        # loop never waits on it.
        self._user_executor = ThreadPoolExecutor(
            max_workers=self.options.max_concurrent_orchestrations, thread_name_prefix="orchestrator"
        )
        self._inflight: dict[tuple[str, str, int], asyncio.Task[None]] = {}
        self._entity_sends: dict[str, asyncio.Task[Any]] = {}  # the last entity message per sender
        # When an instance with an expensive replay may replay again (event-loop time), and who waits.
        self._replay_ready_at: dict[str, float] = {}
        self._deferred: set[str] = set()
        self._background: set[asyncio.Task[None]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._timer_changed = asyncio.Event()
        self._owns_hub = asyncio.Event()
        self.episodes = 0
        self.errors: list[BaseException] = []  # unexpected failures, kept for tests and diagnostics

    # ------------------------------------------------------------------ lifecycle

    async def start(self, *, wait_for_lease: bool = True) -> None:
        self._loops.append(asyncio.create_task(self._keep_running("lease", self._lease_loop), name="lease"))
        if wait_for_lease:
            await self._owns_hub.wait()

    async def stop(self, *, drain: bool = True) -> None:
        """Stop; with ``drain``, let running episodes and activities finish and commit first."""
        if drain:
            # Earlier failures were logged when they happened; they must not abort a shutdown.
            await self.wait_idle(include_timers=False, raise_errors=False)
        tasks = [*self._loops, *self._inflight.values(), *self._background]
        for task in tasks:
            task.cancel()
        for task in tasks:
            # Every one of them logs its own failures (_guard, _keep_running): only cancellation is left.
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._user_executor.shutdown(wait=False, cancel_futures=True)
        if self._owns_hub.is_set():
            await self.repo.release_lease(self.owner)

    @property
    def owns_hub(self) -> bool:
        return self._owns_hub.is_set()

    async def _lease_loop(self) -> None:
        renew_every = self.options.lease_duration.total_seconds() / 3
        while True:
            # Leases expire in real time even under a virtual clock: they protect against real crashes.
            now = WallClock().now()
            acquired = await self.repo.try_acquire_lease(self.owner, now, now + self.options.lease_duration)
            if acquired and not self._owns_hub.is_set():
                log.info("owner %s acquired the task hub %s", self.owner, self.repo.hub)
                await self._recover()
                self._owns_hub.set()
                self._loops += [
                    asyncio.create_task(self._episode_worker(), name=f"episodes-{i}")
                    for i in range(self.options.max_concurrent_orchestrations)
                ]
                self._loops.append(asyncio.create_task(self._keep_running("timer", self._timer_loop)))
                self._loops.append(asyncio.create_task(self._keep_running("wake", self._wake_loop)))
            elif not acquired and self._owns_hub.is_set():
                # Another process took over (we were paused past the lease). Stop working; commits we
                # still attempt fail on ETags, so nothing is corrupted.
                log.error("owner %s lost the task hub lease; stopping work", self.owner)
                self._owns_hub.clear()
                self._states.clear()
            await asyncio.sleep(renew_every if acquired else min(renew_every, 1.0))

    async def _recover(self) -> None:
        """Resume every unfinished instance: re-run scheduled activities, re-arm timers, run episodes."""
        for instance_id in await self.repo.list_active():
            state = await self._load(instance_id)
            if state is None:
                # A marker without an instance: its creator crashed between the two writes, or is
                # between them right now (the marker goes first). Only an old one is an orphan.
                await self.repo.remove_orphan_marker(instance_id, older_than=WallClock().now() - ORPHAN_GRACE)
                continue
            await self.repo.publish(state.record)
            if state.record.status.is_finished:
                await self._after_finish(state)
                continue
            self._resume_tasks(state)
            self.schedule(instance_id)

    def _resume_tasks(self, state: InstanceState) -> None:
        for task in state.tasks.values():
            if task.state is TaskState.SCHEDULED:
                self._start_task(state.record.instance_id, task)

    # ------------------------------------------------------------------ scheduling

    def schedule(self, instance_id: str) -> None:
        """Ask for an episode of this instance (no-op if one is queued; re-run if one is running)."""
        if instance_id in self._deferred:
            return  # it runs when its batching delay ends; completions meanwhile just pile up
        if instance_id in self._running:
            self._again.add(instance_id)
        elif instance_id not in self._queued:
            self._queued.add(instance_id)
            self._queue.put_nowait(instance_id)

    def is_idle(self, *, include_timers: bool = True) -> bool:
        busy = self._queued or self._running or self._inflight or self._background
        if busy:
            return False
        if include_timers:
            due = self.timers.next_due()
            return due is None or due > self.clock.now()
        return True

    async def wait_idle(
        self, *, include_timers: bool = True, timeout: float | None = None, raise_errors: bool = True
    ) -> None:
        """Wait until nothing is queued, running or due (what a test harness calls run-until-idle).

        With ``raise_errors`` the first unexpected failure logged so far is raised, so a test sees it.
        """
        async with asyncio.timeout(timeout):
            quiet = 0
            while quiet < 3:
                await asyncio.sleep(0 if quiet else 0.001)
                quiet = quiet + 1 if self.is_idle(include_timers=include_timers) else 0
                if raise_errors and self.errors:
                    raise self.errors[0]

    async def _episode_worker(self) -> None:
        while True:
            instance_id = await self._queue.get()
            self._queued.discard(instance_id)
            self._running.add(instance_id)
            try:
                await self._process(instance_id)
            except Exception as exc:
                # Storage trouble or a host bug: nothing was committed. Drop the cached state and try
                # again after a pause, so the instance is never left behind.
                log.exception("episode of %s failed unexpectedly; retrying in 1 s", instance_id)
                self.errors.append(exc)
                self._states.pop(instance_id, None)
                self._spawn(self._retry_later(instance_id, 1.0))
            finally:
                self._running.discard(instance_id)
            if instance_id in self._again:
                self._again.discard(instance_id)
                self.schedule(instance_id)

    async def _retry_later(self, instance_id: str, delay: float) -> None:
        await asyncio.sleep(delay)
        self.schedule(instance_id)

    async def _keep_running(self, name: str, loop: Callable[[], Awaitable[None]]) -> None:
        """Run a background loop forever; an unexpected error is logged and the loop restarts."""
        while True:
            try:
                await loop()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("the %s loop failed; restarting it in 1 s", name)
                self.errors.append(exc)
                await asyncio.sleep(1.0)

    # ------------------------------------------------------------------ state cache

    async def _load(self, instance_id: str) -> InstanceState | None:
        loaded = await self.repo.load(instance_id)
        if loaded is None:
            self._states.pop(instance_id, None)
            return None
        if loaded.leftovers:
            await self.repo.delete_rows(instance_id, loaded.leftovers)
        state = InstanceState(loaded.record, loaded.history, loaded.tasks, loaded.events)
        self._cache(state)
        return state

    def _cache(self, state: InstanceState) -> None:
        self._states[state.record.instance_id] = state
        self._states.move_to_end(state.record.instance_id)
        while len(self._states) > self.options.cache_size:
            victim, _ = next(iter(self._states.items()))
            if victim in self._running:
                break
            self._states.pop(victim)

    async def state_of(self, instance_id: str) -> InstanceState | None:
        state = self._states.get(instance_id)
        if state is not None:
            self._states.move_to_end(instance_id)
            return state
        return await self._load(instance_id)

    def forget(self, instance_id: str) -> None:
        """Drop cached state (someone else changed the instance row)."""
        self._states.pop(instance_id, None)

    # ------------------------------------------------------------------ episodes

    async def _process(self, instance_id: str) -> None:
        state = await self.state_of(instance_id)
        if state is not None and state.record.is_entity:
            await self._process_entity(state)
            return
        if state is None or not state.has_work():
            return
        wait = self._batching_wait(state)
        if wait > 0:
            self._defer(instance_id, wait)  # no worker is held while completions pile up
            return
        # A snapshot: completions and events that arrive while the episode runs on its thread change the
        # cached state, and the next episode takes them.
        snapshot = InstanceState(state.record, list(state.history), dict(state.tasks), list(state.events))
        started = time.perf_counter()
        try:
            result = await asyncio.get_running_loop().run_in_executor(
                self._user_executor, run_episode, snapshot, self.functions, self.clock.now()
            )
        except (NonDeterminismError, UnsupportedAction, UnknownFunction, PayloadTooLarge) as problem:
            await self._fail_instance(state, str(problem))
            return
        cost = time.perf_counter() - started
        if cost >= self.options.batching_threshold:
            delay = min(2 * cost, self.options.max_batching_delay)
            self._replay_ready_at[instance_id] = asyncio.get_running_loop().time() + delay
        else:
            self._replay_ready_at.pop(instance_id, None)
        try:
            await self.repo.commit(
                result.record,
                history_start=state.record.history_count,
                new_history=result.new_history,
                upsert_tasks=result.tasks_to_write,
                delete_rows=[e.row_key for e in result.delivered],
            )
        except EtagMismatch:
            # Someone else changed the instance (terminate, suspend, another host). Reload and retry.
            self.forget(instance_id)
            self.schedule(instance_id)
            return
        except PayloadTooLarge as problem:
            self.forget(instance_id)
            fresh = await self.state_of(instance_id)
            if fresh is not None:
                await self._fail_instance(fresh, str(problem))
            return
        self.episodes += 1
        if _listing_changed(state.record, result.record):
            await self.repo.publish(result.record)
        state.record = result.record
        state.history.extend(result.new_history)
        for task in result.consumed:
            task.consumed = True
        for task in result.tasks_to_write:
            state.tasks[task.task_id] = task
        delivered = {e.row_key for e in result.delivered}
        state.events = [e for e in state.events if e.row_key not in delivered]
        for task in result.canceled:
            self.timers.cancel(TimerKey(instance_id, task.execution_id, task.task_id))
        if result.finished:
            await self._after_finish(state)
            return
        if result.continued:
            await self._continue_as_new(state, result.continue_as_new_input)
            return
        for task in result.new_work:
            self._start_task(instance_id, task)
        if state.has_work():
            self.schedule(instance_id)

    def _batching_wait(self, state: InstanceState) -> float:
        """How much longer to let completions pile up before replaying a large history again.

        Each episode replays the whole history in the SDK (protocol §1.5), so an instance whose last
        replay was expensive and which still has work in flight waits twice that replay's time: replay
        then takes at most a third of the time, and a fan-out of N costs O(N) replays' worth, not
        O(N²). Cheap replays, and instances with nothing in flight (an event just arrived), never wait.
        """
        ready_at = self._replay_ready_at.get(state.record.instance_id)
        remaining = 0.0 if ready_at is None else ready_at - asyncio.get_running_loop().time()
        if remaining <= 0:
            return 0.0
        in_flight = any(
            t.state is TaskState.SCHEDULED and t.kind in _BATCHED_KINDS for t in state.tasks.values()
        )
        return remaining if in_flight else 0.0

    def _defer(self, instance_id: str, delay: float) -> None:
        if instance_id not in self._deferred:
            self._deferred.add(instance_id)
            self._spawn(self._run_deferred(instance_id, delay))

    async def _run_deferred(self, instance_id: str, delay: float) -> None:
        try:
            await asyncio.sleep(delay)
        finally:
            self._deferred.discard(instance_id)
        self.schedule(instance_id)

    async def _fail_instance(self, state: InstanceState, message: str) -> None:
        """Fail an instance for a host-side reason (non-determinism, unsupported action, oversize)."""
        record = replace(state.record)
        now = self.clock.now()
        output = json.dumps(f"Orchestrator function '{record.name}' failed: {message}")
        events = [
            orchestrator_started(now),
            execution_completed(now, record.next_task_id, RuntimeStatus.FAILED.value, output),
            orchestrator_completed(now),
        ]
        record.status = RuntimeStatus.FAILED
        record.output = output
        record.completed_time = now
        record.last_updated_time = now
        record.history_count += len(events)
        try:
            await self.repo.commit(
                record,
                history_start=state.record.history_count,
                new_history=events,
                upsert_tasks=[],
                delete_rows=[],
            )
        except EtagMismatch:
            self.forget(record.instance_id)
            self.schedule(record.instance_id)
            return
        log.error("instance %s failed: %s", record.instance_id, message)
        await self.repo.publish(record)
        state.record = record
        state.history.extend(events)
        await self._after_finish(state)

    async def _after_finish(self, state: InstanceState) -> None:
        record = state.record
        self._replay_ready_at.pop(record.instance_id, None)
        self.timers.cancel_instance(record.instance_id)
        if record.parent_instance_id and record.parent_execution_id and record.parent_task_id is not None:
            if record.status is RuntimeStatus.COMPLETED:
                outcome = Outcome(TaskState.COMPLETED, result=record.output)
            else:
                message = json.loads(record.output) if record.output else f"instance {record.status.value}"
                outcome = Outcome(
                    TaskState.FAILED,
                    reason=f"Sub-orchestration '{record.name}' ({record.instance_id}) failed: {message}",
                    details=None,
                )
            await self.complete_task(
                record.parent_instance_id, record.parent_execution_id, record.parent_task_id, outcome
            )
        await self.repo.unmark_active(record.instance_id)

    async def _continue_as_new(self, state: InstanceState, input_text: str | None) -> None:
        """Start the next execution: fresh history, same id, pending events carried over (documented)."""
        old = state.record
        record = replace(
            old,
            execution_id=uuid.uuid4().hex,
            input=input_text,
            output=None,
            history_count=0,
            next_task_id=0,
            action_count=0,
            waits={},
            generation=old.generation + 1,
            status=RuntimeStatus.RUNNING,
            last_updated_time=self.clock.now(),
        )
        try:
            await self.repo.update_record(record)
        except EtagMismatch:
            self.forget(old.instance_id)
            self.schedule(old.instance_id)
            return
        self.timers.cancel_instance(old.instance_id)
        await self.repo.publish(record)
        state.record = record
        state.history = []
        state.tasks = {}
        self._spawn(self.repo.delete_stale_rows(old.instance_id, record.execution_id))
        self.schedule(old.instance_id)

    # ------------------------------------------------------------------ tasks

    def _start_task(self, instance_id: str, task: TaskRecord) -> None:
        if task.state is not TaskState.SCHEDULED:
            return
        if task.kind is TaskKind.TIMER:
            if task.fire_at is not None:
                self.timers.add(TimerKey(instance_id, task.execution_id, task.task_id), task.fire_at)
                self._timer_changed.set()
            return
        key = (instance_id, task.execution_id, task.task_id)
        if key in self._inflight:
            return
        runner: Callable[[str, TaskRecord], Awaitable[None]]
        if task.kind is TaskKind.SUB_ORCHESTRATION:
            runner = self._start_child
        elif task.kind is TaskKind.ENTITY_MESSAGE:
            runner = self._send_in_order
        elif task.kind is TaskKind.HTTP:
            runner = self._run_http
        else:
            runner = self._run_activity
        work = asyncio.create_task(
            self._guard(runner(instance_id, task)), name=f"task-{instance_id}-{task.task_id}"
        )
        self._inflight[key] = work
        work.add_done_callback(lambda _: self._inflight.pop(key, None))

    async def _guard(self, work: Awaitable[object]) -> None:
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("background work failed")
            self.errors.append(exc)

    def _spawn(self, work: Awaitable[object]) -> None:
        task = asyncio.ensure_future(self._guard(work))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _run_activity(self, instance_id: str, task: TaskRecord) -> None:
        # The slot is held until the outcome is stored, so at most max_concurrent_activities results
        # are ever unacknowledged: that bounds the re-executions after a crash.
        async with self._activity_slots:
            try:
                activity = self.functions.activity(task.name)
            except UnknownFunction as unknown:
                outcome = Outcome(TaskState.FAILED, reason=str(unknown), details=None)
            else:
                outcome = await self._attempt_activity(activity, task)
            await self.complete_task(instance_id, task.execution_id, task.task_id, outcome)

    async def _attempt_activity(self, activity: ActivityFunction, task: TaskRecord) -> Outcome:
        """Run an activity; a timed-out attempt is abandoned (its late result is never recorded)."""
        timeout = self.options.activity_timeout
        for attempt in range(1, self.options.activity_redeliveries + 2):
            try:
                async with asyncio.timeout(timeout):
                    done = await call_activity(activity, task.input, executor=self._executor)
            except TimeoutError:
                # A sync activity's thread cannot be stopped; it finishes in the background and its
                # result is discarded, like a worker that the Functions host recycles.
                log.warning(
                    "activity %s (task %s) timed out after %ss, attempt %d",
                    task.name,
                    task.task_id,
                    timeout,
                    attempt,
                )
                continue
            if isinstance(done, ActivitySuccess):
                return Outcome(TaskState.COMPLETED, result=done.result_json)
            return Outcome(TaskState.FAILED, reason=done.reason, details=done.details)
        attempts = self.options.activity_redeliveries + 1
        return Outcome(
            TaskState.FAILED,
            reason=f"Activity function '{task.name}' failed: TimeoutError: timed out after {timeout} s "
            f"in each of {attempts} attempts",
        )

    async def _run_http(self, instance_id: str, task: TaskRecord) -> None:
        async with self._activity_slots:
            done = await perform_http_call(task.input)
            outcome = Outcome(done.state, result=done.result, reason=done.reason, details=done.details)
            await self.complete_task(instance_id, task.execution_id, task.task_id, outcome)

    async def _start_child(self, instance_id: str, task: TaskRecord) -> None:
        child_id = task.child_instance_id or ""
        parent = self._states.get(instance_id)
        problem = _refused_child_id(
            child_id, instance_id, parent.record.parent_instance_id if parent else None
        )
        if problem:
            await self.complete_task(
                instance_id, task.execution_id, task.task_id, Outcome(TaskState.FAILED, reason=problem)
            )
            return
        try:
            self.functions.orchestrator(task.name)
        except UnknownFunction as unknown:
            await self.complete_task(
                instance_id, task.execution_id, task.task_id, Outcome(TaskState.FAILED, reason=str(unknown))
            )
            return
        now = self.clock.now()
        record = InstanceRecord(
            instance_id=child_id,
            name=task.name,
            status=RuntimeStatus.PENDING,
            execution_id=uuid.uuid4().hex,
            created_time=now,
            last_updated_time=now,
            input=task.input,
            parent_instance_id=instance_id,
            parent_execution_id=task.execution_id,
            parent_task_id=task.task_id,
        )

        def ours(existing: InstanceRecord) -> bool:
            # Created by this very task before a crash: keep it (even finished: its result is on its way).
            return (
                existing.parent_execution_id == task.execution_id and existing.parent_task_id == task.task_id
            )

        blocked_by = await self.create_instance(record, keep=ours)
        if blocked_by is not None and not ours(blocked_by):
            await self.complete_task(
                instance_id,
                task.execution_id,
                task.task_id,
                Outcome(
                    TaskState.FAILED,
                    reason=f"cannot start sub-orchestration '{task.name}': an instance with id "
                    f"{child_id!r} already exists and is {blocked_by.status.value}",
                ),
            )
            return
        self.schedule(child_id)

    async def create_instance(
        self, record: InstanceRecord, *, keep: Callable[[InstanceRecord], bool] | None = None
    ) -> InstanceRecord | None:
        """Store a new instance; an instance with that id that finished is replaced, as in Azure.

        Returns None when ``record`` was stored, otherwise the instance that stays: one that has not
        finished, or one that ``keep`` says to leave alone.
        """
        instance_id = record.instance_id
        # Active marker first: a crash after it leaves a marker the next sweep removes; a crash after
        # the insert leaves an instance the next sweep runs. Neither loses an acknowledged start.
        await self.repo.mark_active(instance_id)
        try:
            await self.repo.insert_instance(record)
        except EntityAlreadyExists:
            existing = await self.repo.get_record(instance_id)
            if existing is None:
                # Deleted between the insert and the read (a purge): report it as still in the way.
                return replace(record, status=RuntimeStatus.PENDING)
            if not existing.status.is_finished or existing.etag is None or (keep and keep(existing)):
                return existing
            try:
                await self.repo.replace_instance(record, existing.etag)
            except EtagMismatch:
                return existing
            await self.repo.clear_idempotency_keys(instance_id)
        await self.repo.publish(record)
        self.forget(instance_id)
        return None

    async def complete_task(
        self, instance_id: str, execution_id: str, task_id: int, outcome: Outcome
    ) -> bool:
        """Record a task outcome once; a second outcome for the same task is dropped by the store."""
        state = self._states.get(instance_id)
        current = state.tasks.get(task_id) if state and state.record.execution_id == execution_id else None
        if current is None:
            current = await self.repo.read_task(instance_id, execution_id, task_id)
        if current is None or current.state is not TaskState.SCHEDULED:
            return False
        done = replace(
            current,
            state=outcome.state,
            result=outcome.result,
            reason=outcome.reason,
            details=outcome.details,
            completed_time=self.clock.now(),
        )
        try:
            recorded = await self.repo.record_outcome(instance_id, done)
        except PayloadTooLarge as problem:
            done = replace(done, state=TaskState.FAILED, result=None, reason=str(problem), details=None)
            recorded = await self.repo.record_outcome(instance_id, done)
        if not recorded:
            # Another completion won (a retried attempt, a duplicate): ours is dropped, and what we had
            # cached about the task is stale.
            self.forget(instance_id)
            self.schedule(instance_id)
            return False
        state = self._states.get(instance_id)
        if state is not None and state.record.execution_id == execution_id:
            state.tasks[task_id] = done
        self.schedule(instance_id)
        return True

    # ------------------------------------------------------------------ entities

    async def ensure_entity(self, entity_id: str) -> None:
        """Create an entity's instance row on first use (protocol §7: entities exist implicitly)."""
        name, _key = split_entity_id(entity_id)
        entity = self.functions.entity(name)
        now = self.clock.now()
        record = InstanceRecord(
            instance_id=entity_id,
            name=entity.name,
            status=RuntimeStatus.RUNNING,
            execution_id="entity",
            created_time=now,
            last_updated_time=now,
        )
        await self.repo.mark_active(entity_id)
        try:
            await self.repo.insert_instance(record)
        except EntityAlreadyExists:
            return
        await self.repo.publish(record)  # entities are listed from the instance index

    async def deliver(self, target: str, event: EventMessage) -> None:
        """Put an event into another instance's inbox (deduplicated by its idempotency key)."""
        if await self.repo.add_event(target, event):
            self.add_event(target, event)

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
            await self._send_entity_message(instance_id, task)
        finally:
            if self._entity_sends.get(instance_id) is current:
                del self._entity_sends[instance_id]

    async def _send_entity_message(self, instance_id: str, task: TaskRecord) -> None:
        message = json.loads(task.input or "{}")
        request_id = str(message["id"])
        is_signal = bool(message.get("signal"))
        try:
            await self.ensure_entity(task.name)
        except UnknownFunction as unknown:
            if not is_signal:
                answer = {"result": json.dumps(str(unknown)), "exceptionType": "UnknownFunction"}
                await self.deliver(instance_id, _entity_answer(request_id, answer, self.clock.now()))
            else:
                log.error("signal to %s dropped: %s", task.name, unknown)
        else:
            # The batch input is encoded twice (protocol §7): the entity does df_loads(json.loads(input)).
            operation_input = message.get("input")
            event = EventMessage(
                row_key=new_event_row_key(),
                name=str(message.get("op")),
                input=json.dumps(operation_input if operation_input is not None else "null"),
                raised_time=self.clock.now(),
                idempotency_key=f"entity-request:{request_id}",
                requester=None if is_signal else instance_id,
                request_id=request_id,
                is_signal=is_signal,
            )
            await self.deliver(task.name, event)
        await self.complete_task(instance_id, task.execution_id, task.task_id, Outcome(TaskState.COMPLETED))

    async def _process_entity(self, state: InstanceState) -> None:
        """Run the entity's queued operations as one batch, strictly in order (protocol §7).

        Answers go out before the new state commits: after a crash the batch runs again from the old
        state and the repeated answers are dropped by their idempotency keys, so every operation takes
        effect on the state exactly once.
        """
        if not state.events:
            return
        record = state.record
        batch = state.events[: self.options.entity_batch_size]
        name, key = split_entity_id(record.instance_id)
        request = {
            "self": {"name": name, "key": key},
            "exists": record.entity_exists,
            "state": record.entity_state,
            "batch": [{"name": e.name, "input": e.input, "isSignal": e.is_signal} for e in batch],
        }
        try:
            output = await asyncio.get_running_loop().run_in_executor(
                self._user_executor, call_entity, self.functions.entity(name), json.dumps(request)
            )
            results = list(output.get("results") or [])
        except (UnknownFunction, InvocationError) as problem:
            log.error("entity %s: %s", record.instance_id, problem)
            output = {"entityExists": record.entity_exists, "entityState": record.entity_state}
            results = [{"isError": True, "result": json.dumps(str(problem))} for _ in batch]
        now = self.clock.now()
        for event, result in zip(batch, results, strict=False):
            if event.is_signal or event.requester is None or event.request_id is None:
                continue
            answer: dict[str, object] = {"result": result.get("result")}
            if result.get("isError"):
                answer["exceptionType"] = "Exception"
            await self.deliver(event.requester, _entity_answer(event.request_id, answer, now))
        updated = replace(
            record,
            entity_state=output.get("entityState"),
            entity_exists=bool(output.get("entityExists")),
            last_updated_time=now,
        )
        try:
            await self.repo.commit(
                updated,
                history_start=record.history_count,
                new_history=[],
                upsert_tasks=[],
                delete_rows=[e.row_key for e in batch],
            )
        except EtagMismatch:
            self.forget(record.instance_id)
            self.schedule(record.instance_id)
            return
        self.episodes += 1
        state.record = updated
        await self.repo.publish(updated)  # the index copy carries the state and lastOperationTime
        done = {e.row_key for e in batch}
        state.events = [e for e in state.events if e.row_key not in done]
        if state.events:
            self.schedule(record.instance_id)

    # ------------------------------------------------------------------ timers and wake-ups

    async def _timer_loop(self) -> None:
        while True:
            self._timer_changed.clear()
            due = self.timers.next_due()
            if due is None:
                await self._timer_changed.wait()
                continue
            if due > self.clock.now():
                sleeper = asyncio.create_task(self.clock.sleep_until(due))
                changed = asyncio.create_task(self._timer_changed.wait())
                await asyncio.wait({sleeper, changed}, return_when=asyncio.FIRST_COMPLETED)
                sleeper.cancel()
                changed.cancel()
                continue
            await self.fire_due_timers()

    async def fire_due_timers(self) -> int:
        due = self.timers.pop_due(self.clock.now())
        for key, _fire_at in due:
            self._spawn(
                self.complete_task(
                    key.instance_id, key.execution_id, key.task_id, Outcome(TaskState.COMPLETED)
                )
            )
        return len(due)

    async def _wake_loop(self) -> None:
        sweep_at = asyncio.get_running_loop().time() + self.options.sweep_interval
        while True:
            await asyncio.sleep(self.options.wake_poll_interval)
            for instance_id in await self.repo.take_wakes():
                await self.refresh(instance_id)
            if asyncio.get_running_loop().time() >= sweep_at:
                sweep_at = asyncio.get_running_loop().time() + self.options.sweep_interval
                for instance_id in await self.repo.list_active():
                    if instance_id not in self._states:
                        await self.refresh(instance_id)

    async def refresh(self, instance_id: str) -> None:
        """Pick up changes made outside this dispatcher (a new instance, a raised event)."""
        state = self._states.get(instance_id)
        if state is None:
            state = await self._load(instance_id)
            if state is None:
                return
            self._resume_tasks(state)
        else:
            state.events = await self.repo.list_pending_events(instance_id)
        self.schedule(instance_id)

    def add_event(self, instance_id: str, event: EventMessage) -> None:
        """An event this process wrote: add it to the cached state and run an episode if it can."""
        state = self._states.get(instance_id)
        if state is not None and all(e.row_key != event.row_key for e in state.events):
            state.events.append(event)
        self.schedule(instance_id)


# How long a creator may take between writing an instance's active marker and its instance row.
ORPHAN_GRACE = timedelta(minutes=5)

# Work whose completions an episode can usefully wait for (timers and events are not waited for).
_BATCHED_KINDS = (TaskKind.ACTIVITY, TaskKind.HTTP, TaskKind.SUB_ORCHESTRATION)


def split_entity_id(entity_id: str) -> tuple[str, str]:
    """``@name@key`` -> (name, key), as EntityId.get_scheduler_id writes it (protocol §6)."""
    name, _, key = entity_id[1:].partition("@")
    return name, key


def new_event_row_key() -> str:
    """Inbox rows sort by arrival: the time in nanoseconds, then randomness against ties."""
    return f"E{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"


def _entity_answer(request_id: str, answer: Mapping[str, object], now: datetime) -> EventMessage:
    return EventMessage(
        row_key=new_event_row_key(),
        name=request_id,
        input=json.dumps(answer),
        raised_time=now,
        idempotency_key=f"entity-response:{request_id}",
    )


def _refused_child_id(child_id: str, parent_id: str, grandparent_id: str | None) -> str | None:
    """The extension refuses these sub-orchestration ids (protocol §2.7)."""
    if not child_id:
        return "a sub-orchestration instance id cannot be empty"
    if child_id.startswith("@"):
        return f"sub-orchestration instance id {child_id!r} cannot start with '@' (reserved for entities)"
    if child_id in (parent_id, grandparent_id):
        return f"sub-orchestration instance id {child_id!r} cannot be the id of its parent or grandparent"
    return None


def _listing_changed(before: InstanceRecord, after: InstanceRecord) -> bool:
    """Whether an instance listing would show something new (status, custom status, output)."""
    return (before.status, before.custom_status, before.output) != (
        after.status,
        after.custom_status,
        after.output,
    )
