"""openai-agents' own Runner against the scripted model server, with no durable host: function tools,
handoffs, structured output and streaming, over the Responses API and Chat Completions."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest
from agents import (
    Agent,
    Model,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    Runner,
    function_tool,
    set_tracing_disabled,
)
from agents.run import set_default_agent_runner
from pydantic import BaseModel

from durablehost.testing import ModelServer, handoff, structured, text, tool_call


@pytest.fixture(autouse=True)
def plain_agents() -> Iterator[None]:
    # The default trace exporter posts to the public API; nothing here may leave the machine. And the
    # Durable Functions integration replaces the process-wide default runner in every agent episode
    # run in this process (tests/agents/test_openai_agents_durable.py): put the plain one back.
    set_tracing_disabled(True)
    set_default_agent_runner(None)
    yield


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny and 21 C in {city}"


def responses_model(server: ModelServer) -> Model:
    sdk = openai.AsyncOpenAI(base_url=server.base_url, api_key="k", max_retries=0)
    return OpenAIResponsesModel(model="gpt-test", openai_client=sdk)


def chat_model(server: ModelServer) -> Model:
    sdk = openai.AsyncOpenAI(base_url=server.base_url, api_key="k", max_retries=0)
    return OpenAIChatCompletionsModel(model="gpt-test", openai_client=sdk)


@pytest.mark.parametrize("api", ["responses", "chat"])
async def test_a_tool_run_whose_answer_uses_the_tool_result(model_server: ModelServer, api: str) -> None:
    model_server.script(
        tool_call("get_weather", {"city": "Oslo"}),
        lambda request: text(f"Oslo: {request.tool_outputs[-1].output}"),
    )
    model = responses_model(model_server) if api == "responses" else chat_model(model_server)
    agent = Agent(name="Weather", instructions="You tell the weather", model=model, tools=[get_weather])
    result = await Runner.run(agent, "How is the weather in Oslo?")
    assert result.final_output == "Oslo: sunny and 21 C in Oslo"
    model_server.assert_requests(2)
    first, second = model_server.requests
    assert {first.api, second.api} == {api}
    assert first.tool_names == ["get_weather"]
    assert first.instructions == "You tell the weather"
    assert second.tool_outputs[0].output == "sunny and 21 C in Oslo"
    usage = result.context_wrapper.usage
    assert usage.requests == 2
    assert usage.total_tokens == model_server.usage.total_tokens


async def test_a_handoff_moves_the_conversation_to_the_other_agent(model_server: ModelServer) -> None:
    model = responses_model(model_server)
    spanish = Agent(name="Spanish Agent", instructions="Answer in Spanish", model=model)
    triage = Agent(name="Triage", instructions="Route the user", model=model, handoffs=[spanish])
    model_server.when(instructions="Route the user").reply(handoff("Spanish Agent"))
    model_server.when(instructions="Answer in Spanish").reply(text("¡Hola!"))
    result = await Runner.run(triage, "Hola, ¿qué tal?")
    assert result.final_output == "¡Hola!"
    assert result.last_agent is spanish
    triage_call, spanish_call = model_server.requests
    assert triage_call.tool_names == ["transfer_to_spanish_agent"]
    assert spanish_call.input_text == "Hola, ¿qué tal?"
    model_server.assert_requests(2)


class Plan(BaseModel):
    steps: list[str]
    urgent: bool


async def test_structured_output_is_parsed_into_the_output_type(model_server: ModelServer) -> None:
    model_server.script(structured({"steps": ["look", "write"], "urgent": False}))
    agent = Agent(name="Planner", instructions="Plan", model=responses_model(model_server), output_type=Plan)
    result = await Runner.run(agent, "plan a report")
    assert result.final_output == Plan(steps=["look", "write"], urgent=False)
    schema = model_server.requests[0].output_schema
    assert schema is not None and schema["required"] == ["steps", "urgent"]


async def test_a_streamed_run_delivers_text_deltas(model_server: ModelServer) -> None:
    model_server.script(
        tool_call("get_weather", {"city": "Bergen"}),
        text("Bergen is sunny and warm today, enjoy it"),
    )
    agent = Agent(name="Weather", instructions="w", model=responses_model(model_server), tools=[get_weather])
    run = Runner.run_streamed(agent, "Bergen?")
    deltas = [
        event.data.delta
        async for event in run.stream_events()
        if event.type == "raw_response_event" and event.data.type == "response.output_text.delta"
    ]
    assert "".join(deltas) == "Bergen is sunny and warm today, enjoy it"
    assert run.final_output == "Bergen is sunny and warm today, enjoy it"
    assert [r.stream for r in model_server.requests] == [True, True]


def test_run_sync_outside_any_event_loop(model_server: ModelServer) -> None:
    model_server.script(text("synchronous hello"))
    agent = Agent(name="Hello", instructions="Say hello", model=responses_model(model_server))
    assert Runner.run_sync(agent, "hi").final_output == "synchronous hello"
