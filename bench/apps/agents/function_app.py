"""The agent-episode benchmark's app (bench/agent_episodes.py): a fan-out of weather agents on the SDK's
OpenAI Agents integration, each asking the model twice around one activity tool.

The agents run on a ``DurableOpenAIRunner`` of their own episode (as the agent app's
``orchestrators/agent_research.py`` does) rather than ``Runner.run_sync``, so that they are right whether
their episodes overlap or not: the benchmark compares the two."""

import json

import azure.durable_functions as df
import azure.functions as func
from agents import Agent, set_default_openai_client, set_tracing_disabled
from azure.durable_functions.openai_agents.runner import DurableOpenAIRunner
from openai import AsyncOpenAI

CLIENT = AsyncOpenAI(max_retries=0)  # closed by the benchmark, on the loop its connections belong to
set_default_openai_client(CLIENT, use_for_tracing=False)
set_tracing_disabled(True)

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.activity_trigger(input_name="city")
def get_weather(city: str) -> str:
    """The weather in a city."""
    return json.dumps({"city": city, "forecast": "sunny"})


@app.orchestration_trigger(context_name="context")
@app.durable_openai_agent_orchestrator(model_retry_options=None)
def weather_agent(context):
    agent = Agent(
        name="Weather",
        instructions="You tell the weather.",
        model="gpt-test",
        tools=[context.create_activity_tool(get_weather, retry_options=None)],
    )
    runner = DurableOpenAIRunner(context=context, activity_name="run_model")
    return runner.run_sync(agent, f"What is the weather in {context.get_input()}?").final_output


@app.orchestration_trigger(context_name="context")
def fan_out(context: df.DurableOrchestrationContext):
    cities = context.get_input()
    return (
        yield context.task_all(
            [
                context.call_sub_orchestrator("weather_agent", city, f"{context.instance_id}:{n}")
                for n, city in enumerate(cities)
            ]
        )
    )
