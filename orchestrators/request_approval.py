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
included, and each approval is taken by a wait that was already open. In Azure the SDK would hand an
event that arrives while no wait for it is open to every later wait, the last of several such events
standing in for all of them (azure-functions-durable-python#507): an approval raised while the request
is being classified would count once and then come back for every later wait. Opening the wait first
changes no sequence id (waits take none) and adds the wait exactly where the old code added its first,
so histories of instances that ran the old code still replay.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import azure.durable_functions as df

from orchestrators._failures import failure_reason
from orchestrators._inputs import InputError, as_mapping, choice, integer, iso, number, retry_options, text
from shared.idempotency import idempotency_key

bp = df.Blueprint()
logger = logging.getLogger(__name__)

APPROVAL_EVENT = "approval"
EXPIRY_POLICIES = ("reject", "escalate")
DECISIONS = ("approve", "reject")
# Duplicates and malformed events are ignored, but not without end: a client that keeps sending them
# (or an SDK re-delivering an event no wait was open for, #507, which the open wait prevents) would keep
# the orchestrator replaying for nothing. Bounding the ignored events turns that into a clear failure.
MAX_IGNORED_EVENTS = 50
STALE_EVENT_MESSAGE = (
    f"more than {MAX_IGNORED_EVENTS} duplicate or malformed approval events: a client keeps sending "
    "approvals that were counted already or are not valid decisions; send each approval_id once "
    "(POST /api/approvals/{instanceId} de-duplicates them)"
)


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


def parse_approval_event(raw: Any) -> dict[str, str] | None:
    """The approval event as a dict, from a dict or its JSON text; None if it is not a valid decision."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            return None
    if not isinstance(raw, Mapping):
        return None
    approval_id, approver, decision = raw.get("approval_id"), raw.get("approver"), raw.get("decision")
    if not (isinstance(approval_id, str) and approval_id and isinstance(approver, str) and approver):
        return None
    if decision not in DECISIONS:
        return None
    return {
        "approval_id": approval_id,
        "approver": approver,
        "decision": str(decision),
        "comment": str(raw.get("comment") or ""),
        "decided_at": str(raw.get("decided_at") or ""),
    }


@dataclass
class _Wait:
    """What the approval wait produced."""

    approvals: list[dict[str, str]]
    rejection: dict[str, str] | None
    reminders_sent: int
    expired: bool


def _log(context: df.DurableOrchestrationContext, message: str, *args: Any) -> None:
    if not context.is_replaying:
        logger.info("[%s] " + message, context.instance_id, *args)


class _ApprovalInbox:
    """The open wait for the next approval, and the approvals that came while the orchestrator was busy
    with something else (the classification)."""

    def __init__(self, context: df.DurableOrchestrationContext) -> None:
        self._context = context
        self.wait = context.wait_for_external_event(APPROVAL_EVENT)
        self.early: list[Any] = []

    def take(self) -> Any:
        """The approval the open wait received; the next wait takes its place (it is only scheduled when
        yielded, so one that is never needed costs nothing)."""
        received = self.wait.result
        self.wait = self._context.wait_for_external_event(APPROVAL_EVENT)
        return received

    def alongside(self, work: Any) -> Generator[Any, Any, Any]:
        """Wait for ``work`` with the approval wait open, keeping what arrives meanwhile; return its result
        (or raise its failure). Use with ``yield from``."""
        while not work.is_completed:
            winner = yield self._context.task_any([work, self.wait])
            if winner is not work:
                self.early.append(self.take())
        return (yield work)


@dataclass
class _Tally:
    """Counts approval events into a _Wait: distinct approvals until enough, or one rejection."""

    context: df.DurableOrchestrationContext
    required: int
    result: _Wait
    seen: set[str] = field(default_factory=set)  # rebuilt identically by replay: no external store needed
    ignored: int = 0

    def add(self, raw: Any) -> bool:
        """Count one event; True when it decides the request."""
        event = parse_approval_event(raw)
        if event is None or event["approval_id"] in self.seen:
            self.ignored += 1
            if self.ignored > MAX_IGNORED_EVENTS:
                raise RuntimeError(STALE_EVENT_MESSAGE)
            _log(self.context, "ignoring approval event %r: malformed or already seen", raw)
            return False
        self.seen.add(event["approval_id"])
        if event["decision"] == "reject":
            self.result.rejection = event
            return True
        self.result.approvals.append(event)
        return len(self.result.approvals) >= self.required


def _await_approval(
    context: df.DurableOrchestrationContext,
    params: ApprovalWorkflowInput,
    classification: Mapping[str, Any],
    inbox: _ApprovalInbox,
) -> Generator[Any, Any, _Wait]:
    """Count the approvals that came early, then race the next ones against the deadline, sending
    reminders on schedule; cancel the timers when the wait ends. Use with ``yield from``."""
    since = context.current_utc_datetime
    result = _Wait(approvals=[], rejection=None, reminders_sent=0, expired=False)
    tally = _Tally(context, params.required_approvals, result)
    if any(tally.add(raw) for raw in inbox.early):
        return result  # decided before the wait began: no timer was ever scheduled
    deadline = since + timedelta(hours=params.deadline_hours)
    interval = timedelta(hours=params.reminder_interval_hours)
    deadline_timer = context.create_timer(deadline)
    next_reminder = since + interval
    reminder_timer = context.create_timer(next_reminder) if next_reminder < deadline else None

    def set_waiting_status() -> None:
        context.set_custom_status(
            {
                "stage": "awaiting_approval",
                "since": iso(since),
                "deadline": iso(deadline),
                "intent": classification["intent"],
                "approvals": len(result.approvals),
                "required_approvals": params.required_approvals,
                "reminders_sent": result.reminders_sent,
            }
        )

    set_waiting_status()
    while True:
        pending = [inbox.wait, deadline_timer] + ([reminder_timer] if reminder_timer else [])
        winner = yield context.task_any(pending)
        if winner is deadline_timer:
            result.expired = True
            break
        if winner is reminder_timer:
            result.reminders_sent += 1
            yield from _send_reminder(context, params, result.reminders_sent, deadline)
            next_reminder += interval
            reminder_timer = context.create_timer(next_reminder) if next_reminder < deadline else None
            set_waiting_status()
            continue
        if tally.add(inbox.take()):
            break
        set_waiting_status()
    for timer in (deadline_timer, reminder_timer):
        if timer is not None and not timer.is_completed:
            timer.cancel()
    return result


def _send_reminder(
    context: df.DurableOrchestrationContext, params: ApprovalWorkflowInput, number_: int, deadline: Any
) -> Generator[Any, Any, None]:
    """Send reminder ``number_``; a reminder that still fails after retries is logged and skipped, since
    a missed reminder must not decide the request."""
    message = {
        "key": idempotency_key(context.instance_id, f"reminder-{number_}"),
        "recipient": params.approvers,
        "subject": f"Reminder {number_}: approval needed for request {context.instance_id}",
        "body": f"Please approve or reject before {iso(deadline)}.",
    }
    try:
        yield context.call_activity_with_retry("send_notification", params.retry, message)
    except Exception as exc:  # logged; the wait goes on without this reminder
        _log(context, "reminder %d failed: %s", number_, failure_reason(exc))


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
    inbox = _ApprovalInbox(context)
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
        wait = yield from _await_approval(context, params, classification, inbox)
        output.update(approvals=wait.approvals, rejection=wait.rejection, reminders_sent=wait.reminders_sent)
        if wait.rejection is not None:
            context.set_custom_status(
                {"stage": "rejected", "by": wait.rejection["approver"], "comment": wait.rejection["comment"]}
            )
            _log(context, "rejected by %s", wait.rejection["approver"])
            return {**output, "outcome": "rejected"}
        if wait.expired:
            return (yield from _expire(context, params, output))
        approved_by = [a["approver"] for a in wait.approvals]
        context.set_custom_status({"stage": "approved", "by": approved_by})
        _log(context, "approved by %s", ", ".join(approved_by))
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
    _log(context, "approval deadline passed; policy %s", params.expiry_policy)
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
