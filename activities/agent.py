"""Agent steps: planning actions and executing one; both report the tokens they used so the
orchestrator can sum usage from activity results alone."""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df

from activities._runtime import llm_client
from shared.llm import LLMBadResponse, complete_json

bp = df.Blueprint()

PLAN_SYSTEM = (
    'You are an agent planner. Answer with a JSON object {"actions": [{"name": str, '
    '"description": str}]} of at most max_steps actions that achieve the goal.'
)
EXECUTE_SYSTEM = 'You carry out one planned action. Answer with a JSON object {"output": str}.'


@bp.activity_trigger(input_name="payload")
def plan_agent_actions(payload: dict) -> dict[str, Any]:
    """Plan ``{"goal", "max_steps"}``; returns {"actions": [{"name", "description"}], "tokens"}."""
    answer, tokens = complete_json(
        llm_client(),
        "plan_actions",
        PLAN_SYSTEM,
        {"goal": payload["goal"], "max_steps": payload["max_steps"]},
    )
    actions = answer.get("actions")
    if not isinstance(actions, list) or not all(isinstance(a, dict) and a.get("name") for a in actions):
        raise LLMBadResponse(f"agent plan is not a list of named actions: {answer!r}")
    planned = [{"name": str(a["name"]), "description": str(a.get("description", ""))} for a in actions]
    return {"actions": planned[: int(payload["max_steps"])], "tokens": tokens}


@bp.activity_trigger(input_name="payload")
def execute_agent_action(payload: dict) -> dict[str, Any]:
    """Execute ``{"goal", "action"}``; returns {"name", "output", "tokens"}."""
    answer, tokens = complete_json(
        llm_client(), "execute_action", EXECUTE_SYSTEM, {"goal": payload["goal"], "action": payload["action"]}
    )
    if not isinstance(answer.get("output"), str):
        raise LLMBadResponse(f"action result has no output text: {answer!r}")
    return {"name": payload["action"]["name"], "output": answer["output"], "tokens": tokens}
