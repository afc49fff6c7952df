"""``run_model``: the model call of every durable agent (the Durable Functions OpenAI Agents integration).

The integration's orchestrator wrapper schedules this activity for each model call, with the agent's
instructions, conversation, tools and output schema as JSON. It runs the integration's own activity code
(``durable_openai_agent_activity``) with the app's model provider: the offline model unless an endpoint
is configured (``shared.llm.agents_provider``). It is the app's own and not the one the integration's
decorator registers, because that decorator refuses every provider but the abstract base class itself
(see ``orchestrators.agent_research``).
"""

from __future__ import annotations

import azure.durable_functions as df
from azure.durable_functions.openai_agents.orchestrator_generator import durable_openai_agent_activity

from shared.llm.agents_provider import agent_model_provider
from shared.settings import load_settings

bp = df.Blueprint()


@bp.activity_trigger(input_name="input", activity="run_model")
async def run_model(input: str) -> str:
    """Ask the configured model; returns the integration's ModelResponse JSON."""
    answer: str = await durable_openai_agent_activity(input, agent_model_provider(load_settings().llm))
    return answer
