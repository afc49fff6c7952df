"""Reproducer (issue #12 item 2): an Agent Framework orchestration whose agent call does not wait.

``agent.run(..., options={"wait_for_response": False})`` signals the agent's entity and returns a
``PreCompletedTask`` (agent_framework_azurefunctions ``_orchestration.py``). Yielding it hands the SDK a
task with no action, and the SDK fails while building the episode's answer: ``Attempted to convert an
anonymous Action to JSON``, outside the orchestrator's own code. The engine must end such an instance
Failed with that message after bounded attempts, and a graceful stop must not wait on it.

Run it (the example's venv has Agent Framework; no model call is made, the signal only queues one):

    OPENAI_API_KEY=unused .venv-agent-framework/bin/durablehost start \\
        --app-dir tests/agents/apps/af_poison --store memory --port 7077
    curl -s -X POST http://127.0.0.1:7077/runtime/webhooks/durabletask/orchestrators/fire_and_forget
"""

from agent_framework.openai import OpenAIChatCompletionClient
from agent_framework_azurefunctions import AgentFunctionApp

agent = OpenAIChatCompletionClient(model="gpt-test").as_agent(name="Echo", instructions="Repeat the message.")
app = AgentFunctionApp(agents=[agent])


@app.orchestration_trigger(context_name="context")
def fire_and_forget(context):
    echo = app.get_agent(context, "Echo")
    acknowledgement = yield echo.run(
        "hello", session=echo.create_session(), options={"wait_for_response": False}
    )
    return acknowledgement.text
