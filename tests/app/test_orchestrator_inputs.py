"""Pure parts of the orchestrators: input validation and defaults, and approval event decoding."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from orchestrators._failures import failure_reason
from orchestrators._inputs import InputError, iso
from orchestrators.agent_budget import parse_agent_input
from orchestrators.booking import parse_booking_input
from orchestrators.request_approval import ApprovalWorkflowInput, parse_approval_event
from orchestrators.research import parse_research_input

EVENT = {"approval_id": "a1", "approver": "alice", "decision": "approve", "comment": "ok", "decided_at": "t"}


def test_approval_event_accepted_as_dict_or_json_text() -> None:
    # The real extension delivers raise_event(data=v) as the string json.dumps(v) (df-host-protocol §5.4).
    assert parse_approval_event(EVENT) == EVENT
    assert parse_approval_event(json.dumps(EVENT)) == EVENT


@pytest.mark.parametrize(
    "raw",
    [None, 5, "not json", json.dumps([EVENT]), {**EVENT, "decision": "maybe"}, {**EVENT, "approval_id": ""}],
)
def test_malformed_approval_events_are_none(raw: object) -> None:
    assert parse_approval_event(raw) is None


def test_approval_input_defaults() -> None:
    params = ApprovalWorkflowInput.parse({"request": {"text": "refund please"}})
    assert (params.deadline_hours, params.reminder_interval_hours) == (72.0, 24.0)
    assert (params.expiry_policy, params.required_approvals) == ("reject", 1)
    assert params.retry.max_number_of_attempts == 3
    assert params.retry.first_retry_interval_in_milliseconds == 5000


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("text", "input must be a JSON object"),
        ({"request": {}}, "text must be a non-empty string"),
        ({"request": {"text": "x"}, "deadline_hours": 0}, "deadline_hours must be between"),
        (
            {"request": {"text": "x"}, "expiry_policy": "ignore"},
            "expiry_policy must be one of reject, escalate",
        ),
        ({"request": {"text": "x"}, "retry": {"max_attempts": 0}}, "max_attempts must be between 1 and 20"),
        ({"request": {"text": "x"}, "required_approvals": True}, "required_approvals must be an integer"),
    ],
)
def test_approval_input_errors(raw: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        ApprovalWorkflowInput.parse(raw)


def test_research_input() -> None:
    assert parse_research_input({"topic": " tides "})["topic"] == "tides"
    assert parse_research_input({"topic": "t"})["chunk_size"] == 50
    with pytest.raises(InputError, match="queries must be a list"):
        parse_research_input({"topic": "t", "queries": ["ok", ""]})
    with pytest.raises(InputError, match="chunk_size must be between 1 and 100"):
        parse_research_input({"topic": "t", "chunk_size": 101})


def test_booking_and_agent_inputs() -> None:
    booking = {"flight": "XY1", "date": "2026-12-01", "amount": 10, "currency": "EUR", "card_token": "tok_x"}
    assert parse_booking_input({"booking": booking})["passengers"] == 1
    with pytest.raises(InputError, match="booking must be a JSON object"):
        parse_booking_input({})
    agent = parse_agent_input({"goal": "g"})
    assert (agent["token_budget"], agent["max_steps"]) == (4000, 5)


def test_failure_reason_keeps_the_first_line() -> None:
    error = Exception(
        "Activity function 'x' failed: ValueError: boom \n Traceback (most recent call last): ..."
    )
    assert failure_reason(error) == "Activity function 'x' failed: ValueError: boom"
    assert failure_reason(Exception()) == "Exception"


def test_iso_is_utc() -> None:
    assert iso(datetime(2026, 1, 1, 2, tzinfo=timezone(timedelta(hours=2)))) == "2026-01-01T00:00:00+00:00"
    assert iso(datetime(2026, 1, 1)) == "2026-01-01T00:00:00+00:00"
