"""Durable entities: client signals, calls and signals from orchestrators, state, errors, deletion."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import azure.durable_functions as df
import pytest

from durablehost.errors import UnknownFunction
from durablehost.store.base import TableStore
from durablehost.testing import DurableTestHost

from .conftest import running_host

APP = Path(__file__).parent / "apps" / "surface"


@pytest.fixture
async def host(engine_store: TableStore | None) -> AsyncIterator[DurableTestHost]:
    async with running_host("surface", engine_store) as running:
        yield running


async def test_200_concurrent_signals_end_exactly_right(host: DurableTestHost) -> None:
    # Bodies as the SDK client sends them: json.dumps(json.dumps(value)) (protocol §5.4).
    await asyncio.gather(
        *(host.host.signal_entity("Counter", "c1", "add", json.dumps(json.dumps(n))) for n in range(1, 201))
    )
    await host.run_until_idle()
    assert await host.host.read_entity_state("counter", "c1") == json.dumps(sum(range(1, 201)))


async def test_raw_json_signal_body_reaches_the_entity_as_a_value(host: DurableTestHost) -> None:
    await host.host.signal_entity("counter", "raw", "add", "7")  # curl -d 7
    await host.run_until_idle()
    assert await host.host.read_entity_state("counter", "raw") == "7"


async def test_orchestrator_signals_calls_and_sees_operation_errors(host: DurableTestHost) -> None:
    instance_id = await host.client.start_new("uses_counter", client_input="c2")
    status = await host.wait_for_completion(instance_id)
    assert status.runtime_status == df.OrchestrationRuntimeStatus.Completed, status.output
    # The signal (5) was queued before the call (10): operations run strictly in order.
    assert status.output["after_add"] == 15
    assert "add takes an int" in status.output["error"]
    # The failed operation did not lose the entity's state.
    assert status.output["current"] == 15
    assert await host.host.read_entity_state("Counter", "c2") == "15"


async def test_destruct_on_exit_deletes_the_entity(host: DurableTestHost) -> None:
    await host.host.signal_entity("counter", "gone", "add", json.dumps(json.dumps(3)))
    await host.run_until_idle()
    assert await host.host.read_entity_state("counter", "gone") == "3"
    await host.host.signal_entity("counter", "gone", "delete", None)
    await host.run_until_idle()
    assert await host.host.read_entity_state("counter", "gone") is None
    assert await host.host.read_entity_state("counter", "never") is None


async def test_unknown_entity_is_refused(host: DurableTestHost) -> None:
    with pytest.raises(UnknownFunction):
        await host.host.signal_entity("nope", "k", "add", None)


async def test_entities_survive_a_restart_on_the_same_store(tmp_path: Path) -> None:
    from durablehost.store import open_store

    store = open_store(f"sqlite:{tmp_path / 'e.sqlite'}")
    async with DurableTestHost.start(APP, store=store) as first:
        await first.host.signal_entity("counter", "p", "add", json.dumps(json.dumps(4)))
        await first.run_until_idle()
    async with DurableTestHost.start(APP, store=store) as second:
        await second.host.signal_entity("counter", "p", "add", json.dumps(json.dumps(6)))
        await second.run_until_idle()
        assert await second.host.read_entity_state("counter", "p") == "10"
    await store.close()


async def test_one_senders_messages_reach_the_entity_in_order(host: DurableTestHost) -> None:
    instance_id = await host.client.start_new("journal_writer", client_input="j1")
    status = await host.wait_for_completion(instance_id)
    assert status.runtime_status == df.OrchestrationRuntimeStatus.Completed, status.output
    assert status.output == list(range(20))


async def test_a_big_batch_commits_with_all_its_inbox_rows(engine_store: TableStore | None) -> None:
    """150 queued operations: each batch must delete its inbox rows in the transaction that commits the
    state. A batch whose last deletes ran after the commit, and failed, ran those operations again on the
    reload (the store refuses the first standalone delete here, as a full disk would)."""
    from durablehost.engine.clock import WallClock
    from durablehost.engine.host import DurableHost
    from durablehost.functions import load_app
    from durablehost.store import open_store
    from tests.support.faults import FaultyStore

    inner = engine_store or open_store("memory")
    hub = f"Big{uuid.uuid4().hex[:10]}"
    client = DurableHost(inner, load_app(APP), WallClock(), hub=hub)
    await client.start(run_dispatcher=False)
    for n in range(1, 151):
        await client.signal_entity("counter", "big", "add", json.dumps(json.dumps(n)))
    store = FaultyStore(inner)

    def deletes_only(_operation: str, table: str, ops: object) -> bool:
        return table.endswith("Instances") and all(op.kind.value == "delete" for op in ops)  # type: ignore[attr-defined]

    store.fail(frozenset({"transact", "delete"}), times=1, when=deletes_only)
    async with DurableTestHost.start(APP, store=store, hub=hub) as host:
        await host.run_until_idle()
        assert await host.host.read_entity_state("counter", "big") == json.dumps(sum(range(1, 151)))
    await inner.close()
