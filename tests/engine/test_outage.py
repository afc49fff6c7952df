"""A store outage with instances in flight: everything finishes once the store is back, without a restart.

Issue #14 item 1: an activity's outcome whose commit failed used to be dropped (logged as "background
work failed", never retried, and the sweep skipped cached instances), so instances stayed Running until
the host was restarted. Every write the engine owes is now retried until the store is back. The faults are
real: on SQLite a wrapper around the real store fails every operation, as a full disk or a write lock held
past the busy timeout does; on Azurite a TCP proxy in front of the real Azurite resets every connection,
open and new, as an unreachable service does. The outage starts while activities run (their outcomes
land in it), lasts 3 s, and the host is neither restarted nor told.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from durablehost.azurite import Azurite, AzuritePorts, connection_string
from durablehost.engine.clock import WallClock
from durablehost.engine.history import EventType
from durablehost.engine.host import DurableHost
from durablehost.functions import load_app
from durablehost.store import open_store
from tests.support.faults import FaultyStore, ResettingProxy

APP = Path(__file__).parent / "apps" / "cluster"
OUTAGE = 3.0
FINISH_WITHIN = 30.0  # generous for a loaded 2-core machine; bench/outage.py measures the real figure


@dataclass
class Outage:
    store: FaultyStore | None
    proxy: ResettingProxy | None
    inner_description: str

    def begin(self) -> None:
        if self.store is not None:
            self.store.fail()
        if self.proxy is not None:
            self.proxy.down()

    def end(self) -> None:
        if self.store is not None:
            self.store.heal()
        if self.proxy is not None:
            self.proxy.up()


@pytest.fixture(params=["sqlite", pytest.param("azurite", marks=pytest.mark.azurite)])
async def outage_host(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[DurableHost, Outage]]:
    monkeypatch.setenv("CLUSTER_LEDGER", str(tmp_path / "ledger"))
    proxy: ResettingProxy | None = None
    faulty: FaultyStore | None = None
    if request.param == "sqlite":
        faulty = FaultyStore(open_store(f"sqlite:{tmp_path / 'hub.db'}"))
        store = faulty
    else:
        azurite: Azurite = request.getfixturevalue("azurite")
        proxy = await ResettingProxy("127.0.0.1", azurite.ports.table).start()
        through_proxy = AzuritePorts(blob=azurite.ports.blob, queue=azurite.ports.queue, table=proxy.port)
        store = open_store(connection_string(through_proxy))
    host = DurableHost(store, load_app(APP), WallClock(), hub=f"Out{uuid.uuid4().hex[:10]}")
    await host.start()
    try:
        yield host, Outage(faulty, proxy, store.description)
    finally:
        await host.stop(drain=False)
        await store.close()
        if proxy is not None:
            await proxy.close()


async def _until(check: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await check():  # type: ignore[misc]
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


async def _assert_exactly_once(host: DurableHost, instance_id: str) -> None:
    history = (await host.export_history(instance_id))["history"]
    scheduled = Counter(e["EventId"] for e in history if e["EventType"] == EventType.TASK_SCHEDULED)
    completed = Counter(e["TaskScheduledId"] for e in history if e["EventType"] == EventType.TASK_COMPLETED)
    assert completed == scheduled, f"{instance_id}: completions {completed} for scheduled {scheduled}"
    raised = Counter(e["Name"] for e in history if e["EventType"] == EventType.EVENT_RAISED)
    assert all(count == 1 for count in raised.values()), f"{instance_id}: events {raised}"


async def test_instances_in_flight_through_an_outage_all_finish_without_a_restart(
    outage_host: tuple[DurableHost, Outage], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    host, outage = outage_host
    caplog.set_level(logging.WARNING)
    expected: dict[str, object] = {}
    for _ in range(4):  # 6 steps of 0.1 s each: the outage begins while their activities run
        steps = 6
        instance_id = await host.start_new("chain", input_text=json.dumps(steps))
        expected[instance_id] = sum(2 * n for n in range(steps))
    for _ in range(3):
        width = 4
        instance_id = await host.start_new("fan", input_text=json.dumps(width))
        expected[instance_id] = sum(2 * n for n in range(width))
    waiting = []
    for _ in range(3):
        instance_id = await host.start_new("waits")
        waiting.append(instance_id)
        expected[instance_id] = {"received": "go!", "doubled": 2}
    for instance_id in waiting[:2]:  # acknowledged before the outage; the third is raised after it
        await host.raise_event(instance_id, "go", json.dumps("go!"))

    async def some_work_done() -> bool:
        return (tmp_path / "ledger").exists() and len((tmp_path / "ledger").read_text().splitlines()) >= 4

    await _until(some_work_done, 20, "no activity ran before the outage")
    outage.begin()
    await asyncio.sleep(OUTAGE)
    outage.end()
    await host.raise_event(waiting[2], "go", json.dumps("go!"))

    async def all_finished() -> bool:
        for instance_id in expected:
            status = await host.get_status(instance_id, show_input=False)
            if status is None or status["runtimeStatus"] not in ("Completed", "Failed", "Terminated"):
                return False
        return True

    unfinished = f"instances still unfinished after the outage on {outage.inner_description}"
    await _until(all_finished, FINISH_WITHIN, unfinished)
    for instance_id, output in expected.items():
        status = await host.get_status(instance_id)
        assert status is not None and status["runtimeStatus"] == "Completed", status
        assert status["output"] == output, (instance_id, status["output"])
        await _assert_exactly_once(host, instance_id)
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("storage is unavailable") for m in messages), messages
    assert any(m.startswith("storage is back after") for m in messages), messages
    background_failures = [r for r in caplog.records if "background work failed" in r.getMessage()]
    assert not background_failures, [r.getMessage() for r in background_failures]
