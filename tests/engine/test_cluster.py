"""Several `durablehost start` processes on one task hub, on SQLite and on Azurite: 300 instances started
through all of them (chains, fan-outs, event waits, sub-orchestrations, entities); kill -9 of one process
mid-run, then of another, then a restart: every instance completes once with the right output, every
scheduled task has exactly one completion in history, and every event is delivered exactly once.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from durablehost.engine.control import ControlTable
from durablehost.engine.history import EventType
from durablehost.engine.owed import StoreOutage
from durablehost.engine.partition import InstanceRepository
from durablehost.store import open_store
from tests.http.hosting import MGMT, HostProcess, request

APP = Path(__file__).parent / "apps" / "cluster"

pytestmark = pytest.mark.slow

# kind, input, expected output
KINDS: list[tuple[str, Any, Any]] = [
    ("chain", 3, 6),
    ("fan", 5, 20),
    ("waits", None, None),  # its output is the event it got, checked apart
    ("parent", None, 8),
    ("counts", None, 5),
]


@pytest.fixture(params=["sqlite", pytest.param("azurite", marks=pytest.mark.azurite)])
def store_spec(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:{tmp_path / 'cluster.sqlite'}"
    return str(request.getfixturevalue("azurite_connection_string"))


class Cluster:
    def __init__(self, store_spec: str, hub: str, ledger: Path) -> None:
        self._args = ["--app-dir", str(APP), "--port", "0", "--store", store_spec, "--task-hub", hub]
        self._env = {"CLUSTER_LEDGER": str(ledger)}
        self.hosts: list[HostProcess] = []

    def start(self) -> str:
        host = HostProcess(self._args, env=self._env)
        self.hosts.append(host)
        return host.wait_listening(60)

    def kill(self, index: int) -> None:
        self.hosts[index].stop(signal.SIGKILL)

    def alive(self) -> list[str]:
        return [h.wait_listening() for h in self.hosts if h.process.poll() is None]

    def logs(self) -> str:
        return "\n".join(f"--- host {n}\n{h.log()[-5000:]}" for n, h in enumerate(self.hosts))


@pytest.fixture
def cluster(store_spec: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    ledger = tmp_path / "ledger.txt"
    ledger.touch()
    group = Cluster(store_spec, f"C{uuid.uuid4().hex[:12]}", ledger)
    yield group
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print("host logs:\n" + group.logs())
    for host in group.hosts:
        if host.process.poll() is None:
            host.stop(signal.SIGTERM, timeout=60)


async def _post(url: str, path: str, body: Any) -> tuple[int, Any]:
    status, raw, _ = await request("POST", f"{url}{MGMT}/{path}", json_body=body)
    return status, json.loads(raw) if raw else None


async def _start(url: str, kind: str, value: Any, n: int) -> str:
    body = f"key-{n}" if kind == "counts" else value
    status, links = await _post(url, f"orchestrators/{kind}", body)
    assert status == 202, links
    return str(links["id"])


async def _status(urls: list[str], instance_id: str) -> dict[str, Any] | None:
    for url in urls:  # whichever process still answers
        try:
            _, raw, _ = await request("GET", f"{url}{MGMT}/instances/{instance_id}")
        except OSError:
            continue
        return json.loads(raw) if raw else None
    return None


async def test_three_processes_300_instances_two_kills_and_a_restart(cluster: Cluster) -> None:
    first, second = cluster.start(), cluster.start()
    started: list[tuple[str, str]] = []  # (instance id, kind)
    for n in range(150):
        kind, value, _ = KINDS[n % len(KINDS)]
        started.append((await _start((first, second)[n % 2], kind, value, n), kind))
    third = cluster.start()
    for n in range(150, 300):
        kind, value, _ = KINDS[n % len(KINDS)]
        started.append((await _start((first, second, third)[n % 3], kind, value, n), kind))
    waiting = [instance_id for instance_id, kind in started if kind == "waits"]

    cluster.kill(0)  # mid-run: fan-outs and chains in flight, waits not yet answered
    await asyncio.sleep(1.0)
    for n, instance_id in enumerate(waiting[: len(waiting) // 2]):
        status, _ = await _post(
            (second, third)[n % 2], f"instances/{instance_id}/raiseEvent/go", f"event-{instance_id}"
        )
        assert status == 202
    cluster.kill(1)
    restarted = cluster.start()
    for n, instance_id in enumerate(waiting[len(waiting) // 2 :]):
        status, _ = await _post(
            (third, restarted)[n % 2], f"instances/{instance_id}/raiseEvent/go", f"event-{instance_id}"
        )
        assert status == 202

    urls = cluster.alive()
    assert urls == [third, restarted]
    deadline = time.monotonic() + 120
    pending = dict(started)
    finished: dict[str, dict[str, Any]] = {}
    while pending and time.monotonic() < deadline:
        for instance_id in list(pending):
            status = await _status(urls, instance_id)
            if status is not None and status["runtimeStatus"] in ("Completed", "Failed", "Terminated"):
                finished[instance_id] = status
                del pending[instance_id]
        await asyncio.sleep(0.2)
    assert not pending, f"{len(pending)} instances did not finish, e.g. {next(iter(pending))}"

    expected = {kind: output for kind, _, output in KINDS}
    for instance_id, kind in started:
        status = finished[instance_id]
        assert status["runtimeStatus"] == "Completed", (instance_id, status)
        if kind == "waits":
            assert status["output"] == {"received": f"event-{instance_id}", "doubled": 2}
        else:
            assert status["output"] == expected[kind], (instance_id, kind, status["output"])
        await _assert_exactly_once(urls[0], instance_id)


async def _assert_exactly_once(url: str, instance_id: str) -> None:
    _, raw, _ = await request("GET", f"{url}{MGMT}/instances/{instance_id}/export")
    history = json.loads(raw)["history"]
    scheduled = Counter(
        e["EventId"]
        for e in history
        if e["EventType"] in (EventType.TASK_SCHEDULED, EventType.SUB_ORCHESTRATION_CREATED)
    )
    completed = Counter(
        e["TaskScheduledId"]
        for e in history
        if e["EventType"]
        in (
            EventType.TASK_COMPLETED,
            EventType.TASK_FAILED,
            EventType.SUB_ORCHESTRATION_COMPLETED,
            EventType.SUB_ORCHESTRATION_FAILED,
        )
    )
    assert completed == scheduled, f"{instance_id}: completions {completed} for scheduled {scheduled}"
    raised = Counter(e["Name"] for e in history if e["EventType"] == EventType.EVENT_RAISED)
    assert all(count == 1 for count in raised.values()), f"{instance_id}: events {raised}"


async def test_a_joining_process_takes_partitions_and_a_graceful_stop_hands_them_over_at_once(
    store_spec: str, tmp_path: Path
) -> None:
    """With a 60 s lease, a hand-over that waited for expiry would take a minute; it takes a look or two."""
    app = tmp_path / "app"
    app.mkdir()
    (app / "function_app.py").write_text((APP / "function_app.py").read_text())
    (app / "host.json").write_text(
        json.dumps({"version": "2.0", "durablehost": {"leaseDuration": "00:01:00"}})
    )
    ledger = tmp_path / "ledger.txt"
    ledger.touch()
    args = [
        "--app-dir",
        str(app),
        "--port",
        "0",
        "--store",
        store_spec,
        "--task-hub",
        f"J{uuid.uuid4().hex[:12]}",
    ]
    first = HostProcess(args, env={"CLUSTER_LEDGER": str(ledger)})
    second: HostProcess | None = None
    try:
        first.wait_listening(60)
        second = HostProcess(args, env={"CLUSTER_LEDGER": str(ledger)})
        second.wait_listening(60)
        await _until(lambda: _owned(second) == 2, "the joining process to take its share")
        stopped_at = time.monotonic()
        assert first.stop(signal.SIGTERM, timeout=60) == 0
        await _until(lambda: _owned(second) == 4, "the partitions of the stopped process")
        assert time.monotonic() - stopped_at < 10  # far below the 60 s lease
        url = second.wait_listening()
        status, links = await _post(url, "orchestrators/chain", 3)
        assert status == 202
        done = await _status([url], str(links["id"]))
        deadline = time.monotonic() + 30
        while (done or {}).get("runtimeStatus") != "Completed" and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            done = await _status([url], str(links["id"]))
        assert done is not None and done["output"] == 6
    finally:
        for host in (first, second):
            if host is not None and host.process.poll() is None:
                host.stop(signal.SIGTERM, timeout=60)


def _owned(host: HostProcess) -> int:
    owner: dict[str, bool] = {}
    for verb, partition in re.findall(r"process \S+ (owns|handed) partition (\d+)", host.log()):
        owner[partition] = verb == "owns"
    return sum(owner.values())


async def _until(check: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


PAUSED_APP = Path(__file__).parent / "apps" / "paused"


def _executions(ledger: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in ledger.read_text().splitlines() if line.strip()]


async def test_a_paused_owner_starts_no_work_after_its_lease_passed(store_spec: str, tmp_path: Path) -> None:
    """SIGSTOP the owner of the only partition (2 s lease) while its activities are running, let the other
    process take over and run them again, SIGCONT: the resumed process starts no activity, its late
    outcomes are not recorded twice, and every instance completes once (the real-signal version of
    test_ownership's paused holder).

    Each activity writes (pid, start time) and then waits for a gate file, so when the owner is stopped
    every activity it started has written its line and none is between the ownership check and its
    start: a line from the resumed process with a later time is work it started after it resumed.
    """
    ledger, gate = tmp_path / "ledger.jsonl", tmp_path / "gate"
    ledger.touch()
    hub = f"P{uuid.uuid4().hex[:12]}"
    args = ["--app-dir", str(PAUSED_APP), "--port", "0", "--store", store_spec, "--task-hub", hub]
    env = {"PAUSED_LEDGER": str(ledger), "PAUSED_GATE": str(gate)}
    store = open_store(store_spec)
    control = ControlTable(store, hub, StoreOutage())
    repo = InstanceRepository(store, hub)
    hosts = [HostProcess(args, env=env), HostProcess(args, env=env)]
    owner: HostProcess | None = None
    try:
        urls = [host.wait_listening(60) for host in hosts]

        async def pid_of_owner() -> int | None:
            lease = (await control.read_leases())[0]
            pids = {m.member_id: m.pid for m in await control.read_members()}
            return pids.get(lease.owner)

        owner_pid = await pid_of_owner()
        owner = next(host for host in hosts if host.process.pid == owner_pid)
        other = next(host for host in hosts if host is not owner)
        ids = []
        for n in range(4):  # through both: the standby's starts reach the owner as wake-ups
            status, links = await _post(urls[n % 2], "orchestrators/gated_steps", 3)
            assert status == 202, links
            ids.append(str(links["id"]))

        def started_by(host: HostProcess, step: int) -> set[str]:
            pid = host.process.pid
            return {e["instance"] for e in _executions(ledger) if e["pid"] == pid and e["step"] == step}

        await _until(lambda: started_by(owner, 0) == set(ids), "the owner to start every first step")
        owner.process.send_signal(signal.SIGSTOP)  # every activity it started waits at the gate
        await _until(
            lambda: started_by(other, 0) == set(ids), "the other process to take over and run them again"
        )
        assert await pid_of_owner() == other.process.pid
        # The stopped process's activities finish the moment it resumes, before its first look at the
        # leases can tell it that it lost them; the other's wait until later, so the instances stay
        # where they were (its outcomes would otherwise commit first, and leave nothing to start).
        (tmp_path / f"gate-{owner.process.pid}").touch()
        resumed_at = time.time()  # before the signal: any later line of the stopped process is after it
        owner.process.send_signal(signal.SIGCONT)
        await _until(lambda: "partition 0 was taken over" in owner.log(), "the resumed process to notice")
        await asyncio.sleep(0.5)  # time for anything it might still start (nothing, it must be)
        gate.touch()

        async def all_finished() -> bool:
            records = [await repo.get_record(i) for i in ids]
            return all(r is not None and r.status.is_finished for r in records)

        deadline = time.monotonic() + 30
        while not await all_finished():
            assert time.monotonic() < deadline, "the instances did not finish"
            await asyncio.sleep(0.1)

        late = [e for e in _executions(ledger) if e["pid"] == owner.process.pid and e["t"] >= resumed_at]
        assert not late, f"the resumed process started work after its lease passed: {late}"
        assert owner.process.poll() is None and await pid_of_owner() == other.process.pid
        for instance_id in ids:
            record = await repo.get_record(instance_id)
            assert record is not None and record.status.value == "Completed", record
            assert json.loads(record.output or "null") == [0, 10, 20]
            history = await repo.read_history(instance_id, record.history_count)
            scheduled = Counter(e["EventId"] for e in history if e["EventType"] == EventType.TASK_SCHEDULED)
            completed = Counter(
                e["TaskScheduledId"] for e in history if e["EventType"] == EventType.TASK_COMPLETED
            )
            assert completed == scheduled and set(completed.values()) == {1}, (instance_id, completed)
        # The other process ran every step (at least once); the paused one only the first, before it was
        # stopped.
        ran = Counter((e["instance"], e["step"], e["pid"]) for e in _executions(ledger))
        for instance_id in ids:
            assert ran[(instance_id, 0, owner.process.pid)] == 1
            assert all(ran[(instance_id, step, other.process.pid)] >= 1 for step in range(3))
            assert not any(ran[(instance_id, step, owner.process.pid)] for step in (1, 2))
    except BaseException:
        for n, host in enumerate(hosts):
            print(f"--- host {n} (pid {host.process.pid})\n{host.log()[-5000:]}")
        raise
    finally:
        for host in hosts:
            if host.process.poll() is None:
                host.process.send_signal(signal.SIGCONT)
                host.stop(signal.SIGTERM, timeout=60)
        await store.close()
