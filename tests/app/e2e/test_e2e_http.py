"""The approval flow over real HTTP: ``durablehost start`` runs the app as a subprocess (as a user runs it,
reading local.settings.json), and the test talks to it as curl would. The app's state is in memory in
that process (``APP_STATE_STORE=memory``): the approval route's de-duplication table and the activities
both run there. Routes need a function key, but keys are not checked on loopback."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.app.conftest import REPO_ROOT
from tests.app.e2e.support import FIDELITIES
from tests.http.hosting import HostProcess, request, start_host

pytestmark = pytest.mark.slow

REFUND = {"text": "Please refund order 1234, it arrived broken", "customer": "c-42", "amount": 89.9}
APPROVE = {"approval_id": "ap-001", "approver": "alice@example.com", "decision": "approve", "comment": "ok"}


@pytest.fixture(scope="module", params=FIDELITIES)
def app_server(request: pytest.FixtureRequest) -> Iterator[HostProcess]:
    """The app under ``durablehost start``, once with each fidelity (tests/app/e2e/conftest.py)."""
    server = start_host(
        "--store", "memory", "--fidelity", request.param, app=REPO_ROOT, env={"APP_STATE_STORE": "memory"}
    )
    yield server
    assert server.stop() == 0, server.log()


async def post(url: str, body: Any) -> tuple[int, Any]:
    status, raw, _ = await request(
        "POST", url, data=json.dumps(body), headers={"Content-Type": "application/json"}
    )
    return status, json.loads(raw) if raw else None


async def get(url: str) -> tuple[int, Any]:
    status, raw, _ = await request("GET", url)
    return status, json.loads(raw) if raw else None


async def poll(url: str, done: Any, timeout: float = 20.0) -> dict[str, Any]:
    """GET ``url`` until ``done(body)``; return that body."""
    deadline = time.monotonic() + timeout
    body: Any = None
    while time.monotonic() < deadline:
        status, body = await get(url)
        if status == 200 and done(body):
            return dict(body)
        await asyncio.sleep(0.05)
    raise AssertionError(f"{url} never got there; last body {body}")


def stage(body: dict[str, Any]) -> Any:
    custom = body.get("customStatus")
    return custom.get("stage") if isinstance(custom, dict) else None


async def start_request(base: str, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    status, links = await post(f"{base}/api/requests", body)
    assert status == 202, links
    return str(links["id"]), links


async def test_request_approve_duplicate_complete_and_late(app_server: HostProcess) -> None:
    base = app_server.wait_listening()
    instance_id, links = await start_request(base, REFUND)
    assert set(links) >= {"id", "statusQueryGetUri", "sendEventPostUri", "terminatePostUri"}
    assert links["statusQueryGetUri"].startswith(
        f"{base}/runtime/webhooks/durabletask/instances/{instance_id}"
    )

    waiting = await poll(f"{base}/api/status/{instance_id}", lambda b: stage(b) == "awaiting_approval")
    assert waiting["runtimeStatus"] == "Running"
    assert waiting["customStatus"]["intent"] == "refund"

    status, accepted = await post(f"{base}/api/approvals/{instance_id}", APPROVE)
    assert status == 202, accepted
    assert accepted["status"] == "accepted"
    assert accepted["approval"]["approver"] == "alice@example.com"

    status, duplicate = await post(f"{base}/api/approvals/{instance_id}", APPROVE)
    assert status == 200, duplicate
    assert duplicate == {"status": "duplicate", "approval": accepted["approval"]}

    final = await poll(links["statusQueryGetUri"], lambda b: b["runtimeStatus"] == "Completed")
    output = final["output"]
    assert output["outcome"] == "done"
    assert output["approvals"] == [accepted["approval"]]  # the duplicate was not raised again
    assert final["customStatus"]["stage"] == "done"
    assert final["customStatus"]["by"] == ["alice@example.com"]

    status, late = await post(
        f"{base}/api/approvals/{instance_id}", {**APPROVE, "approval_id": "ap-002", "approver": "bob"}
    )
    assert status == 410, late
    assert "Completed" in late["error"]
    # The original approval id still gets its original answer after completion.
    status, again = await post(f"{base}/api/approvals/{instance_id}", APPROVE)
    assert (status, again["status"]) == (200, "duplicate")


async def test_an_approval_after_the_deadline_is_gone(app_server: HostProcess) -> None:
    base = app_server.wait_listening()
    # The shortest deadline the app accepts: 0.001 h = 3.6 s of real time.
    body = {**REFUND, "approval": {"deadline_hours": 0.001, "reminder_interval_hours": 1}}
    instance_id, links = await start_request(base, body)
    final = await poll(links["statusQueryGetUri"], lambda b: b["runtimeStatus"] == "Completed", timeout=30)
    assert final["output"]["outcome"] == "expired"
    status, late = await post(f"{base}/api/approvals/{instance_id}", APPROVE)
    assert status == 410, late


async def test_approvals_that_cannot_apply_are_refused(app_server: HostProcess) -> None:
    base = app_server.wait_listening()
    status, _ = await post(f"{base}/api/approvals/no-such-instance", APPROVE)
    assert status == 404
    status, links = await post(f"{base}/api/research", {"topic": "heat pumps", "num_queries": 2})
    assert status == 202
    status, refused = await post(f"{base}/api/approvals/{links['id']}", APPROVE)
    assert status == 409, refused
    instance_id, _ = await start_request(base, REFUND)
    status, invalid = await post(f"{base}/api/approvals/{instance_id}", {**APPROVE, "decision": "maybe"})
    assert status == 400
    assert invalid == {"error": 'decision must be "approve" or "reject"'}
    status, invalid = await post(f"{base}/api/requests", {"customer": "c-1"})
    assert status == 400
    assert "text" in invalid["error"]
