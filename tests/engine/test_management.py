"""Instance management with the semantics of the Durable Functions HTTP API, on the real SDK."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import azure.durable_functions as df
import pytest

from durablehost.engine.records import RuntimeStatus
from durablehost.errors import InstanceAlreadyRunning, InstanceFinished, InstanceNotFailed, InstanceNotFound
from durablehost.store.base import TableStore
from durablehost.testing import DurableTestHost

from .conftest import running_host

APP = Path(__file__).parent / "apps" / "surface"
S = df.OrchestrationRuntimeStatus


@pytest.fixture
async def host(engine_store: TableStore | None) -> AsyncIterator[DurableTestHost]:
    async with running_host("surface", engine_store) as running:
        import function_app

        function_app.ATTEMPTS.clear()
        function_app.FIXED.clear()
        yield running


def _attempts(key: str) -> int:
    import function_app

    return int(function_app.ATTEMPTS.get(key, 0))


def _fix(name: str) -> None:
    import function_app

    function_app.FIXED[name] = True


async def test_terminate_in_each_state(host: DurableTestHost) -> None:
    running = await host.client.start_new("waiter")
    await host.run_until_idle()
    await host.client.terminate(running, "no longer needed")
    status = await host.client.get_status(running)
    assert status.runtime_status == S.Terminated
    assert status.output == "no longer needed"
    # A terminated instance ignores its event and refuses a second terminate.
    with pytest.raises(InstanceFinished):
        await host.client.raise_event_raw(running, "go", "1")
    with pytest.raises(InstanceFinished):
        await host.client.terminate(running, "again")
    with pytest.raises(InstanceNotFound):
        await host.client.terminate("missing")
    pending = await host.client.start_new("waiter", instance_id="pending-one")
    await host.client.terminate(pending)  # terminated before its first episode ran
    await host.run_until_idle()
    assert (await host.client.get_status(pending)).runtime_status == S.Terminated


async def test_suspend_and_resume_refusals(host: DurableTestHost) -> None:
    done = await host.client.start_new("noop", client_input=1)
    await host.run_until_idle()
    with pytest.raises(InstanceFinished):
        await host.client.suspend(done)
    with pytest.raises(InstanceNotFound):
        await host.client.resume("missing")
    running = await host.client.start_new("waiter")
    await host.run_until_idle()
    await host.client.resume(running)  # not suspended: nothing happens
    assert (await host.client.get_status(running)).runtime_status == S.Running
    await host.client.suspend(running)
    await host.client.suspend(running)  # already suspended: nothing happens
    assert (await host.client.get_status(running)).runtime_status == S.Suspended


async def test_rewind_runs_the_failed_activity_again(host: DurableTestHost) -> None:
    instance_id = await host.client.start_new("fails_until_fixed")
    status = await host.wait_for_completion(instance_id)
    assert status.runtime_status == S.Failed
    assert "svc is down" in status.output
    _fix("svc")
    await host.host.rewind(instance_id, "fixed the service")
    status = await host.wait_for_completion(instance_id)
    assert status.runtime_status == S.Completed, status.output
    assert status.output == [2, "svc ok"]
    assert _attempts("fragile:svc") == 2


async def test_rewind_gives_an_exhausted_retry_chain_its_last_attempt_back(host: DurableTestHost) -> None:
    instance_id = await host.client.start_new("retries_until_fixed")
    await host.advance(timedelta(seconds=5))
    assert (await host.client.get_status(instance_id)).runtime_status == S.Failed
    assert _attempts("fragile:retried") == 2
    _fix("retried")
    await host.host.rewind(instance_id)
    await host.run_until_idle()
    status = await host.client.get_status(instance_id)
    assert status.runtime_status == S.Completed, status.output
    assert status.output == "retried ok"
    assert _attempts("fragile:retried") == 3


async def test_rewind_reaches_into_a_failed_sub_orchestration(host: DurableTestHost) -> None:
    instance_id = await host.client.start_new("parent_of_fragile")
    status = await host.wait_for_completion(instance_id)
    assert status.runtime_status == S.Failed
    _fix("svc")
    await host.host.rewind(instance_id)
    status = await host.wait_for_completion(instance_id)
    assert status.runtime_status == S.Completed, status.output
    assert status.output == [2, "svc ok"]


async def test_rewind_refusals(host: DurableTestHost) -> None:
    with pytest.raises(InstanceNotFound):
        await host.host.rewind("missing")
    done = await host.client.start_new("noop", client_input=1)
    running = await host.client.start_new("waiter")
    await host.run_until_idle()
    for instance_id in (done, running):
        with pytest.raises(InstanceNotFailed):
            await host.host.rewind(instance_id)


async def test_restart_with_same_and_new_id(host: DurableTestHost) -> None:
    original = await host.client.start_new("noop", instance_id="orig", client_input={"n": 7})
    await host.run_until_idle()
    copy = await host.host.restart(original, new_instance_id=True)
    assert copy != original
    await host.run_until_idle()
    assert (await host.client.get_status(copy)).output == {"n": 7}
    same = await host.host.restart(original, new_instance_id=False)
    assert same == original
    await host.run_until_idle()
    assert (await host.client.get_status(original)).runtime_status == S.Completed
    running = await host.client.start_new("waiter", instance_id="busy")
    await host.run_until_idle()
    with pytest.raises(InstanceAlreadyRunning):
        await host.host.restart(running, new_instance_id=False)
    with pytest.raises(InstanceNotFound):
        await host.host.restart("missing")


async def test_purge_by_id(host: DurableTestHost) -> None:
    done = await host.client.start_new("noop", client_input=1)
    running = await host.client.start_new("waiter")
    await host.run_until_idle()
    assert await host.client.purge_instance_history(done) == 1
    assert (await host.client.get_status(done)).runtime_status is None
    assert await host.client.purge_instance_history(done) == 0
    with pytest.raises(InstanceAlreadyRunning):
        await host.client.purge_instance_history(running)


@pytest.fixture
async def memory_host() -> AsyncIterator[DurableTestHost]:
    async with running_host("surface", None) as running:
        yield running


async def test_queries_and_purges_over_10000_instances(memory_host: DurableTestHost) -> None:
    host = memory_host
    start = host.now()
    for n in range(10_000):
        name = "waiter" if n % 10 == 0 else "noop"
        await host.client.start_new(name, instance_id=f"{'job' if n % 2 else 'task'}-{n:05d}", client_input=n)
        if n % 1000 == 999:
            await host.clock.advance(timedelta(minutes=1))
    await host.run_until_idle(timeout=300)

    async def collect(**filters: object) -> list[str]:
        found: list[str] = []
        token = None
        while True:
            records, token = await host.host.list_instances(page_size=500, continuation=token, **filters)  # type: ignore[arg-type]
            found += [r.instance_id for r in records]
            if token is None:
                return found

    running = await collect(runtime_status=[RuntimeStatus.RUNNING])
    assert len(running) == 1000 and all(int(i[-5:]) % 10 == 0 for i in running)
    jobs = await collect(prefix="job-")
    assert len(jobs) == 5000 and all(i.startswith("job-") for i in jobs)
    assert jobs == sorted(jobs)
    by_name = await collect(name="waiter", prefix="task-")
    assert len(by_name) == 1000
    early = await collect(created_to=start + timedelta(seconds=30))
    assert len(early) == 1000
    first_page, token = await host.host.list_instances(page_size=100)
    assert len(first_page) == 100 and token is not None

    purged = await host.host.purge_where(
        created_from=start,
        created_to=start + timedelta(minutes=2, seconds=30),
        runtime_status=[RuntimeStatus.COMPLETED],
    )
    assert purged == 2700  # 3,000 created in the range, 300 of them still waiting
    assert len(await collect()) == 10_000 - 2700
    assert (await host.client.get_status("task-00000")).runtime_status == S.Running


async def test_queries_and_purge_by_filter(host: DurableTestHost) -> None:
    """The same query paths on every store (the 10,000-instance run above is SQLite only)."""
    start = host.now()
    for n in range(60):
        await host.client.start_new(
            "waiter" if n % 3 == 0 else "noop", instance_id=f"q{n:03d}", client_input=n
        )
    await host.run_until_idle()
    records, token = await host.host.list_instances(page_size=25)
    assert len(records) == 25 and token is not None
    rest, token = await host.host.list_instances(page_size=100, continuation=token)
    assert token is None and len(records) + len(rest) == 60
    waiting, _ = await host.host.list_instances(runtime_status=[RuntimeStatus.RUNNING], page_size=100)
    assert sorted(r.instance_id for r in waiting) == [f"q{n:03d}" for n in range(0, 60, 3)]
    prefixed, _ = await host.host.list_instances(prefix="q05", page_size=100)
    assert [r.instance_id for r in prefixed] == [f"q{n:03d}" for n in range(50, 60)]
    purged = await host.host.purge_where(created_from=start)
    assert purged == 40
    remaining, _ = await host.host.list_instances(page_size=100)
    assert len(remaining) == 20


async def test_recursive_terminate_stops_running_children(host: DurableTestHost) -> None:
    shallow = await host.client.start_new("parent_of_waiter", client_input="child-kept")
    deep = await host.client.start_new("parent_of_waiter", client_input="child-stopped")
    await host.run_until_idle()
    await host.client.terminate(shallow, "parent only")
    await host.host.terminate(deep, "whole tree", recursive=True)
    await host.run_until_idle()
    assert (await host.client.get_status(shallow)).runtime_status == S.Terminated
    assert (await host.client.get_status("child-kept")).runtime_status == S.Running
    assert (await host.client.get_status(deep)).runtime_status == S.Terminated
    child = await host.client.get_status("child-stopped")
    assert child.runtime_status == S.Terminated
    assert child.output == "whole tree"
