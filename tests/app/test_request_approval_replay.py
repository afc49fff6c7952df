"""The approval orchestrator replayed by the SDK's own executor over histories built by hand (the DTFx
event shapes of df-host-protocol §1.4), asserting on the actions it emits. No host is involved: this
is what every host, the real extension included, feeds the orchestrator."""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support.histories import History

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
INSTANCE = "req-1"
NEEDS_APPROVAL = {"intent": "refund", "confidence": 0.9, "needs_approval": True, "summary": "", "tokens": 10}
APPROVAL = {
    "approval_id": "ap-1",
    "approver": "alice",
    "decision": "approve",
    "comment": "",
    "decided_at": "x",
}

WORKFLOW = "request_approval_orchestrator"


def _ts(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def posted(data: Any) -> str:
    # As on Azure: the SDK client posts json.dumps(json.dumps(v)) and the extension stores that body as
    # the event input, so the orchestrator receives the *string* json.dumps(v) (df-host-protocol §5.4).
    # The builder encodes the value once more: the Input is json.dumps(json.dumps(v)).
    return json.dumps(data)


class Replay(History):
    """The history (tests.support.histories), grown episode by episode; ``run`` replays it all."""

    def __init__(self, handle: Callable[[str], str], data: dict[str, Any]) -> None:
        super().__init__(WORKFLOW, instance_id=INSTANCE, at=T0)
        self._handle = handle
        self.started(data)

    def run(self) -> dict[str, Any]:
        """Run the orchestrator over the whole history."""
        state: dict[str, Any] = json.loads(self._handle(self.payload()))
        return state


def leaf_actions(state: dict[str, Any]) -> list[dict[str, Any]]:
    """Depth-first, without the WhenAll/WhenAny containers (protocol §2.3)."""
    out: list[dict[str, Any]] = []

    def walk(action: dict[str, Any]) -> None:
        if action["actionType"] in (11, 12):
            for child in action["compoundActions"]:
                walk(child)
        else:
            out.append(action)

    for action in state["actions"][0]:
        walk(action)
    return out


@pytest.fixture
def handle(isolated_app_import: None) -> Callable[[str], str]:
    main = importlib.import_module("main")
    (function,) = [
        f for f in main.app.get_functions() if f.get_function_name() == "request_approval_orchestrator"
    ]
    orchestrator: Callable[[str], str] = function.get_user_function()
    return orchestrator


def _waiting(handle: Callable[[str], str], **options: Any) -> Replay:
    replay = Replay(handle, {"request": {"text": "refund please"}, **options})
    replay.run()
    replay.episode(at=T0 + timedelta(seconds=1)).completed(0, NEEDS_APPROVAL).run()
    return replay


def test_waits_with_deadline_and_reminder_timers(handle: Callable[[str], str]) -> None:
    replay = Replay(
        handle, {"request": {"text": "refund please"}, "deadline_hours": 10, "reminder_interval_hours": 4}
    )
    first = replay.run()
    # The approval wait opens with the classification, raced against it in a WhenAny.
    assert [(a["actionType"], a.get("functionName")) for a in leaf_actions(first)] == [
        (1, "classify_request"),
        (6, None),
    ]
    assert first["actions"][0][0]["actionType"] == 11
    assert first["customStatus"] == {"stage": "classifying"}

    t1 = T0 + timedelta(seconds=1)
    state = replay.episode(at=t1).completed(0, NEEDS_APPROVAL).run()
    actions = leaf_actions(state)[1:]
    assert [a["actionType"] for a in actions] == [6, 5, 5]
    assert actions[1]["fireAt"] == _ts(t1 + timedelta(hours=10)) and actions[2]["fireAt"] == _ts(
        t1 + timedelta(hours=4)
    )
    assert state["customStatus"]["stage"] == "awaiting_approval"
    assert state["customStatus"]["deadline"] == (t1 + timedelta(hours=10)).isoformat()
    assert not state["isDone"]


def test_approval_as_json_text_cancels_timers_and_acts(handle: Callable[[str], str]) -> None:
    replay = _waiting(handle)
    t2 = T0 + timedelta(hours=1)
    state = replay.episode(at=t2).raised("approval", posted(APPROVAL)).run()
    actions = leaf_actions(state)
    timers = [a for a in actions if a["actionType"] == 5]
    assert [t["isCanceled"] for t in timers] == [True, True]
    assert actions[-1]["functionName"] == "perform_request_action"
    assert json.loads(actions[-1]["input"])["key"].startswith("action-")
    assert state["customStatus"] == {"stage": "approved", "by": ["alice"]}

    t3 = t2 + timedelta(seconds=1)
    done = (
        replay.episode(at=t3).completed(3, {"reference": "ACT-1", "status": "done", "intent": "refund"}).run()
    )
    assert done["isDone"]
    assert done["output"]["outcome"] == "done"
    assert done["output"]["approvals"] == [APPROVAL]


def test_a_seen_approval_id_is_ignored(handle: Callable[[str], str]) -> None:
    replay = _waiting(handle, required_approvals=2)
    t2 = T0 + timedelta(hours=1)
    replay.episode(at=t2).raised("approval", posted(APPROVAL)).run()
    t3 = t2 + timedelta(minutes=1)
    state = replay.episode(at=t3).raised("approval", posted({**APPROVAL, "approver": "alice-again"})).run()
    assert state["customStatus"]["approvals"] == 1 and not state["isDone"]
    assert [a["actionType"] for a in leaf_actions(state)].count(6) == 3  # a fresh wait after each event

    t4 = t3 + timedelta(minutes=1)
    state = (
        replay.episode(at=t4)
        .raised("approval", posted({**APPROVAL, "approval_id": "ap-2", "approver": "bob"}))
        .run()
    )
    assert state["customStatus"] == {"stage": "approved", "by": ["alice", "bob"]}


def test_a_dict_event_is_accepted_too(handle: Callable[[str], str]) -> None:
    replay = _waiting(handle)
    t2 = T0 + timedelta(hours=1)
    state = replay.episode(at=t2).raised("approval", {**APPROVAL, "decision": "reject"}).run()
    assert state["isDone"] and state["output"]["outcome"] == "rejected"
    assert state["customStatus"] == {"stage": "rejected", "by": "alice", "comment": ""}


def test_reminder_fires_sends_and_schedules_the_next(handle: Callable[[str], str]) -> None:
    replay = _waiting(handle, deadline_hours=10, reminder_interval_hours=4)
    t2 = T0 + timedelta(hours=4, seconds=1)
    state = replay.episode(at=t2).fired(2).run()
    reminder = leaf_actions(state)[-1]
    assert reminder["functionName"] == "send_notification"
    assert json.loads(reminder["input"])["key"].startswith("reminder-1-")

    t3 = t2 + timedelta(seconds=1)
    state = replay.episode(at=t3).completed(3, {"state": "sent"}).run()
    next_timer = leaf_actions(state)[-1]
    assert next_timer["actionType"] == 5
    assert next_timer["fireAt"] == _ts(T0 + timedelta(seconds=1) + timedelta(hours=8))
    assert state["customStatus"]["reminders_sent"] == 1


def test_deadline_escalates_when_configured(handle: Callable[[str], str]) -> None:
    replay = _waiting(handle, deadline_hours=10, reminder_interval_hours=24, expiry_policy="escalate")
    t2 = T0 + timedelta(hours=10, seconds=1)
    state = replay.episode(at=t2).fired(1).run()
    escalation = leaf_actions(state)[-1]
    assert escalation["functionName"] == "send_notification"
    assert json.loads(escalation["input"])["recipient"] == "escalations@example.com"
    assert state["customStatus"] == {"stage": "expired", "policy": "escalate"}
    t3 = t2 + timedelta(seconds=1)
    done = replay.episode(at=t3).completed(2, {"state": "sent"}).run()
    assert done["output"]["outcome"] == "escalated"


def test_an_approval_raised_during_classification_is_counted_once(handle: Callable[[str], str]) -> None:
    # The history the extension sends when an approval arrives before the classification result: every
    # EventRaised is appended as it arrives (azure-fidelity-notes §7.2). The code before the wait opened
    # with the classification saw this event again at every later wait and failed after 50 of them.
    replay = Replay(handle, {"request": {"text": "refund please"}, "required_approvals": 2})
    replay.run()
    t1 = T0 + timedelta(seconds=1)
    replay.episode(at=t1).raised("approval", posted(APPROVAL)).run()
    t2 = t1 + timedelta(seconds=1)
    state = replay.episode(at=t2).completed(0, NEEDS_APPROVAL).run()
    assert not state["isDone"]
    assert state["customStatus"]["stage"] == "awaiting_approval"
    assert state["customStatus"]["approvals"] == 1
    assert [a["actionType"] for a in leaf_actions(state)] == [1, 6, 6, 5, 5]  # a fresh wait, then the timers

    t3 = t2 + timedelta(minutes=1)
    state = (
        replay.episode(at=t3)
        .raised("approval", posted({**APPROVAL, "approval_id": "ap-2", "approver": "bob"}))
        .run()
    )
    assert state["customStatus"] == {"stage": "approved", "by": ["alice", "bob"]}
    assert leaf_actions(state)[-1]["functionName"] == "perform_request_action"


def test_approvals_that_decide_during_classification_schedule_no_timer(handle: Callable[[str], str]) -> None:
    replay = Replay(handle, {"request": {"text": "refund please"}})
    replay.run()
    t1 = T0 + timedelta(seconds=1)
    replay.episode(at=t1).raised("approval", posted({**APPROVAL, "decision": "reject"})).run()
    t2 = t1 + timedelta(seconds=1)
    state = replay.episode(at=t2).completed(0, NEEDS_APPROVAL).run()
    assert state["isDone"] and state["output"]["outcome"] == "rejected"
    assert 5 not in [a["actionType"] for a in leaf_actions(state)]
