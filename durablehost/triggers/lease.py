"""A singleton lease: one row of the control table that at most one process holds at a time.

Azure runs a timer in one host instance only: ``TimerListener`` is ``[Singleton(Mode = Listener)]``, a blob
lease at ``azure-webjobs-hosts/locks/<hostId>/Host.Functions.<name>.Listener`` that its owner renews and
other instances retry every minute (azure-fidelity-notes §4). Here the lease is a row of ``<hub>Control``,
partition ``timer-lease``, row key the timer's function name, holding its owner and expiry; every write is
conditional on the ETag read before it, so of two processes racing for it exactly one wins. It expires in
real time (as the engine's hub lease does, even under a virtual clock: it guards against real crashes) and
is deleted by an owner that stops.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from durablehost.engine.clock import Clock, WallClock
from durablehost.errors import EntityAlreadyExists, EntityNotFound, EtagMismatch
from durablehost.store.base import Properties, TableStore

LEASE_PARTITION = "timer-lease"


class SingletonLease:
    def __init__(
        self,
        store: TableStore,
        table: str,
        name: str,
        owner: str,
        duration: timedelta,
        clock: Clock | None = None,
    ) -> None:
        self.store = store
        self.table = table
        self.name = name
        self.owner = owner
        self.duration = duration
        self.clock: Clock = clock or WallClock()
        self._etag: str | None = None
        self.expires_at: datetime | None = None

    @property
    def held(self) -> bool:
        return self._etag is not None

    async def try_acquire(self) -> bool:
        """Take the lease if it is free, expired or already ours; True if we hold it afterwards."""
        now = self.clock.now()
        until = now + self.duration
        properties: Properties = {"Owner": self.owner, "ExpiresAt": until}
        try:
            row = await self.store.get(self.table, LEASE_PARTITION, self.name)
        except EntityNotFound:
            try:
                etag = await self.store.insert(self.table, LEASE_PARTITION, self.name, properties)
            except EntityAlreadyExists:
                return False
            return self._took(etag, until)
        expires = row.get("ExpiresAt")
        if row.get("Owner") != self.owner and isinstance(expires, datetime) and expires > now:
            return False
        try:
            etag = await self.store.update(self.table, LEASE_PARTITION, self.name, properties, etag=row.etag)
        except (EtagMismatch, EntityNotFound):
            return False
        return self._took(etag, until)

    async def renew(self) -> bool:
        """Extend a held lease; False (and no longer held) if another process took it meanwhile."""
        if self._etag is None:
            return False
        until = self.clock.now() + self.duration
        properties: Properties = {"Owner": self.owner, "ExpiresAt": until}
        try:
            etag = await self.store.update(
                self.table, LEASE_PARTITION, self.name, properties, etag=self._etag
            )
        except (EtagMismatch, EntityNotFound):
            self._etag = None
            self.expires_at = None
            return False
        return self._took(etag, until)

    async def release(self) -> None:
        """Give the lease up so another process can take it at once; nothing if we do not hold it."""
        etag, self._etag, self.expires_at = self._etag, None, None
        if etag is None:
            return
        try:
            await self.store.delete(self.table, LEASE_PARTITION, self.name, etag=etag)
        except (EtagMismatch, EntityNotFound):
            return  # taken over or gone already: it is not ours to delete

    def _took(self, etag: str, until: datetime) -> bool:
        self._etag = etag
        self.expires_at = until
        return True
