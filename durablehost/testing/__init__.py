"""Test Durable Functions apps in-process: real SDK replay, an in-memory store, virtual time.

async with DurableTestHost.start("path/to/app") as host:
    instance_id = await host.client.start_new("approval", client_input={"amount": 10})
    await host.run_until_idle()
    await host.client.raise_event(instance_id, "approval", {"approved": True})
    await host.advance(timedelta(days=14))        # fires every due timer, in order, instantly
    status = await host.client.get_status(instance_id)
    assert status.runtime_status == df.OrchestrationRuntimeStatus.Completed

LLM agents are tested against ``ModelServer``, a scripted OpenAI-compatible server on loopback:

with ModelServer() as server:                      # or the ``model_server`` pytest fixture
    server.script(tool_call("get_weather", {"city": "Oslo"}), text("It is sunny"))
    ...                                            # point the app's OpenAI client at server.base_url
    server.assert_requests(2)
"""

from durablehost.testing.harness import DurableTestHost, TestClient
from durablehost.testing.model_script import (
    ModelRequest,
    Rule,
    ToolOutput,
    Usage,
    disconnect,
    handoff,
    handoff_tool_name,
    hang,
    rate_limited,
    server_error,
    structured,
    text,
    tool_call,
    turn,
)
from durablehost.testing.model_server import ModelServer

__all__ = [
    "DurableTestHost",
    "ModelRequest",
    "ModelServer",
    "Rule",
    "TestClient",
    "ToolOutput",
    "Usage",
    "disconnect",
    "handoff",
    "handoff_tool_name",
    "hang",
    "rate_limited",
    "server_error",
    "structured",
    "text",
    "tool_call",
    "turn",
]
