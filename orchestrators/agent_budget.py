"""Workflow 5: an agent run under a token budget.

Input (``agent_run_orchestrator``)::

    {"goal": str,              # required
     "token_budget": 4000,     # 1..1_000_000
     "max_steps": 5,           # 1..50, actions the planner may propose
     "retry": {"first_retry_ms": 5000, "max_attempts": 3}}

Plans actions (``plan_agent_actions``), then executes them one by one (``execute_agent_action``) while
tokens used < budget. Usage is summed only from the ``tokens`` field of activity results, which are in
history, so every replay computes the same total. The run stops with ``budget_exceeded`` as soon as the
total reaches the budget with actions left (the step that crossed it is kept: its tokens are spent).

Output: ``{"status": "completed"|"budget_exceeded", "tokens_used", "token_budget",
"completed": [{"name", "output", "tokens"}], "remaining": [action names]}``.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import azure.durable_functions as df

from orchestrators._inputs import as_mapping, integer, retry_options, text

bp = df.Blueprint()


def parse_agent_input(raw: Any) -> dict[str, Any]:
    """Validate the input, defaults applied; raises InputError naming the bad field."""
    data = as_mapping(raw, "input")
    return {
        "goal": text(data, "goal", max_length=4000),
        "token_budget": integer(data, "token_budget", 4000, minimum=1, maximum=1_000_000),
        "max_steps": integer(data, "max_steps", 5, minimum=1, maximum=50),
        "retry": retry_options(data),
    }


@bp.orchestration_trigger(context_name="context")
def agent_run_orchestrator(context: df.DurableOrchestrationContext) -> Generator[Any, Any, dict[str, Any]]:
    """Plan, then act while the token budget allows."""
    params = parse_agent_input(context.get_input())
    goal, budget, max_steps, retry = (
        params["goal"],
        params["token_budget"],
        params["max_steps"],
        params["retry"],
    )

    context.set_custom_status({"stage": "planning", "tokens_used": 0, "token_budget": budget})
    plan = yield context.call_activity_with_retry(
        "plan_agent_actions", retry, {"goal": goal, "max_steps": max_steps}
    )
    actions: list[dict[str, Any]] = plan["actions"]
    used = int(plan["tokens"])
    completed: list[dict[str, Any]] = []
    for step, action in enumerate(actions):
        if used >= budget:
            break
        context.set_custom_status(
            {
                "stage": "executing",
                "step": step + 1,
                "of": len(actions),
                "tokens_used": used,
                "token_budget": budget,
            }
        )
        result = yield context.call_activity_with_retry(
            "execute_agent_action", retry, {"goal": goal, "action": action}
        )
        used += int(result["tokens"])
        completed.append(result)
    remaining = [a["name"] for a in actions[len(completed) :]]
    status = "budget_exceeded" if remaining else "completed"
    context.set_custom_status({"stage": status, "tokens_used": used, "token_budget": budget})
    return {
        "status": status,
        "tokens_used": used,
        "token_budget": budget,
        "completed": completed,
        "remaining": remaining,
    }
