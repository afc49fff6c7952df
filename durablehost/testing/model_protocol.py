"""OpenAI wire formats for the scripted model server: Responses and Chat Completions, plain and streamed.

The event sequences are the ones the API sends and the ``openai`` client and openai-agents parse:

* Responses stream (``POST /v1/responses`` with ``stream: true``): ``response.created``,
  ``response.in_progress``, then per output item ``response.output_item.added``; for a message
  ``response.content_part.added``, ``response.output_text.delta``…, ``response.output_text.done``,
  ``response.content_part.done``; for a function call ``response.function_call_arguments.delta``…,
  ``response.function_call_arguments.done``; then ``response.output_item.done``; and finally
  ``response.completed`` carrying the whole response with its usage. Every event has a
  ``sequence_number``; the stream has no ``[DONE]`` sentinel.
* Chat Completions stream: ``chat.completion.chunk`` objects whose first delta carries the role, then
  content or ``tool_calls`` deltas (id, name and empty arguments first, then argument fragments), a last
  chunk with ``finish_reason``, a usage chunk with no choices when ``stream_options.include_usage`` is
  set, and ``data: [DONE]``.

Ids are derived from the request number, so a run's answers are the same every time.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from durablehost.testing.model_script import ModelRequest, TextPart, ToolCallPart, Usage

CREATED_AT = 1_767_225_600  # 2026-01-01T00:00:00Z: fixed, so answers are reproducible
_CHUNK = 24  # characters per streamed delta


def _pieces(text: str) -> list[str]:
    return [text[i : i + _CHUNK] for i in range(0, len(text), _CHUNK)] or [""]


def error_body(status: int, message: str) -> dict[str, Any]:
    """OpenAI's error envelope."""
    kind = {429: ("requests", "rate_limit_exceeded"), 400: ("invalid_request_error", None)}.get(
        status, ("server_error", None)
    )
    return {"error": {"message": message, "type": kind[0], "param": None, "code": kind[1]}}


# ---------------------------------------------------------------------------------------------- Responses


def _call_id(request: ModelRequest, index: int, part: ToolCallPart) -> str:
    return part.call_id or f"call_{request.index:04d}_{index}"


def _response_items(request: ModelRequest, parts: list[TextPart | ToolCallPart]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for index, part in enumerate(parts):
        if isinstance(part, TextPart):
            items.append(
                {
                    "type": "message",
                    "id": f"msg_{request.index:04d}_{index}",
                    "status": "completed",
                    "role": "assistant",
                    "content": [
                        {"type": "output_text", "text": part.text, "annotations": [], "logprobs": []}
                    ],
                }
            )
        else:
            items.append(
                {
                    "type": "function_call",
                    "id": f"fc_{request.index:04d}_{index}",
                    "call_id": _call_id(request, index, part),
                    "name": part.name,
                    "arguments": part.arguments,
                    "status": "completed",
                }
            )
    return items


def _responses_usage(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.total_tokens,
    }


def response_object(
    request: ModelRequest, parts: list[TextPart | ToolCallPart], usage: Usage | None, *, done: bool = True
) -> dict[str, Any]:
    """The ``response`` object: complete, or (``done=False``) as ``response.created`` shows it."""
    body = request.body
    text_format = (body.get("text") or {}).get("format") or {"type": "text"}
    return {
        "id": f"resp_{request.index:04d}",
        "object": "response",
        "created_at": CREATED_AT + request.index,
        "status": "completed" if done else "in_progress",
        "model": request.model,
        "output": _response_items(request, parts) if done else [],
        "parallel_tool_calls": bool(body.get("parallel_tool_calls", True)),
        "tool_choice": body.get("tool_choice") or "auto",
        "tools": list(body.get("tools") or []),
        "instructions": body.get("instructions"),
        "previous_response_id": body.get("previous_response_id"),
        "temperature": body.get("temperature", 1.0),
        "top_p": body.get("top_p", 1.0),
        "text": {"format": text_format},
        "truncation": body.get("truncation") or "disabled",
        "metadata": body.get("metadata") or {},
        "error": None,
        "incomplete_details": None,
        "usage": _responses_usage(usage) if done and usage is not None else None,
    }


def response_events(
    request: ModelRequest, parts: list[TextPart | ToolCallPart], usage: Usage
) -> Iterator[dict[str, Any]]:
    """The events of a streamed response, in the API's order."""
    sequence = 0

    def event(kind: str, **fields: Any) -> dict[str, Any]:
        nonlocal sequence
        sequence += 1
        return {"type": kind, "sequence_number": sequence - 1, **fields}

    started = response_object(request, parts, None, done=False)
    yield event("response.created", response=started)
    yield event("response.in_progress", response=started)
    for index, item in enumerate(_response_items(request, parts)):
        if item["type"] == "message":
            final_part = item["content"][0]
            text = final_part["text"]
            yield event(
                "response.output_item.added",
                output_index=index,
                item={**item, "status": "in_progress", "content": []},
            )
            empty = {**final_part, "text": ""}
            common = {"item_id": item["id"], "output_index": index, "content_index": 0}
            yield event("response.content_part.added", **common, part=empty)
            for piece in _pieces(text):
                yield event("response.output_text.delta", **common, delta=piece, logprobs=[])
            yield event("response.output_text.done", **common, text=text, logprobs=[])
            yield event("response.content_part.done", **common, part=final_part)
        else:
            yield event(
                "response.output_item.added",
                output_index=index,
                item={**item, "arguments": "", "status": "in_progress"},
            )
            for piece in _pieces(item["arguments"]):
                yield event(
                    "response.function_call_arguments.delta",
                    item_id=item["id"],
                    output_index=index,
                    delta=piece,
                )
            yield event(
                "response.function_call_arguments.done",
                item_id=item["id"],
                output_index=index,
                name=item["name"],
                arguments=item["arguments"],
            )
        yield event("response.output_item.done", output_index=index, item=item)
    yield event("response.completed", response=response_object(request, parts, usage))


# ---------------------------------------------------------------------------------------------- Chat


def _chat_usage(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


def _chat_tool_calls(request: ModelRequest, parts: list[TextPart | ToolCallPart]) -> list[dict[str, Any]]:
    return [
        {
            "id": _call_id(request, index, part),
            "type": "function",
            "function": {"name": part.name, "arguments": part.arguments},
        }
        for index, part in enumerate(parts)
        if isinstance(part, ToolCallPart)
    ]


def _chat_text(parts: list[TextPart | ToolCallPart]) -> str | None:
    texts = [p.text for p in parts if isinstance(p, TextPart)]
    return "".join(texts) if texts else None


def chat_completion(
    request: ModelRequest, parts: list[TextPart | ToolCallPart], usage: Usage
) -> dict[str, Any]:
    """A ``chat.completion`` object."""
    calls = _chat_tool_calls(request, parts)
    message: dict[str, Any] = {"role": "assistant", "content": _chat_text(parts), "refusal": None}
    if calls:
        message["tool_calls"] = calls
    return {
        "id": f"chatcmpl-{request.index:04d}",
        "object": "chat.completion",
        "created": CREATED_AT + request.index,
        "model": request.model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": "tool_calls" if calls else "stop",
            }
        ],
        "usage": _chat_usage(usage),
    }


def chat_chunks(
    request: ModelRequest, parts: list[TextPart | ToolCallPart], usage: Usage
) -> Iterator[dict[str, Any]]:
    """The ``chat.completion.chunk`` objects of a streamed answer, usage chunk included if asked for."""
    include_usage = bool((request.body.get("stream_options") or {}).get("include_usage"))
    base = {
        "id": f"chatcmpl-{request.index:04d}",
        "object": "chat.completion.chunk",
        "created": CREATED_AT + request.index,
        "model": request.model,
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            **base,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if include_usage:
            body["usage"] = None
        return body

    yield chunk({"role": "assistant", "content": "", "refusal": None})
    text = _chat_text(parts)
    if text:
        for piece in _pieces(text):
            yield chunk({"content": piece})
    calls = _chat_tool_calls(request, parts)
    for position, call in enumerate(calls):
        head = {"index": position, "id": call["id"], "type": "function"}
        yield chunk(
            {"tool_calls": [{**head, "function": {"name": call["function"]["name"], "arguments": ""}}]}
        )
        for piece in _pieces(call["function"]["arguments"]):
            yield chunk({"tool_calls": [{"index": position, "function": {"arguments": piece}}]})
    yield chunk({}, "tool_calls" if calls else "stop")
    if include_usage:
        yield {**base, "choices": [], "usage": _chat_usage(usage)}


def sse(event: dict[str, Any], *, named: bool) -> bytes:
    """One server-sent event; Responses events also carry an ``event:`` line with their type."""
    data = json.dumps(event, separators=(",", ":"))
    head = f"event: {event['type']}\n" if named else ""
    return f"{head}data: {data}\n\n".encode()
