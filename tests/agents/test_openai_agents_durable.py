"""The SDK's OpenAI Agents integration on durablehost, against the scripted model server, on SQLite and on
Azurite: hello world, an activity tool, a handoff, parallel agents, a 429 retried by the integration's
retry options on a durable timer (virtual time: no real wait); and kill -9 of a host process during a
model call."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from azure.durable_functions.models.OrchestrationRuntimeStatus import OrchestrationRuntimeStatus

from durablehost.engine.clock import WallClock
from durablehost.engine.host import DurableHost
from durablehost.functions import load_app
from durablehost.store import open_store
from durablehost.testing import DurableTestHost, ModelServer, handoff, hang, rate_limited, text, tool_call
from tests.engine.host_process import HUB, options

APP = Path(__file__).parent / "apps" / "openai_agents"
REPO = Path(__file__).resolve().parents[2]
TASK_COMPLETED = 5
TASK_FAILED = 6


@pytest.fixture(params=["sqlite", pytest.param("azurite", marks=pytest.mark.azurite)])
async def host(
    request: pytest.FixtureRequest, tmp_path: Path, model_server: ModelServer, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[DurableTestHost]:
    monkeypatch.setenv("OPENAI_BASE_URL", model_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    if request.param == "sqlite":
        store = open_store(f"sqlite:{tmp_path / 'hub.db'}")
    else:
        store = open_store(request.getfixturevalue("azurite_connection_string"))
    hub = f"Agents{abs(hash(request.node.nodeid)) % 10**8}"  # a hub per test on the shared Azurite
    try:
        async with DurableTestHost.start(APP, store=store, hub=hub) as test_host:
            yield test_host
    finally:
        await store.close()


def output(raw: object) -> object:
    """The integration returns the orchestrator's result as JSON text (strings as they are)."""
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return raw
    return raw


async def run(host: DurableTestHost, name: str, client_input: object = None) -> object:
    instance_id = await host.client.start_new(name, client_input=client_input)
    status = await host.wait_for_completion(instance_id)
    assert status.runtime_status == OrchestrationRuntimeStatus.Completed, status.output
    return output(status.output)


async def test_hello_world(host: DurableTestHost, model_server: ModelServer) -> None:
    model_server.script(text("Code calls itself / smaller each time round / until the base case"))
    assert (
        await run(host, "hello_agent") == "Code calls itself / smaller each time round / until the base case"
    )
    (request,) = model_server.requests
    assert request.instructions == "You only respond in haikus."
    assert (request.model, request.input_text) == ("gpt-test", "Tell me about recursion")
    model_server.assert_requests(1)


async def test_an_activity_tool_whose_result_the_answer_uses(
    host: DurableTestHost, model_server: ModelServer
) -> None:
    model_server.script(
        tool_call("get_weather", {"city": "Oslo"}),
        lambda request: text(f"Oslo: {json.loads(request.tool_outputs[-1].output)['forecast']}"),
    )
    assert await run(host, "weather_agent") == "Oslo: sunny"
    first, second = model_server.requests
    assert first.tools["get_weather"]["properties"] == {"city": {"title": "City", "type": "string"}}
    assert json.loads(second.tool_outputs[0].output) == {"city": "Oslo", "forecast": "sunny", "celsius": 21}


async def test_a_handoff(host: DurableTestHost, model_server: ModelServer) -> None:
    model_server.when(instructions="Hand off by language.").reply(handoff("Spanish Agent"))
    model_server.when(instructions="You only speak Spanish.").reply(text("¡Muy bien, gracias!"))
    assert await run(host, "triage_agent") == {"answer": "¡Muy bien, gracias!", "agent": "Spanish Agent"}
    triage, spanish = model_server.requests
    assert triage.tool_names == ["transfer_to_spanish_agent"]
    assert spanish.tool_outputs[0].name == "transfer_to_spanish_agent"
    model_server.assert_requests(2)


async def test_parallel_agents(host: DurableTestHost, model_server: ModelServer) -> None:
    model_server.when(api="responses").always(lambda request: text(f"haiku about {request.input_text}"))
    topics = ["rivers", "stones", "wind", "snow"]
    answers = await run(host, "parallel_agents", topics)
    assert answers == [f"haiku about {t}" for t in topics]
    assert sorted(r.input_text for r in model_server.requests) == sorted(topics)


async def test_a_429_then_success_through_the_integration_retry_options(
    host: DurableTestHost, model_server: ModelServer
) -> None:
    model_server.script(rate_limited(retry_after=1), text("after the wait"))
    instance_id = await host.client.start_new("hello_agent")
    await host.run_until_idle()
    assert (await host.client.get_status(instance_id)).runtime_status == OrchestrationRuntimeStatus.Running
    assert len(model_server.requests) == 1
    await host.advance(timedelta(seconds=1))  # the retry's durable timer (MODEL_RETRY: 1 s)
    status = await host.client.get_status(instance_id)
    assert status.runtime_status == OrchestrationRuntimeStatus.Completed, status.output
    assert status.output == "after the wait"
    failed = [e for e in await host.history(instance_id) if e["EventType"] == TASK_FAILED]
    assert len(failed) == 1 and "429" in failed[0]["Reason"] + failed[0]["Details"]
    assert model_server.repeats() == [(0, 1)]
    model_server.assert_requests(2)


@pytest.fixture(params=["sqlite", pytest.param("azurite", marks=pytest.mark.azurite)])
def store_spec(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:{tmp_path / 'hub.db'}"
    connection: str = request.getfixturevalue("azurite_connection_string")
    return connection


def spawn_host(store_spec: str, env: dict[str, str], log: Path) -> subprocess.Popen[str]:
    """A host in its own process (tests/engine/host_process.py: wall clock, 2 s lease)."""
    with log.open("a") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.engine.host_process", str(APP), store_spec],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env={**os.environ, **env},
        )
    assert process.stdout is not None and process.stdout.readline().strip() == "started", log.read_text()
    return process


async def test_kill_9_during_the_second_model_call_repeats_only_that_call(
    store_spec: str, model_server: ModelServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {"OPENAI_BASE_URL": model_server.base_url, "OPENAI_API_KEY": "test-key"}
    for name, value in env.items():  # the client host below loads the app too
        monkeypatch.setenv(name, value)
    log = tmp_path / "hosts.log"
    model_server.script(tool_call("get_weather", {"city": "Oslo"}), hang())
    store = open_store(store_spec)
    client = DurableHost(store, load_app(APP), WallClock(), hub=HUB, options=options())
    await client.start(run_dispatcher=False)
    first = spawn_host(store_spec, env, log)
    second: subprocess.Popen[str] | None = None
    try:
        instance_id = await client.start_new("weather_agent", None, None)
        await model_server.wait_for_requests(2, timeout=30)  # the second model call is in flight
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        model_server.release()
        model_server.script(
            lambda request: text(f"Oslo: {json.loads(request.tool_outputs[-1].output)['forecast']}")
        )
        second = spawn_host(store_spec, env, log)
        deadline = time.monotonic() + 60
        status = await client.get_status(instance_id)
        while status is not None and status["runtimeStatus"] not in ("Completed", "Failed"):
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            await asyncio.sleep(0.1)
            status = await client.get_status(instance_id)
        record = await client.get_record(instance_id)
        assert record is not None
        history = await client.repo.read_history(instance_id, record.history_count)
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(10)
        await store.close()
    assert status is not None and status["runtimeStatus"] == "Completed", log.read_text()[-3000:]
    assert status["output"] == "Oslo: sunny"
    # Three calls reached the model: the first, the one in flight at the kill, and that one again.
    assert len(model_server.requests) == 3
    assert model_server.repeats() == [(1, 2)]
    completed = [e for e in history if e["EventType"] == TASK_COMPLETED]
    assert len(completed) == 3  # run_model, get_weather (once: it had finished before the kill), run_model
