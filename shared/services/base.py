"""The idempotent call protocol shared by every fake service."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from shared.services.errors import TransientServiceError
from shared.services.ledger import CallLedger


class FakeService:
    """Runs an operation at most once per idempotency key and injects transient failures on request."""

    name = "service"

    def __init__(self, ledger: CallLedger, transient_failures: Mapping[str, int] | None = None) -> None:
        self.ledger = ledger
        self._transient_failures = dict(transient_failures or {})

    def _idempotent(self, operation: str, key: str, perform: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Return the recorded result for ``key``, or count an attempt, maybe fail it, and perform.

        A repeated key returns the first result with ``"replayed": True`` and performs nothing, which is
        what makes activity retries and re-deliveries safe.
        """
        if not key:
            raise ValueError(f"{self.name}.{operation} needs an idempotency key")
        qualified = f"{self.name}.{operation}"
        recorded = self.ledger.result(qualified, key)
        if recorded is not None:
            return {**recorded, "replayed": True}
        attempt = self.ledger.count_attempt(qualified, key)
        failures = self._transient_failures.get(qualified, 0)
        if attempt <= failures:
            raise TransientServiceError(
                f"{qualified}: injected transient failure {attempt} of {failures} for key {key}"
            )
        return {**self.ledger.record_result(qualified, key, perform()), "replayed": False}
