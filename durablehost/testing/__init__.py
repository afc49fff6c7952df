"""Test Durable Functions apps in-process: real SDK replay, an in-memory store, virtual time.

async with DurableTestHost.start("path/to/app") as host:
    instance_id = await host.client.start_new("approval", client_input={"amount": 10})
    await host.run_until_idle()
    await host.client.raise_event(instance_id, "approval", {"approved": True})
    await host.advance(timedelta(days=14))        # fires every due timer, in order, instantly
    status = await host.client.get_status(instance_id)
    assert status.runtime_status == df.OrchestrationRuntimeStatus.Completed
"""

from durablehost.testing.harness import DurableTestHost, TestClient

__all__ = ["DurableTestHost", "TestClient"]
