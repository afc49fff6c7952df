"""Partition ownership on a real store: claiming, balancing, hand-overs, expiry and dead holders.

Each "process" is an Ownership object with its own member id; their looks at the leases are driven one
by one (``tick``), so the tests say exactly what each process saw and did.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from durablehost.engine.control import ControlTable, Lease, Member
from durablehost.engine.owed import StoreOutage
from durablehost.engine.ownership import Ownership, OwnershipOptions
from durablehost.store import open_store
from durablehost.store.base import TableStore
from tests.support.faults import FaultyStore

LEASE = timedelta(seconds=2)


class Process:
    """An Ownership with a record of what it was told."""

    def __init__(
        self,
        control: ControlTable,
        count: int,
        *,
        detect_dead: bool = True,
        poll_interval: float = 1.0,
        outage: StoreOutage | None = None,
    ) -> None:
        self.acquired: list[int] = []
        self.released: list[tuple[int, bool]] = []
        self.resumed: list[int] = []
        self.valid_when_told: list[bool] = []  # did holds() say yes when an acquisition was announced?
        self.ownership = Ownership(
            control,
            uuid.uuid4().hex[:8],
            OwnershipOptions(
                partition_count=count,
                lease_duration=LEASE,
                poll_interval=poll_interval,
                detect_dead_processes=detect_dead,
            ),
            outage=outage,
            on_acquired=self._acquired,
            on_released=self._released,
            on_resumed=self._resumed,
        )

    async def _acquired(self, partition: int) -> None:
        self.acquired.append(partition)
        self.valid_when_told.append(self.ownership.holds(partition))

    async def _released(self, partition: int, graceful: bool) -> None:
        self.released.append((partition, graceful))

    async def _resumed(self, partition: int) -> None:
        self.resumed.append(partition)

    @property
    def owned(self) -> frozenset[int]:
        return self.ownership.owned

    async def tick(self) -> None:
        await self.ownership.tick()


@pytest.fixture
async def store(engine_store: TableStore | None) -> AsyncIterator[TableStore]:
    the_store = engine_store or open_store("memory")
    yield the_store
    await the_store.close()


async def _control(store: TableStore, count: int) -> ControlTable:
    control = ControlTable(store, f"O{uuid.uuid4().hex[:10]}", StoreOutage())
    await control.initialize()
    assert await control.partition_count(count) == count
    await control.ensure_leases(count)
    return control


async def _settle(processes: list[Process], rounds: int = 8) -> None:
    for _ in range(rounds):
        for process in processes:
            await process.tick()


async def test_a_lone_process_owns_every_partition_at_its_first_look(store: TableStore) -> None:
    control = await _control(store, 4)
    only = Process(control, 4)
    await only.tick()
    assert only.owned == {0, 1, 2, 3}
    assert sorted(only.acquired) == [0, 1, 2, 3]
    assert all(only.ownership.holds(p) for p in range(4))


async def test_a_joining_process_takes_its_share_and_the_split_stays_put(store: TableStore) -> None:
    control = await _control(store, 4)
    first, second = Process(control, 4), Process(control, 4)
    await first.tick()
    await _settle([second, first])
    assert len(first.owned) == len(second.owned) == 2
    assert first.owned.isdisjoint(second.owned)
    assert all((p, True) in first.released for p in second.owned)  # drained, then handed over
    before = (first.owned, second.owned, len(first.released), len(second.released))
    await _settle([first, second], rounds=10)  # nobody asks anybody back
    assert (first.owned, second.owned, len(first.released), len(second.released)) == before


@pytest.mark.parametrize(("count", "shares"), [(4, [1, 1, 2]), (16, [5, 5, 6]), (1, [0, 0, 1])])
async def test_three_processes_split_the_partitions_evenly(
    store: TableStore, count: int, shares: list[int]
) -> None:
    control = await _control(store, count)
    processes = [Process(control, count) for _ in range(3)]
    await processes[0].tick()
    await _settle(processes, rounds=3 * count)
    assert sorted(len(p.owned) for p in processes) == shares
    owned = [set(p.owned) for p in processes]
    assert set().union(*owned) == set(range(count)) and sum(map(len, owned)) == count


async def test_a_graceful_stop_hands_every_partition_over_at_once(store: TableStore) -> None:
    control = await _control(store, 4)
    first, second = Process(control, 4), Process(control, 4)
    await first.tick()
    await _settle([second, first])
    leaving = set(first.owned)
    await first.ownership.stop(graceful=True)
    assert {p for p, graceful in first.released if graceful} >= leaving
    await second.tick()  # one look, long before the leases would have expired
    assert second.owned == {0, 1, 2, 3}


async def test_a_killed_holder_loses_its_partitions_when_the_leases_expire(store: TableStore) -> None:
    control = await _control(store, 2)
    first, second = Process(control, 2, detect_dead=False), Process(control, 2, detect_dead=False)
    await first.tick()
    await second.tick()
    assert first.owned == {0, 1} and not second.owned  # asked for one, not handed over yet
    # first is "killed": it looks no more. Until its leases expire, nobody else may take them.
    await second.tick()
    assert not second.owned
    await asyncio.sleep(LEASE.total_seconds() + 0.2)
    await second.tick()
    assert second.owned == {0, 1}


async def test_a_holder_whose_process_is_gone_is_taken_over_at_once(store: TableStore) -> None:
    control = await _control(store, 2)
    ghost = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await ghost.wait()
    dead_pid = ghost.pid  # a process of this host that has exited
    survivor = Process(control, 2)
    await survivor.tick()  # takes both partitions, then pretend a dead process on this host took them
    for partition in (0, 1):
        lease = await control.read_lease(partition)
        await control.write_lease(
            partition,
            owner="ghost",
            expires_at=lease.expires_at + timedelta(hours=1),
            next_owner="",
            etag=lease.etag,
        )
    host = survivor.ownership._host
    far = lease.expires_at + timedelta(hours=1)
    await control.heartbeat(Member("ghost", far, host, dead_pid, None, "", 2))
    await survivor.tick()  # sees its partitions gone
    await survivor.tick()  # the ghost's pid is gone: its leases are free now, not in an hour
    assert survivor.owned == {0, 1}
    assert "ghost" not in {m.member_id for m in await control.read_members()}


async def test_a_paused_holder_stops_starting_work_when_its_lease_runs_out(store: TableStore) -> None:
    control = await _control(store, 1)
    paused = Process(control, 1)
    await paused.tick()
    assert paused.ownership.holds(0)
    time.sleep(LEASE.total_seconds())  # noqa: ASYNC251 - a SIGSTOP: the loop itself stands still
    assert not paused.ownership.holds(0)  # the first thing it checks after waking up


async def test_a_holder_paused_in_the_middle_of_a_look_holds_no_longer_than_its_lease_row_says(
    store: TableStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SIGSTOP between a look's reading of the clock and its renewal: the renewal must not write an
    expiry from before the pause while the holder counts its validity from after it (it would then work
    on a partition that the row says is free, and that another process takes at once)."""
    control = await _control(store, 1)
    paused, other = Process(control, 1), Process(control, 1)
    await paused.tick()
    await other.tick()
    assert paused.owned == {0} and not other.owned
    reading = control.read_leases
    stop = [True]

    async def read_then_stop() -> dict[int, Lease]:
        leases = await reading()
        if stop.pop() if stop else False:
            time.sleep(LEASE.total_seconds() + 0.5)  # noqa: ASYNC251 - a SIGSTOP: the loop stands still
        return leases

    monkeypatch.setattr(control, "read_leases", read_then_stop)
    await paused.tick()  # clock read, stopped past the lease, renewed
    await other.tick()
    assert not (paused.ownership.holds(0) and other.ownership.holds(0)), "two holders of one partition"
    assert paused.ownership.holds(0) and not other.owned  # the renewal was a real one: nobody took over


async def test_a_claim_written_as_its_lease_runs_out_is_taken_up_at_the_next_look(
    store: TableStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SIGSTOP while a claim is being written, longer than the lease: the process is not told it
    acquired a partition it may not work on (its recovery would skip every instance and nothing would
    run them until a sweep); the next look takes the partition up properly."""
    control = await _control(store, 1)
    claimer = Process(control, 1)
    writing = control.write_lease
    stop = [True]

    async def write_then_stop(partition: int, **fields: Any) -> str:
        etag = await writing(partition, **fields)
        if stop.pop() if stop else False:
            time.sleep(LEASE.total_seconds() + 0.5)  # noqa: ASYNC251 - a SIGSTOP: the loop stands still
        return etag

    monkeypatch.setattr(control, "write_lease", write_then_stop)
    await claimer.tick()
    assert not claimer.ownership.holds(0)
    await claimer.tick()
    assert claimer.ownership.holds(0) and claimer.owned == {0}
    assert claimer.acquired == [0] and claimer.valid_when_told == [True]


async def test_a_lease_kept_through_a_store_outage_is_resumed(engine_store: TableStore | None) -> None:
    inner = engine_store or open_store("memory")
    faulty = FaultyStore(inner)
    control = await _control(faulty, 1)  # type: ignore[arg-type]
    holder = Process(control, 1)
    await holder.tick()
    faulty.fail()
    await asyncio.sleep(LEASE.total_seconds())
    with pytest.raises(Exception):  # noqa: B017 - the store is down: the look fails
        await holder.tick()
    assert not holder.ownership.holds(0)
    faulty.heal()
    await holder.tick()
    assert holder.ownership.holds(0) and holder.resumed == [0] and holder.released == []
    await inner.close()


async def test_the_lease_loop_reports_an_outage_once_however_many_looks_fail(
    engine_store: TableStore | None, caplog: pytest.LogCaptureFixture
) -> None:
    """Each look at the leases fails while the store is away; the loop reports through the host's
    StoreOutage (one warning, one line when it is back), not once a look (bench/outage.py counted 20
    "partition leases could not be checked" warnings in a 20 s outage)."""
    caplog.set_level(logging.WARNING)
    inner = engine_store or open_store("memory")
    faulty = FaultyStore(inner)
    outage = StoreOutage()
    control = await _control(faulty, 1)  # type: ignore[arg-type]
    holder = Process(control, 1, poll_interval=0.05, outage=outage)
    holder.ownership.start()
    try:
        await asyncio.wait_for(holder.ownership.looked.wait(), 10)
        faulty.fail()
        await asyncio.sleep(0.6)  # about ten looks, every one failing
        assert outage.down and faulty.failures >= 5
        faulty.heal()
        async with asyncio.timeout(10):
            while outage.down:  # noqa: ASYNC110 - the loop's next look ends it
                await asyncio.sleep(0.02)
    finally:
        await holder.ownership.stop()
        await inner.close()
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    down = [m for m in messages if m.startswith("storage is unavailable")]
    assert len(down) == 1 and down[0].startswith("storage is unavailable (checking partition leases: ")
    assert sum(m.startswith("storage is back") for m in messages) == 1
    assert not [m for m in messages if "partition leases could not be checked" in m]


async def test_a_process_asks_for_no_more_than_its_share_while_hand_overs_are_pending(
    store: TableStore,
) -> None:
    control = await _control(store, 4)
    first, second = Process(control, 4), Process(control, 4)
    await first.tick()
    for _ in range(3):  # looks faster than the owner answers: each would ask for one more partition
        await second.tick()
    await first.tick()  # hands over what was asked for
    await second.tick()
    assert len(second.owned) == 2 and len(first.owned) == 2
    await _settle([first, second], rounds=6)
    assert len(second.owned) == 2 and len(first.owned) == 2
