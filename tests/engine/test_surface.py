"""Sub-orchestrations and continue-as-new end to end on the real SDK."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import azure.durable_functions as df
import pytest

from durablehost.engine.history import EventType
from durablehost.engine.records import HISTORY_PREFIX, TASK_PREFIX
from durablehost.store import SqliteTableStore
from durablehost.store.base import TableStore
from durablehost.testing import DurableTestHost

from .conftest import running_host

APP = Path(__file__).parent / "apps" / "surface"
Completed = df.OrchestrationRuntimeStatus.Completed
Failed = df.OrchestrationRuntimeStatus.Failed


@pytest.fixture
async def host(engine_store: TableStore | None) -> AsyncIterator[DurableTestHost]:
    async with running_host("surface", engine_store) as running:
        import function_app

        function_app.ATTEMPTS.clear()
        yield running


async def test_three_level_tree_with_a_failing_leaf_propagates_to_the_root(host: DurableTestHost) -> None:
    instance_id = await host.client.start_new("tree_root", client_input={"branches": [[1, 2], [3, -4], [5]]})
    status = await host.wait_for_completion(instance_id)
    assert status.runtime_status == Completed, status.output
    first, failed, last = status.output
    assert [leaf["doubled"] for leaf in first] == [2, 4]
    assert [leaf["doubled"] for leaf in last] == [10]
    # The leaf's ValueError reaches the root through two levels, as a failed sub-orchestration.
    assert "negative leaf -4" in failed["failed"]
    assert "tree_middle" in failed["failed"] or "tree_leaf" in failed["failed"]
    # Automatic child ids follow DTFx: "{parentExecutionId}:{sequenceId}".
    record = await host.host.get_record(instance_id)
    assert record is not None
    middle_id = f"{record.execution_id}:0"
    middle = await host.host.get_record(middle_id)
    assert middle is not None and middle.parent_instance_id == instance_id
    leaf_output = first[0]
    assert leaf_output["parent"] == middle_id


async def test_explicit_child_id_and_refused_ids(host: DurableTestHost) -> None:
    instance_id = await host.client.start_new("named_child", client_input="my-child")
    status = await host.wait_for_completion(instance_id)
    assert status.runtime_status == Completed
    assert status.output["doubled"] == 42
    assert (await host.client.get_status("my-child")).runtime_status == Completed

    refused = await host.client.start_new(
        "named_child", instance_id="self-parent", client_input="self-parent"
    )
    status = await host.wait_for_completion(refused)
    assert status.runtime_status == Failed
    assert "cannot be the id of its parent" in status.output

    entity_like = await host.client.start_new("named_child", client_input="@counter@x")
    status = await host.wait_for_completion(entity_like)
    assert status.runtime_status == Failed
    assert "cannot start with '@'" in status.output


async def test_sub_orchestration_with_retry_succeeds_on_second_attempt(host: DurableTestHost) -> None:
    instance_id = await host.client.start_new("child_with_retry")
    await host.advance(timedelta(seconds=5))
    status = await host.client.get_status(instance_id)
    assert status.runtime_status == Completed, status.output
    assert status.output == "child ok on attempt 2"
    history = await host.history(instance_id)
    created = [e for e in history if e["EventType"] == EventType.SUB_ORCHESTRATION_CREATED]
    assert [e["EventId"] for e in created] == [0, 2]
    assert created[0]["InstanceId"] != created[1]["InstanceId"]


async def test_eternal_counter_over_1000_generations_keeps_storage_bounded(host: DurableTestHost) -> None:
    # 1,000 generations on SQLite; 150 on Azurite, where each generation costs real HTTP round trips.
    limit = 1000 if isinstance(host.host.store, SqliteTableStore) else 150
    instance_id = await host.client.start_new(
        "eternal_counter", client_input={"value": 0, "generation": 0, "limit": limit}
    )
    status = await host.wait_for_completion(instance_id, timeout=300)
    assert status.runtime_status == Completed
    assert status.output == {"value": limit - 1, "generation": limit - 1}
    record = await host.host.get_record(instance_id)
    assert record is not None and record.generation == limit - 1
    await host.run_until_idle()
    rows = [e.row_key async for e in host.host.store.query(host.host.repo.table, partition_key=instance_id)]
    history_rows = [k for k in rows if k.startswith(HISTORY_PREFIX)]
    task_rows = [k for k in rows if k.startswith(TASK_PREFIX)]
    # One generation's worth of rows, not a thousand generations'.
    assert len(history_rows) <= 20, len(history_rows)
    assert len(task_rows) == 1, task_rows


async def test_events_raised_before_continue_as_new_carry_over(host: DurableTestHost) -> None:
    instance_id = await host.client.start_new("event_loop")
    for item in ("a", "b", "c"):
        await host.client.raise_event_raw(instance_id, "item", f'"{item}"')
    status = await host.wait_for_completion(instance_id)
    assert status.runtime_status == Completed
    assert status.output == ["a", "b", "c"]
