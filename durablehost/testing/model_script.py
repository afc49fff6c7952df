"""What the scripted model server answers, and what it was asked.

Replies (build them with the functions below; a test never writes protocol JSON):

* :func:`text` — an assistant message; :func:`structured` — a JSON answer for a request that asked for a
  JSON schema (checked against it, or made up from it when no value is given);
* :func:`tool_call` — a function-tool call with its arguments; :func:`handoff` — openai-agents' handoff,
  which is the function tool ``transfer_to_<agent>``; :func:`turn` — several parts in one answer (text and
  parallel tool calls);
* failures: :func:`rate_limited` (429 with ``Retry-After``), :func:`server_error` (500 or another status),
  :func:`hang` (no answer until released, or for some seconds: a client timeout), :func:`disconnect`
  (the connection is closed before any answer).

A reply may also be a function of the :class:`ModelRequest` returning one of these, e.g.
``lambda request: text(f"found: {request.tool_outputs[-1]}")``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from durablehost.testing import _json_schema

Api = Literal["responses", "chat"]


@dataclass(frozen=True)
class Usage:
    """Token counts of one answer, or totals over many."""

    input_tokens: int = 0
    output_tokens: int = 0
    requests: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.requests + other.requests,
        )


def count_tokens(text: str) -> int:
    """The server's deterministic token count: a quarter of the characters, at least one."""
    return max(1, math.ceil(len(text) / 4))


# ---------------------------------------------------------------------------------------------- replies


@dataclass(frozen=True)
class TextPart:
    text: str


@dataclass(frozen=True)
class ToolCallPart:
    name: str
    arguments: str  # JSON text, as the model sends it
    call_id: str | None = None


@dataclass(frozen=True)
class StructuredPart:
    value: Any  # ``MISSING`` means: make one up from the request's schema


MISSING: Any = object()
Part = TextPart | ToolCallPart | StructuredPart


@dataclass(frozen=True)
class Answer:
    """A successful answer: its parts in order, and optional fixed token counts."""

    parts: tuple[Part, ...]
    usage: Usage | None = None


@dataclass(frozen=True)
class Failure:
    """An HTTP failure, a hang or a dropped connection instead of an answer."""

    kind: Literal["status", "hang", "disconnect"]
    status: int = 0
    retry_after: float | None = None
    message: str = ""
    seconds: float | None = None  # hang: None = until released or the server stops


Reply = Answer | Failure
ReplyFunction = Callable[["ModelRequest"], Reply]
Scripted = Reply | ReplyFunction


def text(content: str, *, usage: Usage | None = None) -> Answer:
    """An assistant message with this text."""
    return Answer((TextPart(content),), usage)


def structured(value: Any = MISSING, *, usage: Usage | None = None) -> Answer:
    """A JSON answer to a request with a JSON-schema output format. ``value`` must fit the schema the
    client sent (a mismatch answers 400 and is kept in ``server.errors``); without it the server answers
    with the smallest value the schema allows."""
    return Answer((StructuredPart(value),), usage)


def tool_call(
    name: str, arguments: Mapping[str, Any] | str | None = None, *, call_id: str | None = None
) -> Answer:
    """A call of function tool ``name``; ``arguments`` as a mapping or as JSON text."""
    args = arguments if isinstance(arguments, str) else json.dumps(dict(arguments or {}))
    return Answer((ToolCallPart(name, args, call_id),))


def handoff_tool_name(agent_name: str) -> str:
    """openai-agents' tool name for a handoff to ``agent_name`` (``Handoff.default_tool_name``)."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", re.sub(r"\s", "_", f"transfer_to_{agent_name}")).lower()


def handoff(agent_name: str) -> Answer:
    """A handoff to the agent called ``agent_name``: in openai-agents, a call of ``transfer_to_<name>``."""
    return tool_call(handoff_tool_name(agent_name), {})


def turn(*answers: Answer, usage: Usage | None = None) -> Answer:
    """One answer made of several: e.g. ``turn(text("Looking"), tool_call("a", …), tool_call("b", …))``."""
    return Answer(tuple(part for answer in answers for part in answer.parts), usage)


def rate_limited(retry_after: float = 1.0, message: str = "Rate limit reached (scripted)") -> Failure:
    """HTTP 429 with ``Retry-After: <seconds>`` and OpenAI's error body."""
    return Failure("status", 429, retry_after, message)


def server_error(status: int = 500, message: str = "The server had an error (scripted)") -> Failure:
    """An HTTP error status with OpenAI's error body (500 by default)."""
    return Failure("status", status, None, message)


def hang(seconds: float | None = None) -> Failure:
    """Hold the request without answering: for ``seconds``, else until ``server.release()`` or stop."""
    return Failure("hang", seconds=seconds)


def disconnect() -> Failure:
    """Close the connection without answering."""
    return Failure("disconnect")


# ---------------------------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class ToolOutput:
    """A tool's result as the client sent it back to the model."""

    name: str | None
    call_id: str
    output: str


@dataclass
class ModelRequest:
    """One request the server received, in a shape common to both APIs."""

    index: int
    api: Api
    body: dict[str, Any]
    headers: dict[str, str]
    reply: Reply | None = None  # what the server answered (None: nothing matched)
    usage: Usage = field(default_factory=Usage)

    @property
    def model(self) -> str:
        return str(self.body.get("model", ""))

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))

    @property
    def instructions(self) -> str:
        """Responses ``instructions``, or the system and developer messages of a chat request."""
        if self.api == "responses":
            return str(self.body.get("instructions") or "")
        return "\n".join(
            _content_text(m.get("content"))
            for m in self.body.get("messages", [])
            if m.get("role") in ("system", "developer")
        )

    @property
    def items(self) -> list[dict[str, Any]]:
        """The conversation: Responses input items, or chat messages other than system/developer."""
        if self.api == "responses":
            raw = self.body.get("input")
            if isinstance(raw, str):
                return [{"role": "user", "content": raw}]
            return [dict(item) for item in raw or []]
        return [
            dict(m) for m in self.body.get("messages", []) if m.get("role") not in ("system", "developer")
        ]

    @property
    def user_messages(self) -> list[str]:
        """The text of every user message, in order."""
        return [
            _content_text(i.get("content"))
            for i in self.items
            if i.get("role") == "user" and i.get("type", "message") == "message"
        ]

    @property
    def input_text(self) -> str:
        """The last user message (what the agent was asked this turn)."""
        messages = self.user_messages
        return messages[-1] if messages else ""

    @property
    def tools(self) -> dict[str, dict[str, Any]]:
        """Offered function tools: name -> parameters schema."""
        found: dict[str, dict[str, Any]] = {}
        for tool in self.body.get("tools") or []:
            spec = tool.get("function", tool) if self.api == "chat" else tool
            if tool.get("type") == "function" and "name" in spec:
                found[str(spec["name"])] = dict(spec.get("parameters") or {})
        return found

    @property
    def tool_names(self) -> list[str]:
        return list(self.tools)

    @property
    def tool_calls(self) -> list[ToolCallPart]:
        """Tool calls the model made earlier in this conversation."""
        calls: list[ToolCallPart] = []
        for item in self.items:
            if item.get("type") == "function_call":
                calls.append(ToolCallPart(str(item["name"]), str(item["arguments"]), str(item["call_id"])))
            for call in item.get("tool_calls") or []:
                function = call["function"]
                calls.append(ToolCallPart(str(function["name"]), str(function["arguments"]), str(call["id"])))
        return calls

    @property
    def tool_outputs(self) -> list[ToolOutput]:
        """Tool results in the conversation, in order, with the name of the tool that produced each."""
        names = {c.call_id: c.name for c in self.tool_calls}
        outputs: list[ToolOutput] = []
        for item in self.items:
            if item.get("type") == "function_call_output":
                call_id = str(item["call_id"])
                outputs.append(ToolOutput(names.get(call_id), call_id, _content_text(item.get("output"))))
            elif item.get("role") == "tool":
                call_id = str(item.get("tool_call_id"))
                outputs.append(ToolOutput(names.get(call_id), call_id, _content_text(item.get("content"))))
        return outputs

    @property
    def last_is_tool_output(self) -> bool:
        items = self.items
        return bool(items) and (
            items[-1].get("type") == "function_call_output" or items[-1].get("role") == "tool"
        )

    @property
    def output_schema(self) -> dict[str, Any] | None:
        """The JSON schema the client asked the answer to follow, if any."""
        if self.api == "responses":
            fmt = (self.body.get("text") or {}).get("format") or {}
            return dict(fmt["schema"]) if fmt.get("type") == "json_schema" else None
        fmt = self.body.get("response_format") or {}
        if fmt.get("type") != "json_schema":
            return None
        return dict(fmt["json_schema"]["schema"])

    def fingerprint(self) -> str:
        """The request body as canonical JSON, ``stream`` excluded: equal for a repeated call."""
        return json.dumps({k: v for k, v in self.body.items() if k != "stream"}, sort_keys=True)

    def __repr__(self) -> str:
        asked = self.input_text[:60]
        return (
            f"<ModelRequest #{self.index} {self.api} model={self.model!r} tools={self.tool_names} {asked!r}>"
        )


def _content_text(content: Any) -> str:
    """Text of a message content: a string, or parts with ``text`` (input_text, output_text, text)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return json.dumps(content)


# ---------------------------------------------------------------------------------------------- rules

Matcher = Callable[[ModelRequest], bool]


def request_matcher(
    *,
    model: str | None = None,
    instructions: str | None = None,
    input: str | None = None,
    tool: str | None = None,
    after_tool: str | bool | None = None,
    api: Api | None = None,
    where: Matcher | None = None,
) -> Matcher:
    """A predicate over requests; every given criterion must hold.

    ``instructions``/``input`` are substrings of the instructions / of any user message; ``tool``: that
    tool is offered; ``after_tool``: the conversation ends with a tool result (of that tool, if a name),
    or, when False, does not.
    """

    def matches(request: ModelRequest) -> bool:
        if model is not None and request.model != model:
            return False
        if api is not None and request.api != api:
            return False
        if instructions is not None and instructions not in request.instructions:
            return False
        if input is not None and not any(input in m for m in request.user_messages):
            return False
        if tool is not None and tool not in request.tools:
            return False
        if after_tool is not None:
            ends_with_tool = request.last_is_tool_output
            if after_tool is False and ends_with_tool:
                return False
            if after_tool is not False and not ends_with_tool:
                return False
            if isinstance(after_tool, str) and request.tool_outputs[-1].name != after_tool:
                return False
        return where is None or where(request)

    return matches


class Rule:
    """Replies for the requests a matcher accepts: each once in order (``reply``), or forever (``always``).

    Returned by ``ModelServer.when(...)``.
    """

    def __init__(self, matcher: Matcher) -> None:
        self.matcher = matcher
        self._queue: list[Scripted] = []
        self._forever: Scripted | None = None
        self.hits = 0

    def reply(self, *replies: Scripted) -> Rule:
        """Answer the next matching requests with these replies, one each, in order."""
        self._queue.extend(replies)
        return self

    def always(self, reply: Scripted) -> Rule:
        """Answer every matching request (after the queued replies) with ``reply``."""
        self._forever = reply
        return self

    @property
    def exhausted(self) -> bool:
        return not self._queue and self._forever is None

    def take(self) -> Scripted:
        self.hits += 1
        if self._queue:
            return self._queue.pop(0)
        if self._forever is None:
            raise LookupError("rule is exhausted")
        return self._forever


def resolve(scripted: Scripted, request: ModelRequest) -> Reply:
    """A reply function's answer for this request, or the reply itself."""
    if isinstance(scripted, Answer | Failure):
        return scripted
    reply = scripted(request)
    if not isinstance(reply, Answer | Failure):
        raise TypeError(f"a reply function must return text(), tool_call(), … ; got {reply!r}")
    return reply


def concrete_parts(answer: Answer, request: ModelRequest) -> list[TextPart | ToolCallPart]:
    """Structured parts turned into text, checked against (or made up from) the request's schema."""
    parts: list[TextPart | ToolCallPart] = []
    for part in answer.parts:
        if isinstance(part, StructuredPart):
            schema = request.output_schema
            if schema is None:
                raise _json_schema.SchemaMismatch(
                    "structured() answers a request with a JSON-schema output format; this one has none"
                )
            value = _json_schema.example_for(schema) if part.value is MISSING else part.value
            _json_schema.check(value, schema)
            parts.append(TextPart(json.dumps(value)))
        else:
            parts.append(part)
    return parts


def answer_usage(answer: Answer, request: ModelRequest, parts: Iterable[TextPart | ToolCallPart]) -> Usage:
    """Fixed usage if scripted, else counted: the request body in, the answer's text and arguments out."""
    if answer.usage is not None:
        return Usage(answer.usage.input_tokens, answer.usage.output_tokens, 1)
    produced = "".join(p.text if isinstance(p, TextPart) else p.name + p.arguments for p in parts)
    return Usage(count_tokens(request.fingerprint()), count_tokens(produced), 1)
