"""Orchestration versioning end to end on the real SDK: the version instances get, what
``context.version`` sees, sub-orchestrations and continue-as-new, and each match and failure strategy,
with two hosts of different host.json settings on one store (SQLite and Azurite)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from typing import Any

import azure.durable_functions as df
import pytest

from durablehost.engine.dispatcher import DispatcherOptions
from durablehost.engine.history import EventType
from durablehost.engine.host import DurableHost
from durablehost.engine.records import HISTORY_PREFIX, InstanceRecord, RuntimeStatus
from durablehost.engine.versioning import FailureStrategy, MatchStrategy, Versioning
from durablehost.store import open_store
from durablehost.store.base import TableStore
from durablehost.testing import DurableTestHost

from .conftest import APPS

APP = APPS / "fidelity"
FAST = DispatcherOptions(lease_poll_interval=0.05)
Completed = df.OrchestrationRuntimeStatus.Completed
Failed = df.OrchestrationRuntimeStatus.Failed
Pending = df.OrchestrationRuntimeStatus.Pending
Running = df.OrchestrationRuntimeStatus.Running


@pytest.fixture
async def shared(engine_store: TableStore | None) -> AsyncIterator[tuple[TableStore, str]]:
    """One store and task hub for the hosts of a test (SQLite in memory, or the session's Azurite)."""
    store = engine_store or open_store("memory")
    yield store, f"V{uuid.uuid4().hex[:12]}"
    await store.close()


def on(
    shared: tuple[TableStore, str], versioning: Versioning, **kwargs: Any
) -> AbstractAsyncContextManager[DurableTestHost]:
    """A host on the shared store whose host.json says ``versioning``."""
    store, hub = shared
    kwargs.setdefault("options", FAST)
    return DurableTestHost.start(APP, store=store, hub=hub, versioning=versioning, **kwargs)


async def history(host: DurableTestHost, instance_id: str) -> list[dict[str, Any]]:
    record = await host.host.get_record(instance_id)
    assert record is not None
    return await host.host.repo.read_history(instance_id, record.history_count)


def started_version(events: list[dict[str, Any]]) -> str:
    [started] = [e for e in events if e["EventType"] == EventType.EXECUTION_STARTED]
    return str(started["Version"])


async def untouched(host: DurableTestHost, instance_id: str) -> InstanceRecord:
    """The instance as created: Pending, no history row written (not even past HistoryCount)."""
    record = await host.host.get_record(instance_id)
    assert record is not None
    assert (record.status, record.history_count, record.action_count) == (RuntimeStatus.PENDING, 0, 0)
    rows = [e.row_key async for e in host.host.store.query(host.host.repo.table, partition_key=instance_id)]
    assert not [row for row in rows if row.startswith(HISTORY_PREFIX)], rows
    return replace(record, etag=None)


# --- the version an instance gets, and what the orchestrator sees -------------------------------------


async def test_context_version_is_the_default_version_or_the_one_asked_for(
    shared: tuple[TableStore, str],
) -> None:
    async with on(shared, Versioning("2.0")) as host:
        by_default = await host.client.start_new("report_version")
        older = await host.client.start_new("report_version", version="1.0")
        empty = await host.client.start_new("report_version", version="")  # explicit: overrides too
        for instance_id, version in ((by_default, "2.0"), (older, "1.0"), (empty, "")):
            status = await host.wait_for_completion(instance_id)
            assert status.runtime_status == Completed, status.output
            assert status.output == {"version": version}
            assert started_version(await history(host, instance_id)) == version
            record = await host.host.get_record(instance_id)
            assert record is not None and record.version == version


async def test_without_a_default_version_instances_are_unversioned() -> None:
    async with DurableTestHost.start(APP) as host:
        status = await host.wait_for_completion(await host.client.start_new("report_version"))
        assert status.output == {"version": ""}


@pytest.mark.parametrize(
    ("options", "child"),
    [
        ({}, "2.0"),  # no version: this app's defaultVersion, not the parent's 1.0
        ({"child_version": "1.5"}, "1.5"),
        ({"child_version": ""}, ""),
        ({"child_version": "1.5", "retry": True}, "1.5"),
        ({"retry": True}, "2.0"),
    ],
    ids=["inherits-default", "overrides", "empty", "retry-overrides", "retry-inherits-default"],
)
async def test_a_sub_orchestration_gets_the_default_version_or_its_own(
    shared: tuple[TableStore, str], options: dict[str, Any], child: str
) -> None:
    async with on(shared, Versioning("2.0")) as host:
        instance_id = await host.client.start_new("parent", client_input=options, version="1.0")
        status = await host.wait_for_completion(instance_id)
        assert status.runtime_status == Completed, status.output
        assert status.output == {"parent": "1.0", "child": child}
        [created] = [
            e
            for e in await history(host, instance_id)
            if e["EventType"] == EventType.SUB_ORCHESTRATION_CREATED
        ]
        assert created["Version"] == child
        record = await host.host.get_record(created["InstanceId"])
        assert record is not None and record.version == child


async def test_continue_as_new_keeps_the_version(shared: tuple[TableStore, str]) -> None:
    async with on(shared, Versioning("2.0")) as host:
        instance_id = await host.client.start_new("generations", version="1.0")
        status = await host.wait_for_completion(instance_id)
        assert status.runtime_status == Completed, status.output
        assert status.output == ["1.0", "1.0", "1.0"]
        record = await host.host.get_record(instance_id)
        assert record is not None and (record.generation, record.version) == (2, "1.0")


# --- match strategies ---------------------------------------------------------------------------------


async def test_current_or_older_runs_older_and_refuses_newer(shared: tuple[TableStore, str]) -> None:
    async with on(shared, Versioning("2.0")) as host:
        older = await host.client.start_new("report_version", version="1.9")
        newer = await host.client.start_new("report_version", version="2.0.1")
        assert (await host.wait_for_completion(older)).runtime_status == Completed
        await untouched(host, newer)
        assert host.host.dispatcher.versions.rejected(newer) >= 1


async def test_strict_runs_only_the_same_version(shared: tuple[TableStore, str]) -> None:
    async with on(shared, Versioning("1.0", MatchStrategy.STRICT)) as host:
        same = await host.client.start_new("report_version")
        numerically_equal = await host.client.start_new("report_version", version="1.0.0")
        older = await host.client.start_new("report_version", version="0.9")
        assert (await host.wait_for_completion(same)).output == {"version": "1.0"}
        await untouched(host, numerically_equal)
        await untouched(host, older)


async def test_none_runs_every_version(shared: tuple[TableStore, str]) -> None:
    async with on(shared, Versioning("1.0", MatchStrategy.NONE)) as host:
        instance_id = await host.client.start_new("report_version", version="9.0")
        assert (await host.wait_for_completion(instance_id)).output == {"version": "9.0"}


async def test_a_sub_orchestration_of_a_newer_version_waits_and_its_parent_with_it(
    shared: tuple[TableStore, str],
) -> None:
    async with on(shared, Versioning("2.0")) as host:
        parent = await host.client.start_new("parent", client_input={"child_version": "3.0"})
        await host.run_until_idle()
        assert (await host.client.get_status(parent)).runtime_status == Running
        [created] = [
            e for e in await history(host, parent) if e["EventType"] == EventType.SUB_ORCHESTRATION_CREATED
        ]
        await untouched(host, created["InstanceId"])


# --- failure strategies -------------------------------------------------------------------------------


async def test_reject_leaves_the_instance_untouched_until_a_host_that_may_run_it(
    shared: tuple[TableStore, str],
) -> None:
    async with on(shared, Versioning("1.0")) as old:
        instance_id = await old.client.start_new("report_version", version="2.0")
        await old.run_until_idle()
        created = await untouched(old, instance_id)
        assert created.version == "2.0"
        refused = old.host.dispatcher.versions.rejected(instance_id)
        assert refused >= 1
        # Something arrives for it: the episode is tried again, and refused again, writing nothing.
        await old.client.raise_event(instance_id, "unrelated", {"n": 1})
        await old.run_until_idle()
        assert old.host.dispatcher.versions.rejected(instance_id) > refused
        assert await untouched(old, instance_id) == created
    # Sequentially: a host whose host.json allows 2.0 takes the partition and runs the instance.
    async with on(shared, Versioning("2.0")) as newer:
        status = await newer.wait_for_completion(instance_id)
        assert status.runtime_status == Completed, status.output
        assert status.output == {"version": "2.0"}


async def test_reject_waits_for_a_permitted_host_to_own_the_partition(
    shared: tuple[TableStore, str],
) -> None:
    store, hub = shared
    # One partition, so the old host keeps it for as long as it lives (a second process's share of one
    # partition is none) and the test does not depend on how partitions are balanced.
    one = replace(FAST, partition_count=1)
    async with on(shared, Versioning("1.0"), options=one) as old:
        instance_id = await old.client.start_new("wait_then_report", version="2.0")
        await old.client.raise_event(instance_id, "go")
        # Together: a process whose host.json allows 2.0 runs beside it, but the partition is the old
        # one's, so the instance waits, untouched, as it does behind an old worker holding its control
        # queue in Azure.
        newer = DurableHost(
            store, old.functions, old.clock, hub=hub, options=replace(one, versioning=Versioning("2.0"))
        )
        await newer.start()
        try:
            await asyncio.sleep(0.3)  # several lease looks of both processes
            await old.run_until_idle()
            assert newer.dispatcher.owned_partitions == frozenset()
            await untouched(old, instance_id)
            assert old.host.dispatcher.versions.rejected(instance_id) >= 1
        except BaseException:
            await newer.stop(drain=False)
            raise
    # The old host left and handed its partition over: the permitted host runs the instance.
    try:
        status = await completed(newer, instance_id)
        assert status["output"] == {"version": "2.0"}
        events = await newer.repo.read_history(instance_id, 100)
        assert started_version(events) == "2.0"
        assert [e["Name"] for e in events if e["EventType"] == EventType.EVENT_RAISED] == ["go"]
    finally:
        await newer.stop(drain=False)


async def completed(host: DurableHost, instance_id: str, timeout: float = 15.0) -> dict[str, Any]:
    """Poll until the instance completes (a host without the harness's run-until-idle)."""
    async with asyncio.timeout(timeout):
        while True:
            status = await host.get_status(instance_id)
            if status is not None and status["runtimeStatus"] == "Completed":
                return status
            await asyncio.sleep(0.02)


@pytest.mark.parametrize("fidelity", ["durablehost", "azure"])
async def test_fail_fails_the_instance_with_dtfx_failure_details(
    shared: tuple[TableStore, str], fidelity: str
) -> None:
    versioning = Versioning("1.0", failure=FailureStrategy.FAIL)
    async with on(shared, versioning, fidelity=fidelity) as host:
        instance_id = await host.client.start_new("report_version", version="2.0")
        status = await host.wait_for_completion(instance_id)
        assert status.runtime_status == Failed
        # The Azure Storage provider stores FailureDetails.ToString() as the output.
        azure_text = "VersionMismatch: Orchestration version did not comply with Worker Versioning"
        if fidelity == "azure":
            assert status.output == azure_text
        else:
            assert status.output == (
                f"{azure_text} (instance version '2.0', this app's defaultVersion '1.0', "
                "versionMatchStrategy CurrentOrOlder)"
            )
        events = await history(host, instance_id)
        assert [e["EventType"] for e in events] == [
            EventType.ORCHESTRATOR_STARTED,
            EventType.EXECUTION_STARTED,
            EventType.EXECUTION_COMPLETED,
            EventType.ORCHESTRATOR_COMPLETED,
        ]
        assert started_version(events) == "2.0"
        assert events[2]["FailureDetails"] == {
            "ErrorType": "VersionMismatch",
            "ErrorMessage": "Orchestration version did not comply with Worker Versioning",
            "StackTrace": None,
            "InnerFailure": None,
            "IsNonRetriable": True,
        }


async def test_fail_stops_a_running_instance_at_its_next_episode(shared: tuple[TableStore, str]) -> None:
    async with on(shared, Versioning("2.0")) as first:
        instance_id = await first.client.start_new("wait_then_report")
        await first.run_until_idle()
        assert (await first.client.get_status(instance_id)).runtime_status == Running
        before = await history(first, instance_id)
    strict = Versioning("1.0", MatchStrategy.STRICT, FailureStrategy.FAIL)
    async with on(shared, strict) as second:
        await second.client.raise_event(instance_id, "go")
        status = await second.wait_for_completion(instance_id)
        assert status.runtime_status == Failed
        assert "instance version '2.0', this app's defaultVersion '1.0', versionMatchStrategy Strict" in (
            status.output
        )
        events = await history(second, instance_id)
        assert events[: len(before)] == before  # the recorded episodes stay; no second ExecutionStarted
        assert [e["EventType"] for e in events[len(before) :]] == [
            EventType.ORCHESTRATOR_STARTED,
            EventType.EXECUTION_COMPLETED,
            EventType.ORCHESTRATOR_COMPLETED,
        ]
