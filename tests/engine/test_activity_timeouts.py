"""A timed-out activity attempt is abandoned and the work item picked up again (at least once)."""

from __future__ import annotations

from pathlib import Path

import azure.durable_functions as df

from durablehost.engine.dispatcher import DispatcherOptions
from durablehost.testing import DurableTestHost

APP = Path(__file__).parent / "apps" / "surface"


async def test_timed_out_attempts_are_picked_up_again() -> None:
    options = DispatcherOptions(activity_timeout=0.2, activity_redeliveries=2)
    async with DurableTestHost.start(APP, options=options) as host:
        import function_app

        function_app.ATTEMPTS.clear()
        instance_id = await host.client.start_new("calls_slow", client_input=30)
        status = await host.wait_for_completion(instance_id)
        assert status.runtime_status == df.OrchestrationRuntimeStatus.Completed, status.output
        assert status.output == 3  # attempts 1 and 2 hung past the timeout; 3 answered


async def test_an_activity_that_always_times_out_fails_with_a_timeout() -> None:
    options = DispatcherOptions(activity_timeout=0.1, activity_redeliveries=1)
    async with DurableTestHost.start(APP, options=options) as host:
        import function_app

        function_app.ATTEMPTS.clear()
        instance_id = await host.client.start_new("calls_slow", client_input=30)
        status = await host.wait_for_completion(instance_id)
        assert status.runtime_status == df.OrchestrationRuntimeStatus.Failed
        assert "TimeoutError: timed out after 0.1 s in each of 2 attempts" in status.output
        assert function_app.ATTEMPTS["slow_then_fast"] == 2
