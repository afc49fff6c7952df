"""The offline LLM provider: deterministic answers computed locally, no network.

Used when no ``LLM_ENDPOINT`` is configured, so the app runs and its workflows are testable anywhere.
It is not a language model: classification is by keywords, plans are built from the topic or goal,
findings and summaries are templated, and token usage is ``ceil(characters / 4)`` of the prompt and of
the answer. The same request always gives the same response.

Test hook: a research query containing ``!fail`` is refused with :class:`LLMRequestRejected` (HTTP 400),
so tests can exercise the degraded fan-in path.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from shared.llm.base import LLMBadResponse, LLMRequest, LLMRequestRejected, LLMResponse

OFFLINE_MODEL = "offline-deterministic-1"
FAIL_MARKER = "!fail"
APPROVAL_AMOUNT_THRESHOLD = 500.0

# intent -> (keywords, needs approval); checked in this order.
_INTENTS: tuple[tuple[str, tuple[str, ...], bool], ...] = (
    ("refund", ("refund", "money back", "reimburse", "chargeback"), True),
    ("cancellation", ("cancel", "terminate", "close my account"), True),
    ("booking", ("book", "flight", "reservation", "ticket"), False),
    ("complaint", ("complain", "complaint", "unhappy", "broken", "angry"), False),
)
_ASPECTS = (
    "overview",
    "recent developments",
    "key players",
    "open problems",
    "costs and trade-offs",
    "risks",
    "regulation",
    "case studies",
)


def _tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4))


def _classify(data: dict[str, Any]) -> dict[str, Any]:
    text = str(data.get("text", "")).lower()
    amount = float(data.get("amount") or 0)
    for intent, keywords, needs_approval in _INTENTS:
        hits = sum(1 for k in keywords if k in text)
        if hits:
            return {
                "intent": intent,
                "confidence": round(min(0.99, 0.6 + 0.15 * hits), 2),
                "needs_approval": needs_approval or amount > APPROVAL_AMOUNT_THRESHOLD,
                "summary": text[:120],
            }
    return {
        "intent": "general_inquiry",
        "confidence": 0.5,
        "needs_approval": amount > APPROVAL_AMOUNT_THRESHOLD,
        "summary": text[:120],
    }


def _plan_queries(data: dict[str, Any]) -> dict[str, Any]:
    topic = str(data["topic"])
    count = int(data["num_queries"])
    queries = []
    for i in range(count):
        aspect = _ASPECTS[i % len(_ASPECTS)]
        round_no = i // len(_ASPECTS)
        queries.append(f"{topic}: {aspect}" + (f" (part {round_no + 1})" if round_no else ""))
    return {"queries": queries}


def _research(data: dict[str, Any]) -> dict[str, Any]:
    query = str(data["query"])
    if FAIL_MARKER in query:
        raise LLMRequestRejected(400, f"offline provider refuses queries containing {FAIL_MARKER!r}")
    return {
        "findings": f"Offline notes on '{query}': no live research was done; this text is generated.",
        "sources": [f"offline://{abs(hash_text(query)) % 10_000}"],
    }


def _synthesize(data: dict[str, Any]) -> dict[str, Any]:
    findings = [str(f) for f in data.get("findings", [])]
    return {
        "summary": f"{len(findings)} findings on {data.get('topic', '')!s}.",
        "key_points": findings[:5],
    }


def _plan_actions(data: dict[str, Any]) -> dict[str, Any]:
    goal = str(data["goal"])
    max_steps = int(data.get("max_steps", 5))
    words = [w for w in goal.split() if w.isalnum()] or ["goal"]
    steps = min(max_steps, 2 + len(words) % 4)
    return {
        "actions": [
            {"name": f"step-{i + 1}", "description": f"work on '{words[i % len(words)]}' for: {goal}"}
            for i in range(steps)
        ]
    }


def _execute_action(data: dict[str, Any]) -> dict[str, Any]:
    action = data["action"]
    return {"output": f"done: {action.get('description', action.get('name', ''))}"}


def hash_text(text: str) -> int:
    """A stable (not salted, unlike ``hash``) integer digest of ``text``."""
    value = 0
    for ch in text:
        value = (value * 131 + ord(ch)) % (2**61 - 1)
    return value


_TASKS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "classify": _classify,
    "plan_queries": _plan_queries,
    "research": _research,
    "synthesize": _synthesize,
    "plan_actions": _plan_actions,
    "execute_action": _execute_action,
}


class OfflineLLMClient:
    """Deterministic stand-in for a chat model (see the module docstring)."""

    def complete(self, request: LLMRequest) -> LLMResponse:
        """Answer ``request.task`` from the JSON in ``request.user``."""
        handler = _TASKS.get(request.task)
        if handler is None:
            raise LLMRequestRejected(400, f"offline provider has no task {request.task!r}")
        try:
            data = json.loads(request.user)
        except json.JSONDecodeError as exc:
            raise LLMBadResponse(f"offline provider expects JSON input for {request.task}: {exc}") from exc
        text = json.dumps(handler(data), sort_keys=True)
        return LLMResponse(
            text=text,
            prompt_tokens=_tokens(request.system) + _tokens(request.user),
            completion_tokens=_tokens(text),
            model=OFFLINE_MODEL,
        )
