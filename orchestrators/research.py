"""Workflow 3: parallel research, fan-out/fan-in, degrading instead of failing.

Input (``research_orchestrator``)::

    {"topic": str,                       # required
     "num_queries": 5,                   # 1..500, used when "queries" is absent
     "queries"?: [str],                  # skip planning and research these (tests use this)
     "chunk_size": 50,                   # queries per sub-orchestration, 1..100
     "retry": {"first_retry_ms": 5000, "max_attempts": 3}}

Queries are split into chunks; each chunk is a ``research_chunk_orchestrator`` sub-orchestration with
instance id ``<instance id>:research:<chunk number>`` that runs its queries in parallel, so no history
holds more than ``chunk_size`` activity results. A query that fails (structured ``failed`` result from
``research_query``, or an exception after the retries) is recorded with its error; a whole chunk that
fails marks each of its queries failed. The synthesis uses whatever succeeded.

Output: ``{"topic", "summary", "key_points", "succeeded": int, "failed": [{"index", "query", "error"}],
"tokens": int}`` (summary is null when nothing succeeded).
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from typing import Any

import azure.durable_functions as df

from orchestrators._fanout import gather_settled
from orchestrators._inputs import InputError, as_mapping, integer, retry_options, text

bp = df.Blueprint()
logger = logging.getLogger(__name__)

MAX_QUERIES = 500
MAX_CHUNK_SIZE = 100


def parse_research_input(raw: Any) -> dict[str, Any]:
    """Validate the input, defaults applied; raises InputError naming the bad field."""
    data = as_mapping(raw, "input")
    queries = data.get("queries")
    if queries is not None and (
        not isinstance(queries, list)
        or not 1 <= len(queries) <= MAX_QUERIES
        or not all(isinstance(q, str) and q.strip() for q in queries)
    ):
        raise InputError(f"queries must be a list of 1..{MAX_QUERIES} non-empty strings")
    return {
        "topic": text(data, "topic", max_length=500),
        "num_queries": integer(data, "num_queries", 5, minimum=1, maximum=MAX_QUERIES),
        "queries": queries,
        "chunk_size": integer(data, "chunk_size", 50, minimum=1, maximum=MAX_CHUNK_SIZE),
        "retry": dict(as_mapping(data.get("retry", {}), "retry")),
    }


@bp.orchestration_trigger(context_name="context")
def research_orchestrator(context: df.DurableOrchestrationContext) -> Generator[Any, Any, dict[str, Any]]:
    """Plan queries, research them in chunked parallel sub-orchestrations, synthesise the findings."""
    params = parse_research_input(context.get_input())
    tokens = 0
    queries: list[str]
    if params["queries"] is not None:
        queries = params["queries"]
    else:
        context.set_custom_status({"stage": "planning"})
        plan = yield context.call_activity_with_retry(
            "plan_research_queries",
            retry_options(params),
            {"topic": params["topic"], "num_queries": params["num_queries"]},
        )
        queries, tokens = plan["queries"], plan["tokens"]
    items = [{"index": i, "query": q} for i, q in enumerate(queries)]
    size = params["chunk_size"]
    chunks = [items[i : i + size] for i in range(0, len(items), size)]
    context.set_custom_status({"stage": "researching", "queries": len(items), "chunks": len(chunks)})
    tasks = [
        context.call_sub_orchestrator(
            "research_chunk_orchestrator",
            {"topic": params["topic"], "queries": chunk, "retry": params["retry"]},
            f"{context.instance_id}:research:{n}",
        )
        for n, chunk in enumerate(chunks)
    ]
    results: list[dict[str, Any]] = []
    for chunk, settled in zip(chunks, (yield from gather_settled(context, tasks)), strict=True):
        if settled["ok"]:
            results.extend(settled["value"])
        else:
            results.extend({**item, "status": "failed", "error": settled["error"]} for item in chunk)
    succeeded = [r for r in results if r["status"] == "ok"]
    failed = [
        {"index": r["index"], "query": r["query"], "error": r["error"]}
        for r in results
        if r["status"] != "ok"
    ]
    tokens += sum(int(r.get("tokens", 0)) for r in succeeded)
    if not context.is_replaying and failed:
        logger.warning(
            "[%s] %d of %d research queries failed", context.instance_id, len(failed), len(results)
        )
    summary: dict[str, Any] = {"summary": None, "key_points": []}
    if succeeded:
        context.set_custom_status(
            {"stage": "synthesizing", "succeeded": len(succeeded), "failed": len(failed)}
        )
        summary = yield context.call_activity_with_retry(
            "synthesize_findings",
            retry_options(params),
            {"topic": params["topic"], "findings": [r["findings"] for r in succeeded]},
        )
        tokens += int(summary["tokens"])
    context.set_custom_status({"stage": "done", "succeeded": len(succeeded), "failed": len(failed)})
    return {
        "topic": params["topic"],
        "summary": summary["summary"],
        "key_points": summary["key_points"],
        "succeeded": len(succeeded),
        "failed": failed,
        "tokens": tokens,
    }


@bp.orchestration_trigger(context_name="context")
def research_chunk_orchestrator(
    context: df.DurableOrchestrationContext,
) -> Generator[Any, Any, list[dict[str, Any]]]:
    """Research ``{"topic", "queries": [{"index", "query"}], "retry"}`` in parallel; return one result per
    query (``status`` ``ok`` or ``failed`` with ``error``), never failing because one query failed."""
    data = as_mapping(context.get_input(), "input")
    retry = retry_options(data)
    items = data["queries"]
    tasks = [
        context.call_activity_with_retry("research_query", retry, {**item, "topic": data["topic"]})
        for item in items
    ]
    settled = yield from gather_settled(context, tasks)
    return [
        s["value"] if s["ok"] else {**item, "status": "failed", "error": s["error"], "tokens": 0}
        for item, s in zip(items, settled, strict=True)
    ]
