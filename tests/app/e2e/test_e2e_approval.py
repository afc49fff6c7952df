"""Workflow 1 end to end: request → classification → approval wait (reminders, deadline) → action, in
the in-process host on a virtual clock. Events are raised as the SDK client raises them (double-encoded
JSON, df-host-protocol §5.4) unless a test says it sends a raw body as curl does."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from datetime import timedelta
from typing import Any

import pytest
from azure.durable_functions.models.OrchestrationRuntimeStatus import OrchestrationRuntimeStatus

from durablehost.errors import InstanceFinished
from durablehost.testing import DurableTestHost
from tests.app.e2e.support import (
    APPROVAL_WORKFLOW,
    EVENT_RAISED,
    NO_APPROVAL_REQUEST,
    REFUND_REQUEST,
    T0,
    TIMER_FIRED,
    approval,
    calls,
    events,
    key,
    scheduled_names,
)

Completed = OrchestrationRuntimeStatus.Completed
Running = OrchestrationRuntimeStatus.Running


async def start(host: DurableTestHost, **options: Any) -> str:
    """Start the approval workflow for the refund request and run until it waits for approval."""
    instance_id = await host.client.start_new(
        APPROVAL_WORKFLOW, client_input={"request": REFUND_REQUEST, **options}
    )
    await host.run_until_idle()
    status = await host.client.get_status(instance_id)
    assert status.runtime_status == Running, status.output
    assert status.custom_status["stage"] == "awaiting_approval"
    return instance_id


def reminders(instance_id: str) -> list[str]:
    """Subjects of the reminders sent for an instance, in reminder order (from the notification ledger)."""
    sent = calls("notifications.send")
    subjects = []
    for number in range(1, 100):
        row = sent.get(key(instance_id, f"reminder-{number}"))
        if row is None:
            break
        assert row["result"] is not None, row
        subjects.append(row["result"]["subject"])
    return subjects


async def test_a_request_without_approval_is_done_at_once(host: DurableTestHost) -> None:
    instance_id = await host.client.start_new(
        APPROVAL_WORKFLOW, client_input={"request": NO_APPROVAL_REQUEST}
    )
    status = await host.wait_for_completion(instance_id)
    assert status.runtime_status == Completed
    assert status.output["outcome"] == "done"
    assert status.output["classification"]["needs_approval"] is False
    assert status.custom_status == {
        "stage": "done",
        "by": [],
        "reference": status.output["action"]["reference"],
    }
    assert list(calls("actions.perform")) == [key(instance_id, "action")]


async def test_approved_request_is_acted_on_once(host: DurableTestHost) -> None:
    instance_id = await start(host)
    waiting = (await host.client.get_status(instance_id)).custom_status
    assert waiting["intent"] == "refund"
    assert waiting["since"] == T0.isoformat()
    assert waiting["deadline"] == (T0 + timedelta(hours=72)).isoformat()
    assert calls("actions.perform") == {}

    await host.advance(timedelta(hours=1))
    await host.client.raise_event(instance_id, "approval", approval("ap-1", "alice", comment="ok"))
    status = await host.wait_for_completion(instance_id)

    assert status.runtime_status == Completed
    output = status.output
    assert output["outcome"] == "done"
    assert [a["approver"] for a in output["approvals"]] == ["alice"]
    assert output["approvals"][0]["comment"] == "ok"
    assert output["rejection"] is None
    assert output["reminders_sent"] == 0
    assert status.custom_status == {
        "stage": "done",
        "by": ["alice"],
        "reference": output["action"]["reference"],
    }
    actions = calls("actions.perform")
    assert list(actions) == [key(instance_id, "action")]
    assert actions[key(instance_id, "action")]["result"]["reference"] == output["action"]["reference"]

    # The cancelled deadline and reminder timers change nothing when their time comes.
    history = await host.history(instance_id)
    await host.advance(timedelta(hours=100))
    assert await host.history(instance_id) == history
    assert (await host.client.get_status(instance_id)).output == output
    assert reminders(instance_id) == []


async def test_a_curl_style_raw_body_approves_too(host: DurableTestHost) -> None:
    instance_id = await start(host)
    await host.client.raise_event_raw(instance_id, "approval", json.dumps(approval("ap-raw", "carol")))
    status = await host.wait_for_completion(instance_id)
    assert status.runtime_status == Completed
    assert status.output["outcome"] == "done"
    assert status.output["approvals"][0]["approver"] == "carol"


async def test_rejected_request_is_not_acted_on(host: DurableTestHost) -> None:
    instance_id = await start(host)
    await host.client.raise_event(instance_id, "approval", approval("ap-1", "bob", "reject", "too much"))
    status = await host.wait_for_completion(instance_id)

    assert status.runtime_status == Completed
    assert status.output["outcome"] == "rejected"
    assert status.output["rejection"]["approver"] == "bob"
    assert status.output["action"] is None
    assert status.custom_status == {"stage": "rejected", "by": "bob", "comment": "too much"}
    assert calls("actions.perform") == {}
    assert "perform_request_action" not in scheduled_names(await host.history(instance_id))


async def test_reminders_are_sent_on_schedule_until_the_deadline(host: DurableTestHost) -> None:
    instance_id = await start(host, deadline_hours=10, reminder_interval_hours=3)

    expected_by_hour = {2: 0, 3: 1, 5: 1, 6: 2, 8: 2, 9: 3, 9.9: 3}
    elapsed = 0.0
    for hour, count in expected_by_hour.items():
        await host.advance(timedelta(hours=hour - elapsed))
        elapsed = hour
        sent = reminders(instance_id)
        assert len(sent) == count, f"after {hour} h: {sent}"
        status = await host.client.get_status(instance_id)
        assert status.custom_status["stage"] == "awaiting_approval"
        assert status.custom_status["reminders_sent"] == count
    assert sent == [f"Reminder {n}: approval needed for request {instance_id}" for n in (1, 2, 3)]
    assert all(row["attempts"] == 1 for row in calls("notifications.send").values())

    # The reminder timers fired at 3, 6 and 9 hours; the deadline timer at 10.
    await host.advance(timedelta(hours=1))
    status = await host.client.get_status(instance_id)
    assert status.runtime_status == Completed
    assert status.output["reminders_sent"] == 3
    fired = [e["FireAt"] for e in events(await host.history(instance_id), TIMER_FIRED)]
    hours = [(T0 + timedelta(hours=h)).strftime("%Y-%m-%dT%H:%M:%S") for h in (3, 6, 9, 10)]
    assert [f[:19] for f in fired] == hours
    assert len(reminders(instance_id)) == 3  # none at or after the deadline


async def test_deadline_expiry_rejects_by_default(host: DurableTestHost) -> None:
    instance_id = await start(host)  # 72 h deadline, reminders every 24 h
    await host.advance(timedelta(hours=71, minutes=59))
    assert (await host.client.get_status(instance_id)).runtime_status == Running

    await host.advance(timedelta(minutes=1))
    status = await host.client.get_status(instance_id)
    assert status.runtime_status == Completed
    assert status.output["outcome"] == "expired"
    assert status.output["reminders_sent"] == 2
    assert status.custom_status == {"stage": "expired", "policy": "reject"}
    assert calls("actions.perform") == {}
    assert key(instance_id, "escalation") not in calls("notifications.send")


async def test_deadline_expiry_escalates_when_configured(host: DurableTestHost) -> None:
    instance_id = await start(
        host,
        deadline_hours=4,
        reminder_interval_hours=24,
        expiry_policy="escalate",
        escalation_contact="boss@example.com",
    )
    await host.advance(timedelta(hours=4))
    status = await host.client.get_status(instance_id)
    assert status.runtime_status == Completed
    assert status.output["outcome"] == "escalated"
    assert status.output["reminders_sent"] == 0
    escalation = calls("notifications.send")[key(instance_id, "escalation")]["result"]
    assert escalation["recipient"] == "boss@example.com"
    assert escalation["subject"] == f"Escalation: request {instance_id} was not approved in time"
    assert json.loads(escalation["body"]) == {"request": REFUND_REQUEST}
    assert calls("actions.perform") == {}


async def test_the_orchestrator_ignores_a_repeated_approval_id(host: DurableTestHost) -> None:
    instance_id = await start(host, required_approvals=2)
    await host.client.raise_event(instance_id, "approval", approval("ap-1", "alice"))
    await host.run_until_idle()
    # At-least-once delivery: the same approval arrives again, once SDK-encoded and once as a raw body.
    await host.client.raise_event(instance_id, "approval", approval("ap-1", "alice"))
    await host.client.raise_event_raw(instance_id, "approval", json.dumps(approval("ap-1", "alice")))
    await host.run_until_idle()
    status = await host.client.get_status(instance_id)
    assert status.runtime_status == Running, "a repeated approval id counted as a second approval"
    assert status.custom_status["approvals"] == 1

    await host.client.raise_event(instance_id, "approval", approval("ap-2", "bob"))
    status = await host.wait_for_completion(instance_id)
    assert status.runtime_status == Completed
    assert status.output["outcome"] == "done"
    assert [a["approval_id"] for a in status.output["approvals"]] == ["ap-1", "ap-2"]
    assert status.custom_status["by"] == ["alice", "bob"]
    assert calls("actions.perform")[key(instance_id, "action")]["attempts"] == 1


async def test_a_malformed_approval_event_is_ignored(host: DurableTestHost) -> None:
    instance_id = await start(host)
    await host.client.raise_event(instance_id, "approval", {"approval_id": "x", "decision": "maybe"})
    await host.client.raise_event_raw(instance_id, "approval", '"not an object"')
    await host.run_until_idle()
    assert (await host.client.get_status(instance_id)).custom_status["stage"] == "awaiting_approval"

    await host.client.raise_event(instance_id, "approval", approval("ap-1", "alice"))
    status = await host.wait_for_completion(instance_id)
    assert status.output["outcome"] == "done"


async def test_a_late_approval_after_the_deadline_changes_nothing(
    host: DurableTestHost, app_env: pytest.MonkeyPatch
) -> None:
    # The escalation notice fails once, so the instance is still running (stage "expired") while a
    # late approval arrives: the orchestrator no longer waits for approvals and must not act on it.
    app_env.setenv("FAKE_TRANSIENT_FAILURES", "notifications.send=1")
    instance_id = await start(
        host,
        deadline_hours=2,
        reminder_interval_hours=24,
        expiry_policy="escalate",
        retry={"first_retry_ms": 600_000, "max_attempts": 3},
    )
    await host.advance(timedelta(hours=2))
    status = await host.client.get_status(instance_id)
    assert status.runtime_status == Running
    assert status.custom_status == {"stage": "expired", "policy": "escalate"}

    await host.client.raise_event(instance_id, "approval", approval("ap-late", "alice"))
    await host.advance(timedelta(minutes=10))
    status = await host.client.get_status(instance_id)
    assert status.runtime_status == Completed
    assert status.output["outcome"] == "escalated"
    assert status.output["approvals"] == []
    assert calls("actions.perform") == {}
    assert calls("notifications.send")[key(instance_id, "escalation")]["attempts"] == 2


async def test_an_approval_after_completion_is_refused(host: DurableTestHost) -> None:
    instance_id = await start(host, deadline_hours=1)
    await host.advance(timedelta(hours=1))
    assert (await host.client.get_status(instance_id)).output["outcome"] == "expired"

    with pytest.raises(InstanceFinished):
        await host.client.raise_event(instance_id, "approval", approval("ap-late", "alice"))
    status = await host.wait_for_completion(instance_id)
    assert status.output["outcome"] == "expired"
    assert calls("actions.perform") == {}


async def test_an_approval_raised_before_the_wait_begins_is_not_lost(host: DurableTestHost) -> None:
    # Raised while the request is still being classified (the HTTP route refuses this with 409, but the
    # SDK client or the management API can do it): the first wait must receive it, exactly once.
    instance_id = await host.client.start_new(APPROVAL_WORKFLOW, client_input={"request": REFUND_REQUEST})
    await host.client.raise_event(instance_id, "approval", approval("ap-early", "alice"))
    status = await host.wait_for_completion(instance_id)
    assert status.runtime_status == Completed, status.custom_status
    assert [a["approval_id"] for a in status.output["approvals"]] == ["ap-early"]


class HeldClassification:
    """Holds the classification activity until released, so that events raised meanwhile reach the
    instance before the classification does, as they would in Azure (in virtual time an activity result
    and an event of the same instant are put into history result first)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        client = sys.modules["shared.llm.offline"].OfflineLLMClient
        original = client.complete

        def complete(llm: Any, request: Any) -> Any:
            if request.task == "classify":
                self.started.set()
                assert self.release.wait(20), "the test never released the classification"
            return original(llm, request)

        monkeypatch.setattr(client, "complete", complete)

    async def until_started(self) -> None:
        assert await asyncio.to_thread(self.started.wait, 20), "the classification never started"


async def raised_in_history(host: DurableTestHost, instance_id: str, count: int) -> None:
    """Wait until ``count`` events are in the instance's history (the host runs on its own meanwhile)."""
    for _ in range(2000):
        if len(events(await host.history(instance_id), EVENT_RAISED)) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{count} events never reached the history of {instance_id}")


async def test_an_early_approval_counts_once_when_two_are_required(
    host: DurableTestHost, app_env: pytest.MonkeyPatch
) -> None:
    # The review's case: on Azure the SDK hands an approval raised before its wait to every later wait
    # (azure-functions-durable-python#507), so the orchestrator saw it again and again, ignored it as a
    # repeat each time, and failed after MAX_IGNORED_EVENTS.
    held = HeldClassification(app_env)
    instance_id = await host.client.start_new(
        APPROVAL_WORKFLOW, client_input={"request": REFUND_REQUEST, "required_approvals": 2}
    )
    await held.until_started()
    await host.client.raise_event(instance_id, "approval", approval("ap-early", "alice"))
    await raised_in_history(host, instance_id, 1)  # taken while classifying, before any approval wait
    held.release.set()
    await host.run_until_idle()
    status = await host.client.get_status(instance_id)
    assert status.runtime_status == Running, status.output
    assert status.custom_status["stage"] == "awaiting_approval"
    assert status.custom_status["approvals"] == 1

    await host.client.raise_event(instance_id, "approval", approval("ap-2", "bob"))
    status = await host.wait_for_completion(instance_id)
    assert status.runtime_status == Completed, status.output
    assert [a["approval_id"] for a in status.output["approvals"]] == ["ap-early", "ap-2"]
    assert calls("actions.perform")[key(instance_id, "action")]["attempts"] == 1


async def test_approvals_raised_during_classification_are_all_counted(
    host: DurableTestHost, app_env: pytest.MonkeyPatch
) -> None:
    # Two approvals before any approval wait: on Azure the second would overwrite the first and then
    # stand in for every later wait, had the orchestrator not been waiting while it classifies.
    held = HeldClassification(app_env)
    instance_id = await host.client.start_new(
        APPROVAL_WORKFLOW, client_input={"request": REFUND_REQUEST, "required_approvals": 2}
    )
    await held.until_started()
    await host.client.raise_event(instance_id, "approval", approval("ap-1", "alice"))
    await host.client.raise_event(instance_id, "approval", approval("ap-2", "bob"))
    await raised_in_history(host, instance_id, 2)
    held.release.set()
    status = await host.wait_for_completion(instance_id)
    assert status.runtime_status == Completed, status.output
    assert [a["approval_id"] for a in status.output["approvals"]] == ["ap-1", "ap-2"]


@pytest.mark.parametrize("approved", [True, False], ids=["approved", "expired"])
async def test_a_deadline_longer_than_six_days(host: DurableTestHost, approved: bool) -> None:
    # Azure Storage splits a timer of more than 6 days into 3-day slices, which the SDK schedules one by
    # one (Azure-exact fidelity reproduces it); the deadline must hold either way.
    instance_id = await start(host, deadline_hours=10 * 24, reminder_interval_hours=4 * 24)
    if approved:
        await host.advance(timedelta(days=1))
        await host.client.raise_event(instance_id, "approval", approval("ap-1", "alice"))
        status = await host.wait_for_completion(instance_id)
        assert (status.output["outcome"], status.output["reminders_sent"]) == ("done", 0)
        await host.advance(timedelta(days=12))  # the slices still due change nothing
        assert (await host.client.get_status(instance_id)).output == status.output
        return
    await host.advance(timedelta(days=9, hours=23))
    assert (await host.client.get_status(instance_id)).runtime_status == Running
    await host.advance(timedelta(hours=1))
    status = await host.client.get_status(instance_id)
    assert status.runtime_status == Completed
    assert (status.output["outcome"], status.output["reminders_sent"]) == ("expired", 2)
