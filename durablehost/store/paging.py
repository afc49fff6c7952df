"""Iterating a query across pages: the same loop for every store, over its ``query_page``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from durablehost.store.base import MAX_PAGE_SIZE, Condition, Entity, TableStore


async def all_pages(
    store: TableStore,
    table: str,
    *,
    partition_key: str | None = None,
    row_key_from: str | None = None,
    row_key_to: str | None = None,
    where: Sequence[Condition] = (),
    select: Sequence[str] | None = None,
    limit: int | None = None,
) -> AsyncIterator[Entity]:
    """Yield every matching entity in key order, following continuation tokens, up to ``limit``."""
    remaining = limit
    continuation: str | None = None
    while remaining is None or remaining > 0:
        page = await store.query_page(
            table,
            partition_key=partition_key,
            row_key_from=row_key_from,
            row_key_to=row_key_to,
            where=where,
            select=select,
            page_size=MAX_PAGE_SIZE if remaining is None else min(MAX_PAGE_SIZE, remaining),
            continuation=continuation,
        )
        for entity in page.entities:
            yield entity
        if remaining is not None:
            remaining -= len(page.entities)
        continuation = page.continuation
        if continuation is None:
            return
