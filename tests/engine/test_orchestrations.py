"""The dispatcher running real SDK orchestrators from an app written with df.DFApp decorators."""

from __future__ import annotations

import json
from datetime import timedelta

import azure.durable_functions as df
import pytest

from durablehost.engine.history import EventType
from durablehost.errors import (
    IdempotencyKeyReused,
    InstanceAlreadyRunning,
    InstanceFinished,
    InstanceNotFound,
    UnknownFunction,
)
from durablehost.store import SqliteTableStore
from durablehost.testing import DurableTestHost

from .conftest import _calls

Completed = df.OrchestrationRuntimeStatus.Completed
Failed = df.OrchestrationRuntimeStatus.Failed
Running = df.OrchestrationRuntimeStatus.Running


def _types(history: list[dict]) -> list[int]:
    return [e["EventType"] for e in history]


async def test_chain_runs_each_activity_once_in_order(basic_host: DurableTestHost) -> None:
    instance_id = await basic_host.client.start_new("chain", client_input=["Tokyo", "Seattle", "London"])
    status = await basic_host.wait_for_completion(instance_id)
    assert status.runtime_status == Completed
    assert status.output == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]
    assert _calls()["hello"] == 3
    history = await basic_host.history(instance_id)
    scheduled = [e for e in history if e["EventType"] == EventType.TASK_SCHEDULED]
    assert [e["EventId"] for e in scheduled] == [0, 1, 2]
    assert history[0]["EventType"] == EventType.ORCHESTRATOR_STARTED
    assert history[1]["EventType"] == EventType.EXECUTION_STARTED


async def test_fan_out_of_1000_returns_results_in_argument_order_in_few_episodes(
    basic_host: DurableTestHost,
) -> None:
    instance_id = await basic_host.client.start_new("fan_out", client_input=1000)
    status = await basic_host.wait_for_completion(instance_id, timeout=120)
    assert status.runtime_status == Completed
    assert status.output == [i * i for i in range(1000)]
    assert _calls()["square"] == 1000
    history = await basic_host.history(instance_id)
    completions = [e for e in history if e["EventType"] == EventType.TASK_COMPLETED]
    assert sorted(e["TaskScheduledId"] for e in completions) == list(range(1000))
    episodes = _types(history).count(EventType.ORCHESTRATOR_STARTED)
    # Completions are batched into episodes, and an expensive replay waits for more of them. Measured:
    # 3 episodes on SQLite (90 without the batching delay); 7-22 on Azurite, where results arrive at
    # the store's write rate.
    bound = 20 if isinstance(basic_host.host.store, SqliteTableStore) else 100
    assert episodes <= bound, episodes


async def test_event_wins_against_deadline_and_the_timer_is_cancelled(basic_host: DurableTestHost) -> None:
    instance_id = await basic_host.client.start_new("approval", client_input={"hours": 24})
    await basic_host.run_until_idle()
    await basic_host.client.raise_event_raw(instance_id, "approval", json.dumps({"by": "Alice"}))
    status = await basic_host.wait_for_completion(instance_id)
    assert status.runtime_status == Completed
    assert status.output == {"outcome": "approved", "data": {"by": "Alice"}}
    state = await basic_host.host.state_of(instance_id)
    assert state is not None
    timers = [t for t in state.tasks.values() if t.kind.value == "timer"]
    assert [t.state.value for t in timers] == ["canceled"]
    assert len(basic_host.host.dispatcher.timers) == 0
    # Long after the deadline nothing changes: a cancelled timer never fires.
    await basic_host.advance(timedelta(days=2))
    history = await basic_host.history(instance_id)
    assert EventType.TIMER_FIRED not in _types(history)


async def test_deadline_wins_against_event(basic_host: DurableTestHost) -> None:
    instance_id = await basic_host.client.start_new("approval", client_input={"hours": 24})
    await basic_host.advance(timedelta(hours=23))
    assert (await basic_host.client.get_status(instance_id)).runtime_status == Running
    await basic_host.advance(timedelta(hours=1))
    status = await basic_host.client.get_status(instance_id)
    assert status.runtime_status == Completed
    assert status.output == {"outcome": "expired"}
    fired = [e for e in await basic_host.history(instance_id) if e["EventType"] == EventType.TIMER_FIRED]
    assert len(fired) == 1


async def test_fourteen_day_timer_fires_in_virtual_time_stamped_at_its_due_time(
    basic_host: DurableTestHost,
) -> None:
    start = basic_host.now()
    instance_id = await basic_host.client.start_new("sleeper")
    await basic_host.advance(timedelta(days=13, hours=23))
    assert (await basic_host.client.get_status(instance_id)).runtime_status == Running
    await basic_host.advance(timedelta(days=30))
    status = await basic_host.client.get_status(instance_id)
    assert status.runtime_status == Completed
    # The episode that fired the timer is stamped at its fire time, not at "now" (30 days later).
    assert status.output.startswith((start + timedelta(days=14)).strftime("%Y-%m-%dT%H:%M:%S"))


async def test_retry_succeeds_on_the_third_attempt_with_protocol_ids(basic_host: DurableTestHost) -> None:
    instance_id = await basic_host.client.start_new("flaky_with_retry", client_input={"succeed_on": 3})
    await basic_host.run_until_idle()
    assert _calls()["flaky"] == 1
    await basic_host.advance(timedelta(seconds=5))
    assert _calls()["flaky"] == 2
    await basic_host.advance(timedelta(seconds=5))
    status = await basic_host.client.get_status(instance_id)
    assert status.runtime_status == Completed, status.output
    assert status.output == ["ok on attempt 3", "Hello after!"]
    history = await basic_host.history(instance_id)
    # Protocol §2.5: 0 attempt, 1 timer, 2 attempt, 3 timer, 4 attempt, then the next action takes 5.
    scheduled = {e["EventId"]: e["EventType"] for e in history if e["EventId"] >= 0 and e["EventType"] != 1}
    assert scheduled == {
        0: EventType.TASK_SCHEDULED,
        1: EventType.TIMER_CREATED,
        2: EventType.TASK_SCHEDULED,
        3: EventType.TIMER_CREATED,
        4: EventType.TASK_SCHEDULED,
        5: EventType.TASK_SCHEDULED,
    }


async def test_exhausted_retries_fail_the_instance_with_the_activity_error(
    basic_host: DurableTestHost,
) -> None:
    instance_id = await basic_host.client.start_new("flaky_with_retry", client_input={"succeed_on": 99})
    await basic_host.advance(timedelta(minutes=1))
    status = await basic_host.client.get_status(instance_id)
    assert status.runtime_status == Failed
    assert _calls()["flaky"] == 3
    assert "Orchestrator function 'flaky_with_retry' failed" in status.output
    assert "Activity function 'flaky' failed: ValueError: boom 3" in status.output


async def test_orchestrator_that_raises_fails_with_its_message(basic_host: DurableTestHost) -> None:
    instance_id = await basic_host.client.start_new("raises")
    status = await basic_host.wait_for_completion(instance_id)
    assert status.runtime_status == Failed
    assert status.output.startswith("Orchestrator function 'raises' failed: orchestrator exploded")


async def test_non_serialisable_activity_result_becomes_a_task_failure(basic_host: DurableTestHost) -> None:
    instance_id = await basic_host.client.start_new("bad_result")
    status = await basic_host.wait_for_completion(instance_id)
    assert status.runtime_status == Completed
    assert "Activity function 'not_serializable' failed" in status.output["caught"]


async def test_early_event_is_consumed_by_exactly_one_wait(basic_host: DurableTestHost) -> None:
    instance_id = await basic_host.client.start_new("two_waits")
    # Both raised before the orchestrator ever waited: the SDK alone would give the first to both waits.
    await basic_host.client.raise_event_raw(instance_id, "step", '"first"')
    await basic_host.client.raise_event_raw(instance_id, "step", '"second"')
    status = await basic_host.wait_for_completion(instance_id)
    assert status.runtime_status == Completed
    assert status.output == ["first", "second"]


async def test_one_early_event_satisfies_only_the_first_wait(basic_host: DurableTestHost) -> None:
    instance_id = await basic_host.client.start_new("two_waits")
    await basic_host.client.raise_event_raw(instance_id, "step", '"only"')
    await basic_host.run_until_idle()
    assert (await basic_host.client.get_status(instance_id)).runtime_status == Running
    await basic_host.client.raise_event_raw(instance_id, "step", '"later"')
    status = await basic_host.wait_for_completion(instance_id)
    assert status.output == ["only", "later"]


async def test_idempotent_raise_is_delivered_once(basic_host: DurableTestHost) -> None:
    instance_id = await basic_host.client.start_new("two_waits")
    await basic_host.run_until_idle()
    assert await basic_host.client.raise_event_raw(instance_id, "step", '"a"', idempotency_key="k1")
    assert not await basic_host.client.raise_event_raw(instance_id, "step", '"a"', idempotency_key="k1")
    # The key with another payload is not a repeat (test_idempotency_keys.py).
    with pytest.raises(IdempotencyKeyReused):
        await basic_host.client.raise_event_raw(instance_id, "step", '"a again"', idempotency_key="k1")
    await basic_host.run_until_idle()
    assert (await basic_host.client.get_status(instance_id)).runtime_status == Running
    assert await basic_host.client.raise_event_raw(instance_id, "step", '"b"', idempotency_key="k2")
    status = await basic_host.wait_for_completion(instance_id)
    assert status.output == ["a", "b"]


async def test_sdk_client_raise_event_is_double_encoded_as_in_azure(basic_host: DurableTestHost) -> None:
    instance_id = await basic_host.client.start_new("approval")
    await basic_host.client.raise_event(instance_id, "approval", {"by": "Bob"})
    status = await basic_host.wait_for_completion(instance_id)
    # Protocol §5.4: through the SDK client the orchestrator receives the JSON *text* of the data.
    assert status.output == {"outcome": "approved", "data": json.dumps({"by": "Bob"})}


async def test_time_and_uuids_are_stable_across_replays(basic_host: DurableTestHost) -> None:
    instance_id = await basic_host.client.start_new("deterministic")
    status = await basic_host.wait_for_completion(instance_id)
    assert status.runtime_status == Completed
    seen = status.output
    assert len({uuid for _, uuid in seen}) == 3
    # Replaying the stored history yields the same values the live run returned.
    state = await basic_host.host.state_of(instance_id)
    assert state is not None
    history = state.history
    started = [e["Timestamp"] for e in history if e["EventType"] == EventType.ORCHESTRATOR_STARTED]
    assert [t for t, _ in seen] == [
        _iso(started[0]),
        _iso(started[1]),
        _iso(started[2]),
    ]


def _iso(timestamp: str) -> str:
    from durablehost.engine.history import parse_timestamp

    return parse_timestamp(timestamp).isoformat()


async def test_events_for_unknown_and_finished_instances_are_refused(basic_host: DurableTestHost) -> None:
    with pytest.raises(InstanceNotFound):
        await basic_host.client.raise_event_raw("nope", "step", "1")
    instance_id = await basic_host.client.start_new("chain", client_input=["x"])
    await basic_host.run_until_idle()
    with pytest.raises(InstanceFinished):
        await basic_host.client.raise_event_raw(instance_id, "step", "1")


async def test_starting_a_running_id_is_refused_and_a_finished_one_is_replaced(
    basic_host: DurableTestHost,
) -> None:
    await basic_host.client.start_new("two_waits", instance_id="fixed")
    await basic_host.run_until_idle()
    with pytest.raises(InstanceAlreadyRunning):
        await basic_host.client.start_new("two_waits", instance_id="fixed")
    await basic_host.client.terminate("fixed", "enough")
    status = await basic_host.client.get_status("fixed")
    assert status.runtime_status == df.OrchestrationRuntimeStatus.Terminated
    await basic_host.client.start_new("chain", instance_id="fixed", client_input=["again"])
    status = await basic_host.wait_for_completion("fixed")
    assert status.runtime_status == Completed
    assert status.output == ["Hello again!"]


async def test_unknown_orchestrator_is_refused_before_anything_is_stored(basic_host: DurableTestHost) -> None:
    with pytest.raises(UnknownFunction, match="doesn't exist"):
        await basic_host.client.start_new("no_such_orchestrator", instance_id="x1")
    assert await basic_host.host.get_record("x1") is None


async def test_suspended_instance_buffers_events_until_resumed(basic_host: DurableTestHost) -> None:
    instance_id = await basic_host.client.start_new("two_waits")
    await basic_host.run_until_idle()
    await basic_host.client.suspend(instance_id, "maintenance")
    await basic_host.client.raise_event_raw(instance_id, "step", "1")
    await basic_host.client.raise_event_raw(instance_id, "step", "2")
    await basic_host.run_until_idle()
    assert (
        await basic_host.client.get_status(instance_id)
    ).runtime_status == df.OrchestrationRuntimeStatus.Suspended
    await basic_host.client.resume(instance_id, "done")
    status = await basic_host.wait_for_completion(instance_id)
    assert status.runtime_status == Completed
    assert status.output == [1, 2]


async def test_completions_and_events_enter_history_in_arrival_order(basic_host: DurableTestHost) -> None:
    instance_id = await basic_host.client.start_new("approval", client_input={"hours": 2})
    await basic_host.run_until_idle()
    await basic_host.client.suspend(instance_id, "hold")
    await basic_host.client.raise_event_raw(instance_id, "approval", '"early"')  # before the deadline
    await basic_host.advance(timedelta(hours=3))  # the deadline fires while suspended
    await basic_host.client.resume(instance_id, "go")
    status = await basic_host.wait_for_completion(instance_id)
    # Both wait for the same episode; the event arrived first, so it wins the task_any.
    assert status.output == {"outcome": "approved", "data": "early"}


async def test_draining_stop_is_not_aborted_by_an_earlier_logged_failure(basic_host: DurableTestHost) -> None:
    instance_id = await basic_host.client.start_new("chain", client_input=["x"])
    await basic_host.run_until_idle()
    basic_host.host.dispatcher.errors.append(RuntimeError("logged an hour ago"))
    await basic_host.host.stop(drain=True)  # a graceful shutdown must still complete
    assert (await basic_host.client.get_status(instance_id)).runtime_status == Completed
