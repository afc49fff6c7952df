"""Waiting for a human approval: ``approval`` events raced against a durable deadline, with reminders.

Used by the request workflow and by the agent-research workflow. The ``approval`` event is
``{"approval_id", "approver", "decision": "approve"|"reject", "comment", "decided_at"}``, as a dict or as
its JSON text: the real extension hands the SDK's ``raise_event(data=v)`` to the orchestrator as the
string ``json.dumps(v)`` (df-host-protocol §5.4). An approval id seen before is ignored; so is a
malformed event (logged). One ``reject`` ends the wait; ``required_approvals`` distinct approvals
approve. ``POST /api/approvals/{instanceId}`` raises the event once per approval id.

Every approval is taken by a wait that was already open (:class:`ApprovalInbox`). In Azure the SDK hands
an event that arrives while no wait for it is open to every later wait, the last of several such events
standing in for all of them (azure-functions-durable-python#507): an approval raised while the
orchestrator is busy with something else would count once and then come back for every later wait. A
workflow that may receive approvals before its approval stage opens the inbox first and does that work
``alongside`` it (the request workflow, during classification).
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
from orchestrators._inputs import iso
from shared.idempotency import idempotency_key

logger = logging.getLogger(__name__)

APPROVAL_EVENT = "approval"
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


class ApprovalInbox:
    """The open wait for the next approval, and the approvals that came while the orchestrator was busy
    with something else (module docstring)."""

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
    """Counts approval events into an ApprovalWait: distinct approvals until enough, or one rejection."""

    context: df.DurableOrchestrationContext
    required: int
    result: ApprovalWait
    seen: set[str] = field(default_factory=set)  # rebuilt identically by replay: no external store needed
    ignored: int = 0

    def add(self, raw: Any) -> bool:
        """Count one event; True when it decides the request."""
        event = parse_approval_event(raw)
        if event is None or event["approval_id"] in self.seen:
            self.ignored += 1
            if self.ignored > MAX_IGNORED_EVENTS:
                raise RuntimeError(STALE_EVENT_MESSAGE)
            log_once(self.context, "ignoring approval event %r: malformed or already seen", raw)
            return False
        self.seen.add(event["approval_id"])
        if event["decision"] == "reject":
            self.result.rejection = event
            return True
        self.result.approvals.append(event)
        return len(self.result.approvals) >= self.required


def await_approval(
    context: df.DurableOrchestrationContext,
    policy: ApprovalPolicy,
    status: Mapping[str, Any],
    inbox: ApprovalInbox,
) -> Generator[Any, Any, ApprovalWait]:
    """Count the approvals that came early, then race the next ones against the deadline, sending
    reminders on schedule; cancel the timers when the wait ends. The custom status is stage
    ``awaiting_approval`` with ``since``, ``deadline``, the given ``status`` fields and the counts. Use
    with ``yield from``."""
    since = context.current_utc_datetime
    result = ApprovalWait(approvals=[], rejection=None, reminders_sent=0, expired=False)
    tally = _Tally(context, policy.required_approvals, result)
    if any(tally.add(raw) for raw in inbox.early):
        return result  # decided before the wait began: no timer was ever scheduled
    deadline = since + timedelta(hours=policy.deadline_hours)
    interval = timedelta(hours=policy.reminder_interval_hours)
    deadline_timer = context.create_timer(deadline)
    next_reminder = since + interval
    reminder_timer = context.create_timer(next_reminder) if next_reminder < deadline else None

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
        pending = [inbox.wait, deadline_timer] + ([reminder_timer] if reminder_timer else [])
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
        if tally.add(inbox.take()):
            break
        set_waiting_status()
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
