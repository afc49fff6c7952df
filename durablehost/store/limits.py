"""Azure Table storage limits, checked before anything is sent, identically for every store.

Checking here rather than relying on the backend matters for two reasons: SQLite would happily store
what Azure refuses (so an app would work locally and fail in Azure), and Azurite answers some invalid
requests badly (a 101-operation batch gets a malformed reply that crashes the SDK).

Sizes follow Azure's documented estimate: 4 bytes + 2 bytes per key character + for each property
8 bytes + 2 bytes per name character + the value's size (strings as UTF-16, 2 bytes per code unit).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime

from durablehost.errors import EntityTooLarge, InvalidKey, InvalidTransaction, StoreError
from durablehost.store.base import Comparison, Condition, Op, OpKind, Properties, PropertyValue

MAX_ENTITY_BYTES = 1024 * 1024
MAX_VALUE_BYTES = 64 * 1024
MAX_KEY_BYTES = 1024
MAX_PROPERTIES = 255
# PartitionKey, RowKey and Timestamp count towards MAX_PROPERTIES.
MAX_USER_PROPERTIES = MAX_PROPERTIES - 3
MAX_PROPERTY_NAME_LENGTH = 255
MAX_TRANSACTION_OPERATIONS = 100
# Azure refuses batch requests over 4 MiB; this is checked on the estimated entity sizes.
MAX_TRANSACTION_BYTES = 4 * 1024 * 1024
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
# Azure's Edm.DateTime starts at 1601-01-01 (Windows file time epoch).
MIN_DATETIME = datetime(1601, 1, 1, tzinfo=UTC)

SYSTEM_PROPERTIES = frozenset({"PartitionKey", "RowKey", "Timestamp"})
COMPARISONS: frozenset[Comparison] = frozenset({"eq", "ne", "lt", "le", "gt", "ge"})

_FORBIDDEN_KEY_CHARS = re.compile(r"[/\\#?\x00-\x1f\x7f-\x9f]")
_TABLE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]{2,62}")


class InvalidValue(StoreError, ValueError):
    """A table name, property name or property value that Azure Table storage would refuse."""


def utf16_len(text: str) -> int:
    """Size of ``text`` in bytes as Azure counts it (UTF-16)."""
    if text.isascii():  # the common case, without encoding a copy
        return 2 * len(text)
    return len(text.encode("utf-16-le"))


def validate_table_name(table: str) -> None:
    """Azure table names: 3-63 letters and digits, starting with a letter, not ``tables``."""
    if not _TABLE_NAME.fullmatch(table) or table.lower() == "tables":
        raise InvalidValue(
            f"invalid table name {table!r}: use 3-63 ASCII letters and digits, starting with a letter "
            "(and not 'tables')"
        )


def validate_key(kind: str, key: str) -> None:
    """Check a PartitionKey or RowKey (``kind`` names which one in the message)."""
    if not isinstance(key, str):
        raise InvalidKey(f"{kind} must be a str, not {type(key).__name__}")
    size = utf16_len(key)
    if size > MAX_KEY_BYTES:
        raise InvalidKey(f"{kind} {key[:40]!r}... is {size} bytes in UTF-16; the limit is {MAX_KEY_BYTES}")
    bad = _FORBIDDEN_KEY_CHARS.search(key)
    if bad is not None:
        raise InvalidKey(
            f"{kind} {key!r} contains {bad.group()!r} at position {bad.start()}; keys may not contain "
            "'/', '\\', '#', '?' or control characters (U+0000-U+001F, U+007F-U+009F)"
        )


# Property names already found valid: an engine writes the same few dozen names over and over.
_VALID_NAMES: set[str] = set()
_VALID_NAMES_CAP = 10_000


def validate_property_name(name: str) -> None:
    """A user property name: a C# identifier of at most 255 characters, not a system property."""
    if type(name) is str and name in _VALID_NAMES:
        return
    _check_property_name(name)
    if len(_VALID_NAMES) < _VALID_NAMES_CAP:
        _VALID_NAMES.add(name)


def _check_property_name(name: str) -> None:
    if not isinstance(name, str) or not name.isidentifier():
        raise InvalidValue(
            f"invalid property name {name!r}: it must be a valid identifier (letters, digits, _)"
        )
    if len(name) > MAX_PROPERTY_NAME_LENGTH:
        raise InvalidValue(
            f"property name {name[:40]!r}... has {len(name)} characters; "
            f"the limit is {MAX_PROPERTY_NAME_LENGTH}"
        )
    if name in SYSTEM_PROPERTIES:
        raise InvalidValue(f"{name!r} is a system property and cannot be set")


def value_size(name: str, value: PropertyValue) -> int:
    """Check one property value against Azure's limits and return its size in bytes (without the name).

    Raises InvalidValue for a type or range Azure cannot store, EntityTooLarge for a string or binary
    value over 64 KiB.
    """
    if isinstance(value, str):
        size = utf16_len(value)
        if size > MAX_VALUE_BYTES:
            raise EntityTooLarge(
                f"string property {name!r} is {size} bytes in UTF-16; the limit is {MAX_VALUE_BYTES} (64 KiB)"
            )
        return size + 4
    if isinstance(value, bool):
        return 1
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise InvalidValue(f"int property {name!r} = {value} does not fit in a signed 64-bit integer")
        return 8
    if isinstance(value, float):
        return 8
    if isinstance(value, bytes):
        if len(value) > MAX_VALUE_BYTES:
            raise EntityTooLarge(
                f"binary property {name!r} is {len(value)} bytes; the limit is {MAX_VALUE_BYTES} (64 KiB)"
            )
        return len(value) + 4
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise InvalidValue(f"datetime property {name!r} is naive; use a timezone-aware datetime")
        if value < MIN_DATETIME:
            raise InvalidValue(f"datetime property {name!r} = {value} is before {MIN_DATETIME.date()}")
        return 8
    raise InvalidValue(
        f"property {name!r} has unsupported type {type(value).__name__}; "
        "use str, int, float, bool, bytes or an aware datetime"
    )


def entity_size(partition_key: str, row_key: str, properties: Properties) -> int:
    """Validate keys and properties and return the entity's estimated size in bytes.

    ``None`` values are skipped (they are not stored). Raises InvalidKey, InvalidValue or EntityTooLarge.
    """
    validate_key("PartitionKey", partition_key)
    validate_key("RowKey", row_key)
    size = 4 + utf16_len(partition_key) + utf16_len(row_key)
    count = 0
    for name, value in properties.items():
        if value is None:
            continue
        validate_property_name(name)
        size += 8 + 2 * len(name) + value_size(name, value)
        count += 1
    if count > MAX_USER_PROPERTIES:
        raise EntityTooLarge(
            f"entity ({partition_key!r}, {row_key!r}) has {count} properties; the limit is "
            f"{MAX_USER_PROPERTIES} (255 including PartitionKey, RowKey and Timestamp)"
        )
    if size > MAX_ENTITY_BYTES:
        raise EntityTooLarge(
            f"entity ({partition_key!r}, {row_key!r}) is about {size} bytes; the limit is "
            f"{MAX_ENTITY_BYTES} (1 MiB)"
        )
    return size


def validate_transaction(operations: Sequence[Op]) -> None:
    """Check a transaction as Azure would, plus each operation's keys and properties.

    Raises InvalidTransaction when the batch is empty, has more than 100 operations, spans partitions,
    names a row twice or is over 4 MiB; InvalidKey, InvalidValue or EntityTooLarge for a bad operation
    (the message names its index).
    """
    if not operations:
        raise InvalidTransaction("a transaction needs at least one operation")
    if len(operations) > MAX_TRANSACTION_OPERATIONS:
        raise InvalidTransaction(
            f"a transaction has {len(operations)} operations; the limit is {MAX_TRANSACTION_OPERATIONS}. "
            "Split it, or use a commit protocol that spans several transactions"
        )
    partition = operations[0].partition_key
    seen: set[str] = set()
    total = 0
    for index, op in enumerate(operations):
        if op.partition_key != partition:
            raise InvalidTransaction(
                f"operation {index} is on partition {op.partition_key!r} but operation 0 is on "
                f"{partition!r}; a transaction must stay in one partition"
            )
        if op.row_key in seen:
            raise InvalidTransaction(f"operation {index} names row {op.row_key!r} a second time")
        seen.add(op.row_key)
        try:
            props = {} if op.kind is OpKind.DELETE else op.properties
            total += entity_size(op.partition_key, op.row_key, props)
        except (InvalidKey, InvalidValue, EntityTooLarge) as error:
            raise type(error)(f"operation {index}: {error}") from error
    if total > MAX_TRANSACTION_BYTES:
        raise InvalidTransaction(
            f"a transaction of about {total} bytes is over Azure's 4 MiB request limit; split it"
        )


def validate_conditions(conditions: Sequence[Condition]) -> None:
    """Check query conditions: known operator, a property name Azure accepts, a storable value."""
    for condition in conditions:
        if condition.op not in COMPARISONS:
            raise InvalidValue(
                f"unknown comparison {condition.op!r} on {condition.name!r}; use one of {sorted(COMPARISONS)}"
            )
        if condition.name not in ("PartitionKey", "RowKey"):
            validate_property_name(condition.name)
        value_size(condition.name, condition.value)


def validate_page_size(page_size: int) -> None:
    if not 1 <= page_size <= 1000:
        raise InvalidValue(f"page_size must be between 1 and 1000, not {page_size}")
