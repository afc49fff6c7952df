"""Gaining and losing partitions (durablehost.engine.recovery.Recovery) with a real control table, cache
and held outcomes on SQLite and Azurite, and a recording stand-in for the rest of the dispatcher:
recovery resumes every unfinished instance of a partition and finishes the bookkeeping of finished ones,
a release drains (when graceful) and then forgets only that partition, the sweep catches what was missed."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from durablehost.engine.cache import InstanceCache
from durablehost.engine.control import ControlTable
from durablehost.engine.episode import InstanceState
from durablehost.engine.outcomes import HeldOutcomes
from durablehost.engine.owed import StoreOutage
from durablehost.engine.partition import InstanceRepository
from durablehost.engine.records import InstanceRecord, Outcome, RuntimeStatus, TaskKind, TaskRecord, TaskState
from durablehost.engine.recovery import Recovery
from durablehost.engine.timers import TimerKey, TimerQueue
from durablehost.store import open_store
from durablehost.store.base import TableStore
from tests.support.histories import History

NOW = datetime(2024, 1, 1, tzinfo=UTC)
PARTITIONS = 2


def _partition(instance_id: str) -> int:
    """A placement the test can read at a glance: ids ending in 1 are in partition 1."""
    return 1 if instance_id.endswith("1") else 0


@dataclass
class Host:
    """recovery.RecoveryHost: real storage-facing parts, the dispatcher's own actions recorded."""

    cache: InstanceCache
    control: ControlTable
    outcomes: HeldOutcomes
    timers: TimerQueue = field(default_factory=TimerQueue)
    outage: StoreOutage = field(default_factory=StoreOutage)
    owned: set[int] = field(default_factory=lambda: {0, 1})
    scheduled: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    refreshed: list[str] = field(default_factory=list)
    busy: set[int] = field(default_factory=set)  # partitions with work in flight
    spawned: list[asyncio.Task[object]] = field(default_factory=list)

    def may_start(self, instance_id: str) -> bool:
        return _partition(instance_id) in self.owned

    def partition(self, instance_id: str) -> int:
        return _partition(instance_id)

    def schedule(self, instance_id: str) -> None:
        self.scheduled.append(instance_id)

    def resume_tasks(self, state: InstanceState) -> None:
        self.resumed.append(state.record.instance_id)

    def busy_with(self, mine: Callable[[str], bool]) -> bool:
        return any(mine(f"x{p}") for p in self.busy)

    def spawn(self, work: Awaitable[object]) -> None:
        self.spawned.append(asyncio.ensure_future(work))

    def publish(self, record: InstanceRecord) -> None:
        self.spawn(self.control.publish(record))

    async def after_finish(self, state: InstanceState) -> None:
        self.finished.append(state.record.instance_id)

    async def refresh(self, instance_id: str) -> None:
        self.refreshed.append(instance_id)

    async def settle(self) -> None:
        while not all(task.done() for task in self.spawned):
            await asyncio.gather(*self.spawned)


@dataclass
class World:
    repo: InstanceRepository
    host: Host
    recovery: Recovery


@pytest.fixture
async def world(engine_store: TableStore | None) -> AsyncIterator[World]:
    store = engine_store or open_store("memory")
    hub = f"R{uuid.uuid4().hex[:10]}"
    repo = InstanceRepository(store, hub)
    await repo.initialize()
    control = ControlTable(store, hub, StoreOutage())
    await control.initialize()
    cache = InstanceCache(repo, 64, pinned=lambda _: False)
    outcomes = HeldOutcomes(repo, cache, StoreOutage(), schedule=lambda _: None, spawn=lambda _: None)
    host = Host(cache, control, outcomes)
    host.outcomes = HeldOutcomes(repo, cache, StoreOutage(), schedule=host.schedule, spawn=host.spawn)
    yield World(repo, host, Recovery(host, drain_timeout=0.3))
    await host.settle()
    await store.close()


async def _instance(world: World, instance_id: str, status: RuntimeStatus = RuntimeStatus.RUNNING) -> None:
    """An instance with one scheduled activity (task 0), marked active in its partition."""
    await world.host.control.mark_active(_partition(instance_id), instance_id)
    record = InstanceRecord(instance_id, "chain", status, "exec", NOW, NOW)
    await world.repo.insert_instance(record)
    events = History("chain", instance_id=instance_id, execution_id="exec", at=NOW).started(["a"])
    events.activity(0, "hello", "a").end()
    task = TaskRecord("exec", 0, TaskKind.ACTIVITY, "hello", NOW, history_seq=2)
    record.history_count = len(events.events)
    await world.repo.commit(
        record, history_start=0, new_history=events.events, upsert_tasks=[task], delete_rows=[]
    )


async def test_recovery_resumes_the_unfinished_instances_of_its_partition(world: World) -> None:
    for instance_id in ("a0", "b0", "c1"):
        await _instance(world, instance_id)
    await _instance(world, "done0", RuntimeStatus.COMPLETED)
    await world.recovery.recover(0)
    host = world.host
    assert sorted(host.resumed) == ["a0", "b0"] and sorted(host.scheduled) == ["a0", "b0"]
    assert host.finished == ["done0"]  # its parent's outcome, index copy and marker are finished for it
    assert "c1" not in host.cache
    # The index copy of each unfinished one is rewritten (it may lag after a crash).
    await host.settle()
    listed, _ = await host.control.query_records([], page_size=10, continuation=None)
    assert sorted(r.instance_id for r in listed) == ["a0", "b0"]


async def test_recovery_skips_instances_this_process_may_not_start(world: World) -> None:
    await _instance(world, "a0")
    world.host.owned = set()  # the lease was lost again meanwhile
    await world.recovery.recover(0)
    assert world.host.resumed == [] and "a0" not in world.host.cache


async def test_a_fresh_marker_without_an_instance_is_kept_for_its_creator(world: World) -> None:
    await world.host.control.mark_active(0, "being-created0")
    await world.recovery.recover(0)
    assert await world.host.control.list_active(0) == ["being-created0"]
    assert world.host.resumed == []


async def test_acquiring_a_partition_recovers_it_in_the_background(world: World) -> None:
    await _instance(world, "a1")
    await world.recovery.acquired(1)
    await world.host.settle()
    assert world.host.resumed == ["a1"]


async def test_a_release_forgets_only_that_partition(world: World) -> None:
    for instance_id in ("a0", "b1"):
        await _instance(world, instance_id)
        await world.host.cache.load(instance_id)
        world.host.timers.add(TimerKey(instance_id, "exec", 5), NOW + timedelta(hours=1))
    await world.recovery.released(1, graceful=False)
    assert "b1" not in world.host.cache and "a0" in world.host.cache
    assert [k.instance_id for k in world.host.timers.keys()] == ["a0"]


async def test_held_outcomes_of_a_released_partition_are_stored_directly(world: World) -> None:
    await _instance(world, "b1")
    state = await world.host.cache.load("b1")
    assert state is not None
    waiter = world.host.outcomes.hold("b1", state.tasks[0], Outcome(TaskState.COMPLETED, result='"A"'), NOW)
    await world.recovery.released(1, graceful=False)
    await world.host.settle()
    assert waiter is not None and waiter.result() is True  # the next owner finds it, not the work again
    stored = await world.repo.read_task("b1", "exec", 0)
    assert stored is not None and stored.result == '"A"'


async def test_a_graceful_release_waits_for_the_partitions_work_then_forgets(world: World) -> None:
    await _instance(world, "b1")
    await world.host.cache.load("b1")
    world.host.busy = {1}
    release = asyncio.ensure_future(world.recovery.released(1, graceful=True))
    await asyncio.sleep(0.05)
    assert not release.done() and "b1" in world.host.cache  # still draining
    world.host.busy = set()
    await release
    assert "b1" not in world.host.cache


async def test_a_graceful_release_gives_up_waiting_after_the_drain_timeout(world: World) -> None:
    world.host.busy = {0}
    loop = asyncio.get_running_loop()
    start = loop.time()
    await world.recovery.released(0, graceful=True)
    assert 0.3 <= loop.time() - start < 2


async def test_a_resumed_lease_picks_up_the_cached_instances_of_its_partition(world: World) -> None:
    for instance_id in ("a0", "b1"):
        await _instance(world, instance_id)
        await world.host.cache.load(instance_id)
    await world.recovery.resumed(1)
    assert world.host.resumed == ["b1"] and world.host.scheduled == ["b1"]


async def test_the_sweep_refreshes_uncached_instances_and_schedules_cached_work(world: World) -> None:
    for instance_id in ("lost0", "ready0", "idle0", "done0", "other1"):
        await _instance(world, instance_id)
    for instance_id in ("ready0", "idle0", "done0"):
        await world.host.cache.load(instance_id)
    ready = world.host.cache.get("ready0")
    done = world.host.cache.get("done0")
    assert ready is not None and done is not None
    # ready0's activity completed and no episode took it yet (an earlier failure); idle0 waits for its
    # activity; done0 finished.
    ready.tasks[0].state = TaskState.COMPLETED
    done.record.status = RuntimeStatus.COMPLETED
    await world.recovery.sweep([0])
    host = world.host
    assert host.refreshed == ["lost0"]  # a lost wake-up: it is looked at again
    assert sorted(host.resumed) == ["idle0", "ready0"]  # scheduled tasks restarted if not running
    assert host.scheduled == ["ready0"]  # only what has work gets an episode
