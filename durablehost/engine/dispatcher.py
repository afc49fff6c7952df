"""The dispatcher: runs the episodes of the instances in the partitions this process owns.

A task hub's instances are spread over its partitions (durablehost.engine.placement); each partition is
owned by one live process at a time (durablehost.engine.ownership), which runs its episodes, activities,
timers and entity batches. Every process serves clients: a write made outside an episode (a start, an
event, a terminate, an outcome from another partition) reaches the owner through :meth:`notify` — at
once when the owner is this process, through a wake-up row in the control table otherwise. Ownership only
decides who does the work: every commit is still guarded by the instance row's ETag, so a process that
lost its lease without knowing cannot commit over a newer episode.

Within a process, each instance runs at most one episode at a time; all pending completions and
deliverable events of an instance go into one episode (a fan-in of 1,000 results is a handful of
episodes, not 1,000 replays). Instance state stays cached between episodes and is trusted only while the
instance row's ETag matches (durablehost.engine.cache). Outcomes of work this process ran are held in
memory and stored by the partition's next commit (durablehost.engine.outcomes).

The dispatcher's parts, each a module of its own: ownership (partition leases), recovery (gaining and
losing partitions, the sweep), the cache, outcomes, tasks (activities, sub-orchestration starts, entity
messages), entities (batches), failures (bounded retries of host-side failures), owed (retries through
store outages). What is left here is the episode loop and the notify path that connects them.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import json
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from durablehost.engine.cache import InstanceCache
from durablehost.engine.clock import Clock
from durablehost.engine.control import ControlTable
from durablehost.engine.doorbell import Doorbell
from durablehost.engine.entities import Entities, new_event_row_key
from durablehost.engine.episode import InstanceState, NonDeterminismError, UnsupportedAction, run_episode
from durablehost.engine.failures import EpisodeFailures
from durablehost.engine.fidelity import Fidelity
from durablehost.engine.history import (
    HistoryEvent,
    execution_completed,
    orchestrator_completed,
    orchestrator_started,
)
from durablehost.engine.outcomes import HeldOutcomes
from durablehost.engine.owed import StoreOutage, until_stored
from durablehost.engine.ownership import Ownership, OwnershipOptions
from durablehost.engine.partition import InstanceRepository, OutcomeConflict
from durablehost.engine.placement import DEFAULT_PARTITIONS, partition_of
from durablehost.engine.records import (
    EventMessage,
    InstanceRecord,
    MessageKind,
    Outcome,
    RuntimeStatus,
    TaskKind,
    TaskRecord,
    TaskState,
)
from durablehost.engine.recovery import Recovery
from durablehost.engine.tasks import TaskRunner
from durablehost.engine.timers import TimerKey, TimerQueue
from durablehost.engine.version_gate import Verdict, VersionGate
from durablehost.engine.versioning import Versioning
from durablehost.errors import (
    EntityAlreadyExists,
    EtagMismatch,
    InvocationError,
    PayloadTooLarge,
    StoreUnavailable,
    UnknownFunction,
)
from durablehost.functions import FunctionIndex
from durablehost.functions.agent_runner import shares_process_wide_runner
from durablehost.functions.workers import UserCode

log = logging.getLogger("durablehost.dispatcher")


@dataclass(frozen=True)
class DispatcherOptions:
    max_concurrent_activities: int = 16
    max_concurrent_orchestrations: int = 16
    partition_count: int = DEFAULT_PARTITIONS  # host.json extensions.durableTask.storageProvider
    lease_duration: timedelta = timedelta(seconds=15)
    lease_poll_interval: float = 1.0  # seconds between looks at the partition leases
    detect_dead_processes: bool = True  # take over at once from a holder on this host whose pid is gone
    member_label: str = ""  # how logs name this process (a worker of `durablehost start --workers`)
    wake_poll_interval: float = 0.2  # seconds between checks for work woken by other processes
    sweep_interval: float = 30.0  # seconds between full looks at owned instances (lost wake-ups)
    entity_batch_size: int = 100  # operations per entity batch (the extension uses 50-5,000)
    # host.json functionTimeout: an attempt running longer is abandoned and the work item picked up
    # again, at most activity_redeliveries times; then the task fails with a timeout.
    activity_timeout: float | None = None
    activity_redeliveries: int = 2
    # Replays costing more than this (seconds) make the next episode wait for more completions.
    batching_threshold: float = 0.01
    max_batching_delay: float = 2.0
    cache_size: int = 2048
    # An episode failing outside the orchestrator's code is tried this often, waiting machinery_backoff,
    # then twice that …, before the instance fails visibly (durablehost.engine.failures).
    machinery_attempts: int = 3
    machinery_backoff: float = 1.0
    slow_replay: float = 1.0  # a replay longer than this (seconds) is logged with the instance id
    drain_timeout: float = 30.0  # a graceful hand-over waits at most this long for in-flight work
    # host.json extensions.durableTask defaultVersion / versionMatchStrategy / versionFailureStrategy.
    versioning: Versioning = field(default_factory=Versioning)
    # Azure-exact where durablehost deliberately differs (durablehost.engine.fidelity); instances
    # created by this process keep the mode they were created with.
    fidelity: Fidelity = Fidelity.DURABLEHOST


class Dispatcher:
    def __init__(
        self,
        repo: InstanceRepository,
        control: ControlTable,
        functions: FunctionIndex,
        clock: Clock,
        options: DispatcherOptions | None = None,
        *,
        outage: StoreOutage | None = None,
    ) -> None:
        self.repo = repo
        self.control = control
        self.functions = functions
        self.clock = clock
        self.options = options = options or DispatcherOptions()
        self.outage = outage or StoreOutage()
        # The label (a worker of `durablehost start --workers`) leads, so logs name processes readably.
        suffix = uuid.uuid4().hex[:12]
        self.member_id = f"{options.member_label}-{suffix[:8]}" if options.member_label else suffix
        self.partition_count = options.partition_count
        self.user = UserCode(
            orchestrator_threads=options.max_concurrent_orchestrations,
            activity_threads=options.max_concurrent_activities,
        )
        self.cache = InstanceCache(repo, options.cache_size, pinned=self._pinned)
        self.timers = TimerQueue()
        self.outcomes = HeldOutcomes(repo, self.cache, self.outage, schedule=self.schedule, spawn=self.spawn)
        self.tasks = TaskRunner(
            self,
            functions,
            self.user,
            clock,
            max_concurrent_activities=options.max_concurrent_activities,
            activity_timeout=options.activity_timeout,
            activity_redeliveries=options.activity_redeliveries,
            outage=self.outage,
            fidelity=options.fidelity,
        )
        self.entities = Entities(
            repo,
            functions,
            self.user,
            clock,
            batch_size=options.entity_batch_size,
            deliver=self.deliver,
            publish=self.publish,
            mark_active=lambda instance_id: control.mark_active(self.partition(instance_id), instance_id),
        )
        self.failures = EpisodeFailures(
            attempts=options.machinery_attempts,
            backoff=options.machinery_backoff,
            retry=self.schedule,
            fail=self._fail_by_id,
            report=self.errors_append,
            spawn=self.spawn,
        )
        self.recovery = Recovery(self, drain_timeout=options.drain_timeout)
        self.versions = VersionGate(options.versioning, retry=self.schedule)
        self.ownership: Ownership | None = None
        self.doorbell = Doorbell(self.member_id)
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._queued: set[str] = set()
        self._running: set[str] = set()
        self._again: set[str] = set()
        self._refresh_after: set[str] = set()
        self._replay_ready_at: dict[str, float] = {}
        self._deferred: set[str] = set()
        self._background: set[asyncio.Task[Any]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._timer_changed = asyncio.Event()
        self._stopping = False
        self.episodes = 0
        # The latest unexpected failures, for tests and diagnostics (bounded: a long-lived host must not
        # grow with them).
        self.errors: collections.deque[BaseException] = collections.deque(maxlen=100)

    # ------------------------------------------------------------------ lifecycle

    async def start(self, *, own_all: bool = False, timeout: float | None = 30.0) -> None:
        """Join the task hub; with ``own_all`` wait until this process owns every partition (a harness)."""
        self.partition_count = await self.control.partition_count(self.options.partition_count)
        await self.control.ensure_leases(self.partition_count)
        await self.control.migrate_single_owner_layout(self.partition_count, partition_of)
        await self.doorbell.open()
        ownership = self.ownership = Ownership(
            self.control,
            self.member_id,
            OwnershipOptions(
                partition_count=self.partition_count,
                lease_duration=self.options.lease_duration,
                poll_interval=self.options.lease_poll_interval,
                detect_dead_processes=self.options.detect_dead_processes,
            ),
            label=self.options.member_label,
            doorbell=self.doorbell.port,
            outage=self.outage,
            on_acquired=self.recovery.acquired,
            on_released=self.recovery.released,
            on_resumed=self.recovery.resumed,
        )
        ownership.start()
        self._loops += [
            asyncio.create_task(self._episode_worker(), name=f"episodes-{i}")
            for i in range(self.options.max_concurrent_orchestrations)
        ]
        self._loops.append(asyncio.create_task(self._keep_running("timer", self._timer_loop)))
        self._loops.append(asyncio.create_task(self._keep_running("wake", self._wake_loop)))
        if own_all:
            await ownership.wait_for(lambda: len(ownership.owned) == self.partition_count, timeout)

    async def stop(self, *, drain: bool = True) -> None:
        """Stop; with ``drain``, let running episodes and activities finish and store their outcomes,
        then hand the partitions over at once (without it they are handed over without waiting)."""
        self._stopping = True
        if self.ownership is not None:
            await self.ownership.stop(graceful=drain)
        if drain:
            await self.control.flush()  # what lingers is owed too (index copies, marker removals)
        self.failures.cancel()
        self.versions.cancel()
        loops = [*self._loops, *self._background]
        for task in loops:
            task.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        await self.tasks.stop()
        self.outcomes.close()
        self.doorbell.close()
        self.user.shutdown()

    async def ownership_summary(self, timeout: float) -> str:
        """How many partitions this process owns and how many processes share the hub, after the first
        look at the leases (or as far as it got within ``timeout``)."""
        ownership = self.ownership
        if ownership is None:
            return f"none of {self.partition_count} (this process serves clients only)"
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await ownership.looked.wait()
        others = ownership.members - 1
        sharing = f"{others} other process shares" if others == 1 else f"{others} other processes share"
        sharing += " the task hub"
        return f"{len(ownership.owned)} of {self.partition_count} owned by this process; {sharing}"

    @property
    def owned_partitions(self) -> frozenset[int]:
        return self.ownership.owned if self.ownership is not None else frozenset()

    def partition(self, instance_id: str) -> int:
        return partition_of(instance_id, self.partition_count)

    def publish(self, record: InstanceRecord) -> None:
        """Write the instance's index copy in the background, if this process owns the instance.

        Only the owner writes index copies, so one writer orders them (index writes linger, see
        durablehost.engine.control): a change made through another process reaches the index when the
        owner revalidates the instance on its wake-up (:meth:`refresh`).
        """
        ownership = self.ownership
        if ownership is not None and ownership.holds(self.partition(record.instance_id)):
            self.spawn(self.control.publish(record))

    def may_start(self, instance_id: str) -> bool:
        """May this process start work for the instance now (it holds the instance's partition)?"""
        ownership = self.ownership
        return not self._stopping and ownership is not None and ownership.holds(self.partition(instance_id))

    def _pinned(self, instance_id: str) -> bool:
        return instance_id in self._running or self.outcomes.pinned(instance_id)

    def busy_with(self, mine: Callable[[str], bool]) -> bool:
        """Is there work in flight for instances that ``mine`` picks (a partition being handed over)?"""
        return (
            any(mine(i) for i in self._running)
            or any(mine(i) for i in self.outcomes.instances())
            or bool(self.tasks.inflight_for(mine))
        )

    def errors_append(self, problem: BaseException) -> None:
        self.errors.append(problem)

    # ------------------------------------------------------------------ notify: the one path for writes

    async def notify(self, instance_id: str, *, changed: bool = True) -> None:
        """Make the owner of the instance look at it: this process, or another through the store.

        ``changed`` says the instance row may have changed outside this process's cache (a terminate,
        a resume, a rewind, an event another process raised): the owner then revalidates its cached copy
        by ETag. Without it (a start or an event this process just wrote into its cache) it only runs.
        """
        partition = self.partition(instance_id)
        if self.ownership is not None and self.ownership.holds(partition):
            if changed:
                await self.refresh(instance_id)
            else:
                self.schedule(instance_id)
            return
        await until_stored(self.outage, "waking the owner", lambda: self.control.wake(partition, instance_id))
        ownership = self.ownership
        if ownership is not None:
            # The owner on this machine reads the row now, not at its poll. Every process here is rung, not
            # only the owner of the last look at the leases: a partition may have just changed hands (a
            # process joining takes its share), and a look that finds nothing for it costs one read.
            for port, member_id in ownership.neighbours:
                self.doorbell.ring(port, member_id)

    async def refresh(self, instance_id: str) -> None:
        """Revalidate a cached instance (or load it), then run what it has to run."""
        if not self.may_start(instance_id):
            return
        if instance_id in self._running:
            self._refresh_after.add(instance_id)  # after this episode: a reload now could be overtaken
            return
        before = self.cache.get(instance_id)
        was_finished = before is not None and before.record.status.is_finished
        state, reloaded = await until_stored(
            self.outage, "revalidating an instance", lambda: self.cache.revalidate(instance_id)
        )
        if state is None:
            self.outcomes.drop(instance_id)
            return
        if reloaded:
            if state.record.status.is_finished:
                if not was_finished:
                    await self.after_finish(state)
                return
            if before is None or _listing_changed(before.record, state.record):
                self.publish(state.record)
            self.resume_tasks(state)
        self.schedule(instance_id)

    async def deliver(self, target: str, event: EventMessage) -> bool:
        """Put a message into an instance's inbox (deduplicated by its idempotency key) and notify it."""
        added = await until_stored(
            self.outage, f"delivering to {target}", lambda: self.repo.add_event(target, event)
        )
        if added and not self.add_event(target, event):
            await self.notify(target)
        return added

    def add_event(self, instance_id: str, event: EventMessage) -> bool:
        """An event this process stored: put it into the cached state and run the instance. False when
        this process does not hold the instance (the caller must notify its owner)."""
        if not self.may_start(instance_id):
            return False
        state = self.cache.get(instance_id)
        if state is not None and all(e.row_key != event.row_key for e in state.events):
            state.events.append(event)
        self.schedule(instance_id)
        return True

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

    def is_idle(self, *, include_timers: bool = True, include_retries: bool = True) -> bool:
        busy = (
            self._queued
            or self._running
            or self.tasks.busy
            or self._background
            or self.outcomes.busy
            or self.control.busy
            or (include_retries and self.failures.waiting)
        )
        if busy:
            return False
        if include_timers:
            due = self.timers.next_due()
            return due is None or due > self.clock.now()
        return True

    async def wait_idle(
        self,
        *,
        include_timers: bool = True,
        timeout: float | None = None,
        raise_errors: bool = True,
        include_retries: bool = True,
    ) -> None:
        """Wait until nothing is queued, running or due (what a test harness calls run-until-idle).

        With ``raise_errors`` the first unexpected failure logged so far is raised, so a test sees it.
        Writes that only linger for company (index copies, marker removals) are sent at once.
        """
        async with asyncio.timeout(timeout):
            quiet = 0
            while quiet < 3:
                await asyncio.sleep(0 if quiet else 0.001)
                if self.control.only_lingering:
                    await self.control.flush()
                idle = self.is_idle(include_timers=include_timers, include_retries=include_retries)
                quiet = quiet + 1 if idle else 0
                if raise_errors and self.errors:
                    raise self.errors[0]

    async def _episode_worker(self) -> None:
        while True:
            instance_id = await self._queue.get()
            self._queued.discard(instance_id)
            if not self.may_start(instance_id):
                continue  # not ours (any more): its owner runs it
            self._running.add(instance_id)
            try:
                await self._process(instance_id)
            except asyncio.CancelledError:
                raise
            except Exception as problem:
                self.cache.drop(instance_id)  # whatever happened, start again from what is stored
                self.failures.failed(instance_id, problem, sdk=isinstance(problem, InvocationError))
            finally:
                self._running.discard(instance_id)
                self.outcomes.unclaim(instance_id)
            if instance_id in self._refresh_after:
                self._refresh_after.discard(instance_id)
                self.spawn(self.refresh(instance_id))
            if instance_id in self._again:
                self._again.discard(instance_id)
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

    def spawn(self, work: Awaitable[object]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if task.cancelled():
            return
        problem = task.exception()
        if problem is not None:
            # Owed writes retry outages themselves, so what arrives here is a bug; the sweep picks the
            # instance up again, and tests see the error through wait_idle.
            log.error("background work failed", exc_info=problem)
            self.errors.append(problem)

    # ------------------------------------------------------------------ episodes

    async def _process(self, instance_id: str) -> None:
        state = await until_stored(
            self.outage, "loading an instance", lambda: self.cache.get_or_load(instance_id)
        )
        if state is None:
            self.outcomes.drop(instance_id)
            return
        if state.record.is_entity:
            await self._process_entity(state)
            return
        stale = self.outcomes.absorb_messages(state)
        if state.runnable and (state.has_work() or self.outcomes.pending(instance_id)):
            wait = self._batching_wait(state)
            if wait > 0:
                self._defer(instance_id, wait)  # no worker is held while completions pile up
            elif await self._version_admits(state):
                snapshot = state.snapshot()
                outcomes = self.outcomes.claim(state, snapshot)
                if snapshot.has_work():
                    await self._run_episode(state, snapshot, outcomes, stale)
                    return
                self.outcomes.unclaim(instance_id)
        # No episode now: store what is held without one, and drop stale inbox rows.
        self.outcomes.flush_soon(instance_id)
        await self._delete_rows(instance_id, stale)

    def _one_at_a_time(self, state: InstanceState) -> bool:
        """Whether this orchestrator's episodes must not overlap: those of the SDK's OpenAI Agents
        integration share a process-wide runner (durablehost.functions.agent_runner); Azure lets them
        race, and so does the Azure-exact fidelity."""
        if self.options.fidelity is Fidelity.AZURE:
            return False
        try:
            orchestrator = self.functions.orchestrator(state.record.name)
        except UnknownFunction:
            return False  # the episode fails with the extension's message (run_episode)
        return shares_process_wide_runner(orchestrator.handle)

    async def _run_episode(
        self, state: InstanceState, snapshot: InstanceState, outcomes: list[TaskRecord], stale: list[str]
    ) -> None:
        instance_id = state.record.instance_id
        started = time.perf_counter()
        try:
            # Children started without a version get this app's defaultVersion (versioning.py).
            episode = functools.partial(run_episode, default_version=self.options.versioning.default_version)
            result = await self.user.run_orchestrator(
                episode, snapshot, self.functions, self.clock.now(), one_at_a_time=self._one_at_a_time(state)
            )
        except (NonDeterminismError, UnsupportedAction, UnknownFunction, PayloadTooLarge) as problem:
            self.outcomes.unclaim(instance_id)
            await self._fail_instance(state, str(problem))
            return
        cost = time.perf_counter() - started
        if cost >= self.options.slow_replay:
            log.warning(
                "replaying instance %s (%s, %d history events) took %.2f s",
                instance_id,
                state.record.name,
                len(state.history),
                cost,
            )
        if cost >= self.options.batching_threshold:
            delay = min(2 * cost, self.options.max_batching_delay)
            self._replay_ready_at[instance_id] = asyncio.get_running_loop().time() + delay
        else:
            self._replay_ready_at.pop(instance_id, None)
        try:
            await until_stored(
                self.outage,
                "committing an episode",
                lambda: self.repo.commit(
                    result.record,
                    history_start=state.record.history_count,
                    new_history=result.new_history,
                    upsert_tasks=result.tasks_to_write,
                    delete_rows=[*(e.row_key for e in result.delivered), *stale],
                    outcomes=outcomes,
                ),
            )
        except (EtagMismatch, OutcomeConflict):
            # Someone else changed the instance (terminate, suspend, another host) or recorded an
            # outcome first. Reload and run again: outcomes held in memory are matched afresh.
            self.outcomes.unclaim(instance_id)
            await until_stored(self.outage, "reloading an instance", lambda: self.cache.load(instance_id))
            self.schedule(instance_id)
            return
        except PayloadTooLarge as problem:
            self.outcomes.unclaim(instance_id)
            fresh = await until_stored(
                self.outage, "reloading an instance", lambda: self.cache.load(instance_id)
            )
            if fresh is not None:
                await self._fail_instance(fresh, str(problem))
            return
        self.episodes += 1
        self.cache.put(state)  # the committed state is the freshest, whatever was loaded meanwhile
        self.failures.succeeded(instance_id)
        self.outcomes.committed(instance_id)
        previous = state.record
        state.record = result.record
        state.history.extend(result.new_history)
        for task in result.consumed:
            task.consumed = True
            state.tasks[task.task_id] = task
        for task in result.tasks_to_write:
            state.tasks[task.task_id] = task
        delivered = {e.row_key for e in result.delivered}
        state.events = [e for e in state.events if e.row_key not in delivered]
        for task in result.canceled:
            self.timers.cancel(TimerKey(instance_id, task.execution_id, task.task_id))
        if _listing_changed(previous, result.record) and not result.finished:
            self.publish(result.record)  # a finished one's copy is written by after_finish
        if result.finished:
            await self.after_finish(state)
            return
        if result.continued:
            await self._continue_as_new(state, result.continue_as_new_input)
            return
        for task in result.new_work:
            self._start_task(instance_id, task)
        if state.has_work() or self.outcomes.pending(instance_id):
            self.schedule(instance_id)

    async def _version_admits(self, state: InstanceState) -> bool:
        """The version check before an episode (durablehost.engine.version_gate): True to run it. A
        refused instance is left as it is (Reject) or failed (Fail)."""
        verdict = self.versions.check(state.record)
        if verdict is Verdict.FAIL:
            record, events = self.versions.failure(state.record, self.clock.now())
            message = self.options.versioning.refusal(state.record.version)
            await self._commit_failure(state, record, events, message)
        return verdict is Verdict.RUN

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
        held = self.outcomes.pending(state.record.instance_id)
        in_flight = any(
            t.state is TaskState.SCHEDULED and t.kind in _BATCHED_KINDS and t.task_id not in held
            for t in state.tasks.values()
        )
        return remaining if in_flight else 0.0

    def _defer(self, instance_id: str, delay: float) -> None:
        if instance_id not in self._deferred:
            self._deferred.add(instance_id)
            self.spawn(self._run_deferred(instance_id, delay))

    async def _run_deferred(self, instance_id: str, delay: float) -> None:
        try:
            await asyncio.sleep(delay)
        finally:
            self._deferred.discard(instance_id)
        self.schedule(instance_id)

    async def _fail_by_id(self, instance_id: str, message: str) -> None:
        state = await until_stored(self.outage, "loading an instance", lambda: self.cache.load(instance_id))
        if state is not None and not state.record.status.is_finished:
            await self._fail_instance(state, message)

    async def _fail_instance(self, state: InstanceState, message: str) -> None:
        """Fail an instance for a host-side reason (non-determinism, unsupported action, oversize …)."""
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
        await self._commit_failure(state, record, events, message)

    async def _commit_failure(
        self, state: InstanceState, record: InstanceRecord, events: list[HistoryEvent], message: str
    ) -> None:
        """Commit the failed ``record`` and its ``events``, then do what a finished instance owes."""
        history_start = state.record.history_count
        try:
            await until_stored(
                self.outage,
                "failing an instance",
                lambda: self.repo.commit(
                    record, history_start=history_start, new_history=events, upsert_tasks=[], delete_rows=[]
                ),
            )
        except EtagMismatch:
            await until_stored(
                self.outage, "reloading an instance", lambda: self.cache.load(record.instance_id)
            )
            self.schedule(record.instance_id)
            return
        log.error("instance %s failed: %s", record.instance_id, message)
        state.record = record
        state.history.extend(events)
        await self.after_finish(state)

    async def after_finish(self, state: InstanceState) -> None:
        """What a finished instance owes others: its parent's outcome and its index copy, then its
        marker's removal.

        In the background, so no episode worker waits on another instance's commit; and in that order: the
        marker goes only once the parent's outcome and the index copy are stored, so a crash in between
        leaves the instance marked and the next owner's recovery does both again (a duplicate outcome is
        dropped by the store).
        """
        record = state.record
        instance_id = record.instance_id
        self._replay_ready_at.pop(instance_id, None)
        self.timers.cancel_instance(instance_id)
        self.outcomes.flush_soon(instance_id)  # its activities' outcomes are stored all the same (rewind)
        self.spawn(self._settle_finished(record))

    async def _settle_finished(self, record: InstanceRecord) -> None:
        instance_id = record.instance_id
        if record.parent_instance_id and record.parent_execution_id and record.parent_task_id is not None:
            if record.status is RuntimeStatus.COMPLETED:
                outcome = Outcome(TaskState.COMPLETED, result=record.output)
            else:
                message = json.loads(record.output) if record.output else f"instance {record.status.value}"
                outcome = Outcome(
                    TaskState.FAILED,
                    reason=f"Sub-orchestration '{record.name}' ({instance_id}) failed: {message}",
                )
            await self.record_outcome(
                record.parent_instance_id,
                record.parent_execution_id,
                record.parent_task_id,
                outcome,
                durable=True,
            )
        await self.control.publish(record)
        await self.control.unmark_active(self.partition(instance_id), instance_id, urgent=False)

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
            await until_stored(self.outage, "continuing as new", lambda: self.repo.update_record(record))
        except EtagMismatch:
            await until_stored(self.outage, "reloading an instance", lambda: self.cache.load(old.instance_id))
            self.schedule(old.instance_id)
            return
        self.timers.cancel_instance(old.instance_id)
        self.publish(record)
        state.record = record
        state.history = []
        state.tasks = {}
        self.spawn(self.repo.delete_stale_rows(old.instance_id, record.execution_id))
        self.schedule(old.instance_id)

    async def _delete_rows(self, instance_id: str, rows: list[str]) -> None:
        if rows:
            await until_stored(
                self.outage, "deleting inbox rows", lambda: self.repo.delete_rows(instance_id, rows)
            )

    # ------------------------------------------------------------------ outcomes

    async def record_outcome(
        self,
        instance_id: str,
        execution_id: str,
        task_id: int,
        outcome: Outcome,
        *,
        wait: bool = True,
        durable: bool = False,
    ) -> bool:
        """Record a task's outcome once; returns whether it was ours that was recorded.

        In a partition this process holds, the outcome is held in memory and stored by the partition's
        next commit (durablehost.engine.outcomes); with ``wait`` the call returns once it is stored.
        ``durable`` stores it right away, without waiting for an episode: for an outcome that no recovery
        would produce again (a sub-orchestration's result, whose child is finished). For
        an instance this process was running but no longer holds (a hand-over), it is written directly
        and the new owner is woken. For another process's instance (a sub-orchestration's parent), it is
        sent as an inbox message, which the owner consumes like a completion.
        """
        if self.may_start(instance_id):
            task = await self.outcomes.task_of(instance_id, execution_id, task_id)
            if task is None:
                return False
            waiter = self.outcomes.hold(instance_id, task, outcome, self.clock.now())
            if waiter is None:
                return False
            state = self.cache.get(instance_id)
            runnable = state is not None and state.runnable
            # An entity message's outcome only records that it was sent: no episode waits for it.
            if (
                durable
                or task.kind is TaskKind.ENTITY_MESSAGE
                or not runnable
                or instance_id in self._running
            ):
                self.outcomes.flush_soon(instance_id)
            elif instance_id in self._deferred:
                self.outcomes.flush_soon(instance_id)
            else:
                self.schedule(instance_id)  # the episode's own transaction stores it
            return await asyncio.shield(waiter) if wait else True
        cached = self.cache.get(instance_id)
        if cached is not None and cached.record.execution_id == execution_id and task_id in cached.tasks:
            # This process ran the instance until a moment ago: store the outcome against the task row
            # it knows and wake the new owner.
            held = self.outcomes.hold(instance_id, cached.tasks[task_id], outcome, self.clock.now())
            if held is None:
                return False
            await self.outcomes.store_directly(instance_id)
            await self.notify(instance_id)
            return await held
        message = EventMessage(
            row_key=new_event_row_key(),
            name=f"outcome:{task_id}",
            input=outcome.to_json(),
            raised_time=self.clock.now(),
            kind=MessageKind.OUTCOME,
            execution_id=execution_id,
            task_id=task_id,
        )
        await self.deliver(instance_id, message)
        return True

    # ------------------------------------------------------------------ creating instances

    async def create_instance(
        self, record: InstanceRecord, *, keep: Callable[[InstanceRecord], bool] | None = None
    ) -> InstanceRecord | None:
        """Store a new instance; an instance with that id that finished is replaced, as in Azure.

        Returns None when ``record`` was stored, otherwise the instance that stays: one that has not
        finished, or one that ``keep`` says to leave alone.
        """
        instance_id = record.instance_id
        # Active marker first: a crash after it leaves a marker the next recovery removes; a crash after
        # the insert leaves an instance the next recovery runs. Neither loses an acknowledged start.
        await self.control.mark_active(self.partition(instance_id), instance_id)
        replaced = False
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
            replaced = True
        if self.may_start(instance_id):
            self.outcomes.drop(instance_id)
            if replaced:
                self.cache.drop(instance_id)  # the old execution's rows are still there: load it afresh
            elif instance_id not in self.cache:  # a recovery may have loaded (and run) it already
                self.cache.put(InstanceState(record, [], {}, []))  # nothing else is in a new partition
        # The owner writes the index copy: this process if it owns the instance, else the owner when it
        # loads the instance on its wake-up.
        self.publish(record)
        await self.notify(instance_id, changed=False)
        return None

    async def send_entity_request(self, sender: str, task: TaskRecord) -> None:
        await until_stored(
            self.outage, "sending an entity message", lambda: self.entities.send_request(sender, task)
        )

    async def parent_of(self, instance_id: str) -> str | None:
        state = self.cache.get(instance_id)
        if state is not None:
            return state.record.parent_instance_id
        record = await until_stored(
            self.outage, "reading an instance", lambda: self.repo.get_record(instance_id)
        )
        return record.parent_instance_id if record is not None else None

    # ------------------------------------------------------------------ entities

    async def _process_entity(self, state: InstanceState) -> None:
        if not self.entities.batch_of(state):
            return
        updated, batch = await self.entities.run_batch(state)
        record = state.record
        try:
            await until_stored(
                self.outage,
                "committing an entity batch",
                lambda: self.repo.commit(
                    updated,
                    history_start=record.history_count,
                    new_history=[],
                    upsert_tasks=[],
                    delete_rows=[e.row_key for e in batch],
                ),
            )
        except EtagMismatch:
            await until_stored(
                self.outage, "reloading an entity", lambda: self.cache.load(record.instance_id)
            )
            self.schedule(record.instance_id)
            return
        self.episodes += 1
        state.record = updated
        self.publish(updated)
        done = {e.row_key for e in batch}
        state.events = [e for e in state.events if e.row_key not in done]
        if self.entities.batch_of(state):
            self.schedule(record.instance_id)

    # ------------------------------------------------------------------ tasks and timers

    def resume_tasks(self, state: InstanceState) -> None:
        """Start every scheduled task of a (re)loaded instance that is not running or held already."""
        instance_id = state.record.instance_id
        held = self.outcomes.pending(instance_id)
        for task in state.tasks.values():
            if task.state is TaskState.SCHEDULED and task.task_id not in held:
                self._start_task(instance_id, task)

    def _start_task(self, instance_id: str, task: TaskRecord) -> None:
        if task.state is not TaskState.SCHEDULED:
            return
        if task.kind is TaskKind.TIMER:
            if task.fire_at is not None:
                self.timers.add(TimerKey(instance_id, task.execution_id, task.task_id), task.fire_at)
                self._timer_changed.set()
            return
        self.tasks.start(instance_id, task)

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
            if self.may_start(key.instance_id):
                fired = Outcome(TaskState.COMPLETED)
                self.spawn(
                    self.record_outcome(key.instance_id, key.execution_id, key.task_id, fired, wait=False)
                )
        return len(due)

    async def _wake_loop(self) -> None:
        loop = asyncio.get_running_loop()
        sweep_at = loop.time() + self.options.sweep_interval
        failing = False  # the last poll failed: only a poll after a failed one ends an outage (owed.py)
        rung = self.doorbell.rung
        looked_at = -math.inf
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.options.wake_poll_interval):
                    await rung.wait()  # another process on this machine stored a wake-up for us
            if rung.is_set():
                # A burst of rings (100 starts through the other worker) shares looks: at most one per
                # _RUNG_SPACING, each taking every wake-up stored by then (a look is a store write).
                await asyncio.sleep(looked_at + _RUNG_SPACING - loop.time())
            rung.clear()
            looked_at = loop.time()
            ownership = self.ownership
            held = [p for p in self.owned_partitions if ownership is not None and ownership.holds(p)]
            if not held:
                continue
            try:
                woken = await self.control.take_wakes(held)
            except StoreUnavailable as problem:  # the next poll tries again
                self.outage.failed("reading wake-ups", problem)
                failing = True
                continue
            if failing:
                failing = False
                self.outage.succeeded()
            for start in range(0, len(woken), 32):
                await asyncio.gather(
                    *(self.refresh(instance_id) for instance_id in woken[start : start + 32])
                )
            if loop.time() >= sweep_at:
                sweep_at = loop.time() + self.options.sweep_interval
                await self.recovery.sweep(held)


# The shortest time between two looks at the wake-up rows that the doorbell asked for.
_RUNG_SPACING = 0.02

# Work whose completions an episode can usefully wait for (timers and events are not waited for).
_BATCHED_KINDS = (TaskKind.ACTIVITY, TaskKind.HTTP, TaskKind.SUB_ORCHESTRATION)


def _listing_changed(before: InstanceRecord, after: InstanceRecord) -> bool:
    """Whether an instance listing would show something new (status, custom status, output)."""
    return (before.status, before.custom_status, before.output) != (
        after.status,
        after.custom_status,
        after.output,
    )


__all__ = ["Dispatcher", "DispatcherOptions"]
