"""Deterministic idempotency keys for side-effecting activities.

A key depends only on the orchestration instance id and the step name, so every replay and every
retry of a step sends the same key, and a downstream service that records calls by key performs the
side effect once. Keys are safe as Table storage row keys (no ``/ \\ # ?``) and bounded in length
whatever the instance id looks like.
"""

from __future__ import annotations

import re
import uuid

# A fixed namespace: changing it would change every key and break idempotency across a deployment.
_NAMESPACE = uuid.UUID("4f0a6f1e-3b8c-5d2a-9e57-1c2b3a4d5e6f")
_STEP = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")


def idempotency_key(instance_id: str, step: str) -> str:
    """Return the key for ``step`` of orchestration ``instance_id``, e.g. ``charge-<uuid5>``.

    ``step`` is a short lower-case name (``book``, ``charge``, ``cancel``); the same inputs always give
    the same key and different inputs give different keys.
    """
    if not instance_id:
        raise ValueError("idempotency_key needs a non-empty instance id")
    if not _STEP.match(step):
        raise ValueError(f"step {step!r} must match {_STEP.pattern}")
    return f"{step}-{uuid.uuid5(_NAMESPACE, f'{instance_id}/{step}')}"
