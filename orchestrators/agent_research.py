"""Workflow 6: durable agent research on the Durable Functions OpenAI Agents integration.

Input (``agent_research_orchestrator``)::

    {"topic": str,                                   # required
     "num_queries": 3,                               # 1..20 research agents
     "deadline_hours": 72, "reminder_interval_hours": 24,
     "approvers": "approvers@example.com",
     "retry": {"first_retry_ms": 5000, "max_attempts": 3}}   # for the non-model activities

A planner agent plans the queries (sub-orchestration ``<id>:planner``); one research agent per query
runs in its own sub-orchestration (``agent_researcher_orchestrator``, ``<id>:agent:<n>``), all fanned out
with ``task_all``, each calling the ``research_topic`` activity as its tool; a writer agent turns the
findings into a report (``<id>:writer``); a person approves it (``POST /api/approvals/{id}``, as for
requests, within the deadline) and only then is it published (``send_notification`` to the publication
channel, once per instance).

Every model call is the integration's ``run_model`` activity (``activities.agent_model``), retried by
``MODEL_RETRY`` on durable timers: a 429 or a timeout delays the run, it never fails it at once, and a
host crash repeats only the model call that was in flight. Agents name no model: the activity's
provider picks the configured one.

Output: ``{"topic", "outcome": "published"|"rejected"|"expired", "queries", "findings": [{"index",
"query", "findings"}], "report": {"title", "summary", "key_points"}, "approvals", "rejection",
"publication", "tokens"}``.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Mapping
from typing import Any

import azure.durable_functions as df
from agents import Agent, RunResult, set_tracing_disabled
from azure.durable_functions.openai_agents.runner import DurableOpenAIRunner

from activities.agent_tools import research_topic
from orchestrators._approval import ApprovalInbox, ApprovalPolicy, await_approval, log_once
from orchestrators._inputs import InputError, as_mapping, integer, number, retry_options, text
from shared.agent_research import (
    PLANNER_INSTRUCTIONS,
    RESEARCHER_INSTRUCTIONS,
    WRITER_INSTRUCTIONS,
    ResearchPlan,
    ResearchReport,
)
from shared.idempotency import idempotency_key

bp = df.Blueprint()
# Orchestrator code is replayed on every episode, so each replay would emit the agents' traces again;
# the model calls themselves run in activities, where the provider's own logging applies.
set_tracing_disabled(True)
# The integration's decorator registers its own ``run_model`` activity on the blueprint it is called
# on, with a provider that must be exactly ``ModelProvider`` (``type(p) is not ModelProvider`` refuses
# every real provider, azure-functions-durable 1.7.0). So the decorator is taken from this blueprint,
# which is never registered, and the app registers its own ``run_model`` (activities.agent_model),
# which runs the integration's activity code with the app's provider.
_integration = df.Blueprint()

MAX_QUERIES = 20
PUBLICATION_CHANNEL = "research-reports@example.com"
# The integration's default, spelled out: 5 attempts, 2 s apart, on durable timers.
MODEL_RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=2000, max_number_of_attempts=5)
PLANNER = "agent_planner_orchestrator"
RESEARCHER = "agent_researcher_orchestrator"
MODEL_ACTIVITY = "run_model"  # the name the integration schedules model calls under
WRITER = "agent_writer_orchestrator"


def parse_agent_research_input(raw: Any) -> dict[str, Any]:
    """Validate the input, defaults applied; raises InputError naming the bad field."""
    data = as_mapping(raw, "input")
    unknown = sorted(
        set(data)
        - {"topic", "num_queries", "deadline_hours", "reminder_interval_hours", "approvers", "retry"}
    )
    if unknown:
        raise InputError(f"unknown fields {unknown}")
    return {
        "topic": text(data, "topic", max_length=500),
        "num_queries": integer(data, "num_queries", 3, minimum=1, maximum=MAX_QUERIES),
        "deadline_hours": number(data, "deadline_hours", 72, minimum=0.001, maximum=24 * 365),
        "reminder_interval_hours": number(
            data, "reminder_interval_hours", 24, minimum=0.001, maximum=24 * 365
        ),
        "approvers": str(data.get("approvers") or "approvers@example.com"),
        "retry": dict(as_mapping(data.get("retry", {}), "retry")),
    }


def run_agent(context: Any, agent: Agent[Any], message: str) -> RunResult:
    """Run ``agent`` durably in this orchestrator: each model call is the ``run_model`` activity.

    The integration's samples call ``Runner.run_sync``, which uses the runner the decorator stored in a
    process-wide global (``set_default_agent_runner``); agent orchestrators running at the same time on
    the worker's threads (a fan-out of agents) then pick up each other's runner and schedule their model
    calls in the wrong orchestration. A runner bound to this episode's own context avoids the global.
    """
    return DurableOpenAIRunner(context=context, activity_name=MODEL_ACTIVITY).run_sync(agent, message)


def _tokens(result: RunResult) -> int:
    return int(result.context_wrapper.usage.total_tokens)


def _decoded(output: Any) -> dict[str, Any]:
    """An agent sub-orchestration's result: the integration returns it as JSON text (it serialises
    whatever the function returns with ``json.dumps``/``model_dump_json``, and the SDK encodes that
    string once more)."""
    value = json.loads(output) if isinstance(output, str) else output
    return dict(as_mapping(value, "agent result"))


@bp.orchestration_trigger(context_name="context")
def agent_research_orchestrator(
    context: df.DurableOrchestrationContext,
) -> Generator[Any, Any, dict[str, Any]]:
    """Plan, research in parallel agents, write, wait for approval, publish (module docstring)."""
    params = parse_agent_research_input(context.get_input())
    topic = params["topic"]
    instance_id = context.instance_id
    context.set_custom_status({"stage": "planning"})
    plan = _decoded(
        (
            yield context.call_sub_orchestrator(
                PLANNER, {"topic": topic, "num_queries": params["num_queries"]}, f"{instance_id}:planner"
            )
        )
    )
    queries = [str(q) for q in plan["queries"]][: params["num_queries"]]
    if not queries:
        raise InputError(f"the planner proposed no queries for {topic!r}")

    context.set_custom_status({"stage": "researching", "queries": queries})
    researched = yield context.task_all(
        [
            context.call_sub_orchestrator(RESEARCHER, {"index": n, "query": q}, f"{instance_id}:agent:{n}")
            for n, q in enumerate(queries)
        ]
    )
    findings = [_decoded(r) for r in researched]

    context.set_custom_status({"stage": "writing", "findings": len(findings)})
    written = _decoded(
        (
            yield context.call_sub_orchestrator(
                WRITER,
                {"topic": topic, "findings": [f["findings"] for f in findings]},
                f"{instance_id}:writer",
            )
        )
    )
    report = written["report"]
    output: dict[str, Any] = {
        "topic": topic,
        "queries": queries,
        "findings": [{k: f[k] for k in ("index", "query", "findings")} for f in findings],
        "report": report,
        "approvals": [],
        "rejection": None,
        "publication": None,
        "tokens": int(plan["tokens"]) + sum(int(f["tokens"]) for f in findings) + int(written["tokens"]),
    }
    policy = ApprovalPolicy(
        deadline_hours=params["deadline_hours"],
        reminder_interval_hours=params["reminder_interval_hours"],
        required_approvals=1,
        approvers=params["approvers"],
        retry=retry_options(params),
    )
    # Approvals are only accepted once the report is awaiting them (the approval route checks the stage),
    # so the wait opens here, with the approval stage.
    wait = yield from await_approval(context, policy, {"report": report["title"]}, ApprovalInbox(context))
    output.update(approvals=wait.approvals, rejection=wait.rejection)
    if wait.rejection is not None:
        context.set_custom_status({"stage": "rejected", "by": wait.rejection["approver"]})
        return {**output, "outcome": "rejected"}
    if wait.expired:
        context.set_custom_status({"stage": "expired"})
        log_once(context, "report %r was not approved in time", report["title"])
        return {**output, "outcome": "expired"}
    publication = yield context.call_activity_with_retry(
        "send_notification", policy.retry, _publication(instance_id, report)
    )
    context.set_custom_status({"stage": "published", "by": [a["approver"] for a in wait.approvals]})
    return {**output, "publication": publication, "outcome": "published"}


def _publication(instance_id: str, report: Mapping[str, Any]) -> dict[str, str]:
    return {
        "key": idempotency_key(instance_id, "publish"),
        "recipient": PUBLICATION_CHANNEL,
        "subject": str(report["title"]),
        "body": json.dumps(report),
    }


# The agents: each runs in a sub-orchestration of its own under the integration, so the parent above
# stays a plain orchestrator (its approval wait and publication are ordinary durable code).


@bp.orchestration_trigger(context_name="context")
@_integration.durable_openai_agent_orchestrator(model_retry_options=MODEL_RETRY)
def agent_planner_orchestrator(context: Any) -> dict[str, Any]:
    """The planner agent on ``{"topic", "num_queries"}``: ``{"queries", "tokens"}``."""
    request = as_mapping(context.get_input(), "input")
    planner = Agent(name="Planner", instructions=PLANNER_INSTRUCTIONS, output_type=ResearchPlan)
    result = run_agent(context, planner, json.dumps(dict(request)))
    return {"queries": result.final_output_as(ResearchPlan).queries, "tokens": _tokens(result)}


@bp.orchestration_trigger(context_name="context")
@_integration.durable_openai_agent_orchestrator(model_retry_options=MODEL_RETRY)
def agent_researcher_orchestrator(context: Any) -> dict[str, Any]:
    """One research agent on ``{"index", "query"}`` with the ``research_topic`` activity as its tool:
    ``{"index", "query", "findings", "tokens"}``."""
    item = as_mapping(context.get_input(), "input")
    tool = context.create_activity_tool(research_topic, retry_options=retry_options(item))
    researcher = Agent(name="Researcher", instructions=RESEARCHER_INSTRUCTIONS, tools=[tool])
    result = run_agent(context, researcher, str(item["query"]))
    return {
        "index": item["index"],
        "query": item["query"],
        "findings": str(result.final_output),
        "tokens": _tokens(result),
    }


@bp.orchestration_trigger(context_name="context")
@_integration.durable_openai_agent_orchestrator(model_retry_options=MODEL_RETRY)
def agent_writer_orchestrator(context: Any) -> dict[str, Any]:
    """The writer agent on ``{"topic", "findings"}``: ``{"report": {"title", "summary", "key_points"},
    "tokens"}``."""
    request = as_mapping(context.get_input(), "input")
    writer = Agent(name="Writer", instructions=WRITER_INSTRUCTIONS, output_type=ResearchReport)
    result = run_agent(context, writer, json.dumps(dict(request)))
    return {"report": result.final_output_as(ResearchReport).model_dump(), "tokens": _tokens(result)}
