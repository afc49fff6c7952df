"""Workflow 4 end to end: the booking saga, its compensations, and exactly-once charging when the charge
is retried after transient failures. (Exactly once across a host crash: test_e2e_crash.py.)"""

from __future__ import annotations

import sys
from datetime import timedelta

import pytest
from azure.durable_functions.models.OrchestrationRuntimeStatus import OrchestrationRuntimeStatus

from durablehost.testing import DurableTestHost
from tests.app.e2e.support import (
    BOOKING,
    FAST_RETRY,
    TASK_FAILED,
    calls,
    events,
    key,
    scheduled_names,
)

Completed = OrchestrationRuntimeStatus.Completed
Running = OrchestrationRuntimeStatus.Running


def results(operation: str) -> dict[str, dict[str, object] | None]:
    """key -> recorded result (None: attempted, never succeeded) of one fake-service operation."""
    return {k: row["result"] for k, row in calls(operation).items()}


async def test_a_booking_is_booked_charged_and_confirmed(host: DurableTestHost) -> None:
    instance_id = await host.client.start_new("booking_saga_orchestrator", client_input={"booking": BOOKING})
    status = await host.wait_for_completion(instance_id)
    assert status.runtime_status == Completed, status.output
    output = status.output
    assert output["outcome"] == "confirmed"
    assert output["compensations"] == []
    assert status.custom_status == {"stage": "confirmed", "booking_ref": output["booking_ref"]}
    charge = results("payments.charge")
    assert list(charge) == [key(instance_id, "charge")]
    assert charge[key(instance_id, "charge")]["charge_id"] == output["charge_id"]
    assert charge[key(instance_id, "charge")]["amount"] == 398.0
    assert results("flights.confirm")[key(instance_id, "confirm")]["state"] == "confirmed"
    assert calls("flights.cancel") == {}
    assert calls("payments.refund") == {}


async def test_a_declined_card_cancels_the_booking(host: DurableTestHost) -> None:
    booking = {**BOOKING, "card_token": "tok_declined"}
    instance_id = await host.client.start_new("booking_saga_orchestrator", client_input={"booking": booking})
    status = await host.wait_for_completion(instance_id)

    assert status.runtime_status == Completed, status.output
    output = status.output
    assert output["outcome"] == "compensated"
    assert output["failed_step"] == "charge"
    assert output["reason"] == "card declined"
    assert output["compensations"] == ["cancel"]
    assert output["charge_id"] is None
    assert status.custom_status == {"stage": "compensated", "step": "charge"}
    booked = results("flights.book")[key(instance_id, "book")]
    cancelled = results("flights.cancel")[key(instance_id, "cancel")]
    assert cancelled == {"booking_ref": booked["booking_ref"], "state": "cancelled"}
    assert calls("payments.charge") == {}  # a declined card is refused before anything is recorded
    assert calls("flights.confirm") == {}
    # A validation failure is not retried.
    assert scheduled_names(await host.history(instance_id)) == [
        "book_flight",
        "charge_payment",
        "cancel_booking",
    ]


async def test_a_rejected_booking_needs_no_compensation(host: DurableTestHost) -> None:
    booking = {**BOOKING, "flight": "not-a-flight"}
    instance_id = await host.client.start_new("booking_saga_orchestrator", client_input={"booking": booking})
    output = (await host.wait_for_completion(instance_id)).output
    assert output["outcome"] == "rejected"
    assert output["failed_step"] == "book"
    assert "not a flight number" in output["reason"]
    assert scheduled_names(await host.history(instance_id)) == ["book_flight"]


async def test_a_confirmation_that_keeps_failing_refunds_and_cancels(
    host: DurableTestHost, app_env: pytest.MonkeyPatch
) -> None:
    app_env.setenv("FAKE_TRANSIENT_FAILURES", "flights.confirm=5")
    instance_id = await host.client.start_new(
        "booking_saga_orchestrator", client_input={"booking": BOOKING, "retry": FAST_RETRY}
    )
    await host.advance(timedelta(minutes=10))
    status = await host.client.get_status(instance_id)

    assert status.runtime_status == Completed, status.output
    output = status.output
    assert output["outcome"] == "compensated"
    assert output["failed_step"] == "confirm"
    assert "injected transient failure 3 of 5" in output["reason"]
    assert output["compensations"] == ["refund", "cancel"]
    assert calls("flights.confirm")[key(instance_id, "confirm")] == {"attempts": 3, "result": None}
    refund = results("payments.refund")[key(instance_id, "refund")]
    assert refund == {"charge_id": output["charge_id"], "state": "refunded"}
    assert results("flights.cancel")[key(instance_id, "cancel")]["state"] == "cancelled"


async def test_a_retried_charge_charges_once(host: DurableTestHost, app_env: pytest.MonkeyPatch) -> None:
    # Two transient failures, then success on the third and last attempt.
    app_env.setenv("FAKE_TRANSIENT_FAILURES", "payments.charge=2,flights.book=1")
    instance_id = await host.client.start_new(
        "booking_saga_orchestrator", client_input={"booking": BOOKING, "retry": FAST_RETRY}
    )
    await host.run_until_idle()
    assert (await host.client.get_status(instance_id)).runtime_status == Running  # waiting for a retry
    await host.advance(timedelta(minutes=10))
    status = await host.client.get_status(instance_id)

    assert status.runtime_status == Completed, status.output
    assert status.output["outcome"] == "confirmed"
    charge = calls("payments.charge")
    assert list(charge) == [key(instance_id, "charge")]  # one key: every attempt carried the same one
    row = charge[key(instance_id, "charge")]
    assert row["attempts"] == 3
    assert row["result"]["charge_id"] == status.output["charge_id"]
    assert calls("flights.book")[key(instance_id, "book")]["attempts"] == 2

    history = await host.history(instance_id)
    assert scheduled_names(history).count("charge_payment") == 3
    assert len(events(history, TASK_FAILED)) == 3  # one book, two charges

    # The same key once more (a re-delivered activity) is answered from the ledger, not charged again.
    activities = sys.modules["activities.booking"]
    again = activities.charge_payment(
        {"key": key(instance_id, "charge"), "amount": 398.0, "currency": "EUR", "card_token": "tok_visa"}
    )
    assert again["replayed"] is True
    assert again["charge_id"] == status.output["charge_id"]
    assert calls("payments.charge")[key(instance_id, "charge")]["attempts"] == 3


async def test_a_charge_that_never_succeeds_cancels_the_booking(
    host: DurableTestHost, app_env: pytest.MonkeyPatch
) -> None:
    app_env.setenv("FAKE_TRANSIENT_FAILURES", "payments.charge=9")
    instance_id = await host.client.start_new(
        "booking_saga_orchestrator", client_input={"booking": BOOKING, "retry": FAST_RETRY}
    )
    await host.advance(timedelta(minutes=10))
    output = (await host.client.get_status(instance_id)).output
    assert output["outcome"] == "compensated"
    assert output["failed_step"] == "charge"
    assert calls("payments.charge")[key(instance_id, "charge")] == {"attempts": 3, "result": None}
    assert results("flights.cancel")[key(instance_id, "cancel")]["state"] == "cancelled"
