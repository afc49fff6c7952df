"""Partition ownership: which live process works on which partitions of a task hub.

Each partition of a task hub has a lease row in the control table (Owner, ExpiresAt, NextOwner),
written only with ETag conditions, as the Durable Task Framework's table partition manager does
(``TablePartitionManager.cs``, backend-notes §1.5). Every process on the hub runs :class:`Ownership`:

* it keeps a member row (a heartbeat with the host name and pid) so that others count it;
* it renews the leases it holds every third of the lease period;
* it claims free or expired leases while it holds fewer than its share (``ceil(partitions / members)``);
* it asks for a partition held by a process with more than its share by setting ``NextOwner``; that
  owner drains the partition (its in-flight work finishes and is stored) and hands the lease over;
* a graceful stop drains and frees every lease at once; a killed process loses its leases when they
  expire, or at once when its member row names this machine and its pid is gone.

Ownership decides who works, never what is correct: every commit is still guarded by an instance ETag.
It is checked before starting work with :meth:`holds`, which uses the local monotonic clock, so a process
that was paused past its lease (SIGSTOP) stops starting work the moment it resumes, before it has even
learnt that someone else took over. A lease's stored expiry and its local validity are counted from one
reading of both clocks, taken right before the lease is written, so a pause in the middle of a look
never leaves a process believing in a lease for longer than its row grants it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from durablehost.engine.clock import WallClock
from durablehost.engine.control import ControlTable, Lease, Member, this_host
from durablehost.engine.owed import StoreOutage
from durablehost.errors import EtagMismatch, StoreError, StoreUnavailable

log = logging.getLogger("durablehost.ownership")

Acquired = Callable[[int], Awaitable[None]]
Released = Callable[[int, bool], Awaitable[None]]  # (partition, graceful): graceful = drain first
Resumed = Callable[[int], Awaitable[None]]  # a lease kept through a lapse (renewed late) is valid again


@dataclass(frozen=True)
class OwnershipOptions:
    partition_count: int
    lease_duration: timedelta = timedelta(seconds=15)
    poll_interval: float = 1.0  # seconds between looks at the leases (claims, hand-overs)
    # Start no new work this long (at most a fifth of the lease) before the lease expires: wall clocks
    # of processes on different machines differ a little, and a renewal takes time.
    safety_margin: float = 2.0
    detect_dead_processes: bool = True  # a holder on this host whose pid is gone loses its leases at once


def process_start_ticks(pid: int) -> int | None:
    """The start time of a process in clock ticks since boot (Linux), to tell a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[19]) if len(fields) > 19 and fields[19].isdigit() else None


def process_is_gone(pid: int, started: int | None) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, owned by someone else
    return started is not None and process_start_ticks(pid) not in (None, started)


class Ownership:
    def __init__(
        self,
        control: ControlTable,
        member_id: str,
        options: OwnershipOptions,
        *,
        label: str = "",
        doorbell: int = 0,
        outage: StoreOutage | None = None,
        on_acquired: Acquired,
        on_released: Released,
        on_resumed: Resumed,
    ) -> None:
        self._control = control
        self.member_id = member_id
        self.options = options
        self._label = label
        self._doorbell = doorbell  # published in the member row, for processes on this machine
        self.neighbours: list[tuple[int, str]] = []  # (doorbell port, member id) of the others on this host
        # The host's view of the store's health, shared with the owed writes: a look that fails because the
        # store is away is reported there, once per outage, not once a look.
        self._outage = outage or StoreOutage()
        self._on_acquired = on_acquired
        self._on_released = on_released
        self._on_resumed = on_resumed
        self._held: dict[int, str] = {}  # partition -> ETag of our last write of its lease
        self._valid_until: dict[int, float] = {}  # partition -> monotonic deadline for starting work
        self._renewed_at: dict[int, float] = {}
        self._heartbeat_at = -math.inf
        self.members = 1  # live processes on the hub, this one included (as of the last look)
        self._loop: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self.looked = asyncio.Event()  # set once the first look at the leases is done
        self._host = this_host()
        self._pid = os.getpid()
        self._started = process_start_ticks(self._pid)

    # ---------------------------------------------------------------- what others ask

    @property
    def owned(self) -> frozenset[int]:
        return frozenset(self._held)

    def holds(self, partition: int) -> bool:
        """May this process start work in ``partition`` now? (Its lease is valid by the local clock.)"""
        return time.monotonic() < self._valid_until.get(partition, -math.inf)

    async def wait_for(self, predicate: Callable[[], bool], timeout: float | None = None) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> None:
        self._loop = asyncio.create_task(self._run(), name=f"ownership-{self.member_id}")

    async def stop(self, *, graceful: bool = True) -> None:
        """Stop looking; hand every partition over (``graceful``: drain first) and leave the hub."""
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
            self._loop = None
        for partition in self._held:
            self._valid_until.pop(partition, None)  # no new work anywhere from now on
        await asyncio.gather(
            *(self._release(p, graceful=graceful, handover_to="") for p in sorted(self._held))
        )
        with contextlib.suppress(StoreError):
            await self._control.remove_member(self.member_id)

    async def _run(self) -> None:
        failing = False  # the last look failed because the store was away
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except StoreUnavailable as error:
                # The store is away: holds() lapses by itself when leases are not renewed.
                self._outage.failed("checking partition leases", error)
                failing = True
            except StoreError as error:
                log.warning("partition leases could not be checked: %s", error)  # refused, not away
            except Exception:
                log.exception("partition lease check failed; trying again")
            else:
                if failing:
                    failing = False
                    self._outage.succeeded()
            await asyncio.sleep(self.options.poll_interval)

    # ---------------------------------------------------------------- one look at the leases

    async def tick(self) -> None:
        options = self.options
        lease_seconds = options.lease_duration.total_seconds()
        now = WallClock().now()
        started = time.monotonic()
        if started - self._heartbeat_at >= lease_seconds / 3:
            await self._control.heartbeat(self._member(now + options.lease_duration))
            self._heartbeat_at = started
        members = await self._control.read_members()
        live, dead = self._live_members(members, now)
        for member_id in dead:
            await self._control.remove_member(member_id)
        leases = await self._control.read_leases()
        self.members = max(1, len(live))
        self.neighbours = sorted(
            (m.doorbell, m.member_id)
            for m in members
            if m.member_id in live and m.member_id != self.member_id and m.host == self._host and m.doorbell
        )
        await self._keep_or_hand_over(leases, live)
        await self._claim(leases, live, dead, now)
        self._changed.set()
        self.looked.set()

    def _member(self, expires_at: datetime) -> Member:
        return Member(
            member_id=self.member_id,
            expires_at=expires_at,
            host=self._host,
            pid=self._pid,
            started=self._started,
            label=self._label,
            owned=len(self._held),
            doorbell=self._doorbell,
        )

    def _live_members(self, members: list[Member], now: datetime) -> tuple[set[str], set[str]]:
        live: set[str] = {self.member_id}
        dead: set[str] = set()
        for member in members:
            if member.member_id == self.member_id:
                continue
            if (
                self.options.detect_dead_processes
                and member.host == self._host
                and process_is_gone(member.pid, member.started)
            ):
                dead.add(member.member_id)
            elif member.expires_at > now:
                live.add(member.member_id)
        return live, dead

    async def _keep_or_hand_over(self, leases: dict[int, Lease], live: set[str]) -> None:
        lease_seconds = self.options.lease_duration.total_seconds()
        for partition, lease in sorted(leases.items()):
            mine = lease.owner == self.member_id
            if partition in self._held and not mine:
                log.warning("partition %d was taken over by %s", partition, lease.owner or "nobody")
                await self._lost(partition)
                continue
            if not mine:
                continue
            if partition not in self._held:
                # Handed over to us by its previous owner: take it (renewing starts our own validity).
                await self._renew(partition, lease, acquired=True)
                continue
            asked = lease.next_owner and lease.next_owner != self.member_id and lease.next_owner in live
            if asked:
                await self._release(partition, graceful=True, handover_to=lease.next_owner)
            elif time.monotonic() - self._renewed_at.get(partition, -math.inf) >= lease_seconds / 3:
                await self._renew(partition, lease)

    async def _renew(self, partition: int, lease: Lease, *, acquired: bool = False) -> bool:
        # The expiry written and the validity counted come from one reading of both clocks, taken right
        # before the write. The look's own ``now`` is older: a pause since (SIGSTOP, a stalled VM) would
        # write an expiry that has passed, or is about to, while this process counted its validity from
        # after the pause, and another process may take a partition whose row has expired.
        requested = time.monotonic()
        try:
            etag = await self._control.write_lease(
                partition,
                owner=self.member_id,
                expires_at=WallClock().now() + self.options.lease_duration,
                next_owner=lease.next_owner if lease.next_owner != self.member_id else "",
                etag=lease.etag,
            )
        except EtagMismatch:
            return False  # changed meanwhile (a hand-over request, a claim): looked at again next tick
        lease_seconds = self.options.lease_duration.total_seconds()
        margin = min(self.options.safety_margin, lease_seconds / 5)
        valid_until = requested + lease_seconds - margin
        if acquired and time.monotonic() >= valid_until:
            # Paused while the claim was being written, past its validity: the row names this process,
            # but it may not work on the partition, and recovery would skip every instance. The next look
            # takes it up as a partition handed over to this process, with a fresh lease.
            log.warning("%s claimed partition %d too late to work on it; taking it up again", self._name,
                        partition)  # fmt: skip
            return False
        lapsed = not acquired and not self.holds(partition)
        self._held[partition] = etag
        self._renewed_at[partition] = requested
        self._valid_until[partition] = valid_until
        if acquired:
            log.info("%s owns partition %d", self._name, partition)
            await self._on_acquired(partition)
        elif lapsed and self.holds(partition):
            log.info("%s renewed partition %d late; working on it again", self._name, partition)
            await self._on_resumed(partition)
        return True

    async def _claim(self, leases: dict[int, Lease], live: set[str], dead: set[str], now: datetime) -> None:
        count = self.options.partition_count
        share = math.ceil(count / len(live))
        floor_share = count // len(live)
        # Who holds what once the hand-overs already asked for are done: a lease promised to a live
        # process counts for it, not for its current owner (counting it twice made two processes ask
        # each other back and forth).
        held_by: dict[str, int] = {}
        for lease in leases.values():
            if lease.owner and lease.owner in live and lease.expires_at > now:
                promised = lease.next_owner if lease.next_owner in live else lease.owner
                held_by[promised] = held_by.get(promised, 0) + 1
        # A lease held by a process whose member row lapsed is not free until the lease itself expires:
        # that process may still be working (its heartbeat failed, not its work).
        free = [
            lease
            for lease in leases.values()
            if not lease.owner or lease.expires_at <= now or lease.owner in dead
        ]
        # Partitions someone asked for go to them; ours first, then anyone's that nobody asked for.
        free.sort(
            key=lambda lease: (lease.next_owner != self.member_id, lease.next_owner in live, lease.partition)
        )
        for lease in free:
            if len(self._held) >= share:
                return
            if lease.next_owner and lease.next_owner != self.member_id and lease.next_owner in live:
                continue
            if lease.partition in self._held:
                continue
            await self._renew(lease.partition, lease, acquired=True)
        incoming = sum(
            1
            for lease in leases.values()
            if lease.next_owner == self.member_id and lease.owner != self.member_id
        )
        if len(self._held) + incoming >= floor_share:
            return
        # Nothing free: ask the busiest process for one partition (one request per look).
        busiest = max(held_by.items(), key=lambda item: item[1], default=None)
        if busiest is None or busiest[0] == self.member_id or busiest[1] <= floor_share:
            return
        victim = next(
            (
                lease
                for lease in sorted(leases.values(), key=lambda lease: lease.partition)
                if lease.owner == busiest[0] and not lease.next_owner
            ),
            None,
        )
        if victim is None:
            return
        with contextlib.suppress(EtagMismatch):
            await self._control.write_lease(
                victim.partition,
                owner=victim.owner,
                expires_at=victim.expires_at,
                next_owner=self.member_id,
                etag=victim.etag,
            )
            log.info("%s asked %s for partition %d", self._name, victim.owner, victim.partition)

    async def _release(self, partition: int, *, graceful: bool, handover_to: str) -> None:
        """Stop working on ``partition`` (after draining it, if graceful) and free or hand over its lease."""
        self._valid_until.pop(partition, None)  # no new work from now on
        try:
            await self._on_released(partition, graceful)
        finally:
            self._held.pop(partition, None)
            self._renewed_at.pop(partition, None)
            with contextlib.suppress(EtagMismatch, StoreError):
                lease = await self._control.read_lease(partition)
                if lease.owner == self.member_id:
                    now = WallClock().now()
                    await self._control.write_lease(
                        partition,
                        owner=handover_to,
                        # A hand-over gives the next owner a full lease to take it up with; a freed
                        # lease is claimable at once.
                        expires_at=now + self.options.lease_duration if handover_to else now,
                        next_owner="",
                        etag=lease.etag,
                    )
                    log.info(
                        "%s handed partition %d over to %s", self._name, partition, handover_to or "anyone"
                    )
            self._changed.set()

    async def _lost(self, partition: int) -> None:
        self._valid_until.pop(partition, None)
        self._held.pop(partition, None)
        self._renewed_at.pop(partition, None)
        await self._on_released(partition, False)
        self._changed.set()

    @property
    def _name(self) -> str:
        return f"process {self._label or self.member_id}"
