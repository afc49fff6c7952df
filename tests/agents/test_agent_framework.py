"""Microsoft Agent Framework's durable agents (examples/agent_framework) on durablehost, over real HTTP.

The example pins an openai the main venv cannot have, so it runs as a ``durablehost start`` subprocess
with the interpreter of its own venv (``.venv-agent-framework``, made by ``./dev setup``), against the
scripted model server of this process, on SQLite and on Azurite.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from durablehost.testing import ModelServer, hang, rate_limited, structured, text, tool_call
from tests.http.hosting import MGMT, HostProcess, request

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "agent_framework"
AF_DURABLEHOST = str(REPO / ".venv-agent-framework" / "bin" / "durablehost")
WEATHER = "dafx-weatheragent"  # AgentFunctionApp's entity name for WeatherAgent, lower-cased in ids


@pytest.fixture(scope="module")
def model() -> Iterator[ModelServer]:
    with ModelServer() as server:
        yield server


@pytest.fixture(scope="module", params=["sqlite", pytest.param("azurite", marks=pytest.mark.azurite)])
def store_spec(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    if request.param == "sqlite":
        return f"sqlite:{tmp_path_factory.mktemp('af') / 'hub.db'}"
    connection: str = request.getfixturevalue("azurite_connection_string")
    return connection


def start_example(store_spec: str, model: ModelServer, hub: str) -> HostProcess:
    env = {"OPENAI_BASE_URL": model.base_url, "OPENAI_API_KEY": "test-key", "OPENAI_MODEL": "gpt-test"}
    host = HostProcess(
        ["--app-dir", str(EXAMPLE), "--port", "0", "--store", store_spec, "--task-hub", hub],
        env=env,
        executable=AF_DURABLEHOST,
    )
    host.wait_listening(60)
    return host


@pytest.fixture(scope="module")
def example(store_spec: str, model: ModelServer) -> Iterator[str]:
    host = start_example(store_spec, model, f"AF{uuid.uuid4().hex[:8]}")
    yield host.wait_listening()
    assert host.stop() == 0, host.log()[-3000:]


@pytest.fixture(autouse=True)
def fresh_script(model: ModelServer) -> None:
    model.reset()


async def post(url: str, body: Any) -> tuple[int, Any]:
    status, raw, _ = await request(
        "POST", url, data=json.dumps(body), headers={"Content-Type": "application/json"}
    )
    return status, json.loads(raw) if raw else None


async def until(what: str, probe: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = await probe()
        if found is not None:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def finished(base: str, links: dict[str, Any]) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        _, raw, _ = await request("GET", links["statusQueryGetUri"])
        body = json.loads(raw)
        return body if body["runtimeStatus"] in ("Completed", "Failed") else None

    result: dict[str, Any] = await until(f"instance {links['id']}", probe)
    return result


def reads_tool(request: Any) -> Any:
    return text("Oslo: " + json.loads(request.tool_outputs[-1].output)["sky"])


async def test_an_agent_run_over_http_with_a_tool(example: str, model: ModelServer) -> None:
    model.script(tool_call("get_weather", {"city": "Oslo"}), reads_tool)
    status, answer = await post(f"{example}/api/agents/WeatherAgent/run", {"message": "Weather in Oslo?"})
    assert status == 200, answer
    assert (answer["status"], answer["response"]) == ("success", "Oslo: snow")
    first, second = model.requests
    assert first.tool_names == ["get_weather"] and first.api == "chat"
    assert json.loads(second.tool_outputs[0].output) == {"city": "Oslo", "sky": "snow", "celsius": -3}
    model.assert_requests(2)


async def test_conversation_memory_across_turns(example: str, model: ModelServer) -> None:
    model.script(text("It snows in Oslo."), text("Wear a warm coat."))
    session = f"s-{uuid.uuid4().hex[:8]}"
    url = f"{example}/api/agents/WeatherAgent/run"
    await post(url, {"message": "How is Oslo?", "session_id": session})
    status, answer = await post(url, {"message": "What should I wear?", "session_id": session})
    assert (status, answer["response"]) == (200, "Wear a warm coat.")
    second = model.requests[1]
    contents = [m.get("content") for m in second.items]
    assert contents == ["How is Oslo?", "It snows in Oslo.", "What should I wear?"]


async def test_wait_for_response_false_and_the_answer_read_from_the_entity(
    example: str, model: ModelServer
) -> None:
    model.script(text("Lisbon is sunny."))
    session = f"s-{uuid.uuid4().hex[:8]}"
    status, accepted = await post(
        f"{example}/api/agents/WeatherAgent/run",
        {"message": "Lisbon?", "session_id": session, "wait_for_response": False},
    )
    assert status == 202, accepted
    assert accepted["correlation_id"]

    async def answered() -> Any:
        status, raw, _ = await request("GET", f"{example}{MGMT}/entities/{WEATHER}/{session}")
        return json.loads(raw) if status == 200 and b"Lisbon is sunny." in raw else None

    state = await until("the entity's answer", answered)
    assert "Lisbon is sunny." in json.dumps(state)
    assert accepted["correlation_id"] in json.dumps(state)


async def test_an_orchestration_holding_call_entity_turns(example: str, model: ModelServer) -> None:
    model.script(text("It snows."), text("A warm coat."))
    status, links = await post(f"{example}/api/conversations/weather_conversation", "How is Oslo?")
    assert status == 202, links
    final = await finished(example, links)
    assert final["runtimeStatus"] == "Completed", final
    assert final["output"] == {"first": "It snows.", "second": "A warm coat."}
    # One session: the second turn's model call saw the first turn.
    assert [m.get("content") for m in model.requests[1].items][:2] == ["How is Oslo?", "It snows."]


async def test_parallel_agents(example: str, model: ModelServer) -> None:
    model.when(api="chat").always(
        lambda request: text("sunny in " + request.input_text.split()[-1].rstrip("?"))
    )
    cities = ["Oslo", "Lisbon", "Bergen"]
    status, links = await post(f"{example}/api/conversations/parallel_weather", cities)
    assert status == 202
    final = await finished(example, links)
    assert final["output"] == [f"sunny in {city}" for city in cities], final
    assert sorted(r.input_text for r in model.requests) == sorted(
        f"What is the weather in {c}?" for c in cities
    )


async def test_a_handoff_decided_by_the_triage_agent(example: str, model: ModelServer) -> None:
    model.when(instructions="Name the language").reply(structured({"language": "Spanish"}))
    model.when(instructions="You answer in Spanish.").reply(text("¡Hola! Estoy bien."))
    status, links = await post(f"{example}/api/conversations/triage_handoff", "Hola, ¿qué tal?")
    assert status == 202
    final = await finished(example, links)
    assert final["output"] == {"language": "spanish", "answer": "¡Hola! Estoy bien."}, final
    model.assert_requests(2)


async def test_a_429_then_success(example: str, model: ModelServer) -> None:
    # Agent Framework has no durable retry of a model call: its OpenAI client retries inside the
    # entity operation, waiting what Retry-After says.
    model.script(rate_limited(retry_after=0.2), text("after the wait"))
    status, answer = await post(f"{example}/api/agents/WeatherAgent/run", {"message": "Oslo?"})
    assert (status, answer["response"]) == (200, "after the wait"), answer
    assert model.repeats() == [(0, 1)]


async def test_listing_the_agent_entities(example: str, model: ModelServer) -> None:
    model.when(api="chat").always(text("noted"))
    sessions = [f"list-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    for session in sessions:
        status, _ = await post(
            f"{example}/api/agents/WeatherAgent/run", {"message": "hi", "session_id": session}
        )
        assert status == 200
    listed: dict[str, Any] = {}
    token = None
    while True:
        headers = {"x-ms-continuation-token": token} if token else {}
        status, raw, answer_headers = await request(
            "GET", f"{example}{MGMT}/entities/{WEATHER}?fetchState=true&top=2", headers=headers
        )
        assert status == 200
        listed.update({e["entityId"]["key"]: e for e in json.loads(raw)})
        token = answer_headers.get("x-ms-continuation-token")
        if not token:
            break
    for session in sessions:
        assert listed[session]["entityId"]["name"] == WEATHER
        assert "noted" in json.dumps(listed[session]["state"])
    status, raw, _ = await request(
        "GET", f"{example}{MGMT}/entities/{WEATHER}?lastOperationTimeFrom=2999-01-01T00:00:00Z"
    )
    assert (status, json.loads(raw)) == (200, [])


async def test_kill_9_during_the_second_model_call_repeats_only_that_call(
    store_spec: str, model: ModelServer
) -> None:
    hub = f"AFKill{uuid.uuid4().hex[:8]}"
    model.script(text("It snows."), hang())
    first = start_example(store_spec, model, hub)
    second: HostProcess | None = None
    try:
        status, links = await post(
            f"{first.wait_listening()}/api/conversations/weather_conversation", "Oslo?"
        )
        assert status == 202
        await model.wait_for_requests(2, timeout=60)  # the second turn's model call is in flight
        first.stop(signal.SIGKILL)
        model.release()
        model.script(text("A warm coat."))
        second = start_example(store_spec, model, hub)  # takes over once the dead host's lease expires
        base = second.wait_listening()
        links = {
            **links,
            "statusQueryGetUri": links["statusQueryGetUri"].replace(first.wait_listening(), base),
        }
        final = await finished(base, links)
    finally:
        for host in (first, second):
            if host is not None and host.process.poll() is None:
                host.stop(signal.SIGKILL)
    assert final["output"] == {"first": "It snows.", "second": "A warm coat."}, final
    assert len(model.requests) == 3
    assert model.repeats() == [(1, 2)]  # only the call in flight at the kill was made again
