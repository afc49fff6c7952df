"""The HTTP triggers, called as the worker calls them but with a stand-in durable client (no host):
body validation, the approval checks (404/409/410) and de-duplication, and the starters' inputs."""

from __future__ import annotations

import importlib
import json
from typing import Any

import azure.functions as func
import pytest
from azure.durable_functions.models.DurableOrchestrationStatus import DurableOrchestrationStatus


class StandInClient:
    """The parts of DurableOrchestrationClient the routes use, recording what they were asked."""

    def __init__(self, status: DurableOrchestrationStatus | None = None) -> None:
        self.status = status or DurableOrchestrationStatus()
        self.raised: list[tuple[str, str, Any]] = []
        self.started: list[tuple[str, Any]] = []
        self.fail_next_raise = False

    async def get_status(self, instance_id: str) -> DurableOrchestrationStatus:
        return self.status

    async def raise_event(self, instance_id: str, event_name: str, event_data: Any = None) -> None:
        if self.fail_next_raise:
            self.fail_next_raise = False
            raise ConnectionError("extension unreachable")
        self.raised.append((instance_id, event_name, event_data))

    async def start_new(self, name: str, instance_id: str | None = None, client_input: Any = None) -> str:
        self.started.append((name, client_input))
        return "new-instance"

    def create_check_status_response(self, request: func.HttpRequest, instance_id: str) -> func.HttpResponse:
        return func.HttpResponse(json.dumps({"id": instance_id}), status_code=202)


def _status(runtime: str = "Running", name: str = "request_approval_orchestrator", **custom: Any) -> Any:
    custom = {"stage": "awaiting_approval", "deadline": "2999-01-01T00:00:00+00:00", **custom}
    return DurableOrchestrationStatus(
        name=name,
        instanceId="i1",
        createdTime="2026-01-01T00:00:00Z",
        runtimeStatus=runtime,
        customStatus=custom,
    )


@pytest.fixture
def routes(isolated_app_import: None, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("APP_STATE_STORE", "memory")
    for name in ("APPROVAL_DEADLINE_HOURS", "AGENT_TOKEN_BUDGET", "RESEARCH_MAX_QUERIES", "LLM_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    main = importlib.import_module("main")
    return {
        f.get_function_name(): f.get_user_function().client_function
        for f in main.app.get_functions()
        if f.get_trigger().type == "httpTrigger"
    }


def _request(
    body: Any, route_params: dict[str, str] | None = None, raw: bytes | None = None
) -> func.HttpRequest:
    return func.HttpRequest(
        "POST",
        "http://localhost/api/x",
        body=raw if raw is not None else json.dumps(body).encode(),
        route_params=route_params or {},
    )


async def _approve(
    routes: dict[str, Any], client: StandInClient, body: Any, instance: str = "i1"
) -> tuple[int, Any]:
    response = await routes["submit_approval"](_request(body, {"instanceId": instance}), client)
    return response.status_code, json.loads(response.get_body())


APPROVAL = {"approval_id": "ap-1", "approver": "alice", "decision": "approve", "comment": "fine"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({**APPROVAL, "approval_id": "a/b"}, "approval_id must be"),
        ({**APPROVAL, "approver": " "}, "approver must be"),
        ({**APPROVAL, "decision": "maybe"}, 'decision must be "approve" or "reject"'),
        ({**APPROVAL, "extra": 1}, "unknown fields ['extra']"),
        ([APPROVAL], "must be a JSON object, not list"),
    ],
)
async def test_invalid_approval_bodies_are_400(routes: dict[str, Any], body: Any, message: str) -> None:
    client = StandInClient(_status())
    status, answer = await _approve(routes, client, body)
    assert status == 400 and message in answer["error"]
    assert client.raised == []


async def test_non_json_body_is_400(routes: dict[str, Any]) -> None:
    response = await routes["submit_approval"](
        _request(None, {"instanceId": "i1"}, raw=b"{nope"), StandInClient()
    )
    assert response.status_code == 400
    assert "not valid JSON" in json.loads(response.get_body())["error"]


@pytest.mark.parametrize(
    ("status", "code", "message"),
    [
        (DurableOrchestrationStatus(), 404, "no instance i1"),
        (_status(name="research_orchestrator"), 409, "research_orchestrator run, which takes no approvals"),
        (_status(stage="classifying"), 409, "not awaiting approval (stage: classifying)"),
        (_status(runtime="Completed", stage="done"), 410, "Completed: it no longer takes approvals"),
        (_status(stage="expired", policy="escalate"), 410, "approval deadline of instance i1 has passed"),
        (_status(stage="approved"), 409, "not awaiting approval (stage: approved)"),
    ],
)
async def test_instances_not_awaiting_approval_are_refused(
    routes: dict[str, Any], status: DurableOrchestrationStatus, code: int, message: str
) -> None:
    client = StandInClient(status)
    answer_code, answer = await _approve(routes, client, APPROVAL)
    assert answer_code == code and message in answer["error"]
    assert client.raised == []


async def test_first_approval_raises_the_event_and_a_repeat_does_not(routes: dict[str, Any]) -> None:
    client = StandInClient(_status())
    code, answer = await _approve(routes, client, APPROVAL)
    assert code == 202 and answer["status"] == "accepted"
    ((instance, event, data),) = client.raised
    assert (instance, event) == ("i1", "approval")
    assert {k: data[k] for k in ("approval_id", "approver", "decision", "comment")} == APPROVAL

    code, answer = await _approve(routes, client, {**APPROVAL, "decision": "reject", "approver": "mallory"})
    assert code == 200 and answer["status"] == "duplicate"
    assert answer["approval"]["decision"] == "approve" and answer["approval"]["approver"] == "alice"
    assert len(client.raised) == 1

    client.status = _status(runtime="Completed", stage="done")  # the approval finished the workflow
    code, answer = await _approve(routes, client, APPROVAL)
    assert code == 200 and answer["status"] == "duplicate"
    code, answer = await _approve(routes, client, {**APPROVAL, "approval_id": "ap-other"})
    assert code == 410


async def test_an_approval_whose_event_was_never_raised_is_raised_on_retry(routes: dict[str, Any]) -> None:
    client = StandInClient(_status())
    client.fail_next_raise = True
    with pytest.raises(ConnectionError):
        await _approve(routes, client, APPROVAL, instance="i2")
    code, answer = await _approve(routes, client, APPROVAL, instance="i2")
    assert code == 200 and answer == {**answer, "status": "duplicate", "redelivered": True}
    assert len(client.raised) == 1
    code, answer = await _approve(routes, client, APPROVAL, instance="i2")
    assert code == 200 and "redelivered" not in answer and len(client.raised) == 1


async def test_start_request_fills_defaults_from_settings(routes: dict[str, Any]) -> None:
    client = StandInClient()
    body = {"text": "Please refund order 42", "amount": 30, "approval": {"deadline_hours": 1}}
    response = await routes["start_request_workflow"](_request(body), client)
    assert response.status_code == 202
    ((name, data),) = client.started
    assert name == "request_approval_orchestrator"
    assert data == {
        "request": {"text": "Please refund order 42", "amount": 30},
        "deadline_hours": 1,
        "reminder_interval_hours": 24.0,
        "expiry_policy": "reject",
    }


@pytest.mark.parametrize(
    ("route", "body", "message"),
    [
        ("start_request_workflow", {"amount": 3}, "text must be a non-empty string"),
        ("start_request_workflow", {"text": "x", "amount": -1}, "amount must be a non-negative number"),
        (
            "start_request_workflow",
            {"text": "x", "approval": {"expiry_policy": "x"}},
            "expiry_policy must be",
        ),
        (
            "start_research_workflow",
            {"topic": "x", "num_queries": 501},
            "num_queries must be between 1 and 500",
        ),
        ("start_research_workflow", {"topic": ""}, "topic must be a non-empty string"),
        ("start_booking_workflow", {"flight": "XY1"}, "date must be a non-empty string"),
        ("start_booking_workflow", {"flight": "XY1", "seat": "1A"}, "unknown fields ['seat']"),
        ("start_agent_workflow", {"goal": "g", "token_budget": 0}, "token_budget must be between"),
    ],
)
async def test_starters_refuse_bad_bodies(
    routes: dict[str, Any], route: str, body: Any, message: str
) -> None:
    client = StandInClient()
    response = await routes[route](_request(body), client)
    assert response.status_code == 400
    assert message in json.loads(response.get_body())["error"]
    assert client.started == []


async def test_research_and_agent_starters(routes: dict[str, Any]) -> None:
    client = StandInClient()
    assert (await routes["start_research_workflow"](_request({"topic": "tides"}), client)).status_code == 202
    assert (await routes["start_agent_workflow"](_request({"goal": "g"}), client)).status_code == 202
    assert client.started == [
        ("research_orchestrator", {"topic": "tides", "num_queries": 5, "chunk_size": 50}),
        ("agent_run_orchestrator", {"token_budget": 4000, "goal": "g"}),
    ]


async def test_status_route(routes: dict[str, Any]) -> None:
    response = await routes["workflow_status"](
        func.HttpRequest(
            "GET", "http://localhost/api/status/i1", body=b"", route_params={"instanceId": "i1"}
        ),
        StandInClient(_status()),
    )
    answer = json.loads(response.get_body())
    assert response.status_code == 200
    assert answer["runtimeStatus"] == "Running" and answer["customStatus"]["stage"] == "awaiting_approval"
    # The management API's form of times (seconds, "Z"), not Python's isoformat "+00:00".
    assert answer["createdTime"] == "2026-01-01T00:00:00Z"
    assert answer["lastUpdatedTime"] is None
