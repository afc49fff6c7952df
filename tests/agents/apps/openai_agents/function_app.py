"""A small app on the Durable Functions OpenAI Agents integration, as its samples write one: the SDK's own
``durable_openai_agent_orchestrator`` and ``run_model`` activity, agents run with ``Runner.run_sync``, and
openai-agents' default provider pointed at the scripted model server by ``OPENAI_BASE_URL``.

``Runner.run_sync`` goes through the runner the decorator stores in a process-wide variable on every
episode, so agent orchestrators running at once on worker threads can pick up each other's runner; the
fan-outs below (``parallel_agents``, ``parallel_weather``) are where that shows (tests/agents)."""

import json

import azure.durable_functions as df
import azure.functions as func
from agents import Agent, Runner, set_default_openai_client, set_tracing_disabled
from openai import AsyncOpenAI

# The client's own retries are off, so a 429 fails the run_model activity and the integration's
# retry options (below) retry it on a durable timer.
set_default_openai_client(AsyncOpenAI(max_retries=0), use_for_tracing=False)
set_tracing_disabled(True)

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)
MODEL_RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=1000, max_number_of_attempts=3)


@app.activity_trigger(input_name="city")
def get_weather(city: str) -> str:
    """The weather in a city."""
    return json.dumps({"city": city, "forecast": "sunny", "celsius": 21})


@app.orchestration_trigger(context_name="context")
@app.durable_openai_agent_orchestrator(model_retry_options=MODEL_RETRY)
def hello_agent(context):
    agent = Agent(name="Assistant", instructions="You only respond in haikus.", model="gpt-test")
    return Runner.run_sync(agent, context.get_input() or "Tell me about recursion").final_output


@app.orchestration_trigger(context_name="context")
@app.durable_openai_agent_orchestrator(model_retry_options=MODEL_RETRY)
def weather_agent(context):
    agent = Agent(
        name="Weather",
        instructions="You tell the weather.",
        model="gpt-test",
        tools=[context.create_activity_tool(get_weather, retry_options=None)],
    )
    city = context.get_input() or "Oslo"
    return Runner.run_sync(agent, f"What is the weather in {city}?").final_output


@app.orchestration_trigger(context_name="context")
@app.durable_openai_agent_orchestrator(model_retry_options=MODEL_RETRY)
def triage_agent(context):
    spanish = Agent(name="Spanish Agent", instructions="You only speak Spanish.", model="gpt-test")
    triage = Agent(name="Triage", instructions="Hand off by language.", model="gpt-test", handoffs=[spanish])
    result = Runner.run_sync(triage, "Hola, ¿cómo estás?")
    return {"answer": result.final_output, "agent": result.last_agent.name}


@app.orchestration_trigger(context_name="context")
def parallel_agents(context: df.DurableOrchestrationContext):
    topics = context.get_input()
    answers = yield context.task_all(
        [
            context.call_sub_orchestrator("hello_agent", topic, f"{context.instance_id}:{n}")
            for n, topic in enumerate(topics)
        ]
    )
    return answers


@app.orchestration_trigger(context_name="context")
def parallel_weather(context: df.DurableOrchestrationContext):
    cities = context.get_input()
    answers = yield context.task_all(
        [
            context.call_sub_orchestrator("weather_agent", city, f"{context.instance_id}:{n}")
            for n, city in enumerate(cities)
        ]
    )
    return answers
