"""Workflow 1: classify a customer request, wait for human approval with a deadline, then act.

Input (``request_approval_orchestrator``)::

    {"request": {"text": str, "amount"?: number, "customer"?: str, …},   # required
     "deadline_hours": 72, "reminder_interval_hours": 24,
     "expiry_policy": "reject" | "escalate",                              # default "reject"
     "required_approvals": 1,                                             # distinct approval ids
     "approvers": "approvers@example.com",   # who gets reminders
     "escalation_contact": "escalations@example.com",
     "retry": {"first_retry_ms": 5000, "max_attempts": 3}}

Waits for the ``approval`` event ``{"approval_id", "approver", "decision": "approve"|"reject",
"comment", "decided_at"}``, as a dict or as its JSON text: the real extension hands the SDK's
``raise_event(data=v)`` to the orchestrator as the string ``json.dumps(v)`` (df-host-protocol §5.4).
An approval id seen before is ignored; so is a malformed event (logged). One ``reject`` ends the wait;
``required_approvals`` distinct approvals approve.

One wait for ``approval`` is open from the first episode to the end of the approval stage, classification
included, and each approval is taken by a wait that was already open (orchestrators._approval): in Azure
an approval raised while the request is being classified would otherwise count once and then come back
for every later wait (azure-functions-durable-python#507). Opening the wait first changes no sequence id
(waits take none) and adds the wait exactly where the old code added its first, so histories of
instances that ran the old code still replay.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from typing import Any

import azure.durable_functions as df

from orchestrators._approval import (
    APPROVAL_EVENT,
    ApprovalInbox,
    ApprovalPolicy,
    await_approval,
    log_once,
    parse_approval_event,
)
from orchestrators._inputs import InputError, as_mapping, choice, integer, number, retry_options, text
from shared.idempotency import idempotency_key

bp = df.Blueprint()

__all__ = ["APPROVAL_EVENT", "ApprovalWorkflowInput", "parse_approval_event", "request_approval_orchestrator"]

EXPIRY_POLICIES = ("reject", "escalate")


@dataclass(frozen=True)
class ApprovalWorkflowInput:
    """The validated input, defaults applied."""

    request: Mapping[str, Any]
    deadline_hours: float
    reminder_interval_hours: float
    expiry_policy: str
    required_approvals: int
    approvers: str
    escalation_contact: str
    retry: df.RetryOptions

    @classmethod
    def parse(cls, raw: Any) -> ApprovalWorkflowInput:
        """Validate ``raw``; raise InputError naming the bad field."""
        data = as_mapping(raw, "input")
        request = as_mapping(data.get("request"), "request")
        text(request, "text")
        return cls(
            request=request,
            deadline_hours=number(data, "deadline_hours", 72, minimum=0.001, maximum=24 * 365),
            reminder_interval_hours=number(
                data, "reminder_interval_hours", 24, minimum=0.001, maximum=24 * 365
            ),
            expiry_policy=choice(data, "expiry_policy", "reject", EXPIRY_POLICIES),
            required_approvals=integer(data, "required_approvals", 1, minimum=1, maximum=10),
            approvers=str(data.get("approvers") or "approvers@example.com"),
            escalation_contact=str(data.get("escalation_contact") or "escalations@example.com"),
            retry=retry_options(data),
        )

    @property
    def policy(self) -> ApprovalPolicy:
        return ApprovalPolicy(
            deadline_hours=self.deadline_hours,
            reminder_interval_hours=self.reminder_interval_hours,
            required_approvals=self.required_approvals,
            approvers=self.approvers,
            retry=self.retry,
        )


@bp.orchestration_trigger(context_name="context")
def request_approval_orchestrator(
    context: df.DurableOrchestrationContext,
) -> Generator[Any, Any, dict[str, Any]]:
    """Classify, wait for approval if needed, act; see the module docstring for input and events.

    Output: ``{"outcome": "done"|"rejected"|"expired"|"escalated", "classification", "approvals",
    "rejection", "action", "reminders_sent"}``.
    """
    try:
        params = ApprovalWorkflowInput.parse(context.get_input())
    except InputError as exc:
        raise InputError(f"request_approval_orchestrator: {exc}") from exc
    context.set_custom_status({"stage": "classifying"})
    # The approval wait opens now, with the classification (module docstring).
    inbox = ApprovalInbox(context)
    classification = yield from inbox.alongside(
        context.call_activity_with_retry("classify_request", params.retry, {"request": dict(params.request)})
    )
    context.set_custom_status(
        {
            "stage": "classified",
            "intent": classification["intent"],
            "confidence": classification["confidence"],
            "needs_approval": classification["needs_approval"],
        }
    )
    output: dict[str, Any] = {
        "classification": classification,
        "approvals": [],
        "rejection": None,
        "action": None,
        "reminders_sent": 0,
    }
    if classification["needs_approval"]:
        wait = yield from await_approval(context, params.policy, {"intent": classification["intent"]}, inbox)
        output.update(approvals=wait.approvals, rejection=wait.rejection, reminders_sent=wait.reminders_sent)
        if wait.rejection is not None:
            context.set_custom_status(
                {"stage": "rejected", "by": wait.rejection["approver"], "comment": wait.rejection["comment"]}
            )
            log_once(context, "rejected by %s", wait.rejection["approver"])
            return {**output, "outcome": "rejected"}
        if wait.expired:
            return (yield from _expire(context, params, output))
        approved_by = [a["approver"] for a in wait.approvals]
        context.set_custom_status({"stage": "approved", "by": approved_by})
        log_once(context, "approved by %s", ", ".join(approved_by))
    action = yield context.call_activity_with_retry(
        "perform_request_action",
        params.retry,
        {
            "key": idempotency_key(context.instance_id, "action"),
            "intent": classification["intent"],
            "request": dict(params.request),
        },
    )
    approvers = [a["approver"] for a in output["approvals"]]
    context.set_custom_status({"stage": "done", "by": approvers, "reference": action["reference"]})
    return {**output, "action": action, "outcome": "done"}


def _expire(
    context: df.DurableOrchestrationContext, params: ApprovalWorkflowInput, output: dict[str, Any]
) -> Generator[Any, Any, dict[str, Any]]:
    """Apply the expiry policy: ``reject`` ends the request, ``escalate`` notifies the escalation contact."""
    context.set_custom_status({"stage": "expired", "policy": params.expiry_policy})
    log_once(context, "approval deadline passed; policy %s", params.expiry_policy)
    if params.expiry_policy == "escalate":
        yield context.call_activity_with_retry(
            "send_notification",
            params.retry,
            {
                "key": idempotency_key(context.instance_id, "escalation"),
                "recipient": params.escalation_contact,
                "subject": f"Escalation: request {context.instance_id} was not approved in time",
                "body": json.dumps({"request": dict(params.request)}),
            },
        )
        return {**output, "outcome": "escalated"}
    return {**output, "outcome": "expired"}
