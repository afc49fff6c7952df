"""Issue #12 item 2's reproducer: an Agent Framework orchestration the SDK cannot answer ends Failed.

``tests/agents/apps/af_poison`` yields the task Agent Framework returns for ``wait_for_response=False``,
which the SDK cannot serialise (``Attempted to convert an anonymous Action to JSON``). Before the fix the
host retried it every second forever with the status Pending, and a SIGTERM never finished the drain.
Now the instance fails after its bounded attempts with the SDK's message, and a graceful stop while such
retries wait exits 0 at once. Real ``durablehost start`` in the Agent Framework example's venv.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path

import pytest

from tests.agents.test_agent_framework import AF_DURABLEHOST
from tests.http.hosting import MGMT, HostProcess, request, wait_status

pytestmark = pytest.mark.slow

APP = Path(__file__).parent / "apps" / "af_poison"
SDK_MESSAGE = "Attempted to convert an anonymous Action to JSON"


def start_poison_app(tmp_path: Path) -> HostProcess:
    host = HostProcess(
        ["--app-dir", str(APP), "--port", "0", "--store", f"sqlite:{tmp_path / 'hub.db'}"],
        env={"OPENAI_API_KEY": "unused"},  # the agent is built at import; no model call is ever made
        executable=AF_DURABLEHOST,
    )
    host.wait_listening(60)
    return host


async def start_instance(url: str) -> str:
    status, body, _ = await request("POST", f"{url}{MGMT}/orchestrators/fire_and_forget")
    assert status == 202, body
    instance_id: str = json.loads(body)["id"]
    return instance_id


async def test_the_poison_payload_ends_failed_with_the_sdk_s_message(tmp_path: Path) -> None:
    host = start_poison_app(tmp_path)
    try:
        url = host.wait_listening()
        instance_id = await start_instance(url)
        # Three attempts a second apart (DispatcherOptions.machinery_attempts/backoff), then Failed.
        final = await wait_status(url, instance_id, {"Failed", "Completed"}, timeout=30)
        assert final["runtimeStatus"] == "Failed"
        assert final["output"].startswith("Orchestrator function 'fire_and_forget' failed:")
        assert SDK_MESSAGE in final["output"]
        log = host.log()
        assert "the SDK could not process an episode (attempt 3 of 3" in log, log
        assert "(attempt 4 of" not in log, log  # bounded: three attempts, then the failure
    finally:
        assert host.stop() == 0, host.log()


async def test_a_graceful_stop_during_the_retries_exits_0_within_5_s(tmp_path: Path) -> None:
    host = start_poison_app(tmp_path)
    url = host.wait_listening()
    instance_id = await start_instance(url)
    deadline = time.monotonic() + 20
    first_failure = "the SDK could not process an episode (attempt 1 of 3"
    while first_failure not in host.log():
        assert time.monotonic() < deadline, host.log()
        await asyncio.sleep(0.05)
    _, body, _ = await request("GET", f"{url}{MGMT}/instances/{instance_id}")
    assert json.loads(body)["runtimeStatus"] in {"Pending", "Running"}  # its retries are still waiting
    started = time.monotonic()
    assert host.stop(signal.SIGTERM, timeout=10) == 0, host.log()
    assert time.monotonic() - started < 5, host.log()
    assert "second signal" not in host.log()
