"""Azure-exact fidelity against durablehost's own behaviour, on the real SDK (SQLite and Azurite).

In Azure every raised event enters history as it arrives, and the Python SDK hands an event raised before
its wait to every later wait of that name, the last of several winning (azure-functions-durable-python
#507); durablehost delivers one event per outstanding wait. The other differences of the README's list
that a test can observe are here too."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from datetime import timedelta
from typing import Any

import azure.durable_functions as df
import pytest

from durablehost.engine.fidelity import Fidelity
from durablehost.engine.history import EventType
from durablehost.errors import IdempotencyKeyReused
from durablehost.replay import check_history
from durablehost.store import open_store
from durablehost.store.base import TableStore
from durablehost.testing import DurableTestHost

from .conftest import APPS

APP = APPS / "fidelity"
# The SDK's own warning when an event finds no open wait (#507's mechanism): expected in Azure mode.
pytestmark = pytest.mark.filterwarnings("ignore:Potential duplicate Task completion:UserWarning")
Completed = df.OrchestrationRuntimeStatus.Completed
Running = df.OrchestrationRuntimeStatus.Running


@pytest.fixture
async def shared(engine_store: TableStore | None) -> AsyncIterator[tuple[TableStore, str]]:
    store = engine_store or open_store("memory")
    yield store, f"F{uuid.uuid4().hex[:12]}"
    await store.close()


def on(shared: tuple[TableStore, str], fidelity: str) -> AbstractAsyncContextManager[DurableTestHost]:
    store, hub = shared
    return DurableTestHost.start(APP, store=store, hub=hub, fidelity=fidelity)


async def waiting_for_go(host: DurableTestHost, *steps: str) -> str:
    """An ``early_steps`` instance that got ``steps`` while it waited for "go" (no "step" wait yet)."""
    instance_id = await host.client.start_new("early_steps")
    await host.run_until_idle()
    for step in steps:
        await host.client.raise_event_raw(instance_id, "step", json.dumps(step))
        await host.run_until_idle()
    await host.client.raise_event_raw(instance_id, "go", None)
    await host.run_until_idle()
    return instance_id


@pytest.mark.parametrize("fidelity", ["durablehost", "azure"])
async def test_one_early_event(shared: tuple[TableStore, str], fidelity: str) -> None:
    async with on(shared, fidelity) as host:
        instance_id = await waiting_for_go(host, "only")
        status = await host.client.get_status(instance_id)
        if fidelity == "azure":
            # #507: the early event satisfies both later waits at once.
            assert (status.runtime_status, status.output) == (Completed, ["only", "only"])
            return
        assert status.runtime_status == Running  # consumed by the first wait only
        await host.client.raise_event_raw(instance_id, "step", '"later"')
        assert (await host.wait_for_completion(instance_id)).output == ["only", "later"]


@pytest.mark.parametrize(("fidelity", "output"), [("durablehost", ["a", "b"]), ("azure", ["b", "b"])])
async def test_two_early_events(shared: tuple[TableStore, str], fidelity: str, output: list[str]) -> None:
    async with on(shared, fidelity) as host:
        instance_id = await waiting_for_go(host, "a", "b")
        status = await host.client.get_status(instance_id)
        # Azure: the second early event overwrote the first, which is lost, and wins for every wait.
        assert (status.runtime_status, status.output) == (Completed, output)
        raised = [
            e["Name"] for e in await host.history(instance_id) if e["EventType"] == EventType.EVENT_RAISED
        ]
        # Azure appends events as they arrive; durablehost when a wait for them exists.
        assert raised == (["step", "step", "go"] if fidelity == "azure" else ["go", "step", "step"])


@pytest.mark.parametrize(("fidelity", "item"), [("durablehost", "early"), ("azure", "late")])
async def test_continue_as_new_carries_or_drops_unconsumed_events(
    shared: tuple[TableStore, str], fidelity: str, item: str
) -> None:
    async with on(shared, fidelity) as host:
        instance_id = await host.client.start_new("continue_then_wait")
        await host.run_until_idle()
        await host.client.raise_event_raw(instance_id, "item", '"early"')  # nobody waits for it yet
        await host.client.raise_event_raw(instance_id, "go", None)
        await host.run_until_idle()
        record = await host.host.get_record(instance_id)
        assert record is not None and record.generation == 1
        if fidelity == "azure":
            # The extension's ContinueAsNew keeps no unprocessed events: "early" went with the old history.
            assert (await host.client.get_status(instance_id)).runtime_status == Running
            await host.client.raise_event_raw(instance_id, "item", '"late"')
        status = await host.wait_for_completion(instance_id)
        assert (status.runtime_status, status.output) == (Completed, item)


async def test_an_instance_keeps_the_fidelity_it_was_created_with(shared: tuple[TableStore, str]) -> None:
    async with on(shared, "azure") as azure:
        instance_id = await azure.client.start_new("early_steps")
        await azure.run_until_idle()
        await azure.client.raise_event_raw(instance_id, "step", '"only"')
        await azure.run_until_idle()
    # A durablehost-mode process takes over: the history was built the Azure way, and goes on so.
    async with on(shared, "durablehost") as ours:
        record = await ours.host.get_record(instance_id)
        assert record is not None and record.fidelity is Fidelity.AZURE
        await ours.client.raise_event_raw(instance_id, "go", None)
        status = await ours.wait_for_completion(instance_id)
        assert (status.runtime_status, status.output) == (Completed, ["only", "only"])
        fresh = await ours.client.start_new("early_steps")
        assert (await ours.host.get_record(fresh)).fidelity is Fidelity.DURABLEHOST  # type: ignore[union-attr]


@pytest.mark.parametrize(("fidelity", "timers"), [("durablehost", 1), ("azure", 4)])
async def test_long_timers_are_sliced_as_azure_storage_does(
    shared: tuple[TableStore, str], fidelity: str, timers: int
) -> None:
    async with on(shared, fidelity) as host:
        start = host.now()
        instance_id = await host.client.start_new("long_sleep", client_input=14)
        await host.advance(timedelta(days=13, hours=23))
        assert (await host.client.get_status(instance_id)).runtime_status == Running
        await host.advance(timedelta(hours=1))
        status = await host.client.get_status(instance_id)
        assert status.runtime_status == Completed
        events = await host.history(instance_id)
        created = [e for e in events if e["EventType"] == EventType.TIMER_CREATED]
        # Azure Storage: timers over 6 days go in 3-day slices until 6 days or less remain: 3, 6, 9, 14.
        assert len(created) == timers
        assert created[-1]["FireAt"].startswith((start + timedelta(days=14)).strftime("%Y-%m-%dT%H:%M"))
        # The export replays on the same payload it was built with.
        document = await host.host.export_history(instance_id)
        assert document.get("fidelity") == (None if fidelity == "durablehost" else "azure")
        assert check_history(host.functions, document).ok


@pytest.mark.parametrize(
    ("fidelity", "name"), [("durablehost", "report_version"), ("azure", "REPORT_Version")]
)
async def test_the_stored_name_is_the_callers_spelling_in_azure(
    shared: tuple[TableStore, str], fidelity: str, name: str
) -> None:
    async with on(shared, fidelity) as host:
        instance_id = await host.client.start_new("REPORT_Version")
        status = await host.wait_for_completion(instance_id)
        assert (status.runtime_status, status.name) == (Completed, name)
        parent = await host.client.start_new("parent", client_input={"child_name": "REPORT_Version"})
        assert (await host.wait_for_completion(parent)).runtime_status == Completed
        [created] = [
            e for e in await host.history(parent) if e["EventType"] == EventType.SUB_ORCHESTRATION_CREATED
        ]
        record = await host.host.get_record(created["InstanceId"])
        assert record is not None and record.name == name


@pytest.mark.parametrize("fidelity", ["durablehost", "azure"])
async def test_an_idempotency_key_is_ignored_in_azure(shared: tuple[TableStore, str], fidelity: str) -> None:
    async with on(shared, fidelity) as host:
        instance_id = await host.client.start_new("early_steps")
        await host.run_until_idle()
        assert await host.client.raise_event_raw(instance_id, "go", None, idempotency_key="k")
        # The same event again: a replay here (not delivered again), delivered again in Azure.
        assert await host.client.raise_event_raw(instance_id, "go", None, idempotency_key="k") is (
            fidelity == "azure"
        )
        if fidelity == "azure":
            assert await host.client.raise_event_raw(instance_id, "step", '"a"', idempotency_key="k")
        else:
            with pytest.raises(IdempotencyKeyReused):  # the key was accepted for another event
                await host.client.raise_event_raw(instance_id, "step", '"a"', idempotency_key="k")


@pytest.mark.parametrize(("fidelity", "state"), [("durablehost", 5), ("azure", None)])
async def test_a_signal_body_reaches_the_entity_unchanged_in_azure(
    shared: tuple[TableStore, str], fidelity: str, state: Any
) -> None:
    async with on(shared, fidelity) as host:
        # `curl -d 5`: Azure hands the entity "5", whose get_input() raises a TypeError (protocol §5.4),
        # so the operation fails and no state is written; durablehost encodes it once more.
        await host.host.signal_entity("Counter", "c", "add", "5")
        await host.run_until_idle()
        stored = await host.host.read_entity_state("Counter", "c")
        assert (json.loads(stored) if stored is not None else None) == state
