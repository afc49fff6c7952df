"""The durable agent-research workflow over real HTTP: ``durablehost start`` runs the app as a subprocess
whose LLM endpoint is the scripted model server; the test starts a run, watches the research fan out,
approves (twice: the second is a duplicate), and reads the published result, as curl would."""

from __future__ import annotations

import json

import pytest

from durablehost.testing import ModelServer
from tests.app.conftest import REPO_ROOT
from tests.app.e2e.test_e2e_agent_research import script_agents
from tests.app.e2e.test_e2e_http import get, poll, post, stage
from tests.http.hosting import start_host

pytestmark = pytest.mark.slow

APPROVE = {
    "approval_id": "ap-7",
    "approver": "alice@example.com",
    "decision": "approve",
    "comment": "ship it",
}


async def test_start_fan_out_approve_twice_and_read_the_report(model_server: ModelServer) -> None:
    script_agents(model_server)
    env = {
        "APP_STATE_STORE": "memory",
        "LLM_ENDPOINT": model_server.base_url,
        "LLM_API_KEY": "test-key",
        "LLM_MODEL": "gpt-test",
    }
    server = start_host("--store", "memory", app=REPO_ROOT, env=env)
    try:
        base = server.wait_listening()
        status, links = await post(f"{base}/api/agent-research", {"topic": "heat pumps", "num_queries": 2})
        assert status == 202, links
        instance_id = links["id"]

        waiting = await poll(f"{base}/api/status/{instance_id}", lambda b: stage(b) == "awaiting_approval")
        assert waiting["customStatus"]["report"] == "Heat pumps"
        for n, query in enumerate(["air source", "ground source"]):  # the fan-out: one agent per query
            status, child = await get(f"{base}/api/status/{instance_id}:agent:{n}")
            assert status == 200 and child["runtimeStatus"] == "Completed", child
            assert json.loads(child["output"])["query"] == query

        status, accepted = await post(f"{base}/api/approvals/{instance_id}", APPROVE)
        assert (status, accepted["status"]) == (202, "accepted"), accepted
        status, duplicate = await post(f"{base}/api/approvals/{instance_id}", APPROVE)
        assert (status, duplicate) == (200, {"status": "duplicate", "approval": accepted["approval"]})

        final = await poll(links["statusQueryGetUri"], lambda b: b["runtimeStatus"] == "Completed")
        output = final["output"]
        assert output["outcome"] == "published"
        assert output["approvals"] == [accepted["approval"]]
        assert output["report"]["summary"] == (
            "Tool says: air source works down to -25 C | Tool says: ground source works down to -25 C"
        )
        assert output["publication"]["recipient"] == "research-reports@example.com"
        assert final["customStatus"] == {"stage": "published", "by": ["alice@example.com"]}
        model_server.assert_requests(1 + 2 * 3 + 1)
    finally:
        assert server.stop() == 0, server.log()
