"""Group commit of independent single-row writes to one partition (the control table's index, markers …).

Many instances write rows of the same control partition (the instance index, a partition's active
markers, wake-ups): one row each, independently. A :class:`PartitionWriter` sends what is waiting as one
entity-group transaction of up to 100 rows instead of one request per row (Netherite's group commit,
backend-notes §2.2): a write that finds nothing in flight goes out at once, and writes that arrive while
a flush is in flight go together in the next one. Several writes of one row before it is flushed collapse
into the last. A caller's ``await`` returns once its row is durable; flushes are owed writes (retried
until the store takes them, durablehost.engine.owed).

A writer may *linger*: writes its callers do not wait on at once (index copies, marker removals) are
held up to ``linger`` seconds so that the writes of many instances, and several writes of one row, share
one request even when instances run one at a time. An urgent write (one whose caller waits for it, such
as an active marker before an instance is created) goes out at once and takes whatever lingers along;
:meth:`PartitionWriter.flush` sends everything now (before a listing reads the partition, before a stop).

Deletes are idempotent: a row already gone (a transaction fails on it with EntityNotFound) is dropped
from the batch and the rest is sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field

from durablehost.engine.owed import StoreOutage, until_stored
from durablehost.errors import EntityNotFound, TransactionFailed
from durablehost.store.base import Op, OpKind, PropertyValue, TableStore, UpdateMode

MAX_BATCH = 100


@dataclass
class _Pending:
    op: Op
    urgent: bool
    waiters: list[asyncio.Future[None]] = field(default_factory=list)


class PartitionWriter:
    def __init__(
        self,
        store: TableStore,
        table: str,
        partition_key: str,
        outage: StoreOutage,
        *,
        linger: float = 0.0,
    ) -> None:
        self._store = store
        self._table = table
        self._partition = partition_key
        self._outage = outage
        self._linger = linger
        self._pending: dict[str, _Pending] = {}
        self._flusher: asyncio.Task[None] | None = None
        self._now = asyncio.Event()  # set when an urgent write arrives: stop lingering
        self._sending = False
        self.requests = 0  # store requests sent, for benchmarks

    async def upsert(
        self, row_key: str, properties: Mapping[str, PropertyValue | None], *, urgent: bool = True
    ) -> None:
        """Replace (or create) the row; returns once it is stored. A write that is not ``urgent`` may
        linger (see the module docstring)."""
        op = Op.upsert(self._partition, row_key, dict(properties), UpdateMode.REPLACE)
        await self._submit(op, urgent)

    async def delete(self, row_key: str, *, urgent: bool = True) -> None:
        """Delete the row if it exists; returns once it is gone."""
        await self._submit(Op.delete(self._partition, row_key), urgent)

    async def flush(self) -> None:
        """Send every write submitted so far now; returns once they are stored (or have failed)."""
        waiters = [w for item in self._pending.values() for w in item.waiters]
        if not waiters:
            return
        for item in self._pending.values():
            item.urgent = True
        self._now.set()
        await asyncio.gather(*(asyncio.shield(w) for w in waiters), return_exceptions=True)

    @property
    def busy(self) -> bool:
        return bool(self._pending) or self._flusher is not None

    @property
    def lingering(self) -> bool:
        """Is all this writer holds only waiting out its linger (nothing urgent, nothing being sent)?"""
        return bool(self._pending) and not self._sending and not self._urgent()

    def _urgent(self) -> bool:
        return self._linger <= 0 or any(item.urgent for item in self._pending.values())

    async def _submit(self, op: Op, urgent: bool) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        pending = self._pending.get(op.row_key)
        if pending is None:
            self._pending[op.row_key] = _Pending(op, urgent, [waiter])
        else:
            pending.op = op  # the last write of a row wins; everyone waiting on it is served by it
            pending.urgent = pending.urgent or urgent
            pending.waiters.append(waiter)
        if urgent:
            self._now.set()
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_all(), name=f"flush-{self._partition}")
        await asyncio.shield(waiter)

    async def _wait_linger(self) -> None:
        if not self._urgent():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._linger):
                    await self._now.wait()
        self._now.clear()

    async def _flush_all(self) -> None:
        try:
            while self._pending:
                await self._wait_linger()
                keys = list(self._pending)[:MAX_BATCH]
                batch = [self._pending.pop(key) for key in keys]
                what = f"writing {self._table}/{self._partition}"
                self._sending = True
                try:
                    await until_stored(self._outage, what, functools.partial(self._send, batch))
                except asyncio.CancelledError:
                    _cancel(batch)
                    raise
                except Exception as error:
                    # Not an outage (a refused row, a bug): every writer of the batch gets the error.
                    for item in batch:
                        for waiter in item.waiters:
                            if not waiter.done():
                                waiter.set_exception(error)
                    continue
                finally:
                    self._sending = False
                for item in batch:
                    for waiter in item.waiters:
                        if not waiter.done():
                            waiter.set_result(None)
        finally:
            self._flusher = None
            if self._pending:  # cancelled with writes waiting: cancel them rather than leave them hanging
                _cancel(list(self._pending.values()))
                self._pending.clear()

    async def _send(self, batch: list[_Pending]) -> None:
        """Send the batch; deletes of rows that are already gone are dropped from it."""
        live = list(batch)
        while live:
            self.requests += 1
            if len(live) == 1:
                # One row: the single-entity API costs the store far less than a one-operation batch.
                await self._send_one(live[0].op)
                return
            try:
                await self._store.transact(self._table, [item.op for item in live])
                return
            except TransactionFailed as failure:
                gone = isinstance(failure.cause, EntityNotFound) and 0 <= failure.index < len(live)
                if not gone or live[failure.index].op.kind is not OpKind.DELETE:
                    raise
                del live[failure.index]

    async def _send_one(self, op: Op) -> None:
        if op.kind is OpKind.DELETE:
            try:
                await self._store.delete(self._table, op.partition_key, op.row_key)
            except EntityNotFound:
                return
        else:
            await self._store.upsert(self._table, op.partition_key, op.row_key, op.properties, op.mode)


def _cancel(batch: list[_Pending]) -> None:
    for item in batch:
        for waiter in item.waiters:
            if not waiter.done():
                waiter.cancel()
