"""Request classification by the LLM."""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df

from activities._runtime import llm_client
from shared.llm import LLMBadResponse, complete_json

bp = df.Blueprint()

CLASSIFY_SYSTEM = (
    "You triage customer requests. Answer with a JSON object with keys: intent (refund, cancellation, "
    "booking, complaint or general_inquiry), confidence (0..1), needs_approval (true when money is "
    "returned, an account or contract ends, or the amount exceeds 500), summary (one sentence)."
)


@bp.activity_trigger(input_name="payload")
def classify_request(payload: dict) -> dict[str, Any]:
    """Classify ``payload["request"]`` ({"text", "amount"?, …}); returns intent, confidence,
    needs_approval, summary and the tokens used. Raises LLMError on failure."""
    request = payload["request"]
    answer, tokens = complete_json(
        llm_client(),
        "classify",
        CLASSIFY_SYSTEM,
        {"text": request["text"], "amount": request.get("amount")},
    )
    try:
        confidence = float(answer["confidence"])
        result = {
            "intent": str(answer["intent"]),
            "confidence": confidence,
            "needs_approval": bool(answer["needs_approval"]),
            "summary": str(answer.get("summary", "")),
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise LLMBadResponse(f"classification answer lacks a valid field: {exc!r} in {answer!r}") from exc
    return {**result, "tokens": tokens}
