"""The scripted model server with the real ``openai`` client: both APIs, sync and async, plain and streamed,
failures, structured output, rules and the request log. No durable host is involved.

Answers are also validated with the client's own pydantic models (``model_validate``, which checks
required fields, unlike the client's lenient parsing), so a field the real API always sends cannot be
missing from ours.
"""

from __future__ import annotations

import time
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletion
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import BaseModel, TypeAdapter

from durablehost.testing import (
    ModelServer,
    disconnect,
    handoff,
    hang,
    rate_limited,
    server_error,
    structured,
    text,
    tool_call,
    turn,
)

WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}
CHAT_WEATHER_TOOL = {
    "type": "function",
    "function": {k: v for k, v in WEATHER_TOOL.items() if k != "type"},
}


def client(server: ModelServer, **options: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="test-key", **{"max_retries": 0, **options})


def test_responses_text_tool_call_and_the_log(model_server: ModelServer) -> None:
    model_server.script(tool_call("get_weather", {"city": "Oslo"}), text("It is sunny in Oslo"))
    sdk = client(model_server)
    first = sdk.responses.with_raw_response.create(
        model="gpt-test", instructions="You tell the weather", input="Weather in Oslo?", tools=[WEATHER_TOOL]
    )
    Response.model_validate(first.http_response.json())  # every required field is there
    call = first.parse().output[0]
    assert call.type == "function_call"
    assert (call.name, call.arguments) == ("get_weather", '{"city": "Oslo"}')
    second = sdk.responses.create(
        model="gpt-test",
        input=[
            {"role": "user", "content": "Weather in Oslo?"},
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21 C"},
        ],
        tools=[WEATHER_TOOL],
    )
    assert second.output_text == "It is sunny in Oslo"
    assert second.usage is not None and second.usage.total_tokens > 0

    model_server.assert_requests(2)
    asked, answered = model_server.requests
    assert (asked.api, asked.model, asked.stream) == ("responses", "gpt-test", False)
    assert asked.instructions == "You tell the weather"
    assert asked.input_text == "Weather in Oslo?"
    assert asked.tool_names == ["get_weather"]
    assert asked.tool_outputs == []
    assert [(o.name, o.output) for o in answered.tool_outputs] == [("get_weather", "sunny, 21 C")]
    assert answered.last_is_tool_output
    totals = model_server.usage
    assert totals.requests == 2
    assert totals.total_tokens == asked.usage.total_tokens + answered.usage.total_tokens
    assert answered.usage.total_tokens == second.usage.total_tokens


def test_responses_stream_sends_the_real_event_sequence(model_server: ModelServer) -> None:
    answer = "Looking it up for you, one moment please"
    model_server.script(turn(text(answer), tool_call("get_weather", {"city": "Oslo"})))
    events = list(
        client(model_server).responses.create(model="m", input="hi", stream=True, tools=[WEATHER_TOOL])
    )
    adapter: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
    for event in events:
        adapter.validate_python(event.model_dump())
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    deltas = kinds.count("response.output_text.delta")
    assert deltas >= 2  # the text arrives in pieces
    assert kinds[2:-1] == [
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * deltas,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == answer
    final = events[-1].response
    assert final.output_text == answer and final.usage is not None
    assert model_server.requests[0].stream


async def test_chat_completions_async_plain_and_streamed(model_server: ModelServer) -> None:
    model_server.script(
        turn(tool_call("get_weather", {"city": "Oslo"}), tool_call("get_weather", {"city": "Bergen"})),
        text("Sunny in both"),
    )
    sdk = openai.AsyncOpenAI(base_url=model_server.base_url, api_key="k", max_retries=0)
    raw = await sdk.chat.completions.with_raw_response.create(
        model="chat-model",
        messages=[{"role": "user", "content": "Oslo and Bergen?"}],
        tools=[CHAT_WEATHER_TOOL],
    )
    ChatCompletion.model_validate(raw.http_response.json())
    choice = raw.parse().choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls or []
    assert [c.function.arguments for c in calls] == ['{"city": "Oslo"}', '{"city": "Bergen"}']
    stream = await sdk.chat.completions.create(
        model="chat-model",
        messages=[
            {"role": "system", "content": "You tell the weather"},
            {"role": "user", "content": "Oslo and Bergen?"},
            {"role": "assistant", "content": None, "tool_calls": [c.model_dump() for c in calls]},
            *(
                {"role": "tool", "tool_call_id": c.id, "content": f"sunny in {i}"}
                for i, c in enumerate(calls)
            ),
        ],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Sunny in both"
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    second = model_server.requests[1]
    assert second.api == "chat" and second.instructions == "You tell the weather"
    assert [(o.name, o.output) for o in second.tool_outputs] == [
        ("get_weather", "sunny in 0"),
        ("get_weather", "sunny in 1"),
    ]
    model_server.assert_requests(2)


async def test_chat_stream_carries_tool_calls_in_pieces(model_server: ModelServer) -> None:
    model_server.script(tool_call("get_weather", {"city": "A very long city name, to be split"}))
    sdk = openai.AsyncOpenAI(base_url=model_server.base_url, api_key="k", max_retries=0)
    stream = await sdk.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "?"}], tools=[CHAT_WEATHER_TOOL], stream=True
    )
    pieces = [c.choices[0].delta.tool_calls for c in [chunk async for chunk in stream] if c.choices]
    fragments = [call.function.arguments for calls in pieces if calls for call in calls if call.function]
    assert len(fragments) > 2
    assert "".join(f or "" for f in fragments) == '{"city": "A very long city name, to be split"}'


def test_a_429_with_retry_after_then_success(model_server: ModelServer) -> None:
    model_server.script(rate_limited(retry_after=0.2))
    with pytest.raises(openai.RateLimitError) as refused:
        client(model_server).responses.create(model="m", input="hi")
    assert refused.value.response.headers["retry-after"] == "0.2"
    assert refused.value.code == "rate_limit_exceeded"
    model_server.script(rate_limited(retry_after=0.2), text("finally"))
    started = time.monotonic()
    answer = client(model_server, max_retries=1).responses.create(model="m", input="hi")
    assert answer.output_text == "finally"
    assert time.monotonic() - started >= 0.2  # the client waited what Retry-After said
    assert [type(r.reply).__name__ for r in model_server.requests] == ["Failure", "Failure", "Answer"]


def test_server_errors_timeouts_and_dropped_connections(model_server: ModelServer) -> None:
    model_server.script(server_error(), server_error(503, "overloaded"), hang(), disconnect())
    sdk = client(model_server)
    with pytest.raises(openai.InternalServerError) as failed:
        sdk.responses.create(model="m", input="1")
    assert failed.value.status_code == 500
    with pytest.raises(openai.APIStatusError, match="overloaded"):
        sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "2"}])
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        client(model_server, timeout=0.3).responses.create(model="m", input="3")
    assert time.monotonic() - started < 5
    with pytest.raises(openai.APIConnectionError):
        sdk.responses.create(model="m", input="4")
    model_server.release()  # the timed-out request is still held by the server until released
    model_server.wait_for_requests_sync(4)


class Forecast(BaseModel):
    city: str
    celsius: int
    sunny: bool


def test_structured_output_fits_the_requested_schema(model_server: ModelServer) -> None:
    model_server.script(
        structured({"city": "Oslo", "celsius": 21, "sunny": True}),
        structured(),  # made up from the schema
        structured({"city": "Oslo"}),  # off-schema: refused, listed in errors
    )
    sdk = client(model_server)
    parsed = sdk.responses.parse(model="m", input="forecast?", text_format=Forecast).output_parsed
    assert parsed == Forecast(city="Oslo", celsius=21, sunny=True)
    assert sdk.responses.parse(model="m", input="?", text_format=Forecast).output_parsed == Forecast(
        city="", celsius=0, sunny=False
    )
    with pytest.raises(openai.BadRequestError, match="missing required"):
        sdk.responses.parse(model="m", input="?", text_format=Forecast)
    assert model_server.requests[0].output_schema is not None
    assert len(model_server.errors) == 1
    with pytest.raises(AssertionError, match="structured answer off-schema"):
        model_server.assert_requests()


def test_rules_answer_by_request_and_reply_functions_see_it(model_server: ModelServer) -> None:
    model_server.when(instructions="planner").always(text("plan: two steps"))
    model_server.when(after_tool="get_weather").reply(
        lambda request: text(f"Report: {request.tool_outputs[-1].output}")
    )
    model_server.script(tool_call("get_weather", {"city": "Oslo"}))
    sdk = client(model_server)
    assert sdk.responses.create(model="m", instructions="You are the planner", input="go").output_text == (
        "plan: two steps"
    )
    call = sdk.responses.create(model="m", input="weather?", tools=[WEATHER_TOOL]).output[0]
    assert call.type == "function_call"
    report = sdk.responses.create(
        model="m",
        input=[
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": "rain"},
        ],
    )
    assert report.output_text == "Report: rain"
    assert sdk.responses.create(model="m", instructions="planner again", input="go").output_text == (
        "plan: two steps"
    )
    model_server.assert_requests(4)


def test_unscripted_requests_fail_loudly_and_repeats_are_found(model_server: ModelServer) -> None:
    model_server.script(text("one"), text("two"), handoff("Spanish Agent"))
    sdk = client(model_server)
    sdk.responses.create(model="m", input="same")
    sdk.responses.create(model="m", input="same", stream=True).close()
    handed = sdk.responses.create(model="m", input="other").output[0]
    assert handed.type == "function_call" and handed.name == "transfer_to_spanish_agent"
    with pytest.raises(openai.BadRequestError, match="nothing scripted for request #3"):
        sdk.responses.create(model="m", input="more")
    assert model_server.repeats() == [(0, 1)]  # stream or not, the same call
    with pytest.raises(AssertionError, match="had no scripted reply") as report:
        model_server.assert_requests(4)
    assert "<ModelRequest #3 responses" in str(report.value)
