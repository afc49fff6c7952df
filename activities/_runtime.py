"""What activities need from the environment, built per invocation from the current settings."""

from __future__ import annotations

from shared.llm import LLMClient, create_llm_client
from shared.services import Services, build_services
from shared.settings import load_settings


def llm_client() -> LLMClient:
    """The configured LLM provider (offline when nothing is configured)."""
    return create_llm_client(load_settings().llm)


def services() -> Services:
    """The fake services on the configured ledger."""
    return build_services(load_settings())
