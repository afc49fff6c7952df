"""Carrying out an approved customer request."""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df

from activities._runtime import services

bp = df.Blueprint()

ACTION_OPERATION = "actions.perform"


@bp.activity_trigger(input_name="payload")
def perform_request_action(payload: dict) -> dict[str, Any]:
    """Perform the action for ``{"key", "intent", "request"}``; recorded once per idempotency key in the
    service ledger (operation ``actions.perform``), so a retried or re-delivered call acts once."""
    ledger = services().ledger
    key = payload["key"]
    result = {
        "intent": payload["intent"],
        "reference": f"ACT-{key[-12:].upper()}",
        "status": "done",
    }
    ledger.count_attempt(ACTION_OPERATION, key)
    return ledger.record_result(ACTION_OPERATION, key, result)
