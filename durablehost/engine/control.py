"""The control table ``<hub>Control``: everything of a task hub that is not one instance's partition.

=================  =================  ==============================================================
partition          row key            what
=================  =================  ==============================================================
``hub``            ``config``         the hub's partition count, fixed when the hub is created
``lease``          ``p00`` … ``p15``  one lease per hub partition: Owner, ExpiresAt, NextOwner
``member``         member id          one row per live process: heartbeat, host, pid, partitions
``marker``         ``NN-<id>``        unfinished instances of hub partition NN (recovery reads the range)
``wake``           ``NN-<id>``        "look at this instance" for the owner of partition NN
``index``          instance id        a copy of every instance row, for listings and queries
=================  =================  ==============================================================

Rows that many instances write independently (markers, wake-ups, index copies) go through group-commit
writers (durablehost.engine.groupcommit), so concurrent instances share transactions. Index copies and
marker removals linger up to LINGER seconds, so that instances that run one at a time share them too:
nothing waits on them (a crash loses none that matters: an instance's marker goes only after its last
index copy is stored, and recovery rewrites the index copy of every marked instance), and a listing first
sends what lingers in its own process. Leases and members are read and written directly: their ETags are
the point.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from durablehost.engine.groupcommit import PartitionWriter
from durablehost.engine.owed import StoreOutage
from durablehost.engine.records import InstanceRecord
from durablehost.errors import EntityAlreadyExists, EntityNotFound, EtagMismatch
from durablehost.store.base import Condition, Entity, PropertyValue, TableStore

HUB_PARTITION = "hub"
CONFIG_ROW = "config"
LEASE_PARTITION = "lease"
MEMBER_PARTITION = "member"
MARKER_PARTITION = "marker"  # one partition for every marker: a marker write takes lingering removals along
WAKE_PARTITION = "wake"
INDEX_PARTITION = "index"
_LEGACY_ACTIVE_PARTITION = "active"  # the single-owner layout: one marker partition, one "hub" lease
_LEGACY_LEASE_ROW = "hub"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# How long index copies and marker removals may wait for others to share their request. Another process
# lists an instance's change at most this much later than the process that made it.
LINGER = 0.2


def lease_row(partition: int) -> str:
    return f"p{partition:02d}"


def partition_row(partition: int, instance_id: str) -> str:
    """Row key of a marker or wake-up: the hub partition first, so one partition's rows are a range."""
    return f"{partition:02d}-{instance_id}"


def _partition_range(partition: int) -> tuple[str, str]:
    return f"{partition:02d}-", f"{partition:02d}."  # '.' follows '-'


class PartitionCountMismatch(Exception):
    """host.json asks for another partition count than the task hub was created with."""


@dataclass(frozen=True)
class Lease:
    partition: int
    owner: str  # "" when free
    expires_at: datetime
    next_owner: str  # a process that asked for this partition ("" if none)
    etag: str


@dataclass(frozen=True)
class Member:
    member_id: str
    expires_at: datetime
    host: str
    pid: int
    started: int | None  # the process's start time in clock ticks since boot (Linux), against pid reuse
    label: str
    owned: int
    doorbell: int = 0  # its loopback doorbell port (durablehost.engine.doorbell); 0: none


class ControlTable:
    def __init__(self, store: TableStore, hub: str, outage: StoreOutage) -> None:
        self.store = store
        self.table = f"{hub}Control"
        self._outage = outage
        self._writers: dict[str, PartitionWriter] = {}

    def _writer(self, partition_key: str) -> PartitionWriter:
        writer = self._writers.get(partition_key)
        if writer is None:
            linger = 0.0 if partition_key == WAKE_PARTITION else LINGER
            writer = self._writers[partition_key] = PartitionWriter(
                self.store, self.table, partition_key, self._outage, linger=linger
            )
        return writer

    async def flush(self) -> None:
        """Send every write that lingers now (a stop, a listing); returns once they are stored."""
        await asyncio.gather(*(w.flush() for w in list(self._writers.values())))

    @property
    def requests(self) -> int:
        """Requests the group-commit writers sent (benchmarks count them)."""
        return sum(w.requests for w in self._writers.values())

    @property
    def busy(self) -> bool:
        return any(w.busy for w in self._writers.values())

    @property
    def only_lingering(self) -> bool:
        """Are the writes in hand all lingering ones, nothing urgent and nothing being sent?"""
        busy = [w for w in self._writers.values() if w.busy]
        return bool(busy) and all(w.lingering for w in busy)

    async def initialize(self) -> None:
        await self.store.create_table(self.table)

    # ---------------------------------------------------------------- hub configuration

    async def partition_count(self, wanted: int) -> int:
        """The hub's partition count: ``wanted`` for a new hub; a hub created with another count keeps
        it (as in Azure, it cannot change after the hub is created) and PartitionCountMismatch says so."""
        try:
            await self.store.insert(self.table, HUB_PARTITION, CONFIG_ROW, {"PartitionCount": wanted})
            return wanted
        except EntityAlreadyExists:
            pass
        row = await self.store.get(self.table, HUB_PARTITION, CONFIG_ROW)
        stored = row.get("PartitionCount")
        if not isinstance(stored, int) or isinstance(stored, bool):
            raise PartitionCountMismatch(f"the control row {self.table}/hub/config has no PartitionCount")
        if stored != wanted:
            raise PartitionCountMismatch(
                f"the task hub was created with {stored} partitions, but partitionCount {wanted} is "
                "configured; the count of a task hub cannot change (as in Azure): configure "
                f"partitionCount {stored}, or use a new task hub name"
            )
        return stored

    async def migrate_single_owner_layout(self, count: int, place: Any) -> None:
        """Move rows of the earlier one-lease layout (one ``active`` partition, the ``hub`` lease)."""
        legacy = [
            e.row_key async for e in self.store.query(self.table, partition_key=_LEGACY_ACTIVE_PARTITION)
        ]
        for instance_id in legacy:
            await self.mark_active(place(instance_id, count), instance_id)
            try:
                await self.store.delete(self.table, _LEGACY_ACTIVE_PARTITION, instance_id)
            except EntityNotFound:
                continue
        try:
            await self.store.delete(self.table, LEASE_PARTITION, _LEGACY_LEASE_ROW)
        except EntityNotFound:
            pass

    # ---------------------------------------------------------------- leases and members

    async def ensure_leases(self, count: int) -> None:
        for partition in range(count):
            try:
                await self.store.insert(
                    self.table,
                    LEASE_PARTITION,
                    lease_row(partition),
                    {"Owner": "", "NextOwner": "", "ExpiresAt": _EPOCH},
                )
            except EntityAlreadyExists:
                continue

    async def read_leases(self) -> dict[int, Lease]:
        leases: dict[int, Lease] = {}
        async for entity in self.store.query(self.table, partition_key=LEASE_PARTITION):
            key = entity.row_key
            if key.startswith("p") and key[1:].isdigit():
                leases[int(key[1:])] = _lease(int(key[1:]), entity)
        return leases

    async def read_lease(self, partition: int) -> Lease:
        return _lease(partition, await self.store.get(self.table, LEASE_PARTITION, lease_row(partition)))

    async def write_lease(
        self, partition: int, *, owner: str, expires_at: datetime, next_owner: str, etag: str
    ) -> str:
        """Conditional on ``etag``: raises EtagMismatch if anyone else wrote the lease since."""
        props: dict[str, PropertyValue | None] = {
            "Owner": owner,
            "NextOwner": next_owner,
            "ExpiresAt": expires_at,
        }
        return await self.store.update(self.table, LEASE_PARTITION, lease_row(partition), props, etag=etag)

    async def heartbeat(self, member: Member) -> None:
        await self.store.upsert(
            self.table,
            MEMBER_PARTITION,
            member.member_id,
            {
                "ExpiresAt": member.expires_at,
                "Host": member.host,
                "Pid": member.pid,
                "Started": member.started,
                "Label": member.label,
                "Owned": member.owned,
                "Doorbell": member.doorbell,
            },
        )

    async def read_members(self) -> list[Member]:
        members = []
        async for entity in self.store.query(self.table, partition_key=MEMBER_PARTITION):
            expires = entity.get("ExpiresAt")
            started = entity.get("Started")
            pid = entity.get("Pid")
            owned = entity.get("Owned")
            doorbell = entity.get("Doorbell")
            members.append(
                Member(
                    member_id=entity.row_key,
                    expires_at=expires if isinstance(expires, datetime) else _EPOCH,
                    host=str(entity.get("Host") or ""),
                    pid=pid if isinstance(pid, int) else -1,
                    started=started if isinstance(started, int) else None,
                    label=str(entity.get("Label") or ""),
                    owned=owned if isinstance(owned, int) else 0,
                    doorbell=doorbell if isinstance(doorbell, int) else 0,
                )
            )
        return members

    async def remove_member(self, member_id: str) -> None:
        try:
            await self.store.delete(self.table, MEMBER_PARTITION, member_id)
        except EntityNotFound:
            return

    # ---------------------------------------------------------------- active markers

    async def mark_active(self, partition: int, instance_id: str) -> None:
        await self._writer(MARKER_PARTITION).upsert(partition_row(partition, instance_id), {"Active": True})

    async def unmark_active(self, partition: int, instance_id: str, *, urgent: bool = True) -> None:
        await self._writer(MARKER_PARTITION).delete(partition_row(partition, instance_id), urgent=urgent)

    async def list_active(self, partition: int) -> list[str]:
        low, high = _partition_range(partition)
        rows = self.store.query(
            self.table, partition_key=MARKER_PARTITION, row_key_from=low, row_key_to=high, select=[]
        )
        return [e.row_key[3:] async for e in rows]

    async def remove_orphan_marker(self, partition: int, instance_id: str, *, older_than: datetime) -> None:
        """Delete an active marker that has no instance, if it was written before ``older_than``."""
        row = partition_row(partition, instance_id)
        try:
            marker = await self.store.get(self.table, MARKER_PARTITION, row)
        except EntityNotFound:
            return
        if marker.timestamp is None or marker.timestamp > older_than:
            return  # maybe its instance is being created this very moment
        try:
            await self.store.delete(self.table, MARKER_PARTITION, row, etag=marker.etag)
        except (EntityNotFound, EtagMismatch):
            return  # touched again meanwhile: not an orphan

    # ---------------------------------------------------------------- wake-ups

    async def wake(self, partition: int, instance_id: str) -> None:
        """Tell the owner of ``partition`` (another process) that an instance has new work."""
        await self._writer(WAKE_PARTITION).upsert(partition_row(partition, instance_id), {"Wake": True})

    async def take_wakes(self, partitions: Iterable[int], limit: int = 1000) -> list[str]:
        """Remove and return the wake-ups of ``partitions``.

        Deletes are unconditional, which is safe because the caller looks at each instance only after the
        delete: whatever was written before a wake-up it removed is visible to that look, and a wake-up
        written after the delete survives for the next call.
        """
        owned = sorted(set(partitions))
        wanted = {f"{p:02d}" for p in owned}
        if not wanted:
            return []
        rows = [
            e.row_key
            async for e in self.store.query(self.table, partition_key=WAKE_PARTITION, select=[], limit=limit)
        ]
        mine = [key for key in rows if key[:2] in wanted and key[2:3] == "-"]
        if len(rows) == limit and len(mine) < limit:
            # A full page that is not all ours: wake-ups for a partition nobody reads (its owner died)
            # could hide ours for good, so read our own ranges instead (rare: it takes a backlog).
            mine = []
            for partition in owned:
                low, high = _partition_range(partition)
                rows_of = self.store.query(
                    self.table,
                    partition_key=WAKE_PARTITION,
                    row_key_from=low,
                    row_key_to=high,
                    select=[],
                    limit=limit - len(mine),
                )
                mine += [e.row_key async for e in rows_of]
                if len(mine) >= limit:
                    break
        writer = self._writer(WAKE_PARTITION)
        await asyncio.gather(*(writer.delete(key) for key in mine))  # one group commit
        return [key[3:] for key in mine]

    # ---------------------------------------------------------------- the instance index

    # Listing instances by scanning every partition for its instance row would read all history rows
    # too. Like DTFx's Instances table, the index partition holds a copy of each instance row, keyed by
    # instance id: prefix queries are row-key ranges and a page reads only what it returns. It is written
    # when an instance is created and after the commits that change what a listing shows, and rewritten
    # for every active instance when a partition's owner recovers it, so a crash in between only delays it.

    async def publish(self, record: InstanceRecord) -> None:
        """Write the instance's index copy; it may linger (returns once it is stored)."""
        await self._writer(INDEX_PARTITION).upsert(record.instance_id, record.to_properties(), urgent=False)

    async def unpublish(self, instance_id: str) -> None:
        await self._writer(INDEX_PARTITION).delete(instance_id)

    async def flush_index(self) -> None:
        """Send this process's lingering index copies, so that a listing here sees its own changes."""
        await self._writer(INDEX_PARTITION).flush()

    async def query_records(
        self,
        where: Sequence[Condition],
        *,
        prefix: str | None = None,
        page_size: int,
        continuation: str | None,
    ) -> tuple[list[InstanceRecord], str | None]:
        await self.flush_index()
        page = await self.store.query_page(
            self.table,
            partition_key=INDEX_PARTITION,
            row_key_from=prefix or None,
            row_key_to=(prefix + "\uffff") if prefix else None,
            where=where,
            page_size=page_size,
            continuation=continuation,
        )
        records = [InstanceRecord.from_properties(e.row_key, e.properties, e.etag) for e in page.entities]
        return records, page.continuation


def _lease(partition: int, entity: Entity) -> Lease:
    expires = entity.get("ExpiresAt")
    return Lease(
        partition=partition,
        owner=str(entity.get("Owner") or ""),
        expires_at=expires if isinstance(expires, datetime) else _EPOCH,
        next_owner=str(entity.get("NextOwner") or ""),
        etag=entity.etag,
    )


def this_host() -> str:
    return socket.gethostname()
