"""Agent orchestrators written as the integration's samples write them (``Runner.run_sync`` inside
``@app.durable_openai_agent_orchestrator``) fanned out in parallel: right on durablehost, which runs their
episodes one at a time, and racing for the process-wide runner under ``--fidelity azure``, as they race on
the Functions worker's thread pool (durablehost/functions/agent_runner.py)."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from azure.durable_functions.models.OrchestrationRuntimeStatus import OrchestrationRuntimeStatus

from durablehost.functions import load_app
from durablehost.functions.agent_runner import shares_process_wide_runner
from durablehost.testing import DurableTestHost, ModelServer, text, tool_call

APP = Path(__file__).parent / "apps" / "openai_agents"
CITIES = [f"City{n}" for n in range(8)]


def weather(request: Any) -> Any:
    """Each agent asks for its own city's weather, then answers with what the tool said."""
    city = re.search(r"weather in (\w+)\?", request.input_text)
    asked = city.group(1) if city else "nowhere"
    if request.tool_outputs:
        told = json.loads(request.tool_outputs[-1].output)
        return text(f"{asked}: {told['forecast']} in {told['city']}")
    return tool_call("get_weather", {"city": asked})


@pytest.fixture
async def agents(model_server: ModelServer, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[ModelServer]:
    monkeypatch.setenv("OPENAI_BASE_URL", model_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    model_server.when(api="responses").always(weather)
    yield model_server


async def fan_out(host: DurableTestHost) -> tuple[OrchestrationRuntimeStatus, Any]:
    """Eight weather agents in parallel, each two model calls around its tool (three episodes)."""
    instance_id = await host.client.start_new("parallel_weather", client_input=CITIES)
    status = await host.wait_for_completion(instance_id)
    return status.runtime_status, status.output


RIGHT = (OrchestrationRuntimeStatus.Completed, [f"{c}: sunny in {c}" for c in CITIES])


async def test_parallel_agents_written_as_the_samples_get_their_own_answers(agents: ModelServer) -> None:
    async with DurableTestHost.start(APP) as host:
        for _ in range(3):
            assert await fan_out(host) == RIGHT
    # Every model call belonged to its own agent: the tool result it saw was for the city it asked about.
    for request in agents.requests:
        if request.tool_outputs:
            assert json.loads(request.tool_outputs[-1].output)["city"] in request.input_text


async def test_azure_fidelity_keeps_the_race_for_the_process_wide_runner(agents: ModelServer) -> None:
    outcomes = []
    async with DurableTestHost.start(APP, fidelity="azure") as host:
        # One fan-out of eight went wrong in 4 or 5 runs out of 5 when this was written; ten give room.
        for _ in range(10):
            outcomes.append(await fan_out(host))
            if outcomes[-1] != RIGHT:
                break
    status, output = outcomes[-1]
    assert (status, output) != RIGHT, "ten fan-outs of eight agents never raced under --fidelity azure"
    # An agent ran on another's runner: its episode yielded the other's model call, or nothing, and the
    # next replay found non-determinism; or it finished with no answer of its own.
    wrong = str(output)
    assert (status == OrchestrationRuntimeStatus.Failed and "Non-deterministic" in wrong) or (
        status == OrchestrationRuntimeStatus.Completed and None in output
    ), (status, wrong[:2000])


def test_agent_orchestrators_are_recognised_by_the_sdk_generator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    index = load_app(APP)
    assert {
        name: shares_process_wide_runner(index.orchestrator(name).handle)
        for name in ("hello_agent", "weather_agent", "triage_agent", "parallel_agents", "parallel_weather")
    } == {
        "hello_agent": True,
        "weather_agent": True,
        "triage_agent": True,
        "parallel_agents": False,  # plain orchestrators fanning the agents out: concurrent as ever
        "parallel_weather": False,
    }
