"""HTTP triggers that start workflows. Each route names the one orchestrator it starts, validates the
body with the same checks the orchestrator applies (so a bad body is a 400, never a failed instance),
fills defaults from the settings, and answers 202 with the check-status links."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from function_app._http import BadRequest, problem, read_json_object
from orchestrators._inputs import InputError
from orchestrators.agent_budget import parse_agent_input
from orchestrators.agent_research import parse_agent_research_input
from orchestrators.booking import parse_booking_input
from orchestrators.request_approval import ApprovalWorkflowInput
from orchestrators.research import parse_research_input
from shared.settings import Settings, load_settings

bp = df.Blueprint(http_auth_level=func.AuthLevel.FUNCTION)
logger = logging.getLogger(__name__)

BOOKING_FIELDS = ("flight", "date", "passengers", "amount", "currency", "card_token")
_REQUEST_FIELDS = ("text", "customer", "amount", "channel")
_APPROVAL_OPTIONS = (
    "deadline_hours",
    "reminder_interval_hours",
    "expiry_policy",
    "required_approvals",
    "approvers",
    "escalation_contact",
)


def request_workflow_input(body: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Orchestration input for ``POST /api/requests``: the customer request (``text`` required;
    ``customer``, ``amount``, ``channel`` optional) plus optional ``approval`` overrides of the defaults
    from settings. Raises InputError or BadRequest."""
    unknown = sorted(set(body) - {*_REQUEST_FIELDS, "approval"})
    if unknown:
        raise BadRequest(f"unknown fields {unknown}; allowed: {[*_REQUEST_FIELDS, 'approval']}")
    amount = body.get("amount")
    if amount is not None and (isinstance(amount, bool) or not isinstance(amount, int | float) or amount < 0):
        raise BadRequest("amount must be a non-negative number")
    if "customer" in body and not isinstance(body["customer"], str):
        raise BadRequest("customer must be a string")
    overrides = body.get("approval", {})
    if not isinstance(overrides, dict) or set(overrides) - set(_APPROVAL_OPTIONS):
        raise BadRequest(f"approval must be an object with some of {list(_APPROVAL_OPTIONS)}")
    data = {
        "request": {k: body[k] for k in _REQUEST_FIELDS if k in body},
        "deadline_hours": settings.approval_deadline_hours,
        "reminder_interval_hours": settings.approval_reminder_hours,
        "expiry_policy": settings.approval_expiry_policy,
        **overrides,
    }
    ApprovalWorkflowInput.parse(data)
    return data


def research_workflow_input(body: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Orchestration input for ``POST /api/research``: ``topic`` and optional ``num_queries``."""
    unknown = sorted(set(body) - {"topic", "num_queries"})
    if unknown:
        raise BadRequest(f"unknown fields {unknown}; allowed: ['topic', 'num_queries']")
    data = {"topic": body.get("topic"), "num_queries": body.get("num_queries", 5)}
    data["chunk_size"] = settings.research_chunk_size
    parsed = parse_research_input(data)
    if parsed["num_queries"] > settings.research_max_queries:
        raise BadRequest(f"num_queries must be at most {settings.research_max_queries}")
    return data


def booking_workflow_input(body: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Orchestration input for ``POST /api/bookings``: the booking fields."""
    unknown = sorted(set(body) - set(BOOKING_FIELDS))
    if unknown:
        raise BadRequest(f"unknown fields {unknown}; allowed: {list(BOOKING_FIELDS)}")
    data = {"booking": body}
    parse_booking_input(data)
    return data


def agent_workflow_input(body: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Orchestration input for ``POST /api/agent-runs``: ``goal``, optional ``token_budget``/``max_steps``."""
    unknown = sorted(set(body) - {"goal", "token_budget", "max_steps"})
    if unknown:
        raise BadRequest(f"unknown fields {unknown}; allowed: ['goal', 'token_budget', 'max_steps']")
    data = {"token_budget": settings.agent_token_budget, **body}
    parse_agent_input(data)
    return data


def agent_research_workflow_input(body: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Orchestration input for ``POST /api/agent-research``: ``topic``, optional ``num_queries`` and
    ``approval`` overrides (``deadline_hours``, ``reminder_interval_hours``, ``approvers``)."""
    unknown = sorted(set(body) - {"topic", "num_queries", "approval"})
    if unknown:
        raise BadRequest(f"unknown fields {unknown}; allowed: ['topic', 'num_queries', 'approval']")
    overrides = body.get("approval", {})
    allowed = {"deadline_hours", "reminder_interval_hours", "approvers"}
    if not isinstance(overrides, dict) or set(overrides) - allowed:
        raise BadRequest(f"approval must be an object with some of {sorted(allowed)}")
    data = {
        "topic": body.get("topic"),
        "num_queries": body.get("num_queries", 3),
        "deadline_hours": settings.approval_deadline_hours,
        "reminder_interval_hours": settings.approval_reminder_hours,
        **overrides,
    }
    parse_agent_research_input(data)
    return data


WorkflowInputBuilder = Callable[[dict[str, Any], Settings], dict[str, Any]]


async def _start(
    req: func.HttpRequest,
    client: df.DurableOrchestrationClient,
    orchestrator: str,
    build_input: WorkflowInputBuilder,
) -> func.HttpResponse:
    try:
        data = build_input(read_json_object(req), load_settings())
    except (BadRequest, InputError) as exc:
        return problem(400, str(exc))
    instance_id = await client.start_new(orchestrator, client_input=data)
    logger.info("started %s instance %s", orchestrator, instance_id)
    response: func.HttpResponse = client.create_check_status_response(req, instance_id)
    return response


@bp.route(route="requests", methods=["POST"])
@bp.durable_client_input(client_name="client")
async def start_request_workflow(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    """``POST /api/requests``: start ``request_approval_orchestrator``."""
    return await _start(req, client, "request_approval_orchestrator", request_workflow_input)


@bp.route(route="research", methods=["POST"])
@bp.durable_client_input(client_name="client")
async def start_research_workflow(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    """``POST /api/research``: start ``research_orchestrator``."""
    return await _start(req, client, "research_orchestrator", research_workflow_input)


@bp.route(route="bookings", methods=["POST"])
@bp.durable_client_input(client_name="client")
async def start_booking_workflow(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    """``POST /api/bookings``: start ``booking_saga_orchestrator``."""
    return await _start(req, client, "booking_saga_orchestrator", booking_workflow_input)


@bp.route(route="agent-runs", methods=["POST"])
@bp.durable_client_input(client_name="client")
async def start_agent_workflow(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    """``POST /api/agent-runs``: start ``agent_run_orchestrator``."""
    return await _start(req, client, "agent_run_orchestrator", agent_workflow_input)


@bp.route(route="agent-research", methods=["POST"])
@bp.durable_client_input(client_name="client")
async def start_agent_research_workflow(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    """``POST /api/agent-research``: start ``agent_research_orchestrator``."""
    return await _start(req, client, "agent_research_orchestrator", agent_research_workflow_input)
