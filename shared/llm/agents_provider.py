"""The model provider of the durable agents: offline by default, a real endpoint through the settings.

``LLM_PROVIDER=openai`` or ``azure`` (with ``LLM_ENDPOINT``, ``LLM_API_KEY``, ``LLM_MODEL``) gives
openai-agents' ``OpenAIProvider`` over an ``AsyncOpenAI``/``AsyncAzureOpenAI`` client; ``LLM_AGENTS_API``
chooses the Responses API (default) or Chat Completions (``chat``, for endpoints without Responses).
The client's own retries are off (``max_retries=0``): a failed model call fails the ``run_model``
activity, and the orchestrator's retry policy (visible in the history, on durable timers) retries it.
"""

from __future__ import annotations

import openai
from agents import Model, ModelProvider, OpenAIProvider

from shared.llm.agents_offline import OfflineAgentProvider
from shared.settings import LLMSettings


class ConfiguredModelProvider(ModelProvider):
    """``OpenAIProvider`` with the configured model as the default name (agents name none)."""

    def __init__(self, settings: LLMSettings) -> None:
        self._settings = settings
        client: openai.AsyncOpenAI
        if settings.provider == "azure":
            client = openai.AsyncAzureOpenAI(
                azure_endpoint=settings.endpoint,
                api_key=settings.api_key,
                api_version=settings.api_version,
                timeout=settings.timeout_seconds,
                max_retries=0,
            )
        else:
            client = openai.AsyncOpenAI(
                base_url=settings.endpoint,
                api_key=settings.api_key,
                timeout=settings.timeout_seconds,
                max_retries=0,
            )
        self._provider = OpenAIProvider(
            openai_client=client, use_responses=settings.agents_api == "responses"
        )

    def get_model(self, model_name: str | None) -> Model:
        return self._provider.get_model(model_name or self._settings.model)


def agent_model_provider(settings: LLMSettings) -> ModelProvider:
    """The provider named by the settings (offline when nothing is configured)."""
    if settings.provider == "offline":
        return OfflineAgentProvider()
    return ConfiguredModelProvider(settings)
