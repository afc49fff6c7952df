"""Property conditions evaluated in Python, with Azure's typed semantics.

The SQLite store filters with this after its key-range SQL; the Azure store re-checks server results
with it because Azurite compares datetimes only to the millisecond. A condition matches only when the
property exists and has the same kind as the value (an int never equals a str, a bool is not an int),
as in Azure, where a comparison between different EDM types is false.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from durablehost.store.base import Comparison, Condition, PropertyValue

_OPERATORS: dict[Comparison, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
}


def kind(value: PropertyValue) -> type:
    """The comparison kind of a value: bool is distinct from int."""
    if isinstance(value, bool):
        return bool
    if isinstance(value, datetime):
        return datetime
    return type(value)


def matches(
    partition_key: str,
    row_key: str,
    properties: Mapping[str, PropertyValue],
    conditions: Sequence[Condition],
) -> bool:
    """True if the entity satisfies every condition (AND)."""
    for condition in conditions:
        if condition.name == "PartitionKey":
            actual: PropertyValue | None = partition_key
        elif condition.name == "RowKey":
            actual = row_key
        else:
            actual = properties.get(condition.name)
        if actual is None or kind(actual) is not kind(condition.value):
            return False
        if not _OPERATORS[condition.op](actual, condition.value):
            return False
    return True
