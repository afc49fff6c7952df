"""LLM access: one small interface (:class:`LLMClient`), two providers.

* :class:`OpenAIChatClient`: the real one (Azure OpenAI or any OpenAI-compatible endpoint).
* :class:`OfflineLLMClient`: deterministic, no network; used when ``LLM_PROVIDER`` resolves to
  ``offline`` (nothing configured).

Activities call :func:`complete_json`, which returns the parsed JSON object and the token usage.
"""

from __future__ import annotations

import json
from typing import Any

from shared.llm.base import (
    LLMBadResponse,
    LLMClient,
    LLMError,
    LLMRateLimited,
    LLMRequest,
    LLMRequestRejected,
    LLMResponse,
    LLMTimeout,
    LLMUnavailable,
)
from shared.llm.offline import OfflineLLMClient
from shared.llm.openai_provider import OpenAIChatClient
from shared.settings import LLMSettings

__all__ = [
    "LLMBadResponse",
    "LLMClient",
    "LLMError",
    "LLMRateLimited",
    "LLMRequest",
    "LLMRequestRejected",
    "LLMResponse",
    "LLMTimeout",
    "LLMUnavailable",
    "OfflineLLMClient",
    "OpenAIChatClient",
    "complete_json",
    "create_llm_client",
]


def create_llm_client(settings: LLMSettings) -> LLMClient:
    """The provider named by the settings."""
    if settings.provider == "offline":
        return OfflineLLMClient()
    return OpenAIChatClient(settings)


def complete_json(
    client: LLMClient, task: str, system: str, data: dict[str, Any]
) -> tuple[dict[str, Any], int]:
    """Ask for a JSON object; return it with the total tokens used. Raises LLMBadResponse if the answer
    is not a JSON object."""
    response = client.complete(LLMRequest(task=task, system=system, user=json.dumps(data, sort_keys=True)))
    try:
        parsed = json.loads(response.text)
    except json.JSONDecodeError as exc:
        raise LLMBadResponse(f"{task}: the model's answer is not JSON: {response.text[:200]!r}") from exc
    if not isinstance(parsed, dict):
        raise LLMBadResponse(f"{task}: expected a JSON object, got {type(parsed).__name__}")
    return parsed, response.total_tokens
