from __future__ import annotations

import re
import uuid

import pytest

from shared.idempotency import idempotency_key


def test_same_inputs_same_key() -> None:
    assert idempotency_key("abc", "charge") == idempotency_key("abc", "charge")


def test_different_instance_or_step_different_key() -> None:
    keys = {
        idempotency_key("abc", "charge"),
        idempotency_key("abd", "charge"),
        idempotency_key("abc", "book"),
        idempotency_key("abc/charge", "x"),  # no ambiguity from the separator
        idempotency_key("abc", "charge-2"),
    }
    assert len(keys) == 5


def test_key_is_pinned_so_deployments_agree() -> None:
    # Changing the derivation would make in-flight sagas repeat side effects after a deployment.
    namespace = uuid.UUID("4f0a6f1e-3b8c-5d2a-9e57-1c2b3a4d5e6f")
    assert idempotency_key("instance-1", "charge") == f"charge-{uuid.uuid5(namespace, 'instance-1/charge')}"


def test_keys_are_valid_table_row_keys_for_any_instance_id() -> None:
    key = idempotency_key("weird/#?\\id" * 50, "refund")
    assert re.fullmatch(r"[a-z0-9_-]+", key)
    assert len(key) < 100


@pytest.mark.parametrize(
    ("instance_id", "step"), [("", "charge"), ("abc", ""), ("abc", "Charge"), ("abc", "a/b")]
)
def test_bad_arguments_are_refused(instance_id: str, step: str) -> None:
    with pytest.raises(ValueError):
        idempotency_key(instance_id, step)
