"""Issue #4 item 6: an orchestrator changed under an instance in flight fails it with a report.

Version 1 of the app runs an instance up to an event wait on a SQLite store and stops; version 2, the same
orchestrator names with a changed step, starts on the same store and the event arrives. The instance must
end Failed with a message naming the position and both sides, and version 2 must run no activity: a
result is never routed to a task it was not recorded for. The replay check of the exported history,
run against version 2 before "deploying" it, predicts the same report.
"""

from __future__ import annotations

from pathlib import Path

import azure.durable_functions as df
import pytest

from durablehost.engine.history import EventType
from durablehost.functions import load_app
from durablehost.replay import check_history
from durablehost.store import open_store
from durablehost.testing import DurableTestHost

from .conftest import APPS

V1 = APPS / "nondet_v1"
V2 = APPS / "nondet_v2"


def _ran() -> list[str]:
    import function_app  # the entry module of the app loaded last

    ran: list[str] = function_app.RAN
    return ran


# The event reaches order_inserted v2 before it yields the wait; the SDK warns, and the host fails it anyway.
@pytest.mark.filterwarnings("ignore:Potential duplicate Task completion")
@pytest.mark.parametrize(
    ("orchestrator", "position", "recorded", "now"),
    [
        ("order", 0, "CallActivity 'reserve'", "CallActivity 'reserve_stock'"),
        ("order_inserted", 1, "an external-event wait", "CallActivity 'notify'"),
    ],
)
async def test_code_changed_under_a_waiting_instance_fails_it_with_a_report(
    tmp_path: Path, orchestrator: str, position: int, recorded: str, now: str
) -> None:
    store = open_store(f"sqlite:{tmp_path / 'state.sqlite'}")
    try:
        async with DurableTestHost.start(V1, store=store) as v1:
            instance_id = await v1.client.start_new(orchestrator, "in-flight", client_input="desk")
            await v1.run_until_idle()
            status = await v1.client.get_status(instance_id)
            assert status.runtime_status == df.OrchestrationRuntimeStatus.Running
            assert _ran() == ["reserve"]
            exported = await v1.host.export_history(instance_id)

        [predicted] = check_history(load_app(V2), exported).problems

        async with DurableTestHost.start(V2, store=store) as v2:
            assert _ran() == []
            await v2.client.raise_event(instance_id, "go", True)
            status = await v2.wait_for_completion(instance_id)
            history = await v2.history(instance_id)
            ran_in_v2 = list(_ran())
    finally:
        await store.close()

    assert status.runtime_status == df.OrchestrationRuntimeStatus.Failed
    message = status.output
    assert message.startswith(f"Orchestrator function '{orchestrator}' failed: Non-deterministic")
    assert f"at action #{position} the history recorded {recorded}, but the code now yields {now}" in message
    assert "code changed while this instance was running" in message
    assert predicted in message
    assert ran_in_v2 == []
    scheduled = [e["Name"] for e in history if e["EventType"] == EventType.TASK_SCHEDULED]
    assert scheduled == ["reserve"]  # v1's step only: the failing episode scheduled nothing
