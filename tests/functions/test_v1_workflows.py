"""The function.json test app's workflows in the in-process harness, on SQLite and on Azurite
(``engine_store``, re-exported by this folder's conftest)."""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from durablehost.store.base import TableStore
from durablehost.testing import DurableTestHost
from tests.functions.conftest import APPS

APP = APPS / "v1_durable"


@asynccontextmanager
async def v1_host(store: TableStore | None, app: Path = APP) -> AsyncIterator[DurableTestHost]:
    """The harness on the v1 app; on Azurite each test gets its own task hub."""
    try:
        async with DurableTestHost.start(app, store=store, hub=f"V1{uuid.uuid4().hex[:12]}") as host:
            yield host
    finally:
        if store is not None:
            await store.close()


async def run(host: DurableTestHost, name: str, client_input: Any = None) -> Any:
    instance_id = await host.client.start_new(name, client_input=client_input)
    return await host.wait_for_completion(instance_id), instance_id


def events(history: list[dict[str, Any]], event_type: int) -> list[dict[str, Any]]:
    return [e for e in history if e["EventType"] == event_type]


EXECUTION_STARTED, TASK_SCHEDULED, SUB_ORCHESTRATION_CREATED = 0, 4, 7  # DTFx EventType


async def test_chaining_with_a_differently_cased_activity_name(engine_store: TableStore | None) -> None:
    async with v1_host(engine_store) as host:
        status, instance_id = await run(host, "HelloSequence")
        assert status.runtime_status.value == "Completed", status.output
        assert status.output == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]
        # The orchestrator calls "sayhello", the function is SayHello: history keeps the caller's spelling,
        # as the extension does (it records the name the orchestrator scheduled).
        scheduled = events(await host.history(instance_id), TASK_SCHEDULED)
        assert [e["Name"] for e in scheduled] == ["sayhello"] * 3


async def test_a_start_by_another_spelling_stores_the_canonical_name(engine_store: TableStore | None) -> None:
    async with v1_host(engine_store) as host:
        status, instance_id = await run(host, "HELLOsequence", ["Oslo"])
        assert status.output == ["Hello Oslo!"]
        assert status.name == "HelloSequence"
        [started] = events(await host.history(instance_id), EXECUTION_STARTED)
        assert started["Name"] == "HelloSequence"


async def test_fan_out_fan_in(engine_store: TableStore | None) -> None:
    async with v1_host(engine_store) as host:
        status, _ = await run(host, "BackupSite", 12)
        expected = sum(len(f"file-{i}.txt") * 100 for i in range(12))
        assert status.output == {"files": 12, "bytes": expected}


async def test_sub_orchestration_by_another_spelling(engine_store: TableStore | None) -> None:
    async with v1_host(engine_store) as host:
        status, instance_id = await run(host, "ParentOrchestrator", ["Lima", "Quito"])
        assert status.output == {"child": ["Hello Lima!", "Hello Quito!"]}
        [created] = events(await host.history(instance_id), SUB_ORCHESTRATION_CREATED)
        assert created["Name"] == "HELLOSEQUENCE"


async def test_a_counter_entity_signalled_and_called_from_an_orchestrator(
    engine_store: TableStore | None,
) -> None:
    async with v1_host(engine_store) as host:
        status, _ = await run(host, "CounterOrchestration", "k1")
        assert status.output == 7  # the signal (add 3) is processed before the call (add 4)
        state = await host.host.read_entity_state("counter", "k1")
        assert state is not None and json.loads(state) == 7


async def test_custom_status(engine_store: TableStore | None) -> None:
    async with v1_host(engine_store) as host:
        status, _ = await run(host, "ChainWithStatus")
        assert status.output == 3
        assert status.custom_status == "1 -> 2 -> 3"


async def test_a_custom_class_as_input_and_activity_argument(engine_store: TableStore | None) -> None:
    async with v1_host(engine_store) as host:
        point = sys.modules["__app__.shared_code.points"].Point
        status, instance_id = await run(host, "RoundTrip", point(1, 2))
        assert status.output == {"start": [1, 2], "moved": [20, 30], "type": "Point"}
        history = await host.history(instance_id)
        # The envelopes name the class by the module the worker would give it, so histories written in
        # Azure replay here, and the other way round.
        [started] = events(history, EXECUTION_STARTED)
        [scheduled] = events(history, TASK_SCHEDULED)
        for envelope in (json.loads(started["Input"]), json.loads(scheduled["Input"])):
            assert envelope["__module__"] == "__app__.shared_code.points"
            assert envelope["__class__"] == "Point"
        assert json.loads(json.loads(scheduled["Input"])["__data__"]) == {"x": 2, "y": 3}


@pytest.mark.parametrize(
    ("decision", "advance", "outcome"),
    [({"approved": True}, timedelta(hours=1), "approved"),
     ({"approved": False}, timedelta(hours=23), "rejected"),
     (None, timedelta(hours=25), "expired")],
)  # fmt: skip
async def test_approval_raced_against_a_timer_in_virtual_time(
    engine_store: TableStore | None, decision: Any, advance: timedelta, outcome: str
) -> None:
    async with v1_host(engine_store) as host:
        instance_id = await host.client.start_new("Approval", client_input={"hours": 24})
        await host.run_until_idle()
        assert (await host.client.get_status(instance_id)).runtime_status.value == "Running"
        await host.advance(advance)
        if decision is not None:
            await host.client.raise_event_raw(instance_id, "Approval", json.dumps(decision))
        status = await host.wait_for_completion(instance_id)
        assert status.output == outcome


# --- disabled by app setting (durablehost.functions.disabled says why each behaves so) ----------------


async def test_a_disabled_orchestrator_starts_and_fails_with_the_extensions_message(
    engine_store: TableStore | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AzureWebJobs_HelloSequence_Disabled", "1")
    async with v1_host(engine_store) as host:
        status, _ = await run(host, "HelloSequence")
        assert status.runtime_status.value == "Failed"
        assert "The function 'HelloSequence' doesn't exist, is disabled, or is not an orchestrator" in str(
            status.output
        )
        assert "AzureWebJobs_HelloSequence_Disabled" in str(status.output)
        other, _ = await run(host, "ChainWithStatus")  # the others still run
        assert other.output == 3


async def test_a_disabled_activity_fails_its_task(
    engine_store: TableStore | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AzureWebJobs.SayHello.Disabled", "TRUE")
    async with v1_host(engine_store) as host:
        status, _ = await run(host, "HelloSequence")
        assert status.runtime_status.value == "Failed"
        assert "The function 'SayHello' doesn't exist, is disabled, or is not an activity" in str(
            status.output
        )


async def test_a_disabled_entity_fails_every_operation(
    engine_store: TableStore | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("azurewebjobs.counter.disabled", "true")  # setting names are case-insensitive
    async with v1_host(engine_store) as host:
        status, _ = await run(host, "CounterOrchestration", "k2")
        assert status.runtime_status.value == "Failed"
        assert "The function 'counter' doesn't exist, is disabled, or is not an entity" in str(status.output)
        assert await host.host.read_entity_state("Counter", "k2") is None


async def test_a_setting_that_is_not_true_disables_nothing(
    engine_store: TableStore | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AzureWebJobs.HelloSequence.Disabled", "false")
    monkeypatch.setenv("AzureWebJobs.SayHello.Disabled", "yes")
    async with v1_host(engine_store) as host:
        status, _ = await run(host, "HelloSequence", ["Rome"])
        assert status.output == ["Hello Rome!"]
