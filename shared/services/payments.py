"""Fake payment service."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from shared.services.base import FakeService
from shared.services.errors import ServiceValidationError

_CURRENCY = re.compile(r"^[A-Z]{3}$")
DECLINED_CARD = "tok_declined"


class PaymentService(FakeService):
    """Charges and refunds; a card token ``tok_declined`` is always declined (a validation error)."""

    name = "payments"

    def charge(self, key: str, amount: float, currency: str, card_token: str) -> dict[str, Any]:
        """Capture ``amount``; one charge per key however often it is called."""
        if not amount > 0:
            raise ServiceValidationError(f"amount must be positive, got {amount}")
        if not _CURRENCY.match(currency):
            raise ServiceValidationError(f"currency {currency!r} is not an ISO 4217 code like 'EUR'")
        if not card_token.startswith("tok_"):
            raise ServiceValidationError("card_token must be a payment token starting with 'tok_'")
        if card_token == DECLINED_CARD:
            raise ServiceValidationError("card declined")
        charge_id = f"ch_{hashlib.sha256(key.encode()).hexdigest()[:16]}"
        return self._idempotent(
            "charge",
            key,
            lambda: {"charge_id": charge_id, "amount": amount, "currency": currency, "state": "captured"},
        )

    def refund(self, key: str, charge_id: str) -> dict[str, Any]:
        """Refund a captured charge (compensation when confirmation fails)."""
        if not charge_id:
            raise ServiceValidationError("refund needs a charge id")
        return self._idempotent("refund", key, lambda: {"charge_id": charge_id, "state": "refunded"})
