"""Helpers of the end-to-end tests: the fake services' call ledger and DTFx history queries."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any

from shared.idempotency import idempotency_key

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
# Each end-to-end test runs with durablehost's behaviour and with Azure's exact one (README, "Differences
# from Azure"), so the app cannot pass here and fail in Azure.
FIDELITIES = ["durablehost", "azure"]

# DTFx history event types (df-host-protocol §1.4).
TASK_SCHEDULED = 4
TASK_COMPLETED = 5
TASK_FAILED = 6
SUB_ORCHESTRATION_CREATED = 7
TIMER_CREATED = 10
TIMER_FIRED = 11
EVENT_RAISED = 15

REFUND_REQUEST = {"text": "Please refund my last order", "customer": "c-1", "amount": 120}
NO_APPROVAL_REQUEST = {"text": "What are your opening hours?", "customer": "c-2"}
APPROVAL_WORKFLOW = "request_approval_orchestrator"
BOOKING = {
    "flight": "XY123",
    "date": "2026-04-01",
    "passengers": 2,
    "amount": 398.0,
    "currency": "EUR",
    "card_token": "tok_visa",
}
# Retries one virtual minute apart, so tests advance the clock by minutes, not by the default seconds.
FAST_RETRY = {"first_retry_ms": 60_000, "max_attempts": 3}


def calls(operation: str) -> dict[str, dict[str, Any]]:
    """Rows of the in-memory fake-service ledger for ``operation`` (e.g. ``payments.charge``): key ->
    ``{"attempts", "result"}``. Read from the app as the host loaded it (each test loads it afresh)."""
    ledger_module = sys.modules["shared.services.ledger"]
    rows: dict[str, dict[str, Any]] = ledger_module.memory_ledger().calls(operation)
    return rows


def key(instance_id: str, step: str) -> str:
    """The idempotency key the app derives for a step of an instance."""
    return idempotency_key(instance_id, step)


def approval(approval_id: str, approver: str, decision: str = "approve", comment: str = "") -> dict[str, str]:
    """An ``approval`` event as ``POST /api/approvals/{id}`` raises it."""
    return {
        "approval_id": approval_id,
        "approver": approver,
        "decision": decision,
        "comment": comment,
        "decided_at": "2026-03-02T10:00:00+00:00",
    }


def events(history: list[dict[str, Any]], event_type: int) -> list[dict[str, Any]]:
    """The history events of one type, in order."""
    return [e for e in history if e["EventType"] == event_type]


def scheduled_names(history: list[dict[str, Any]]) -> list[str]:
    """Names of the activities scheduled, in order (a retried activity appears once per attempt)."""
    return [str(e["Name"]) for e in events(history, TASK_SCHEDULED)]


def completed_results(history: list[dict[str, Any]]) -> list[Any]:
    """Decoded results of the completed activities, in order."""
    return [json.loads(e["Result"]) for e in events(history, TASK_COMPLETED)]
