"""Index the app with the SDK, as the Functions worker does, and check every function and binding."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

ORCHESTRATORS = {
    "request_approval_orchestrator",
    "research_orchestrator",
    "research_chunk_orchestrator",
    "booking_saga_orchestrator",
    "agent_run_orchestrator",
    "agent_research_orchestrator",
    "agent_planner_orchestrator",
    "agent_researcher_orchestrator",
    "agent_writer_orchestrator",
}
ACTIVITIES = {
    "classify_request",
    "send_notification",
    "perform_request_action",
    "plan_research_queries",
    "research_query",
    "synthesize_findings",
    "book_flight",
    "charge_payment",
    "confirm_booking",
    "cancel_booking",
    "refund_payment",
    "plan_agent_actions",
    "execute_agent_action",
    "run_model",
    "research_topic",
}
HTTP_ROUTES = {
    "start_request_workflow": ("requests", ["POST"]),
    "start_research_workflow": ("research", ["POST"]),
    "start_booking_workflow": ("bookings", ["POST"]),
    "start_agent_workflow": ("agent-runs", ["POST"]),
    "start_agent_research_workflow": ("agent-research", ["POST"]),
    "submit_approval": ("approvals/{instanceId}", ["POST"]),
    "workflow_status": ("status/{instanceId}", ["GET"]),
}


@pytest.fixture
def functions(isolated_app_import: None) -> dict[str, Any]:
    main = importlib.import_module("main")
    # get_functions() is single-shot (df-host-protocol §3, surprise 6): call it exactly once.
    return {f.get_function_name(): f for f in main.app.get_functions()}


def test_every_function_is_indexed_once(functions: dict[str, Any]) -> None:
    assert set(functions) == ORCHESTRATORS | ACTIVITIES | set(HTTP_ROUTES)


def test_orchestrators_have_an_orchestration_trigger_named_context(functions: dict[str, Any]) -> None:
    for name in ORCHESTRATORS:
        bindings = functions[name].get_function_json()
        assert '"type": "orchestrationTrigger"' in bindings
        assert [b.name for b in functions[name].get_bindings()] == ["context"]


def test_activities_have_an_activity_trigger(functions: dict[str, Any]) -> None:
    for name in ACTIVITIES:
        (binding,) = functions[name].get_bindings()
        assert binding.type == "activityTrigger"


@pytest.mark.parametrize(("name", "route_and_methods"), sorted(HTTP_ROUTES.items()))
def test_http_routes_need_a_function_key_and_get_a_durable_client(
    functions: dict[str, Any], name: str, route_and_methods: tuple[str, list[str]]
) -> None:
    route, methods = route_and_methods
    trigger = functions[name].get_trigger()
    assert trigger.type == "httpTrigger"
    assert trigger.route == route
    assert [str(getattr(m, "value", m)) for m in trigger.methods] == methods
    assert str(getattr(trigger.auth_level, "value", trigger.auth_level)).lower() == "function"
    types = sorted(b.type for b in functions[name].get_bindings())
    assert types == ["durableClient", "http", "httpTrigger"]


def _called_names(module_path: Path, method: str) -> set[str]:
    tree = ast.parse(module_path.read_text())
    return {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == method
        and node.args
        and isinstance(node.args[0], ast.Constant)
    }


def test_orchestrators_only_call_functions_that_exist(functions: dict[str, Any]) -> None:
    called: set[str] = set()
    sub_orchestrators: set[str] = set()
    for path in (REPO_ROOT / "orchestrators").glob("*.py"):
        called |= _called_names(path, "call_activity") | _called_names(path, "call_activity_with_retry")
        sub_orchestrators |= _called_names(path, "call_sub_orchestrator")
    assert called and called <= ACTIVITIES
    assert sub_orchestrators == {"research_chunk_orchestrator"}
    # The agent-research workflow names its agent sub-orchestrators by constants.
    agent_research = importlib.import_module("orchestrators.agent_research")
    assert {agent_research.PLANNER, agent_research.RESEARCHER, agent_research.WRITER} <= ORCHESTRATORS


def test_starters_start_orchestrators_that_exist() -> None:
    started = {
        node.value
        for node in ast.walk(ast.parse((REPO_ROOT / "function_app" / "starters.py").read_text()))
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and node.value.endswith("_orchestrator")
    }
    sub_orchestrators = {
        "research_chunk_orchestrator",
        "agent_planner_orchestrator",
        "agent_researcher_orchestrator",
        "agent_writer_orchestrator",
    }
    assert started == ORCHESTRATORS - sub_orchestrators
