"""The offline model of the durable agent-research workflow: an openai-agents ``Model``, deterministic,
no network, and not a language model.

It recognises the workflow's three agents by their instructions (``shared.agent_research``) and answers
as each would: the planner with a ``ResearchPlan`` built from the topic (the offline LLM's plan), a
researcher first with a call of its research tool and then with what the tool returned, the writer with
a ``ResearchReport`` of the findings. Anything else gets a short text echoing its question. Token usage is
a quarter of the characters in and out, like the offline LLM client's.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from typing import Any

from agents import (
    AgentOutputSchemaBase,
    Handoff,
    Model,
    ModelProvider,
    ModelResponse,
    ModelSettings,
    ModelTracing,
    Tool,
    TResponseInputItem,
    Usage,
)
from agents.items import TResponseOutputItem, TResponseStreamEvent
from openai.types.responses import ResponseFunctionToolCall, ResponseOutputMessage, ResponseOutputText

from shared.agent_research import (
    PLANNER_INSTRUCTIONS,
    RESEARCH_TOOL,
    RESEARCHER_INSTRUCTIONS,
    WRITER_INSTRUCTIONS,
    ResearchPlan,
    ResearchReport,
)
from shared.llm.offline import _plan_queries, hash_text

OFFLINE_AGENT_MODEL = "offline-agents-1"


def _tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4))


def _items(input: str | list[TResponseInputItem]) -> list[dict[str, Any]]:
    if isinstance(input, str):
        return [{"role": "user", "content": input}]
    return [dict(item) for item in input]  # type: ignore[call-overload]


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def _last_user_text(items: list[dict[str, Any]]) -> str:
    for item in reversed(items):
        if item.get("role") == "user":
            return _text_of(item.get("content"))
    return ""


def _tool_outputs(items: list[dict[str, Any]]) -> list[str]:
    return [_text_of(i.get("output")) for i in items if i.get("type") == "function_call_output"]


def _message(text: str, key: str) -> ResponseOutputMessage:
    return ResponseOutputMessage(
        id=f"msg_{key}",
        type="message",
        role="assistant",
        status="completed",
        content=[ResponseOutputText(type="output_text", text=text, annotations=[])],
    )


def _plan(question: str) -> str:
    data = json.loads(question)
    queries = _plan_queries({"topic": data["topic"], "num_queries": int(data["num_queries"])})["queries"]
    return ResearchPlan(queries=queries).model_dump_json()


def _research_summary(query: str, tool_output: str) -> str:
    try:
        found = json.loads(tool_output)
    except json.JSONDecodeError:
        return f"Findings for '{query}': {tool_output}"
    if found.get("status") != "ok":
        return f"No findings for '{query}': {found.get('error', 'the research tool failed')}"
    sources = ", ".join(found.get("sources", [])) or "none"
    return f"Findings for '{query}': {found['findings']} (sources: {sources})"


def _report(question: str) -> str:
    data = json.loads(question)
    findings = [str(f) for f in data.get("findings", [])]
    return ResearchReport(
        title=f"Research report: {data['topic']}",
        summary=f"{len(findings)} findings on {data['topic']}.",
        key_points=findings[:5],
    ).model_dump_json()


class OfflineAgentModel(Model):
    """See the module docstring."""

    async def get_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
        tracing: ModelTracing,
        *,
        previous_response_id: str | None = None,
        conversation_id: str | None = None,
        prompt: Any = None,
    ) -> ModelResponse:
        items = _items(input)
        question = _last_user_text(items)
        instructions = system_instructions or ""
        key = f"{hash_text(instructions + json.dumps(items, sort_keys=True, default=str)) % 10**12:012d}"
        output: TResponseOutputItem
        if instructions == RESEARCHER_INSTRUCTIONS and not _tool_outputs(items):
            output = ResponseFunctionToolCall(
                id=f"fc_{key}",
                type="function_call",
                call_id=f"call_{key}",
                name=RESEARCH_TOOL,
                arguments=json.dumps({"query": question}),
                status="completed",
            )
            produced = output.arguments
        else:
            if instructions == PLANNER_INSTRUCTIONS:
                produced = _plan(question)
            elif instructions == RESEARCHER_INSTRUCTIONS:
                produced = _research_summary(question, _tool_outputs(items)[-1])
            elif instructions == WRITER_INSTRUCTIONS:
                produced = _report(question)
            else:
                produced = f"offline answer to: {question}"
            output = _message(produced, key)
        consumed = instructions + json.dumps(items, default=str)
        usage = Usage(
            requests=1,
            input_tokens=_tokens(consumed),
            output_tokens=_tokens(produced),
            total_tokens=_tokens(consumed) + _tokens(produced),
        )
        return ModelResponse(output=[output], usage=usage, response_id=None)

    def stream_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
        tracing: ModelTracing,
        *,
        previous_response_id: str | None = None,
        conversation_id: str | None = None,
        prompt: Any = None,
    ) -> AsyncIterator[TResponseStreamEvent]:
        # Durable agent runs never stream (the integration's model activity calls get_response).
        raise NotImplementedError("the offline agent model does not stream")


class OfflineAgentProvider(ModelProvider):
    """Hands out the offline model whatever model name is asked for."""

    def get_model(self, model_name: str | None) -> Model:
        return OfflineAgentModel()
