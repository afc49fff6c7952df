"""Waiting for a human approval: ``approval`` events raced against a durable deadline, with reminders.

Used by the request workflow and by the agent-research workflow. The ``approval`` event is
``{"approval_id", "approver", "decision": "approve"|"reject", "comment", "decided_at"}``, as a dict or as
its JSON text: the real extension hands the SDK's ``raise_event(data=v)`` to the orchestrator as the
string ``json.dumps(v)`` (df-host-protocol §5.4). An approval id seen before is ignored; so is a
malformed event (logged). One ``reject`` ends the wait; ``required_approvals`` distinct approvals
approve. ``POST /api/approvals/{instanceId}`` raises the event once per approval id.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import azure.durable_functions as df

from orchestrators._failures import failure_reason
from orchestrators._inputs import iso
from shared.idempotency import idempotency_key

logger = logging.getLogger(__name__)

APPROVAL_EVENT = "approval"
DECISIONS = ("approve", "reject")
# The SDK re-delivers an event raised before any wait to every later wait (df-host-protocol §3,
# surprise 5); if that event is a duplicate or malformed, each new wait resolves at once with it again.
# Bounding the ignored events turns that endless loop into a clear failure.
MAX_IGNORED_EVENTS = 50
STALE_EVENT_MESSAGE = (
    f"more than {MAX_IGNORED_EVENTS} duplicate or malformed approval events: either a client is "
    "misbehaving or the Durable Functions Python SDK keeps re-delivering an event raised before the "
    "orchestrator was waiting; raise approvals only while the custom status stage is awaiting_approval "
    "(POST /api/approvals/{instanceId} enforces this)"
)


@dataclass(frozen=True)
class ApprovalPolicy:
    """How long to wait, how often to remind whom, how many approvals it takes."""

    deadline_hours: float
    reminder_interval_hours: float
    required_approvals: int
    approvers: str
    retry: df.RetryOptions


@dataclass
class ApprovalWait:
    """What the approval wait produced."""

    approvals: list[dict[str, str]]
    rejection: dict[str, str] | None
    reminders_sent: int
    expired: bool


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


def log_once(context: df.DurableOrchestrationContext, message: str, *args: Any) -> None:
    """Log outside replays only."""
    if not context.is_replaying:
        logger.info("[%s] " + message, context.instance_id, *args)


def await_approval(
    context: df.DurableOrchestrationContext, policy: ApprovalPolicy, status: Mapping[str, Any]
) -> Generator[Any, Any, ApprovalWait]:
    """Race approval events against the deadline, sending reminders on schedule; cancel the timers when
    the wait ends. The custom status is stage ``awaiting_approval`` with ``since``, ``deadline``, the
    given ``status`` fields and the counts. Use with ``yield from``."""
    since = context.current_utc_datetime
    deadline = since + timedelta(hours=policy.deadline_hours)
    interval = timedelta(hours=policy.reminder_interval_hours)
    deadline_timer = context.create_timer(deadline)
    next_reminder = since + interval
    reminder_timer = context.create_timer(next_reminder) if next_reminder < deadline else None
    approval_task = context.wait_for_external_event(APPROVAL_EVENT)
    seen: set[str] = set()  # rebuilt identically by replay, so no external store is needed
    ignored = 0
    result = ApprovalWait(approvals=[], rejection=None, reminders_sent=0, expired=False)

    def set_waiting_status() -> None:
        context.set_custom_status(
            {
                "stage": "awaiting_approval",
                "since": iso(since),
                "deadline": iso(deadline),
                **status,
                "approvals": len(result.approvals),
                "required_approvals": policy.required_approvals,
                "reminders_sent": result.reminders_sent,
            }
        )

    set_waiting_status()
    while True:
        pending = [approval_task, deadline_timer] + ([reminder_timer] if reminder_timer else [])
        winner = yield context.task_any(pending)
        if winner is deadline_timer:
            result.expired = True
            break
        if winner is reminder_timer:
            result.reminders_sent += 1
            yield from _send_reminder(context, policy, result.reminders_sent, deadline)
            next_reminder += interval
            reminder_timer = context.create_timer(next_reminder) if next_reminder < deadline else None
            set_waiting_status()
            continue
        event = parse_approval_event(approval_task.result)
        if event is None or event["approval_id"] in seen:
            ignored += 1
            if ignored > MAX_IGNORED_EVENTS:
                raise RuntimeError(STALE_EVENT_MESSAGE)
            log_once(context, "ignoring approval event %r: malformed or already seen", approval_task.result)
        else:
            seen.add(event["approval_id"])
            if event["decision"] == "reject":
                result.rejection = event
                break
            result.approvals.append(event)
            if len(result.approvals) >= policy.required_approvals:
                break
            set_waiting_status()
        approval_task = context.wait_for_external_event(APPROVAL_EVENT)
    for timer in (deadline_timer, reminder_timer):
        if timer is not None and not timer.is_completed:
            timer.cancel()
    return result


def _send_reminder(
    context: df.DurableOrchestrationContext, policy: ApprovalPolicy, number_: int, deadline: Any
) -> Generator[Any, Any, None]:
    """Send reminder ``number_``; a reminder that still fails after retries is logged and skipped, since
    a missed reminder must not decide the request."""
    message = {
        "key": idempotency_key(context.instance_id, f"reminder-{number_}"),
        "recipient": policy.approvers,
        "subject": f"Reminder {number_}: approval needed for request {context.instance_id}",
        "body": f"Please approve or reject before {iso(deadline)}.",
    }
    try:
        yield context.call_activity_with_retry("send_notification", policy.retry, message)
    except Exception as exc:  # logged; the wait goes on without this reminder
        log_once(context, "reminder %d failed: %s", number_, failure_reason(exc))
