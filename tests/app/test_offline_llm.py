from __future__ import annotations

import json

import pytest

from shared.llm import LLMRequest, LLMRequestRejected, OfflineLLMClient, complete_json, create_llm_client
from shared.settings import LLMSettings


def _ask(task: str, data: dict[str, object]) -> tuple[dict[str, object], int]:
    return complete_json(OfflineLLMClient(), task, "system prompt", data)


def test_offline_is_the_default_provider() -> None:
    assert isinstance(create_llm_client(LLMSettings()), OfflineLLMClient)


def test_same_request_same_response() -> None:
    request = LLMRequest(
        task="plan_queries", system="s", user=json.dumps({"topic": "tides", "num_queries": 12})
    )
    first, second = OfflineLLMClient().complete(request), OfflineLLMClient().complete(request)
    assert first == second
    assert first.model == "offline-deterministic-1"


@pytest.mark.parametrize(
    ("text", "amount", "intent", "needs_approval"),
    [
        ("Please refund my last order", None, "refund", True),
        ("I want to cancel my subscription", None, "cancellation", True),
        ("Book a flight to Oslo", None, "booking", False),
        ("Book a flight to Oslo", 900, "booking", True),
        ("What are your opening hours?", None, "general_inquiry", False),
    ],
)
def test_classification_by_keywords(
    text: str, amount: float | None, intent: str, needs_approval: bool
) -> None:
    answer, tokens = _ask("classify", {"text": text, "amount": amount})
    assert answer["intent"] == intent
    assert answer["needs_approval"] is needs_approval
    assert 0 < float(answer["confidence"]) <= 1  # type: ignore[arg-type]
    assert tokens > 0


def test_query_plan_has_the_requested_size_and_distinct_queries() -> None:
    answer, _ = _ask("plan_queries", {"topic": "wind power", "num_queries": 300})
    queries = answer["queries"]
    assert isinstance(queries, list) and len(queries) == 300 and len(set(queries)) == 300


def test_token_usage_grows_with_text_length() -> None:
    _, short = _ask("research", {"topic": "t", "query": "q"})
    _, long = _ask("research", {"topic": "t" * 4000, "query": "q"})
    assert long > short + 900


def test_fail_marker_is_a_non_retryable_rejection() -> None:
    with pytest.raises(LLMRequestRejected, match="HTTP 400"):
        _ask("research", {"topic": "t", "query": "broken !fail"})


def test_unknown_task_is_rejected() -> None:
    with pytest.raises(LLMRequestRejected, match="no task 'poetry'"):
        _ask("poetry", {})


def test_agent_plan_respects_max_steps() -> None:
    answer, _ = _ask("plan_actions", {"goal": "write a long report about many things", "max_steps": 2})
    actions = answer["actions"]
    assert isinstance(actions, list) and 1 <= len(actions) <= 2
