"""Research: planning queries, running one query, synthesising the findings.

``research_query`` returns a structured result instead of raising for failures that a retry cannot fix
(the LLM refused the query or answered nonsense): ``{"status": "failed", "error": …}``. Transient
failures (rate limit, timeout, server errors) raise, so the orchestrator's retry policy applies; what
still fails after the retries is recorded as failed by the chunk orchestrator.
"""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df

from activities._runtime import llm_client
from shared.llm import LLMBadResponse, LLMRequestRejected, complete_json

bp = df.Blueprint()

PLAN_SYSTEM = (
    'You plan web research. Answer with a JSON object {"queries": [...]} holding exactly num_queries '
    "distinct search queries that together cover the topic."
)
RESEARCH_SYSTEM = (
    'You research one query about a topic. Answer with a JSON object {"findings": str, "sources": [str]}.'
)
SYNTHESIS_SYSTEM = (
    'You merge research findings. Answer with a JSON object {"summary": str, "key_points": [str]}.'
)


@bp.activity_trigger(input_name="payload")
def plan_research_queries(payload: dict) -> dict[str, Any]:
    """Plan ``num_queries`` queries for ``topic``; returns {"queries": [...], "tokens"}."""
    answer, tokens = complete_json(
        llm_client(),
        "plan_queries",
        PLAN_SYSTEM,
        {"topic": payload["topic"], "num_queries": payload["num_queries"]},
    )
    queries = answer.get("queries")
    if not isinstance(queries, list) or not all(isinstance(q, str) and q for q in queries) or not queries:
        raise LLMBadResponse(f"query plan is not a non-empty list of strings: {answer!r}")
    return {"queries": queries[: int(payload["num_queries"])], "tokens": tokens}


def research_one(index: int, topic: str, query: str) -> dict[str, Any]:
    """One query's findings: status ``ok`` with findings, sources and tokens, or ``failed`` with the error
    for non-retryable LLM failures (see the module docstring). Transient failures raise."""
    base = {"index": index, "query": query}
    try:
        answer, tokens = complete_json(
            llm_client(), "research", RESEARCH_SYSTEM, {"topic": topic, "query": query}
        )
        findings = answer.get("findings")
        if not isinstance(findings, str):
            raise LLMBadResponse(f"research answer has no findings text: {answer!r}")
    except (LLMRequestRejected, LLMBadResponse) as exc:
        return {**base, "status": "failed", "error": f"{type(exc).__name__}: {exc}", "tokens": 0}
    sources = [str(s) for s in answer.get("sources", []) if isinstance(s, str)]
    return {**base, "status": "ok", "findings": findings, "sources": sources, "tokens": tokens}


@bp.activity_trigger(input_name="payload")
def research_query(payload: dict) -> dict[str, Any]:
    """Research ``{"index", "topic", "query"}`` (see :func:`research_one`)."""
    return research_one(int(payload["index"]), str(payload["topic"]), str(payload["query"]))


@bp.activity_trigger(input_name="payload")
def synthesize_findings(payload: dict) -> dict[str, Any]:
    """Merge ``{"topic", "findings": [str]}``; returns {"summary", "key_points", "tokens"}."""
    answer, tokens = complete_json(
        llm_client(),
        "synthesize",
        SYNTHESIS_SYSTEM,
        {"topic": payload["topic"], "findings": payload["findings"]},
    )
    if not isinstance(answer.get("summary"), str):
        raise LLMBadResponse(f"synthesis has no summary: {answer!r}")
    key_points = [str(p) for p in answer.get("key_points", [])]
    return {"summary": answer["summary"], "key_points": key_points, "tokens": tokens}
