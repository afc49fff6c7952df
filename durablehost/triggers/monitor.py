"""The schedule monitor: each timer's Last/Next/LastUpdated, kept in the task hub's control table.

Azure keeps this status in a blob, ``azure-webjobs-hosts/timers/<hostId>/Host.Functions.<name>/status``
(``StorageScheduleMonitor``), writes it after every invocation and reads it when the listener starts to
detect a missed occurrence (``ScheduleMonitor.CheckPastDueAsync``). durablehost keeps the same three values
in one row per timer function of ``<hub>Control``, partition ``timer-status``, so the status lives wherever
the task hub lives (SQLite, Azurite, a storage account) and needs no blob service.

A ``Last``/``LastUpdated`` never set is .NET's ``default(DateTime)``; it is stored as an absent property
(Azure Table dates start in 1601) and shown to the function as ``0001-01-01T00:00:00+00:00``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from durablehost.errors import EntityNotFound
from durablehost.store.base import TableStore, UpdateMode
from durablehost.triggers.schedule import Schedule

STATUS_PARTITION = "timer-status"

log = logging.getLogger("durablehost.triggers")


@dataclass(frozen=True)
class ScheduleStatus:
    last: datetime | None  # None: never ran (.NET default(DateTime))
    next: datetime | None  # None: the schedule has no further occurrence
    last_updated: datetime | None


class ScheduleMonitor:
    """Status rows of one task hub's timers."""

    def __init__(self, store: TableStore, table: str) -> None:
        self.store = store
        self.table = table

    async def get(self, timer: str) -> ScheduleStatus | None:
        try:
            row = await self.store.get(self.table, STATUS_PARTITION, timer)
        except EntityNotFound:
            return None
        return ScheduleStatus(
            last=_moment(row.get("Last")),
            next=_moment(row.get("Next")),
            last_updated=_moment(row.get("LastUpdated")),
        )

    async def update(self, timer: str, status: ScheduleStatus) -> None:
        properties = {"Last": status.last, "Next": status.next, "LastUpdated": status.last_updated}
        await self.store.upsert(self.table, STATUS_PARTITION, timer, properties, UpdateMode.REPLACE)

    async def check_past_due(
        self, timer: str, now: datetime, schedule: Schedule, stored: ScheduleStatus | None
    ) -> tuple[ScheduleStatus | None, bool]:
        """``ScheduleMonitor.CheckPastDueAsync``: the status to run with, and whether a run was missed.

        With no status yet, one is recorded (Next from now) and nothing is past due. Otherwise the expected
        Next is recomputed from Last (else LastUpdated, else now); if the stored Next differs, the schedule
        changed, and the status is rewritten to the next occurrence from then (or from now, if that is already
        over) with no past-due run. Past due means now is later than the recorded Next.
        """
        if stored is None:
            upcoming = schedule.next_after(now)
            await self.update(timer, ScheduleStatus(last=None, next=upcoming, last_updated=now))
            return None, False
        base = stored.last or stored.last_updated or now
        expected = schedule.next_after(base)
        status = stored
        if stored.next != expected:
            updated = base
            if expected is not None and now > expected:
                expected = schedule.next_after(now)
                updated = now
            status = ScheduleStatus(last=None, next=expected, last_updated=updated)
            log.info("timer %s: the schedule changed since the last run; next occurrence %s", timer, expected)
            await self.update(timer, status)
        return status, status.next is not None and now > status.next


def _moment(value: object) -> datetime | None:
    return value if isinstance(value, datetime) else None
