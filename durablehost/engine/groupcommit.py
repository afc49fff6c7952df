"""Group commit of independent single-row writes to one partition (the control table's index, markers …).

Many instances write rows of the same control partition (the instance index, a partition's active
markers, wake-ups): one row each, independently. A :class:`PartitionWriter` sends what is waiting as one
entity-group transaction of up to 100 rows instead of one request per row (Netherite's group commit,
backend-notes §2.2): a write that finds nothing in flight goes out at once, and writes that arrive while
a flush is in flight go together in the next one. Several writes of one row before it is flushed collapse
into the last. A caller's ``await`` returns once its row is durable; flushes are owed writes (retried
until the store takes them, durablehost.engine.owed).

Deletes are idempotent: a row already gone (a transaction fails on it with EntityNotFound) is dropped
from the batch and the rest is sent again.
"""

from __future__ import annotations

import asyncio
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
    waiters: list[asyncio.Future[None]] = field(default_factory=list)


class PartitionWriter:
    def __init__(self, store: TableStore, table: str, partition_key: str, outage: StoreOutage) -> None:
        self._store = store
        self._table = table
        self._partition = partition_key
        self._outage = outage
        self._pending: dict[str, _Pending] = {}
        self._flusher: asyncio.Task[None] | None = None
        self.requests = 0  # store requests sent, for benchmarks

    async def upsert(self, row_key: str, properties: Mapping[str, PropertyValue | None]) -> None:
        """Replace (or create) the row; returns once it is stored."""
        await self._submit(Op.upsert(self._partition, row_key, dict(properties), UpdateMode.REPLACE))

    async def delete(self, row_key: str) -> None:
        """Delete the row if it exists; returns once it is gone."""
        await self._submit(Op.delete(self._partition, row_key))

    @property
    def busy(self) -> bool:
        return bool(self._pending) or self._flusher is not None

    async def _submit(self, op: Op) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        pending = self._pending.get(op.row_key)
        if pending is None:
            self._pending[op.row_key] = _Pending(op, [waiter])
        else:
            pending.op = op  # the last write of a row wins; everyone waiting on it is served by it
            pending.waiters.append(waiter)
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_all(), name=f"flush-{self._partition}")
        await asyncio.shield(waiter)

    async def _flush_all(self) -> None:
        try:
            while self._pending:
                keys = list(self._pending)[:MAX_BATCH]
                batch = [self._pending.pop(key) for key in keys]
                what = f"writing {self._table}/{self._partition}"
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
