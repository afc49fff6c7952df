"""The approval de-dup store and the fake-service call ledger: one contract, both backends (in-memory,
and azure-data-tables on Azurite), plus the fake services' idempotency and failure injection."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable

import pytest

from shared.approvals import (
    APPROVALS_TABLE,
    ApprovalDecision,
    ApprovalStore,
    InMemoryApprovalStore,
    TableApprovalStore,
)
from shared.services import (
    CallLedger,
    FlightService,
    InMemoryCallLedger,
    PaymentService,
    ServiceValidationError,
    TableCallLedger,
    TransientServiceError,
)
from shared.services.ledger import FAKE_SERVICE_TABLE
from shared.tables import (
    AZURITE_CONNECTION_STRING,
    async_table_client,
    close_async_clients,
    expand_connection_string,
    table_client,
)


@pytest.fixture(params=["memory", pytest.param("table", marks=pytest.mark.azurite)])
def ledger(request: pytest.FixtureRequest) -> CallLedger:
    if request.param == "memory":
        return InMemoryCallLedger()
    return TableCallLedger(
        table_client(request.getfixturevalue("azurite_connection_string"), FAKE_SERVICE_TABLE)
    )


@pytest.fixture(params=["memory", pytest.param("table", marks=pytest.mark.azurite)])
async def approvals(request: pytest.FixtureRequest) -> AsyncIterator[ApprovalStore]:
    if request.param == "memory":
        yield InMemoryApprovalStore()
        return
    # The async table client: the approval route runs on the worker's event loop.
    client = await async_table_client(request.getfixturevalue("azurite_connection_string"), APPROVALS_TABLE)
    yield TableApprovalStore(client)
    await close_async_clients()  # this test's event loop ends


def _unique() -> str:
    return uuid.uuid4().hex  # Azurite is shared by the session: keep rows of different tests apart


def _decision(approval_id: str, approver: str = "alice", decision: str = "approve") -> ApprovalDecision:
    return ApprovalDecision(approval_id, approver, decision, "ok", "2026-01-01T00:00:00+00:00")


async def test_approval_recorded_once_and_original_returned(approvals: ApprovalStore) -> None:
    instance = _unique()
    assert await approvals.get(instance, "a1") is None
    created, first = await approvals.record(instance, _decision("a1"))
    assert await approvals.get(instance, "a1") == first
    assert created and first.decision == _decision("a1") and not first.delivered
    created, again = await approvals.record(instance, _decision("a1", approver="mallory", decision="reject"))
    assert not created
    assert again.decision == _decision("a1")  # the original outcome, not the replayed body
    await approvals.mark_delivered(instance, "a1")
    assert (await approvals.record(instance, _decision("a1")))[1].delivered


async def test_approval_ids_are_per_instance(approvals: ApprovalStore) -> None:
    assert (await approvals.record(_unique(), _decision("same")))[0]
    assert (await approvals.record(_unique(), _decision("same")))[0]


def test_ledger_counts_attempts_and_keeps_the_first_result(ledger: CallLedger) -> None:
    key = _unique()
    assert ledger.result("svc.op", key) is None
    assert [ledger.count_attempt("svc.op", key) for _ in range(3)] == [1, 2, 3]
    assert ledger.record_result("svc.op", key, {"v": 1}) == {"v": 1}
    assert ledger.record_result("svc.op", key, {"v": 2}) == {"v": 1}
    assert ledger.result("svc.op", key) == {"v": 1}
    assert ledger.calls("svc.op")[key] == {"attempts": 3, "result": {"v": 1}}


def test_a_repeated_key_charges_once(ledger: CallLedger) -> None:
    payments = PaymentService(ledger)
    key = _unique()
    first = payments.charge(key, 10.0, "EUR", "tok_visa")
    second = payments.charge(key, 10.0, "EUR", "tok_visa")
    assert first["replayed"] is False and second["replayed"] is True
    assert first["charge_id"] == second["charge_id"]
    assert ledger.calls("payments.charge")[key]["attempts"] == 1


def test_injected_transient_failures_then_success(ledger: CallLedger) -> None:
    flights = FlightService(ledger, {"flights.book": 2})
    key = _unique()
    for attempt in (1, 2):
        with pytest.raises(TransientServiceError, match=f"injected transient failure {attempt} of 2"):
            flights.book(key, "XY123", "2026-12-01", 2)
    booked = flights.book(key, "XY123", "2026-12-01", 2)
    assert booked["state"] == "held" and booked["booking_ref"].startswith("BK-")
    recorded = ledger.calls("flights.book")[key]
    assert recorded["attempts"] == 3
    assert recorded["result"]["booking_ref"] == booked["booking_ref"]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.charge("k", 0, "EUR", "tok_visa"), "amount must be positive"),
        (lambda s: s.charge("k", 5, "euro", "tok_visa"), "not an ISO 4217 code"),
        (lambda s: s.charge("k", 5, "EUR", "4111111111111111"), "payment token"),
        (lambda s: s.charge("k", 5, "EUR", "tok_declined"), "card declined"),
    ],
)
def test_payment_validation_errors(call: Callable[[PaymentService], object], message: str) -> None:
    with pytest.raises(ServiceValidationError, match=message):
        call(PaymentService(InMemoryCallLedger()))


def test_development_storage_is_expanded() -> None:
    assert expand_connection_string("UseDevelopmentStorage=true") == AZURITE_CONNECTION_STRING
    assert expand_connection_string("usedevelopmentstorage=TRUE;") == AZURITE_CONNECTION_STRING
    other = "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=b;EndpointSuffix=core.windows.net"
    assert expand_connection_string(other) == other
