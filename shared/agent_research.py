"""The agents of the durable agent-research workflow: their instructions and structured outputs.

Shared by the orchestrators (which build the ``agents.Agent`` objects and run them through the Durable
Functions OpenAI Agents integration) and by the offline model (which recognises each agent by its
instructions). Pure data: no I/O, safe to import from orchestrators.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

RESEARCH_TOOL = "research_topic"

PLANNER_INSTRUCTIONS = (
    "You are the research planner. The user message is a JSON object with a topic and num_queries. "
    "Answer with exactly num_queries distinct web-search queries that together cover the topic."
)
RESEARCHER_INSTRUCTIONS = (
    f"You are a researcher. Call the {RESEARCH_TOOL} tool with the query you are given, then answer "
    "with a short paragraph of what it found, naming its sources. Do not invent findings."
)
WRITER_INSTRUCTIONS = (
    "You are the report writer. The user message is a JSON object with a topic and the researchers' "
    "findings. Write a report: a title, a summary of a few sentences and the key points."
)


class ResearchPlan(BaseModel):
    """The planner's answer."""

    model_config = ConfigDict(extra="forbid")

    queries: list[str]


class ResearchReport(BaseModel):
    """The writer's answer: what is published once a person approves it."""

    model_config = ConfigDict(extra="forbid")

    title: str
    summary: str
    key_points: list[str]
