"""Microsoft Agent Framework durable agents, as a plain Azure Functions app.

``AgentFunctionApp`` hosts each agent as a durable entity (its conversation is the entity's state) and
serves ``POST /api/agents/{name}/run``; orchestrations drive agents turn by turn with ``call_entity``
(``app.get_agent(context, name).run(...)``). The model is any OpenAI-compatible Chat Completions endpoint:
``OPENAI_BASE_URL``, ``OPENAI_API_KEY`` and ``OPENAI_MODEL`` (Agent Framework's own settings).

Run it with ``durablehost start --app-dir examples/agent_framework`` from the example's venv
(``.venv-agent-framework``), or with ``func start`` in this folder.
"""

import json
import os

import azure.durable_functions as df
import azure.functions as func
from agent_framework.openai import OpenAIChatCompletionClient
from agent_framework_azurefunctions import AgentFunctionApp
from openai import AsyncOpenAI
from pydantic import BaseModel


def get_weather(city: str) -> str:
    """The current weather in a city, as JSON."""
    forecasts = {"oslo": ("snow", -3), "lisbon": ("sunny", 19)}
    sky, celsius = forecasts.get(city.strip().lower(), ("cloudy", 12))
    return json.dumps({"city": city, "sky": sky, "celsius": celsius})


class Route(BaseModel):
    """The triage agent's decision."""

    language: str


# The client's own retries stay on (Agent Framework has no durable retry of model calls: a failed call
# fails the entity operation), so a 429 waits what Retry-After says inside the call.
client = OpenAIChatCompletionClient(
    model=os.environ.get("OPENAI_MODEL", "gpt-4o-mini"),
    async_client=AsyncOpenAI(max_retries=int(os.environ.get("OPENAI_MAX_RETRIES", "2"))),
)
weather_agent = client.as_agent(
    name="WeatherAgent", instructions="You tell the weather. Use the get_weather tool.", tools=[get_weather]
)
triage_agent = client.as_agent(name="TriageAgent", instructions="Name the language of the user's message.")
spanish_agent = client.as_agent(name="SpanishAgent", instructions="You answer in Spanish.")
english_agent = client.as_agent(name="EnglishAgent", instructions="You answer in English.")

app = AgentFunctionApp(
    agents=[weather_agent, triage_agent, spanish_agent, english_agent],
    http_auth_level=func.AuthLevel.ANONYMOUS,
)


@app.orchestration_trigger(context_name="context")
def weather_conversation(context: df.DurableOrchestrationContext):
    """Two turns of one conversation with the weather agent, each a ``call_entity`` on its session."""
    agent = app.get_agent(context, "WeatherAgent")
    session = agent.create_session()
    first = yield agent.run(context.get_input() or "What is the weather in Oslo?", session=session)
    second = yield agent.run("And what should I wear there?", session=session)
    return {"first": first.text, "second": second.text}


@app.orchestration_trigger(context_name="context")
def parallel_weather(context: df.DurableOrchestrationContext):
    """One weather agent session per city, all running at once."""
    agent = app.get_agent(context, "WeatherAgent")
    cities = context.get_input()
    answers = yield context.task_all(
        [agent.run(f"What is the weather in {city}?", session=agent.create_session()) for city in cities]
    )
    return [answer.text for answer in answers]


@app.orchestration_trigger(context_name="context")
def triage_handoff(context: df.DurableOrchestrationContext):
    """Hand the message to the agent for its language: the triage agent's structured answer decides."""
    message = context.get_input()
    triage = app.get_agent(context, "TriageAgent")
    route = yield triage.run(message, session=triage.create_session(), options={"response_format": Route})
    language = Route.model_validate_json(route.text).language.lower()
    target = app.get_agent(context, "SpanishAgent" if language == "spanish" else "EnglishAgent")
    answer = yield target.run(message, session=target.create_session())
    return {"language": language, "answer": answer.text}


@app.route(route="conversations/{orchestrator}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start_conversation(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    """``POST /api/conversations/{weather_conversation|parallel_weather|triage_handoff}``: start one."""
    orchestrator = req.route_params["orchestrator"]
    if orchestrator not in ("weather_conversation", "parallel_weather", "triage_handoff"):
        return func.HttpResponse(json.dumps({"error": f"no orchestration {orchestrator}"}), status_code=404)
    instance_id = await client.start_new(
        orchestrator, client_input=req.get_json() if req.get_body() else None
    )
    return client.create_check_status_response(req, instance_id)
