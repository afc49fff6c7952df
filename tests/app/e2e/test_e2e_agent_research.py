"""The durable agent-research workflow in the in-process host on a virtual clock: the offline model, then
a scripted model server speaking the real protocol (the app's real OpenAI clients point at it through
``LLM_ENDPOINT``), a 429 retried on durable timers, the approval wait and its deadline."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from azure.durable_functions.models.OrchestrationRuntimeStatus import OrchestrationRuntimeStatus

from durablehost.testing import (
    DurableTestHost,
    ModelRequest,
    ModelServer,
    rate_limited,
    structured,
    text,
    tool_call,
)
from tests.app.e2e.support import TASK_FAILED, calls, events, key

WORKFLOW = "agent_research_orchestrator"
PLANNER = "You are the research planner"
RESEARCHER = "You are a researcher"
WRITER = "You are the report writer"


def approval(approval_id: str, decision: str = "approve") -> dict[str, str]:
    return {"approval_id": approval_id, "approver": "alice@example.com", "decision": decision}


def research_findings(request: ModelRequest) -> Any:
    """What the research tool's own LLM call (chat completions, shared.llm) answers."""
    query = json.loads(request.input_text)["query"]
    return text(
        json.dumps({"findings": f"{query} works down to -25 C", "sources": [f"https://x/{len(query)}"]})
    )


def script_agents(server: ModelServer) -> None:
    """Planner -> two queries; each researcher calls its tool, then reports what the tool returned;
    the writer summarises what it was given."""
    server.when(instructions=PLANNER).reply(structured({"queries": ["air source", "ground source"]}))
    server.when(instructions=RESEARCHER, after_tool=False).always(
        lambda request: tool_call("research_topic", {"query": request.input_text})
    )
    server.when(instructions=RESEARCHER, after_tool="research_topic").always(
        lambda request: text("Tool says: " + json.loads(request.tool_outputs[-1].output)["findings"])
    )
    server.when(api="chat").always(research_findings)
    server.when(instructions=WRITER).reply(
        lambda request: structured(
            {
                "title": "Heat pumps",
                "summary": " | ".join(json.loads(request.input_text)["findings"]),
                "key_points": ["cold climates"],
            }
        )
    )


@pytest.fixture
def model_app(app_env: pytest.MonkeyPatch, model_server: ModelServer) -> Iterator[ModelServer]:
    app_env.setenv("LLM_ENDPOINT", model_server.base_url)
    app_env.setenv("LLM_API_KEY", "test-key")
    app_env.setenv("LLM_MODEL", "gpt-test")
    yield model_server


async def test_offline_run_waits_for_approval_then_publishes_once(host: DurableTestHost) -> None:
    instance_id = await host.client.start_new(
        WORKFLOW, client_input={"topic": "heat pumps", "num_queries": 3}
    )
    status = await host.wait_for_completion(instance_id)
    assert status.runtime_status == OrchestrationRuntimeStatus.Running
    assert status.custom_status["stage"] == "awaiting_approval"
    assert status.custom_status["report"] == "Research report: heat pumps"
    await host.client.raise_event(instance_id, "approval", approval("ap-1"))
    await host.client.raise_event(instance_id, "approval", approval("ap-1"))  # delivered twice
    status = await host.wait_for_completion(instance_id)
    assert status.runtime_status == OrchestrationRuntimeStatus.Completed, status.output
    output = status.output
    assert output["outcome"] == "published"
    assert len(output["queries"]) == 3 and len(output["findings"]) == 3
    assert [f["index"] for f in output["findings"]] == [0, 1, 2]
    assert output["report"]["summary"] == "3 findings on heat pumps."
    assert [a["approval_id"] for a in output["approvals"]] == ["ap-1"]
    assert output["tokens"] > 0
    published = calls("notifications.send")[key(instance_id, "publish")]
    assert published["attempts"] == 1
    assert published["result"]["recipient"] == "research-reports@example.com"
    # The agents ran as sub-orchestrations: one planner, a researcher per query, one writer.
    for child in (":planner", ":agent:0", ":agent:1", ":agent:2", ":writer"):
        child_status = await host.client.get_status(instance_id + child)
        assert child_status.runtime_status == OrchestrationRuntimeStatus.Completed, child


async def test_scripted_model_tools_and_a_429_retried_on_durable_timers(
    model_app: ModelServer, host: DurableTestHost
) -> None:
    model_app.when(instructions=PLANNER).reply(rate_limited(retry_after=1))  # before the other rules
    script_agents(model_app)
    instance_id = await host.client.start_new(
        WORKFLOW, client_input={"topic": "heat pumps", "num_queries": 2}
    )
    await host.run_until_idle()
    planner = await host.client.get_status(instance_id + ":planner")
    assert planner.runtime_status == OrchestrationRuntimeStatus.Running  # waiting on the retry timer
    await host.advance(timedelta(seconds=2))  # MODEL_RETRY: 2 s, virtual
    status = await host.client.get_status(instance_id)
    assert status.custom_status["stage"] == "awaiting_approval", status.custom_status
    await host.client.raise_event(instance_id, "approval", approval("ap-1"))
    status = await host.wait_for_completion(instance_id)
    assert status.runtime_status == OrchestrationRuntimeStatus.Completed, status.output
    output = status.output
    assert output["queries"] == ["air source", "ground source"]
    # Each agent's final answer used what its activity tool returned, and the writer used those answers.
    assert [f["findings"] for f in output["findings"]] == [
        "Tool says: air source works down to -25 C",
        "Tool says: ground source works down to -25 C",
    ]
    assert output["report"]["summary"] == " | ".join(f["findings"] for f in output["findings"])

    requests = model_app.requests
    model_app.assert_requests(1 + 1 + 2 * 3 + 1)  # 429 + planner + (agent, tool's LLM, agent) x2 + writer
    assert isinstance(requests[0].reply, type(rate_limited()))
    assert requests[0].fingerprint() == requests[1].fingerprint()  # the retry repeated the planner call
    agent_calls = [r for r in requests if r.api == "responses"]
    assert {r.model for r in agent_calls} == {"gpt-test"}
    researcher_first = [r for r in agent_calls if RESEARCHER in r.instructions and not r.last_is_tool_output]
    assert [r.tool_names for r in researcher_first] == [["research_topic"], ["research_topic"]]
    history = await host.history(instance_id + ":planner")
    failed = events(history, TASK_FAILED)
    assert len(failed) == 1 and "429" in failed[0]["Details"] + failed[0]["Reason"]
    assert output["tokens"] == sum(
        r.usage.total_tokens for r in agent_calls if r.reply is not requests[0].reply
    )


async def test_a_report_not_approved_in_time_is_not_published(host: DurableTestHost) -> None:
    instance_id = await host.client.start_new(
        WORKFLOW, client_input={"topic": "tides", "num_queries": 1, "deadline_hours": 48}
    )
    await host.advance(timedelta(hours=47))
    status = await host.client.get_status(instance_id)
    assert status.custom_status["reminders_sent"] == 1  # at 24 h
    await host.advance(timedelta(hours=1))
    status = await host.client.get_status(instance_id)
    assert status.runtime_status == OrchestrationRuntimeStatus.Completed
    assert status.output["outcome"] == "expired"
    assert status.output["publication"] is None
    assert key(instance_id, "publish") not in calls("notifications.send")
