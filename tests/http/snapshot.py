"""A snapshot of a task hub's stored state, read straight from the store (SQLite file or Azurite).

Every row of ``<hub>Instances`` (instance rows, history, tasks, inbox, idempotency tombstones) and the
instance index and active markers of ``<hub>Control``, with their properties. The lease and wake-up rows
are left out: the owner renews its lease every few seconds whatever the requests did.

Index copies and marker removals linger for company (durablehost.engine.control, up to LINGER seconds),
so a snapshot taken just after work finished may miss some: :func:`settled_snapshot` waits until two
reads further apart than that agree.
"""

from __future__ import annotations

import asyncio
from typing import Any

from durablehost.engine.control import INDEX_PARTITION, LINGER, MARKER_PARTITION
from durablehost.store.base import TableStore

_CONTROL_PARTITIONS = (INDEX_PARTITION, MARKER_PARTITION)


async def snapshot(store: TableStore, hub: str) -> list[tuple[str, str, str, str]]:
    """Sorted ``(table, partition, row, properties)`` of every row that describes instances."""
    rows: list[tuple[str, str, str, str]] = []
    async for entity in store.query(f"{hub}Instances"):
        rows.append(("Instances", entity.partition_key, entity.row_key, _text(entity.properties)))
    for partition in _CONTROL_PARTITIONS:
        async for entity in store.query(f"{hub}Control", partition_key=partition):
            rows.append(("Control", entity.partition_key, entity.row_key, _text(entity.properties)))
    return sorted(rows)


async def settled_snapshot(
    store: TableStore, hub: str, timeout: float = 10.0
) -> list[tuple[str, str, str, str]]:
    """The snapshot once lingering writes have landed: two reads 2 x LINGER apart agree."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last = await snapshot(store, hub)
    while True:
        await asyncio.sleep(2 * LINGER)
        current = await snapshot(store, hub)
        if current == last:
            return current
        if loop.time() > deadline:
            raise AssertionError(f"the stored state of {hub} kept changing for {timeout} s")
        last = current


def _text(properties: dict[str, Any]) -> str:
    return repr(sorted(properties.items()))
