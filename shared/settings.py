"""App settings, read from environment variables (local.settings.json ``Values`` under ``func start``,
Application settings in Azure).

Every setting has a default so the app runs with nothing configured: the offline LLM provider, Azurite
for tables. Invalid values raise :class:`SettingsError` naming the variable and what it accepts.

* ``LLM_PROVIDER``: ``offline``, ``openai`` (any OpenAI-compatible endpoint) or ``azure`` (Azure
  OpenAI). Default: ``offline`` if ``LLM_ENDPOINT`` is empty, else ``openai``.
* ``LLM_ENDPOINT``: base URL (``openai``) or resource endpoint (``azure``). Default empty.
* ``LLM_API_KEY``: API key; required unless the provider is ``offline``.
* ``LLM_MODEL``: model name (``openai``) or deployment name (``azure``). Default ``gpt-4o-mini``.
* ``LLM_API_VERSION``: Azure OpenAI API version (``azure`` only). Default ``2024-10-21``.
* ``LLM_TIMEOUT_SECONDS``: per-request timeout. Default 30.
* ``LLM_MAX_RETRIES``: retries after a 429/5xx/timeout, honouring ``Retry-After``. Default 3.
* ``LLM_MAX_RETRY_AFTER_SECONDS``: longest ``Retry-After`` honoured; a longer one fails the call.
  Default 60.
* ``LLM_AGENTS_API``: what the durable agents (``POST /api/agent-research``) call: ``responses`` (the
  Responses API, default) or ``chat`` (Chat Completions, for endpoints without Responses).
* ``AzureWebJobsStorage``: storage for the approval and fake-service tables. Default
  ``UseDevelopmentStorage=true`` (Azurite).
* ``APP_STATE_STORE``: ``table`` (azure-data-tables on AzureWebJobsStorage, the default) or ``memory``
  (process-wide dicts, for tests that run the app in one process).
* ``FAKE_TRANSIENT_FAILURES``: e.g. ``payments.charge=2,flights.book=1``: the first N attempts per
  idempotency key of that operation fail with a transient error. Default empty.
* ``APPROVAL_DEADLINE_HOURS`` (72), ``APPROVAL_REMINDER_HOURS`` (24), ``APPROVAL_EXPIRY_POLICY``
  (``reject`` or ``escalate``): defaults the HTTP starter writes into a request workflow's input.
* ``RESEARCH_CHUNK_SIZE`` (50), ``RESEARCH_MAX_QUERIES`` (500): research fan-out bounds.
* ``AGENT_TOKEN_BUDGET`` (4000): default token budget of an agent run.
* Instead of ``AzureWebJobsStorage``, an identity-based connection: ``AzureWebJobsStorage__accountName``
  or ``AzureWebJobsStorage__tableServiceUri``, optionally ``__credential`` and ``__clientId``
  (:mod:`shared.storage`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from shared.storage import StorageAccount, StorageSettingsError, storage_account

LLM_PROVIDERS = ("offline", "openai", "azure")
AGENTS_APIS = ("responses", "chat")
STATE_STORES = ("table", "memory")
EXPIRY_POLICIES = ("reject", "escalate")


class SettingsError(ValueError):
    """A setting has a value the app cannot use; the message names the variable."""


@dataclass(frozen=True)
class LLMSettings:
    """How to reach the LLM."""

    provider: str = "offline"
    endpoint: str = ""
    api_key: str = ""
    model: str = "gpt-4o-mini"
    api_version: str = "2024-10-21"
    timeout_seconds: float = 30.0
    max_retries: int = 3
    max_retry_after_seconds: float = 60.0
    agents_api: str = "responses"


@dataclass(frozen=True)
class Settings:
    """All settings of the agent app."""

    llm: LLMSettings = field(default_factory=LLMSettings)
    storage: StorageAccount = field(default_factory=StorageAccount.development)
    state_store: str = "table"
    transient_failures: Mapping[str, int] = field(default_factory=dict)
    approval_deadline_hours: float = 72.0
    approval_reminder_hours: float = 24.0
    approval_expiry_policy: str = "reject"
    research_chunk_size: int = 50
    research_max_queries: int = 500
    agent_token_budget: int = 4000


def _choice(env: Mapping[str, str], name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = env.get(name, "").strip().lower() or default
    if value not in allowed:
        raise SettingsError(f"{name}={value!r} is not one of {', '.join(allowed)}")
    return value


def _number(env: Mapping[str, str], name: str, default: float, minimum: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None
    if value < minimum:
        raise SettingsError(f"{name}={raw!r} must be at least {minimum:g}")
    return value


def _integer(env: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise SettingsError(f"{name}={raw!r} must be at least {minimum}")
    return value


def parse_transient_failures(raw: str) -> dict[str, int]:
    """Parse ``service.operation=N,…`` into ``{"service.operation": N}``.

    An empty string means no injected failures.
    """
    failures: dict[str, int] = {}
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        operation, sep, count = item.partition("=")
        operation = operation.strip()
        if not sep or "." not in operation:
            raise SettingsError(f"FAKE_TRANSIENT_FAILURES entry {item!r} must look like service.operation=N")
        try:
            failures[operation] = int(count)
        except ValueError:
            raise SettingsError(
                f"FAKE_TRANSIENT_FAILURES entry {item!r}: {count!r} is not an integer"
            ) from None
        if failures[operation] < 0:
            raise SettingsError(f"FAKE_TRANSIENT_FAILURES entry {item!r}: count must not be negative")
    return failures


def _llm_settings(env: Mapping[str, str]) -> LLMSettings:
    endpoint = env.get("LLM_ENDPOINT", "").strip()
    provider = _choice(env, "LLM_PROVIDER", "openai" if endpoint else "offline", LLM_PROVIDERS)
    api_key = env.get("LLM_API_KEY", "").strip()
    if provider != "offline":
        if not endpoint:
            raise SettingsError(f"LLM_PROVIDER={provider} needs LLM_ENDPOINT")
        if not api_key:
            raise SettingsError(f"LLM_PROVIDER={provider} needs LLM_API_KEY")
    defaults = LLMSettings()
    return LLMSettings(
        provider=provider,
        endpoint=endpoint,
        api_key=api_key,
        model=env.get("LLM_MODEL", "").strip() or defaults.model,
        api_version=env.get("LLM_API_VERSION", "").strip() or defaults.api_version,
        timeout_seconds=_number(env, "LLM_TIMEOUT_SECONDS", defaults.timeout_seconds, 0.001),
        max_retries=_integer(env, "LLM_MAX_RETRIES", defaults.max_retries, 0),
        max_retry_after_seconds=_number(
            env, "LLM_MAX_RETRY_AFTER_SECONDS", defaults.max_retry_after_seconds, 0
        ),
        agents_api=_choice(env, "LLM_AGENTS_API", defaults.agents_api, AGENTS_APIS),
    )


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read the settings from ``env`` (default: ``os.environ``); raise SettingsError on a bad value."""
    source = os.environ if env is None else env
    defaults = Settings()
    return Settings(
        llm=_llm_settings(source),
        storage=_storage(source),
        state_store=_choice(source, "APP_STATE_STORE", defaults.state_store, STATE_STORES),
        transient_failures=parse_transient_failures(source.get("FAKE_TRANSIENT_FAILURES", "")),
        approval_deadline_hours=_number(
            source, "APPROVAL_DEADLINE_HOURS", defaults.approval_deadline_hours, 0.001
        ),
        approval_reminder_hours=_number(
            source, "APPROVAL_REMINDER_HOURS", defaults.approval_reminder_hours, 0.001
        ),
        approval_expiry_policy=_choice(
            source, "APPROVAL_EXPIRY_POLICY", defaults.approval_expiry_policy, EXPIRY_POLICIES
        ),
        research_chunk_size=_integer(source, "RESEARCH_CHUNK_SIZE", defaults.research_chunk_size, 1),
        research_max_queries=_integer(source, "RESEARCH_MAX_QUERIES", defaults.research_max_queries, 1),
        agent_token_budget=_integer(source, "AGENT_TOKEN_BUDGET", defaults.agent_token_budget, 1),
    )


def _storage(env: Mapping[str, str]) -> StorageAccount:
    try:
        return storage_account(env)
    except StorageSettingsError as exc:
        raise SettingsError(str(exc)) from None
