"""A snapshot of a task hub's stored state, read straight from the store (SQLite file or Azurite).

Every row of ``<hub>Instances`` (instance rows, history, tasks, inbox, idempotency tombstones) and the
instance index and active markers of ``<hub>Control``, with their properties. The lease and wake-up rows
are left out: the owner renews its lease every few seconds whatever the requests did.
"""

from __future__ import annotations

from typing import Any

from durablehost.store.base import TableStore

_CONTROL_PARTITIONS = ("index", "active")


async def snapshot(store: TableStore, hub: str) -> list[tuple[str, str, str, str]]:
    """Sorted ``(table, partition, row, properties)`` of every row that describes instances."""
    rows: list[tuple[str, str, str, str]] = []
    async for entity in store.query(f"{hub}Instances"):
        rows.append(("Instances", entity.partition_key, entity.row_key, _text(entity.properties)))
    for partition in _CONTROL_PARTITIONS:
        async for entity in store.query(f"{hub}Control", partition_key=partition):
            rows.append(("Control", entity.partition_key, entity.row_key, _text(entity.properties)))
    return sorted(rows)


def _text(properties: dict[str, Any]) -> str:
    return repr(sorted(properties.items()))
