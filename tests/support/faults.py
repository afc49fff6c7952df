"""Faults injected for real: a store that fails on command, and a TCP proxy that resets connections.

``FaultyStore`` wraps a real TableStore (SQLite) and raises the error a failing store raises
(``StoreUnavailable``: a full disk, a write lock held past the busy timeout) for the operations a rule
picks, until told to heal. ``ResettingProxy`` sits between a client and a real Azurite on loopback and,
while "down", resets every connection (new and open), as an unreachable service does.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from durablehost.errors import StoreUnavailable
from durablehost.store.base import (
    MAX_PAGE_SIZE,
    Condition,
    Entity,
    Op,
    Page,
    Properties,
    TableStore,
    UpdateMode,
)

WRITES = frozenset({"insert", "upsert", "update", "delete", "transact"})
READS = frozenset({"get", "query_page"})
EVERYTHING = WRITES | READS


@dataclass
class Rule:
    operations: frozenset[str]
    when: Callable[[str, str, Sequence[Op]], bool]  # (operation, table, ops) -> fail?
    remaining: int | None  # failures left; None = until healed


class FaultyStore:
    """A TableStore that fails on command (and otherwise is the store it wraps)."""

    def __init__(self, inner: TableStore) -> None:
        self.inner = inner
        self._rules: list[Rule] = []
        self.failures = 0

    # ---------------------------------------------------------------- commands

    def fail(
        self,
        operations: frozenset[str] = EVERYTHING,
        *,
        times: int | None = None,
        when: Callable[[str, str, Sequence[Op]], bool] | None = None,
    ) -> None:
        self._rules.append(Rule(operations, when or (lambda *_: True), times))

    def heal(self) -> None:
        self._rules.clear()

    def _check(self, operation: str, table: str, ops: Sequence[Op] = ()) -> None:
        for rule in self._rules:
            if operation in rule.operations and rule.when(operation, table, ops):
                if rule.remaining is not None:
                    rule.remaining -= 1
                    if rule.remaining <= 0:
                        self._rules.remove(rule)
                self.failures += 1
                raise StoreUnavailable(f"injected failure of {operation} on {table}")

    # ---------------------------------------------------------------- the TableStore port

    @property
    def description(self) -> str:
        return f"faulty({self.inner.description})"

    async def create_table(self, table: str) -> None:
        await self.inner.create_table(table)

    async def delete_table(self, table: str) -> None:
        await self.inner.delete_table(table)

    async def get(self, table: str, partition_key: str, row_key: str) -> Entity:
        self._check("get", table)
        return await self.inner.get(table, partition_key, row_key)

    async def insert(self, table: str, partition_key: str, row_key: str, properties: Properties) -> str:
        self._check("insert", table, [Op.insert(partition_key, row_key, properties)])
        return await self.inner.insert(table, partition_key, row_key, properties)

    async def upsert(
        self,
        table: str,
        partition_key: str,
        row_key: str,
        properties: Properties,
        mode: UpdateMode = UpdateMode.MERGE,
    ) -> str:
        self._check("upsert", table, [Op.upsert(partition_key, row_key, properties, mode)])
        return await self.inner.upsert(table, partition_key, row_key, properties, mode)

    async def update(
        self,
        table: str,
        partition_key: str,
        row_key: str,
        properties: Properties,
        *,
        etag: str | None,
        mode: UpdateMode = UpdateMode.MERGE,
    ) -> str:
        self._check("update", table, [Op.update(partition_key, row_key, properties, etag=etag, mode=mode)])
        return await self.inner.update(table, partition_key, row_key, properties, etag=etag, mode=mode)

    async def delete(self, table: str, partition_key: str, row_key: str, *, etag: str | None = None) -> None:
        self._check("delete", table, [Op.delete(partition_key, row_key, etag=etag)])
        await self.inner.delete(table, partition_key, row_key, etag=etag)

    async def transact(self, table: str, operations: Sequence[Op]) -> list[str | None]:
        self._check("transact", table, operations)
        return await self.inner.transact(table, operations)

    def query(
        self,
        table: str,
        *,
        partition_key: str | None = None,
        row_key_from: str | None = None,
        row_key_to: str | None = None,
        where: Sequence[Condition] = (),
        select: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[Entity]:
        async def rows() -> AsyncIterator[Entity]:
            self._check("query_page", table)
            async for entity in self.inner.query(
                table,
                partition_key=partition_key,
                row_key_from=row_key_from,
                row_key_to=row_key_to,
                where=where,
                select=select,
                limit=limit,
            ):
                yield entity

        return rows()

    async def query_page(
        self,
        table: str,
        *,
        partition_key: str | None = None,
        row_key_from: str | None = None,
        row_key_to: str | None = None,
        where: Sequence[Condition] = (),
        select: Sequence[str] | None = None,
        page_size: int = MAX_PAGE_SIZE,
        continuation: str | None = None,
    ) -> Page:
        self._check("query_page", table)
        return await self.inner.query_page(
            table,
            partition_key=partition_key,
            row_key_from=row_key_from,
            row_key_to=row_key_to,
            where=where,
            select=select,
            page_size=page_size,
            continuation=continuation,
        )

    async def close(self) -> None:
        await self.inner.close()


class ResettingProxy:
    """A TCP proxy on 127.0.0.1 in front of ``target``; while down, every connection is reset."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._down = False
        self._open: set[asyncio.StreamWriter] = set()
        self.port = 0

    async def start(self) -> ResettingProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def down(self) -> None:
        """Reset every open connection and every new one until :meth:`up`."""
        self._down = True
        for writer in list(self._open):
            _reset(writer)
        self._open.clear()

    def up(self) -> None:
        self._down = False

    async def close(self) -> None:
        self.down()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._down:
            _reset(writer)
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        except OSError:
            _reset(writer)
            return
        self._open.update({writer, upstream_writer})
        try:
            await asyncio.gather(self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer))
        finally:
            for end in (writer, upstream_writer):
                self._open.discard(end)
                with contextlib.suppress(Exception):
                    end.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError, asyncio.IncompleteReadError):
            while not self._down:
                data = await reader.read(65536)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        if self._down:
            _reset(writer)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0), as a dead peer's kernel would answer."""
    sock: Any = writer.get_extra_info("socket")
    if sock is not None:
        import socket
        import struct

        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(Exception):
        writer.close()
