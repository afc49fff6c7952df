"""Booking saga steps on the fake flight and payment services.

Failure contract: a :class:`ServiceValidationError` (bad flight, declined card …) is returned as
``{"status": "rejected", "reason": …}`` so the orchestrator sees it at once and does not retry; any
other exception (e.g. :class:`TransientServiceError`) raises, and the orchestrator's RetryOptions retry
it. Every call carries the idempotency key the orchestrator derived, so retries act once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import azure.durable_functions as df

from activities._runtime import services
from shared.services import ServiceValidationError

bp = df.Blueprint()


def _rejectable(call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The service result with ``"status": "ok"``, or ``{"status": "rejected", "reason"}``."""
    try:
        return {**call(), "status": "ok"}
    except ServiceValidationError as exc:
        return {"status": "rejected", "reason": str(exc)}


@bp.activity_trigger(input_name="payload")
def book_flight(payload: dict) -> dict[str, Any]:
    """Hold seats: ``{"key", "flight", "date", "passengers"}`` → booking_ref, or rejected."""
    flights = services().flights
    return _rejectable(
        lambda: flights.book(payload["key"], payload["flight"], payload["date"], int(payload["passengers"]))
    )


@bp.activity_trigger(input_name="payload")
def charge_payment(payload: dict) -> dict[str, Any]:
    """Charge: ``{"key", "amount", "currency", "card_token"}`` → charge_id, or rejected."""
    payments = services().payments
    return _rejectable(
        lambda: payments.charge(
            payload["key"], float(payload["amount"]), payload["currency"], payload["card_token"]
        )
    )


@bp.activity_trigger(input_name="payload")
def confirm_booking(payload: dict) -> dict[str, Any]:
    """Confirm: ``{"key", "booking_ref"}``."""
    flights = services().flights
    return _rejectable(lambda: flights.confirm(payload["key"], payload["booking_ref"]))


@bp.activity_trigger(input_name="payload")
def cancel_booking(payload: dict) -> dict[str, Any]:
    """Compensation: release ``{"key", "booking_ref"}``."""
    flights = services().flights
    return _rejectable(lambda: flights.cancel(payload["key"], payload["booking_ref"]))


@bp.activity_trigger(input_name="payload")
def refund_payment(payload: dict) -> dict[str, Any]:
    """Compensation: refund ``{"key", "charge_id"}``."""
    payments = services().payments
    return _rejectable(lambda: payments.refund(payload["key"], payload["charge_id"]))
