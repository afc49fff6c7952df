"""Fake flight booking service."""

from __future__ import annotations

import hashlib
import re
from datetime import date
from typing import Any

from shared.services.base import FakeService
from shared.services.errors import ServiceValidationError

_FLIGHT = re.compile(r"^[A-Z]{2}\d{1,4}$")
MAX_PASSENGERS = 9


def _reference(prefix: str, key: str) -> str:
    # Derived from the idempotency key so a replayed call reports the same reference.
    return f"{prefix}-{hashlib.sha256(key.encode()).hexdigest()[:10].upper()}"


class FlightService(FakeService):
    """Holds, confirms and cancels seats; every operation is idempotent by key."""

    name = "flights"

    def book(self, key: str, flight: str, travel_date: str, passengers: int) -> dict[str, Any]:
        """Hold seats; raises ServiceValidationError for an unknown flight number, date or party size."""
        if not _FLIGHT.match(flight):
            raise ServiceValidationError(f"flight {flight!r} is not a flight number like 'XY123'")
        try:
            date.fromisoformat(travel_date)
        except ValueError:
            raise ServiceValidationError(f"date {travel_date!r} is not YYYY-MM-DD") from None
        if not 1 <= passengers <= MAX_PASSENGERS:
            raise ServiceValidationError(f"passengers must be 1..{MAX_PASSENGERS}, got {passengers}")
        return self._idempotent(
            "book",
            key,
            lambda: {
                "booking_ref": _reference("BK", key),
                "flight": flight,
                "date": travel_date,
                "passengers": passengers,
                "state": "held",
            },
        )

    def confirm(self, key: str, booking_ref: str) -> dict[str, Any]:
        """Confirm a held booking."""
        if not booking_ref:
            raise ServiceValidationError("confirm needs a booking reference")
        return self._idempotent("confirm", key, lambda: {"booking_ref": booking_ref, "state": "confirmed"})

    def cancel(self, key: str, booking_ref: str) -> dict[str, Any]:
        """Release a held booking (the saga's compensation)."""
        if not booking_ref:
            raise ServiceValidationError("cancel needs a booking reference")
        return self._idempotent("cancel", key, lambda: {"booking_ref": booking_ref, "state": "cancelled"})
