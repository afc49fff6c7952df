"""Fixtures of the agent app's end-to-end tests: the real app (``main.py``) in durablehost's in-process
test host, on a virtual clock, with the fake services and the approval store in memory and the offline
LLM provider. Helpers to read the fake services' ledger live in ``support.py``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from durablehost.testing import DurableTestHost
from tests.app.conftest import REPO_ROOT
from tests.app.e2e.support import FIDELITIES, T0

# Settings that would change what the app does; every test starts from none of them.
_APP_SETTINGS = (
    "LLM_PROVIDER",
    "LLM_ENDPOINT",
    "LLM_API_KEY",
    "LLM_MODEL",
    "FAKE_TRANSIENT_FAILURES",
    "APPROVAL_DEADLINE_HOURS",
    "APPROVAL_REMINDER_HOURS",
    "APPROVAL_EXPIRY_POLICY",
    "RESEARCH_CHUNK_SIZE",
    "RESEARCH_MAX_QUERIES",
    "AGENT_TOKEN_BUDGET",
    "AzureWebJobsStorage",
)


@pytest.fixture
def app_env(isolated_app_import: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """The environment ``func start`` would give the app (its local.settings.json entry script), with the
    app state in memory and nothing else configured. Tests add settings through the returned monkeypatch
    before starting the host; activities read the settings on every call."""
    monkeypatch.setenv("PYTHON_SCRIPT_FILE_NAME", "main.py")
    monkeypatch.setenv("APP_STATE_STORE", "memory")
    for name in _APP_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    yield monkeypatch


@pytest.fixture(params=FIDELITIES)
def fidelity(request: pytest.FixtureRequest) -> str:
    """The fidelity of the test's hosts: every end-to-end test runs with each (support.FIDELITIES)."""
    value: str = request.param
    return value


@pytest.fixture
async def host(app_env: pytest.MonkeyPatch, fidelity: str) -> AsyncIterator[DurableTestHost]:
    """The app in a fresh in-process host (in-memory store) whose virtual clock starts at T0."""
    async with DurableTestHost.start(REPO_ROOT, start_time=T0, fidelity=fidelity) as test_host:
        yield test_host
