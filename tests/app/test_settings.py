from __future__ import annotations

import pytest

from shared.settings import LLMSettings, SettingsError, load_settings, parse_transient_failures


def test_nothing_configured_gives_offline_llm_and_azurite() -> None:
    settings = load_settings({})
    assert settings.llm == LLMSettings()
    assert settings.llm.provider == "offline"
    assert settings.storage.connection_string == "UseDevelopmentStorage=true"
    assert settings.state_store == "table"
    assert dict(settings.transient_failures) == {}
    assert (settings.approval_deadline_hours, settings.approval_reminder_hours) == (72.0, 24.0)
    assert settings.approval_expiry_policy == "reject"
    assert (settings.research_chunk_size, settings.research_max_queries) == (50, 500)
    assert settings.agent_token_budget == 4000


def test_an_endpoint_selects_the_openai_provider() -> None:
    settings = load_settings({"LLM_ENDPOINT": "http://127.0.0.1:9/v1", "LLM_API_KEY": "k", "LLM_MODEL": "m"})
    assert settings.llm.provider == "openai"
    assert (settings.llm.endpoint, settings.llm.api_key, settings.llm.model) == (
        "http://127.0.0.1:9/v1",
        "k",
        "m",
    )


def test_azure_provider_and_numbers() -> None:
    settings = load_settings(
        {
            "LLM_PROVIDER": "Azure",
            "LLM_ENDPOINT": "https://x.openai.azure.com",
            "LLM_API_KEY": "k",
            "LLM_API_VERSION": "2025-01-01",
            "LLM_TIMEOUT_SECONDS": "2.5",
            "LLM_MAX_RETRIES": "0",
            "APP_STATE_STORE": "memory",
            "APPROVAL_EXPIRY_POLICY": "escalate",
            "RESEARCH_CHUNK_SIZE": "10",
            "AGENT_TOKEN_BUDGET": "99",
        }
    )
    assert settings.llm.provider == "azure"
    assert settings.llm.api_version == "2025-01-01"
    assert settings.llm.timeout_seconds == 2.5
    assert settings.llm.max_retries == 0
    assert settings.state_store == "memory"
    assert settings.approval_expiry_policy == "escalate"
    assert settings.research_chunk_size == 10
    assert settings.agent_token_budget == 99


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LLM_PROVIDER": "gemini"}, "LLM_PROVIDER='gemini' is not one of offline, openai, azure"),
        ({"LLM_PROVIDER": "openai"}, "needs LLM_ENDPOINT"),
        ({"LLM_ENDPOINT": "http://h"}, "needs LLM_API_KEY"),
        ({"LLM_TIMEOUT_SECONDS": "soon"}, "LLM_TIMEOUT_SECONDS='soon' is not a number"),
        ({"LLM_MAX_RETRIES": "-1"}, "LLM_MAX_RETRIES='-1' must be at least 0"),
        ({"APP_STATE_STORE": "redis"}, "APP_STATE_STORE='redis'"),
        ({"APPROVAL_EXPIRY_POLICY": "ignore"}, "APPROVAL_EXPIRY_POLICY='ignore'"),
        ({"RESEARCH_CHUNK_SIZE": "0"}, "RESEARCH_CHUNK_SIZE='0' must be at least 1"),
        ({"RESEARCH_CHUNK_SIZE": "2.5"}, "RESEARCH_CHUNK_SIZE='2.5' is not an integer"),
        ({"FAKE_TRANSIENT_FAILURES": "charge=2"}, "must look like service.operation=N"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_settings(env)


def test_transient_failures_parse() -> None:
    assert parse_transient_failures("") == {}
    assert parse_transient_failures(" payments.charge=2 , flights.book=1,") == {
        "payments.charge": 2,
        "flights.book": 1,
    }
    with pytest.raises(SettingsError, match="not an integer"):
        parse_transient_failures("payments.charge=two")
    with pytest.raises(SettingsError, match="must not be negative"):
        parse_transient_failures("payments.charge=-1")


def test_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_TOKEN_BUDGET", "123")
    assert load_settings().agent_token_budget == 123
