"""``POST /api/approvals/{instanceId}``: record an approver's decision once, then raise ``approval``.

Body: ``{"approval_id": str, "approver": str, "decision": "approve"|"reject", "comment"?: str}``.

Responses:

* 202 ``{"status": "accepted", "approval": …}``: recorded now and the event was raised.
* 200 ``{"status": "duplicate", "approval": <the originally recorded decision>}``: this approval id was
  recorded and delivered before (answered even if the workflow has finished since); the event is not
  raised again. An id recorded by a request that failed before raising the event is raised now
  (``"redelivered": true``), see :mod:`shared.approvals`.
* 400: the body is invalid (the message says how). 404: no such instance.
* 409: the instance exists but is not waiting for an approval (another workflow, or a stage such as
  ``classifying`` or ``approved``). 410: it no longer takes approvals (completed, failed, terminated,
  or the approval deadline has passed: custom status stage ``expired``).
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import Any

import azure.durable_functions as df
import azure.functions as func
from azure.durable_functions.models.OrchestrationRuntimeStatus import OrchestrationRuntimeStatus

from function_app._http import BadRequest, json_response, problem, read_json_object
from orchestrators._approval import APPROVAL_EVENT
from shared.approvals import ApprovalDecision, approval_store
from shared.settings import load_settings

bp = df.Blueprint(http_auth_level=func.AuthLevel.FUNCTION)
logger = logging.getLogger(__name__)

# The workflows that wait for approvals (orchestrators._approval).
APPROVAL_ORCHESTRATORS = ("request_approval_orchestrator", "agent_research_orchestrator")
# Table storage forbids / \ # ? and control characters in row keys; the id becomes the RowKey.
_APPROVAL_ID = re.compile(r"^[A-Za-z0-9._:@-]{1,128}$")
_FINISHED = {
    OrchestrationRuntimeStatus.Completed,
    OrchestrationRuntimeStatus.Failed,
    OrchestrationRuntimeStatus.Terminated,
    OrchestrationRuntimeStatus.Canceled,
}


def parse_approval_body(body: dict[str, Any], now: datetime) -> ApprovalDecision:
    """Validate the body; raises BadRequest naming the problem."""
    unknown = sorted(set(body) - {"approval_id", "approver", "decision", "comment"})
    if unknown:
        raise BadRequest(f"unknown fields {unknown}; allowed: approval_id, approver, decision, comment")
    approval_id = body.get("approval_id")
    if not isinstance(approval_id, str) or not _APPROVAL_ID.match(approval_id):
        raise BadRequest("approval_id must be 1-128 characters of letters, digits and . _ : @ -")
    approver = body.get("approver")
    if not isinstance(approver, str) or not approver.strip() or len(approver) > 200:
        raise BadRequest("approver must be a non-empty string of at most 200 characters")
    decision = body.get("decision")
    if decision not in ("approve", "reject"):
        raise BadRequest('decision must be "approve" or "reject"')
    comment = body.get("comment", "")
    if not isinstance(comment, str) or len(comment) > 2000:
        raise BadRequest("comment must be a string of at most 2000 characters")
    return ApprovalDecision(
        approval_id=approval_id,
        approver=approver.strip(),
        decision=decision,
        comment=comment,
        decided_at=now.isoformat(),
    )


def _not_awaiting(instance_id: str, status: df.DurableOrchestrationStatus) -> func.HttpResponse | None:
    """The 409/410 response when the instance cannot take an approval now, else None.

    Whether the deadline has passed is read from the orchestrator's stage, not from this machine's
    clock: the orchestrator's durable timer is the authority (and under a test host's virtual clock
    the wall clock says nothing about the instance's time).
    """
    if status.name not in APPROVAL_ORCHESTRATORS:
        return problem(409, f"instance {instance_id} is a {status.name} run, which takes no approvals")
    runtime = status.runtime_status
    custom = status.custom_status if isinstance(status.custom_status, dict) else {}
    stage = custom.get("stage")
    if runtime in _FINISHED:
        state = runtime.value if runtime else "finished"
        return problem(410, f"instance {instance_id} is {state}: it no longer takes approvals", stage=stage)
    if stage == "expired":
        return problem(410, f"the approval deadline of instance {instance_id} has passed", stage=stage)
    if stage != "awaiting_approval":
        return problem(409, f"instance {instance_id} is not awaiting approval (stage: {stage})", stage=stage)
    return None


@bp.route(route="approvals/{instanceId}", methods=["POST"])
@bp.durable_client_input(client_name="client")
async def submit_approval(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Record the decision (deduplicated by approval id) and raise the ``approval`` event."""
    instance_id = req.route_params["instanceId"]
    now = datetime.now(UTC)
    try:
        decision = parse_approval_body(read_json_object(req), now)
    except BadRequest as exc:
        return problem(400, str(exc))
    status = await client.get_status(instance_id)
    if not status:
        return problem(404, f"no instance {instance_id}")
    store = await approval_store(load_settings())
    # A retried request whose approval was already delivered gets its original outcome, even when the
    # workflow has moved on since (its own approval may be what moved it).
    earlier = await store.get(instance_id, decision.approval_id)
    if earlier is not None and earlier.delivered:
        logger.info("approval %s for %s is a duplicate", decision.approval_id, instance_id)
        return json_response({"status": "duplicate", "approval": earlier.decision.to_event()})
    refusal = _not_awaiting(instance_id, status)
    if refusal is not None:
        return refusal

    created, recorded = await store.record(instance_id, decision)
    if not created and recorded.delivered:  # a concurrent request delivered it just now
        return json_response({"status": "duplicate", "approval": recorded.decision.to_event()})
    # A new record, or one whose event was never raised (an earlier request failed in between): raise it.
    # A second raise for the same id is harmless: the orchestrator ignores approval ids it has seen.
    await client.raise_event(instance_id, APPROVAL_EVENT, recorded.decision.to_event())
    await store.mark_delivered(instance_id, decision.approval_id)
    if created:
        return json_response({"status": "accepted", "approval": recorded.decision.to_event()}, 202)
    return json_response(
        {"status": "duplicate", "approval": recorded.decision.to_event(), "redelivered": True}
    )
