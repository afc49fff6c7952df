"""A TableStore that counts the requests it makes: one per call that Azure Table storage bills as one.

Wraps a real store. ``get``, ``insert``, ``upsert``, ``update``, ``delete``, a ``transact`` batch and
each page of a query are one request each (Azure bills a batch as one transaction and a query per page).
Counts are kept per (operation, table) so a benchmark can say where the requests go.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Sequence

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
from durablehost.store.paging import all_pages


class CountingStore:
    """Counts every request that reaches ``inner``; otherwise it is ``inner``."""

    def __init__(self, inner: TableStore) -> None:
        self.inner = inner
        self.counts: Counter[tuple[str, str]] = Counter()

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def snapshot(self) -> Counter[tuple[str, str]]:
        return Counter(self.counts)

    def _count(self, operation: str, table: str) -> None:
        self.counts[(operation, table)] += 1

    @property
    def description(self) -> str:
        return self.inner.description

    async def create_table(self, table: str) -> None:
        self._count("create_table", table)
        await self.inner.create_table(table)

    async def delete_table(self, table: str) -> None:
        self._count("delete_table", table)
        await self.inner.delete_table(table)

    async def get(self, table: str, partition_key: str, row_key: str) -> Entity:
        self._count("get", table)
        return await self.inner.get(table, partition_key, row_key)

    async def insert(self, table: str, partition_key: str, row_key: str, properties: Properties) -> str:
        self._count("insert", table)
        return await self.inner.insert(table, partition_key, row_key, properties)

    async def upsert(
        self,
        table: str,
        partition_key: str,
        row_key: str,
        properties: Properties,
        mode: UpdateMode = UpdateMode.MERGE,
    ) -> str:
        self._count("upsert", table)
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
        self._count("update", table)
        return await self.inner.update(table, partition_key, row_key, properties, etag=etag, mode=mode)

    async def delete(self, table: str, partition_key: str, row_key: str, *, etag: str | None = None) -> None:
        self._count("delete", table)
        await self.inner.delete(table, partition_key, row_key, etag=etag)

    async def transact(self, table: str, operations: Sequence[Op]) -> list[str | None]:
        self._count("transact", table)
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
        # Through query_page, so that every page is counted as the request it is.
        return all_pages(
            self,
            table,
            partition_key=partition_key,
            row_key_from=row_key_from,
            row_key_to=row_key_to,
            where=where,
            select=select,
            limit=limit,
        )

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
        self._count("query_page", table)
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
