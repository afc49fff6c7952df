"""Fake downstream services (flights, payments, notifications) that record every call by idempotency key.

Errors: :class:`TransientServiceError` (worth retrying: the orchestrator's RetryOptions retry it) and
:class:`ServiceValidationError` (the request itself is wrong: never retried, the activity turns it into
a ``{"status": "rejected"}`` result). See ``ledger.py`` for where calls are recorded.
"""

from shared.services.errors import ServiceValidationError, TransientServiceError
from shared.services.factory import Services, build_services
from shared.services.flights import FlightService
from shared.services.ledger import CallLedger, InMemoryCallLedger, TableCallLedger, memory_ledger
from shared.services.notifications import NotificationService
from shared.services.payments import PaymentService

__all__ = [
    "CallLedger",
    "FlightService",
    "InMemoryCallLedger",
    "NotificationService",
    "PaymentService",
    "ServiceValidationError",
    "Services",
    "TableCallLedger",
    "TransientServiceError",
    "build_services",
    "memory_ledger",
]
