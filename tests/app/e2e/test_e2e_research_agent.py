"""Workflows 3 and 5 end to end: parallel research (failing queries degrade the result; large fan-outs
run as chunked sub-orchestrations) and an agent run under a token budget."""

from __future__ import annotations

from azure.durable_functions.models.OrchestrationRuntimeStatus import OrchestrationRuntimeStatus

from durablehost.testing import DurableTestHost
from tests.app.e2e.support import (
    SUB_ORCHESTRATION_CREATED,
    TASK_SCHEDULED,
    completed_results,
    events,
    scheduled_names,
)

Completed = OrchestrationRuntimeStatus.Completed


async def test_research_plans_queries_and_synthesises(host: DurableTestHost) -> None:
    instance_id = await host.client.start_new(
        "research_orchestrator", client_input={"topic": "heat pumps", "num_queries": 4}
    )
    status = await host.wait_for_completion(instance_id)
    assert status.runtime_status == Completed, status.output
    output = status.output
    assert output["succeeded"] == 4
    assert output["failed"] == []
    assert output["summary"] == "4 findings on heat pumps."
    assert status.custom_status == {"stage": "done", "succeeded": 4, "failed": 0}
    # Tokens are the sum of what the activities reported: plan + 4 queries + synthesis.
    history = await host.history(instance_id)
    plan, synthesis = completed_results(history)  # the queries ran in the sub-orchestration
    child = await host.history(f"{instance_id}:research:0")
    query_tokens = sum(r["tokens"] for r in completed_results(child))
    assert output["tokens"] == plan["tokens"] + query_tokens + synthesis["tokens"]


async def test_failing_queries_degrade_the_result_instead_of_failing_it(host: DurableTestHost) -> None:
    queries = ["solar: overview", "solar !fail costs", "solar: risks", "!fail", "solar: regulation"]
    instance_id = await host.client.start_new(
        "research_orchestrator",
        client_input={"topic": "solar", "queries": queries, "chunk_size": 2},
    )
    status = await host.wait_for_completion(instance_id)

    assert status.runtime_status == Completed, status.output
    output = status.output
    assert output["succeeded"] == 3
    assert [(f["index"], f["query"]) for f in output["failed"]] == [(1, queries[1]), (3, queries[3])]
    for failure in output["failed"]:
        assert failure["error"].startswith("LLMRequestRejected: LLM request rejected with HTTP 400")
        assert "!fail" in failure["error"]
    assert output["summary"] == "3 findings on solar."
    assert status.custom_status == {"stage": "done", "succeeded": 3, "failed": 2}


async def test_a_run_where_every_query_fails_completes_without_a_summary(host: DurableTestHost) -> None:
    instance_id = await host.client.start_new(
        "research_orchestrator", client_input={"topic": "t", "queries": ["!fail a", "!fail b"]}
    )
    status = await host.wait_for_completion(instance_id)
    assert status.runtime_status == Completed, status.output
    assert status.output["succeeded"] == 0
    assert status.output["summary"] is None
    assert status.output["key_points"] == []
    assert len(status.output["failed"]) == 2
    assert "synthesize_findings" not in scheduled_names(await host.history(instance_id))


async def test_a_500_query_fan_out_runs_in_bounded_sub_orchestrations(host: DurableTestHost) -> None:
    queries = [f"grid storage: question {i}" + (" !fail" if i % 100 == 7 else "") for i in range(500)]
    instance_id = await host.client.start_new(
        "research_orchestrator",
        client_input={"topic": "grid storage", "queries": queries, "chunk_size": 50},
    )
    status = await host.wait_for_completion(instance_id, timeout=120)

    assert status.runtime_status == Completed, status.output
    output = status.output
    assert output["succeeded"] == 495
    assert [f["index"] for f in output["failed"]] == [7, 107, 207, 307, 407]
    assert output["summary"] == "495 findings on grid storage."

    parent = await host.history(instance_id)
    children = [e["InstanceId"] for e in events(parent, SUB_ORCHESTRATION_CREATED)]
    assert children == [f"{instance_id}:research:{n}" for n in range(10)]
    # The parent's history holds no research activity, only the chunks and the synthesis.
    assert scheduled_names(parent) == ["synthesize_findings"]
    for n, child_id in enumerate(children):
        child_status = await host.client.get_status(child_id)
        assert child_status.runtime_status == Completed
        child = await host.history(child_id)
        scheduled = events(child, TASK_SCHEDULED)
        assert len(scheduled) == 50, f"chunk {n} ran {len(scheduled)} queries"
        assert {e["Name"] for e in scheduled} == {"research_query"}
        assert [r["index"] for r in child_status.output] == list(range(50 * n, 50 * n + 50))


async def test_the_agent_stops_when_the_token_budget_is_spent(host: DurableTestHost) -> None:
    goal = "compare three cloud providers on price"  # the offline planner makes 4 steps for 6 words
    unlimited = await host.client.start_new("agent_run_orchestrator", client_input={"goal": goal})
    full = (await host.wait_for_completion(unlimited)).output
    assert full["status"] == "completed"
    assert full["remaining"] == []
    plan_tokens = completed_results(await host.history(unlimited))[0]["tokens"]
    steps = [step["tokens"] for step in full["completed"]]
    assert len(steps) == 4
    assert full["tokens_used"] == plan_tokens + sum(steps)

    # A budget that the plan and the first step exceed: the first step runs (the budget is checked
    # before each step), the rest do not.
    budget = plan_tokens + steps[0] - 1
    limited = await host.client.start_new(
        "agent_run_orchestrator", client_input={"goal": goal, "token_budget": budget}
    )
    status = await host.wait_for_completion(limited)
    assert status.runtime_status == Completed
    output = status.output
    assert output["status"] == "budget_exceeded"
    assert [s["name"] for s in output["completed"]] == ["step-1"]
    assert output["remaining"] == ["step-2", "step-3", "step-4"]
    assert output["tokens_used"] == plan_tokens + steps[0]
    assert output["token_budget"] == budget
    assert status.custom_status == {
        "stage": "budget_exceeded",
        "tokens_used": plan_tokens + steps[0],
        "token_budget": budget,
    }
    history = await host.history(limited)
    assert scheduled_names(history) == ["plan_agent_actions", "execute_agent_action"]

    # A budget the plan alone exhausts: nothing is executed.
    starved = await host.client.start_new(
        "agent_run_orchestrator", client_input={"goal": goal, "token_budget": plan_tokens}
    )
    output = (await host.wait_for_completion(starved)).output
    assert output["status"] == "budget_exceeded"
    assert output["completed"] == []
    assert output["tokens_used"] == plan_tokens
