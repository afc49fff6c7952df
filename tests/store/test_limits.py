"""Unit tests of durablehost.store.limits: the estimates and messages behind the contract suite."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from durablehost.errors import EntityTooLarge, InvalidKey, InvalidTransaction, StoreError
from durablehost.store import Condition, InvalidValue, Op, OpKind, limits


def test_entity_size_follows_azure_estimate() -> None:
    # 4 + keys (2 bytes/char) + per property 8 + 2*len(name) + value.
    size = limits.entity_size(
        "pk", "rk", {"s": "abc", "i": 1, "f": 1.0, "b": True, "y": b"12", "d": datetime.now(UTC)}
    )
    assert size == 4 + 4 + 4 + (8 + 2 + 6 + 4) + (8 + 2 + 8) * 3 + (8 + 2 + 1) + (8 + 2 + 2 + 4)


def test_strings_are_measured_in_utf16() -> None:
    clef = "\U0001d11e"  # outside the BMP: a surrogate pair, 4 bytes in UTF-16
    limits.entity_size("p", "r", {"s": clef * 16384})  # exactly 64 KiB
    with pytest.raises(EntityTooLarge, match="65540 bytes"):
        limits.entity_size("p", "r", {"s": clef * 16385})
    limits.validate_key("RowKey", clef * 256)
    with pytest.raises(InvalidKey, match="1028 bytes"):
        limits.validate_key("RowKey", clef * 257)


def test_none_values_do_not_count() -> None:
    props = {f"p{i}": (i if i < 252 else None) for i in range(300)}
    limits.entity_size("p", "r", props)


def test_messages_name_the_property_and_the_limit() -> None:
    with pytest.raises(EntityTooLarge, match=r"'payload'.*65536"):
        limits.entity_size("p", "r", {"payload": "x" * 40000})
    with pytest.raises(InvalidKey, match=r"PartitionKey 'a/b' contains '/'"):
        limits.entity_size("a/b", "r", {})
    with pytest.raises(InvalidValue, match=r"'when' is naive"):
        limits.entity_size("p", "r", {"when": datetime(2020, 1, 1)})


def test_invalid_value_is_both_a_store_error_and_a_value_error() -> None:
    assert issubclass(InvalidValue, StoreError) and issubclass(InvalidValue, ValueError)


def test_key_must_be_a_string() -> None:
    with pytest.raises(InvalidKey, match="must be a str"):
        limits.validate_key("RowKey", 5)  # type: ignore[arg-type]


def test_datetime_before_1601_is_refused() -> None:
    with pytest.raises(InvalidValue, match="1601"):
        limits.entity_size("p", "r", {"d": datetime(1600, 12, 31, tzinfo=UTC)})


def test_transaction_over_4_mib_is_refused() -> None:
    ops = [Op.insert("p", f"r{i}", {f"s{j}": "x" * 30000 for j in range(10)}) for i in range(8)]
    with pytest.raises(InvalidTransaction, match="4 MiB"):
        limits.validate_transaction(ops)


def test_transaction_errors_name_the_operation() -> None:
    with pytest.raises(EntityTooLarge, match="operation 2"):
        limits.validate_transaction(
            [Op.insert("p", "a", {}), Op.delete("p", "b"), Op.upsert("p", "c", {"s": "x" * 40000})]
        )


def test_delete_properties_are_ignored() -> None:
    limits.validate_transaction([Op(OpKind.DELETE, "p", "r", {"bad-name": 1})])


@pytest.mark.parametrize(
    "condition",
    [
        Condition("v", "like", 1),  # type: ignore[arg-type]
        Condition("bad name", "eq", 1),
        Condition("v", "eq", datetime(2020, 1, 1)),
        Condition("v", "eq", [1]),  # type: ignore[arg-type]
    ],
)
def test_invalid_conditions(condition: Condition) -> None:
    with pytest.raises(InvalidValue):
        limits.validate_conditions([condition])


def test_key_conditions_are_allowed() -> None:
    limits.validate_conditions([Condition("PartitionKey", "eq", "p"), Condition("RowKey", "ge", "a")])


@pytest.mark.parametrize("size", [0, 1001])
def test_page_size_bounds(size: int) -> None:
    with pytest.raises(InvalidValue, match="page_size"):
        limits.validate_page_size(size)


@pytest.mark.parametrize("name", ["Tables", "9abc", "a" * 64, "ab_c"])
def test_invalid_table_names(name: str) -> None:
    with pytest.raises(InvalidValue):
        limits.validate_table_name(name)
