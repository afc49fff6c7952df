"""Workflow 4: booking saga (book, charge, confirm) with idempotency keys and compensation.

Input (``booking_saga_orchestrator``)::

    {"booking": {"flight": "XY123", "date": "YYYY-MM-DD", "passengers": 1,
                 "amount": 199.0, "currency": "EUR", "card_token": "tok_visa"},   # required
     "retry": {"first_retry_ms": 5000, "max_attempts": 3}}

Each side-effecting step gets ``idempotency_key(instance_id, step)`` (``book``, ``charge``, ``confirm``,
``cancel``, ``refund``) and runs with ``call_activity_with_retry``: transient failures raise and are
retried; validation failures come back as ``{"status": "rejected", "reason"}`` and are not retried.
A charge that is rejected or still fails after the retries cancels the booking; a confirmation that
fails refunds the charge and cancels the booking. A compensation that fails fails the orchestration
(someone must look).

Output: ``{"outcome": "confirmed"|"rejected"|"compensated", "failed_step": str|None, "reason": str|None,
"booking_ref", "charge_id", "compensations": [str]}``.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import azure.durable_functions as df

from orchestrators._failures import failure_reason
from orchestrators._inputs import as_mapping, integer, number, retry_options, text
from shared.idempotency import idempotency_key

bp = df.Blueprint()


def parse_booking_input(raw: Any) -> dict[str, Any]:
    """The validated ``booking`` object of the input; raises InputError naming the bad field."""
    booking = as_mapping(as_mapping(raw, "input").get("booking"), "booking")
    return {
        "flight": text(booking, "flight", max_length=16),
        "date": text(booking, "date", max_length=10),
        "passengers": integer(booking, "passengers", 1, minimum=1, maximum=9),
        "amount": number(booking, "amount", 0, minimum=0.01, maximum=1_000_000),
        "currency": text(booking, "currency", max_length=3),
        "card_token": text(booking, "card_token", max_length=200),
    }


def _step(
    context: df.DurableOrchestrationContext,
    retry: df.RetryOptions,
    activity: str,
    step: str,
    payload: dict[str, Any],
) -> Generator[Any, Any, dict[str, Any]]:
    """Run one saga step; an exception left after the retries becomes ``{"status": "failed"}``."""
    try:
        result: dict[str, Any] = yield context.call_activity_with_retry(
            activity, retry, {**payload, "key": idempotency_key(context.instance_id, step)}
        )
    except Exception as exc:  # the retries are spent: the saga decides, with the reason recorded
        return {"status": "failed", "reason": failure_reason(exc)}
    return result


def _compensate(
    context: df.DurableOrchestrationContext,
    retry: df.RetryOptions,
    activity: str,
    step: str,
    payload: dict[str, Any],
) -> Generator[Any, Any, None]:
    """Run a compensation; it must succeed, so any failure raises and fails the orchestration."""
    context.set_custom_status({"stage": "compensating", "step": step})
    result = yield context.call_activity_with_retry(
        activity, retry, {**payload, "key": idempotency_key(context.instance_id, step)}
    )
    if result["status"] != "ok":
        raise RuntimeError(f"compensation {step} was rejected: {result.get('reason')}")


@bp.orchestration_trigger(context_name="context")
def booking_saga_orchestrator(context: df.DurableOrchestrationContext) -> Generator[Any, Any, dict[str, Any]]:
    """Book, charge, confirm; compensate in reverse order on failure (see the module docstring)."""
    raw = context.get_input()
    booking = parse_booking_input(raw)
    retry = retry_options(as_mapping(raw, "input"))
    output: dict[str, Any] = {
        "failed_step": None,
        "reason": None,
        "booking_ref": None,
        "charge_id": None,
        "compensations": [],
    }

    context.set_custom_status({"stage": "booking"})
    booked = yield from _step(
        context,
        retry,
        "book_flight",
        "book",
        {k: booking[k] for k in ("flight", "date", "passengers")},
    )
    if booked["status"] != "ok":
        context.set_custom_status({"stage": "rejected", "step": "book"})
        return {**output, "outcome": "rejected", "failed_step": "book", "reason": booked["reason"]}
    output["booking_ref"] = booked["booking_ref"]

    context.set_custom_status({"stage": "charging", "booking_ref": booked["booking_ref"]})
    charged = yield from _step(
        context,
        retry,
        "charge_payment",
        "charge",
        {k: booking[k] for k in ("amount", "currency", "card_token")},
    )
    if charged["status"] != "ok":
        yield from _compensate(
            context, retry, "cancel_booking", "cancel", {"booking_ref": booked["booking_ref"]}
        )
        context.set_custom_status({"stage": "compensated", "step": "charge"})
        return {
            **output,
            "outcome": "compensated",
            "failed_step": "charge",
            "reason": charged["reason"],
            "compensations": ["cancel"],
        }
    output["charge_id"] = charged["charge_id"]

    context.set_custom_status({"stage": "confirming", "booking_ref": booked["booking_ref"]})
    confirmed = yield from _step(
        context, retry, "confirm_booking", "confirm", {"booking_ref": booked["booking_ref"]}
    )
    if confirmed["status"] != "ok":
        yield from _compensate(
            context, retry, "refund_payment", "refund", {"charge_id": charged["charge_id"]}
        )
        yield from _compensate(
            context, retry, "cancel_booking", "cancel", {"booking_ref": booked["booking_ref"]}
        )
        context.set_custom_status({"stage": "compensated", "step": "confirm"})
        return {
            **output,
            "outcome": "compensated",
            "failed_step": "confirm",
            "reason": confirmed["reason"],
            "compensations": ["refund", "cancel"],
        }
    context.set_custom_status({"stage": "confirmed", "booking_ref": booked["booking_ref"]})
    return {**output, "outcome": "confirmed"}
