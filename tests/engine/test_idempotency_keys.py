"""Idempotency-Key answers (issue #14 item 5) on SQLite and Azurite: a repeat of an accepted key is a
replay (not delivered again) at any time after the first, also once its event has finished the instance;
the key sent with another event or payload is refused, as the IETF draft says (422 over HTTP)."""

from __future__ import annotations

import json

import pytest
from azure.durable_functions.models.OrchestrationRuntimeStatus import OrchestrationRuntimeStatus

from durablehost.engine.records import idempotency_row_key
from durablehost.errors import IdempotencyKeyReused, InstanceFinished
from durablehost.store.base import TableStore
from tests.engine.conftest import running_host

APPROVED = '{"by": "Alice"}'


async def test_a_repeated_key_is_a_replay_before_and_after_its_event_finished_the_instance(
    engine_store: TableStore | None,
) -> None:
    async with running_host("basic", engine_store) as host:
        client = host.client
        instance_id = await client.start_new("approval")
        await host.run_until_idle()
        assert await client.raise_event_raw(instance_id, "approval", APPROVED, idempotency_key="k1")
        assert not await client.raise_event_raw(instance_id, "approval", APPROVED, idempotency_key="k1")
        status = await host.wait_for_completion(instance_id)
        assert status.runtime_status == OrchestrationRuntimeStatus.Completed
        # The event that finished the instance was accepted: its key still gets the original answer.
        assert not await client.raise_event_raw(instance_id, "approval", APPROVED, idempotency_key="k1")
        with pytest.raises(IdempotencyKeyReused, match="k1"):
            await client.raise_event_raw(instance_id, "approval", '{"by": "Mallory"}', idempotency_key="k1")
        with pytest.raises(IdempotencyKeyReused):
            await client.raise_event_raw(instance_id, "other", APPROVED, idempotency_key="k1")
        with pytest.raises(InstanceFinished):
            await client.raise_event_raw(instance_id, "approval", APPROVED, idempotency_key="k2")
        history = (await client.get_status(instance_id, show_history=True)).historyEvents
        assert [e["EventType"] for e in history].count("EventRaised") == 1
        assert status.output == {"outcome": "approved", "data": json.loads(APPROVED)}


async def test_a_tombstone_without_a_fingerprint_still_answers_as_a_replay(
    engine_store: TableStore | None,
) -> None:
    # Tombstones written before fingerprints were kept hold only the key: any repeat is a replay.
    async with running_host("basic", engine_store) as host:
        instance_id = await host.client.start_new("approval")
        await host.run_until_idle()
        await host.host.store.insert(
            host.host.repo.table, instance_id, idempotency_row_key("old"), {"IdempotencyKey": "old"}
        )
        assert not await host.client.raise_event_raw(instance_id, "approval", APPROVED, idempotency_key="old")
        await host.run_until_idle()
        assert (
            await host.client.get_status(instance_id)
        ).runtime_status == OrchestrationRuntimeStatus.Running
