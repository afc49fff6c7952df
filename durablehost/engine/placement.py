"""Which partition of a task hub an instance belongs to.

A task hub has a fixed number of partitions (1-16, default 4, as the Durable Task Framework's Azure
Storage backend has control queues); an instance belongs to ``FNV-1a(instance id) % count``, the hash
DTFx uses (``Fnv1aHashHelper.ComputeHash`` over the id's UTF-8 bytes, AzureStorageOrchestrationService.cs,
backend-notes §1.5). Entities (``@name@key``) are placed the same way by their instance id.
"""

from __future__ import annotations

import functools

MIN_PARTITIONS = 1
MAX_PARTITIONS = 16
DEFAULT_PARTITIONS = 4

_FNV_OFFSET = 2166136261
_FNV_PRIME = 16777619


@functools.lru_cache(maxsize=1 << 16)  # asked for on every scheduling decision of an instance
def fnv1a(text: str) -> int:
    """32-bit FNV-1a of the UTF-8 bytes of ``text``."""
    value = _FNV_OFFSET
    for byte in text.encode("utf-8"):
        value = ((value ^ byte) * _FNV_PRIME) & 0xFFFFFFFF
    return value


def partition_of(instance_id: str, count: int) -> int:
    return fnv1a(instance_id) % count


def validate_partition_count(count: int, where: str) -> None:
    if isinstance(count, bool) or not isinstance(count, int) or not MIN_PARTITIONS <= count <= MAX_PARTITIONS:
        raise ValueError(
            f"{where}: partitionCount must be a whole number from {MIN_PARTITIONS} to {MAX_PARTITIONS} "
            f"(as in Azure), not {count!r}"
        )
