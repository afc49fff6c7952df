"""Builds the fake services from settings."""

from __future__ import annotations

from dataclasses import dataclass

from shared.services.flights import FlightService
from shared.services.ledger import FAKE_SERVICE_TABLE, CallLedger, TableCallLedger, memory_ledger
from shared.services.notifications import NotificationService
from shared.services.payments import PaymentService
from shared.settings import Settings
from shared.tables import table_client


@dataclass(frozen=True)
class Services:
    """The fake services, sharing one ledger."""

    ledger: CallLedger
    flights: FlightService
    payments: PaymentService
    notifications: NotificationService


def build_services(settings: Settings) -> Services:
    """Services on the ledger chosen by ``APP_STATE_STORE`` with ``FAKE_TRANSIENT_FAILURES`` applied."""
    ledger: CallLedger
    if settings.state_store == "memory":
        ledger = memory_ledger()
    else:
        ledger = TableCallLedger(table_client(settings.storage, FAKE_SERVICE_TABLE))
    failures = settings.transient_failures
    return Services(
        ledger=ledger,
        flights=FlightService(ledger, failures),
        payments=PaymentService(ledger, failures),
        notifications=NotificationService(ledger, failures),
    )
