"""Host crashes under the app, with two test hosts on one SQLite file: the first stops without draining,
the second takes over.

Exactly-once charging: the charge activity has charged the card, but its result never reached history.
The second host runs the activity again (at least once), and the fake payment service, keyed by the
idempotency key the orchestrator derived, answers from its ledger instead of charging again. Both hosts
must see one ledger, so that test keeps the app's state in tables (Azurite), as hosts in separate
processes would; each host load imports the app afresh, so the in-memory ledger would not do.

The approval wait: its timers and reminders carry on in the second host.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.durable_functions.models.OrchestrationRuntimeStatus import OrchestrationRuntimeStatus

from durablehost.store import open_store
from durablehost.testing import DurableTestHost
from tests.app.conftest import REPO_ROOT
from tests.app.e2e.support import (
    APPROVAL_WORKFLOW,
    BOOKING,
    REFUND_REQUEST,
    T0,
    TASK_COMPLETED,
    events,
    key,
    scheduled_names,
)


def instrument_charges(
    monkeypatch: pytest.MonkeyPatch, seen: list[dict[str, Any]], block: Callable[[], None] | None
) -> None:
    """Wrap the loaded app's PaymentService.charge: record what each call returned, then run ``block``
    (the crash window: the charge is done, the activity has not returned yet)."""
    payment_class = sys.modules["shared.services.payments"].PaymentService
    original = payment_class.charge

    def charge(self: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        result: dict[str, Any] = original(self, *args, **kwargs)
        seen.append(result)
        if block is not None:
            block()
        return result

    monkeypatch.setattr(payment_class, "charge", charge)


async def wait_for(event: threading.Event, timeout: float = 20.0) -> None:
    assert await asyncio.to_thread(event.wait, timeout), f"not set within {timeout} s"


@pytest.mark.azurite
async def test_a_charge_re_run_after_a_host_crash_charges_once(
    app_env: pytest.MonkeyPatch, azurite_connection_string: str, tmp_path: Path, fidelity: str
) -> None:
    app_env.setenv("APP_STATE_STORE", "table")
    app_env.setenv("AzureWebJobsStorage", azurite_connection_string)
    store = open_store(f"sqlite:{tmp_path / 'hub.db'}")
    charged, release = threading.Event(), threading.Event()
    first_calls: list[dict[str, Any]] = []
    second_calls: list[dict[str, Any]] = []

    def hold() -> None:
        charged.set()
        release.wait(20)

    try:
        async with DurableTestHost.start(REPO_ROOT, store=store, start_time=T0, fidelity=fidelity) as first:
            instrument_charges(app_env, first_calls, hold)
            instance_id = await first.client.start_new(
                "booking_saga_orchestrator", client_input={"booking": BOOKING}
            )
            await wait_for(charged)
            await first.host.stop(drain=False)  # the crash: the charge's result is never committed
        release.set()  # let the orphaned activity thread finish; its result goes nowhere

        assert [c["replayed"] for c in first_calls] == [False]

        async with DurableTestHost.start(REPO_ROOT, store=store, start_time=T0, fidelity=fidelity) as second:
            instrument_charges(app_env, second_calls, None)
            status = await second.wait_for_completion(instance_id)
            assert status.runtime_status == OrchestrationRuntimeStatus.Completed, status.output
            output = status.output
            ledger = sys.modules["shared.services.ledger"]
            table = ledger.TableCallLedger(
                sys.modules["shared.tables"].table_client(
                    azurite_connection_string, ledger.FAKE_SERVICE_TABLE
                )
            )
            rows = table.calls("payments.charge")
            history = await second.history(instance_id)
    finally:
        release.set()
        await store.close()

    # The activity ran twice (once per host); the card was charged once.
    assert [c["replayed"] for c in second_calls] == [True]
    assert second_calls[0]["charge_id"] == first_calls[0]["charge_id"] == output["charge_id"]
    assert output["outcome"] == "confirmed"
    # The same scheduled task ran again (not a retry: no failure was recorded), and completed once.
    assert scheduled_names(history).count("charge_payment") == 1
    assert len(events(history, TASK_COMPLETED)) == 3  # book, charge, confirm
    charge_key = key(instance_id, "charge")
    assert rows[charge_key]["attempts"] == 1
    assert rows[charge_key]["result"]["charge_id"] == output["charge_id"]


@pytest.mark.parametrize("crash_after_hours", [5, 30])
async def test_an_approval_wait_survives_a_host_crash(
    app_env: pytest.MonkeyPatch, tmp_path: Path, crash_after_hours: int, fidelity: str
) -> None:
    # Memory app state is enough here: what must survive is the host's state (timers, the wait), in SQLite.
    store = open_store(f"sqlite:{tmp_path / 'hub.db'}")
    options = {"request": REFUND_REQUEST, "deadline_hours": 48, "reminder_interval_hours": 12}
    try:
        async with DurableTestHost.start(REPO_ROOT, store=store, start_time=T0, fidelity=fidelity) as first:
            instance_id = await first.client.start_new(APPROVAL_WORKFLOW, client_input=options)
            await first.advance(timedelta(hours=crash_after_hours))
            before = (await first.client.get_status(instance_id)).custom_status
            assert before["reminders_sent"] == crash_after_hours // 12
            await first.host.stop(drain=False)

        later = T0 + timedelta(hours=crash_after_hours)
        async with DurableTestHost.start(
            REPO_ROOT, store=store, start_time=later, fidelity=fidelity
        ) as second:
            await second.advance(timedelta(hours=47 - crash_after_hours))
            status = await second.client.get_status(instance_id)
            assert status.runtime_status == OrchestrationRuntimeStatus.Running
            assert status.custom_status["reminders_sent"] == 3  # at 12, 24 and 36 hours
            await second.advance(timedelta(hours=1))
            status = await second.client.get_status(instance_id)
            history = await second.history(instance_id)
    finally:
        await store.close()
    assert status.runtime_status == OrchestrationRuntimeStatus.Completed
    assert status.output["outcome"] == "expired"
    assert status.output["reminders_sent"] == 3
    assert scheduled_names(history).count("send_notification") == 3
