"""Writes made through a process that owns nothing reach the owner, which revalidates its cached copy.

Two bugs had one root cause: a non-owner acted on the instance itself (or the owner trusted its cache).
A sub-orchestration terminated through a process that is not its owner never woke its parent, and an
instance resumed through a non-owner never got the event raised while it was suspended. Here the second
"process" is a DurableHost that serves clients only (it never joins the hub as a worker), on the same
store as the harness that owns every partition.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from durablehost.engine.clock import WallClock
from durablehost.engine.host import DurableHost
from durablehost.functions import load_app
from durablehost.store import open_store
from durablehost.store.base import Op, TableStore
from durablehost.testing import DurableTestHost
from tests.support.faults import WRITES, FaultyStore

from .conftest import APPS

APP = APPS / "surface"


@pytest.fixture
async def pair(engine_store: TableStore | None) -> AsyncIterator[tuple[DurableTestHost, DurableHost]]:
    store = engine_store or open_store("memory")
    hub = f"N{uuid.uuid4().hex[:12]}"
    async with DurableTestHost.start(APP, store=store, hub=hub) as owner:
        bystander = DurableHost(store, load_app(APP), WallClock(), hub=hub)
        await bystander.start(run_dispatcher=False)
        assert not bystander.dispatcher.owned_partitions
        yield owner, bystander
    await store.close()


async def _finished(host: DurableHost, instance_id: str, timeout: float = 15.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = await host.get_status(instance_id)
        if status is not None and status["runtimeStatus"] in ("Completed", "Failed", "Terminated"):
            return status
        await asyncio.sleep(0.05)
    raise AssertionError(f"{instance_id} did not finish: {await host.get_status(instance_id)}")


async def test_a_sub_orchestration_terminated_through_a_non_owner_wakes_its_parent(
    pair: tuple[DurableTestHost, DurableHost],
) -> None:
    owner, bystander = pair
    parent = await owner.client.start_new("parent_of_waiter", client_input="child-of-parent")
    await owner.run_until_idle()
    assert (await bystander.get_status("child-of-parent") or {}).get("runtimeStatus") == "Running"
    await bystander.terminate("child-of-parent", "no longer needed")
    status = await _finished(bystander, parent)
    assert status["runtimeStatus"] == "Failed"
    assert "Sub-orchestration 'waiter' (child-of-parent) failed" in status["output"]
    assert "no longer needed" in status["output"]


async def test_an_instance_resumed_through_a_non_owner_gets_the_event_raised_while_suspended(
    pair: tuple[DurableTestHost, DurableHost],
) -> None:
    owner, bystander = pair
    instance_id = await owner.client.start_new("waiter")
    await owner.run_until_idle()
    await bystander.suspend(instance_id, "hold on")
    assert (await bystander.get_status(instance_id) or {})["runtimeStatus"] == "Suspended"
    assert await bystander.raise_event(instance_id, "go", json.dumps("payload"))
    await asyncio.sleep(0.5)  # the owner has been woken meanwhile: the event waits while suspended
    assert (await bystander.get_status(instance_id) or {})["runtimeStatus"] == "Suspended"
    await bystander.resume(instance_id, "go on")
    status = await _finished(bystander, instance_id)
    assert status["runtimeStatus"] == "Completed"
    assert status["output"] == "payload"


async def _listed(host: DurableHost, wanted: dict[str, str], timeout: float = 10.0) -> None:
    """Wait until a listing through ``host`` shows each instance with the wanted status."""
    deadline = time.monotonic() + timeout
    while True:
        records, _ = await host.list_instances(page_size=1000)
        seen = {r.instance_id: r.status.value for r in records}
        if all(seen.get(i) == status for i, status in wanted.items()):
            return
        if time.monotonic() >= deadline:
            raise AssertionError(f"listed {seen}, wanted {wanted}")
        await asyncio.sleep(0.05)


async def test_instances_started_and_changed_through_a_non_owner_are_indexed_by_their_owner_alone(
    engine_store: TableStore | None,
) -> None:
    """Index copies linger before they are written (durablehost.engine.control), so two processes writing
    one instance's copy could land in either order and leave a listing stale for good: only the owner
    writes them, and a change made elsewhere reaches the index when the owner revalidates."""
    store = engine_store or open_store("memory")
    hub = f"N{uuid.uuid4().hex[:12]}"
    by_bystander: list[Op] = []

    def watch(operation: str, table: str, ops: Sequence[Op]) -> bool:
        by_bystander.extend(op for op in ops if table.endswith("Control") and op.partition_key == "index")
        return False  # never fail: only watch

    async with DurableTestHost.start(APP, store=store, hub=hub) as owner:
        watched = FaultyStore(store)
        watched.fail(WRITES, when=watch)
        bystander = DurableHost(watched, load_app(APP), WallClock(), hub=hub)
        await bystander.start(run_dispatcher=False)
        quick = [await bystander.start_new("noop", input_text=json.dumps(n)) for n in range(5)]
        waiting = await bystander.start_new("waiter")
        for instance_id in quick:
            assert (await _finished(bystander, instance_id))["runtimeStatus"] == "Completed"
        await _listed(bystander, {**dict.fromkeys(quick, "Completed"), waiting: "Running"})
        await bystander.suspend(waiting, "hold on")
        await _listed(bystander, {waiting: "Suspended"})
        await bystander.resume(waiting, "go on")
        await _listed(bystander, {waiting: "Running"})
        assert await bystander.raise_event(waiting, "go", json.dumps("done"))
        await _finished(bystander, waiting)
        await _listed(bystander, {waiting: "Completed"})
        await asyncio.sleep(0.5)  # longer than any write lingers: nothing older lands afterwards
        await _listed(bystander, {**dict.fromkeys(quick, "Completed"), waiting: "Completed"}, timeout=0)
        assert by_bystander == []
        await owner.run_until_idle()
    await store.close()


async def test_a_process_on_the_same_machine_rings_the_owner_s_doorbell_instead_of_waiting_for_its_poll(
    engine_store: TableStore | None,
) -> None:
    """Two processes of one hub on one machine (two dispatchers here, one partition, so one owns it and the
    other nothing): a start and an event taken by the non-owner reach the owner at once through its
    doorbell (durablehost.engine.doorbell), although the owner polls its wake-up rows only every 30 s."""
    from durablehost.engine.dispatcher import DispatcherOptions

    store = engine_store or open_store("memory")
    hub = f"N{uuid.uuid4().hex[:12]}"
    options = DispatcherOptions(partition_count=1, wake_poll_interval=30.0)
    owner = DurableHost(store, load_app(APP), WallClock(), hub=hub, options=options)
    await owner.start(own_all=True)
    other = DurableHost(store, load_app(APP), WallClock(), hub=hub, options=options)
    await other.start()
    try:
        ownership = other.dispatcher.ownership
        assert ownership is not None
        deadline = time.monotonic() + 15
        while not ownership.neighbours:  # its look at the leases has seen the owner's member row
            assert time.monotonic() < deadline, "the owner's doorbell never showed"
            await asyncio.sleep(0.05)
        assert not other.dispatcher.owned_partitions
        assert ownership.neighbours == [(owner.dispatcher.doorbell.port, owner.dispatcher.member_id)]
        started = time.monotonic()
        instance_id = await other.start_new("waiter")
        while (await other.get_status(instance_id) or {}).get("runtimeStatus") != "Running":
            assert time.monotonic() - started < 10, "the start waited for the owner's poll"
            await asyncio.sleep(0.02)
        assert await other.raise_event(instance_id, "go", json.dumps("rung"))
        status = await _finished(other, instance_id, timeout=10)
        assert (status["runtimeStatus"], status["output"]) == ("Completed", "rung")
    finally:
        await other.stop()
        await owner.stop()
        await store.close()
