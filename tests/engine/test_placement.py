"""Placement of instances on partitions: FNV-1a as DTFx computes it, the partition range and stability.

DTFx places an instance on control queue ``Fnv1aHashHelper.ComputeHash(instanceId) % partitionCount``
(DurableTask.AzureStorage, AzureStorageOrchestrationService.GetControlQueueAsync): a 32-bit FNV-1a over
``Encoding.UTF8.GetBytes(value)`` with offset basis 2166136261 and prime 16777619, in unchecked ``uint``
arithmetic. The expected values here come from the FNV reference test vectors and from that algorithm
written out again below, not from durablehost's code.
"""

from __future__ import annotations

import uuid

import pytest

from durablehost.engine.placement import (
    DEFAULT_PARTITIONS,
    MAX_PARTITIONS,
    MIN_PARTITIONS,
    fnv1a,
    partition_of,
    validate_partition_count,
)

UINT = 0xFFFFFFFF


def dtfx_compute_hash(value: str) -> int:
    """Fnv1aHashHelper.ComputeHash, line by line: ``hash ^= array[i]; hash *= FnvPrime;`` (unchecked)."""
    hash_ = 2166136261
    for byte in value.encode("utf-8"):  # Encoding.UTF8.GetBytes
        hash_ ^= byte
        hash_ = (hash_ * 16777619) & UINT
    return hash_


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", 0x811C9DC5),  # the offset basis itself
        ("a", 0xE40C292C),
        ("foobar", 0xBF9CF968),
    ],
)
def test_fnv1a_matches_the_reference_test_vectors(text: str, expected: int) -> None:
    assert fnv1a(text) == expected


def test_fnv1a_of_one_byte_worked_by_hand() -> None:
    # "a" is the byte 0x61: 0x811C9DC5 ^ 0x61 = 0x811C9DA4. The prime is 0x01000193, so the product is
    # 0x811C9DA4 * 0x193 + (0x811C9DA4 << 24); in 32 bits 0x400C292C + 0xA4000000 = 0xE40C292C.
    low = (0x811C9DA4 * 0x193) & UINT
    high = (0x811C9DA4 << 24) & UINT
    assert (low, high) == (0x400C292C, 0xA4000000)
    assert (low + high) & UINT == 0xE40C292C == fnv1a("a")


IDS = [
    "abc",
    "hello-world",
    "3c08f2a1e5b94d6a8f0e2b7c1d9a4e6f",
    "@counter@c1",
    "@cart@user:42",
    "execution:17",
    "café",  # two UTF-8 bytes for é
    "注文-2024",
    "emoji-🚀",
    "x" * 256,
]


@pytest.mark.parametrize("instance_id", IDS)
def test_fnv1a_is_dtfxs_hash_over_the_utf8_bytes(instance_id: str) -> None:
    assert fnv1a(instance_id) == dtfx_compute_hash(instance_id)


def test_the_hash_of_a_non_ascii_id_is_over_utf8_not_code_points() -> None:
    latin1 = 2166136261
    for byte in "café".encode("latin-1"):
        latin1 = ((latin1 ^ byte) * 16777619) & UINT
    assert fnv1a("café") != latin1


@pytest.mark.parametrize("count", range(MIN_PARTITIONS, MAX_PARTITIONS + 1))
def test_every_instance_lands_in_range_on_hash_modulo_count(count: int) -> None:
    for instance_id in IDS:
        partition = partition_of(instance_id, count)
        assert 0 <= partition < count
        assert partition == dtfx_compute_hash(instance_id) % count


def test_placement_is_stable_across_calls_and_processes() -> None:
    # Values a process computed once must be what every other process computes (no salted hash()):
    # 0x811C9DC5 % 4 = 1, 0xE40C292C % 4 = 0, 0xBF9CF968 % 16 = 8.
    assert partition_of("", 4) == 1
    assert partition_of("a", 4) == 0
    assert partition_of("foobar", 16) == 8
    assert [partition_of("@counter@c1", 4) for _ in range(3)] == [partition_of("@counter@c1", 4)] * 3


def test_a_single_partition_holds_everything() -> None:
    assert {partition_of(instance_id, 1) for instance_id in IDS} == {0}


def test_ids_spread_evenly_over_the_default_partitions() -> None:
    ids = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"instance-{n}")) for n in range(8000)]
    counts = [0] * DEFAULT_PARTITIONS
    for instance_id in ids:
        counts[partition_of(instance_id, DEFAULT_PARTITIONS)] += 1
    assert min(counts) > 0.9 * 2000 and max(counts) < 1.1 * 2000, counts


@pytest.mark.parametrize("count", [1, 4, 16])
def test_valid_partition_counts_are_accepted(count: int) -> None:
    validate_partition_count(count, "host.json")


@pytest.mark.parametrize("count", [0, -1, 17, 32, True, 4.0, "4", None])
def test_other_partition_counts_are_refused_with_the_range(count: object) -> None:
    with pytest.raises(ValueError) as refused:
        validate_partition_count(count, "host.json extensions.durableTask.storageProvider")  # type: ignore[arg-type]
    message = str(refused.value)
    assert message.startswith("host.json extensions.durableTask.storageProvider: partitionCount must be")
    assert "from 1 to 16" in message and repr(count) in message
