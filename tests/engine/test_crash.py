"""Durability with real processes: kill -9 at awkward moments, restart, and two competing hosts.

Each test runs on SQLite (a file shared by the processes) and on a real Azurite.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from durablehost.engine.clock import WallClock
from durablehost.engine.control import ControlTable
from durablehost.engine.history import EventType
from durablehost.engine.host import DurableHost
from durablehost.engine.owed import StoreOutage
from durablehost.engine.partition import InstanceRepository
from durablehost.functions import load_app
from durablehost.store import open_store
from tests.http.hosting import MGMT, HostProcess, request, wait_status

from .host_process import HUB, options

APP = Path(__file__).parent / "apps" / "crash"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["sqlite", pytest.param("azurite", marks=pytest.mark.azurite)])
def store_spec(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:{tmp_path / 'state.sqlite'}"
    connection: str = request.getfixturevalue("azurite_connection_string")
    # A task hub per test keeps tests apart on the shared Azurite.
    return connection


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "ledger.txt"
    path.touch()
    monkeypatch.setenv("CRASH_LEDGER", str(path))
    return path


class HostProcesses:
    def __init__(self, store_spec: str, log_dir: Path) -> None:
        self.store_spec = store_spec
        self.log_dir = log_dir
        self.processes: list[subprocess.Popen[str]] = []

    def spawn(self) -> subprocess.Popen[str]:
        # stderr goes to a file: an undrained pipe would block the child once full.
        log_path = self.log_dir / f"host-{len(self.processes)}.log"
        with log_path.open("w") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "tests.engine.host_process", str(APP), self.store_spec],
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                env={**os.environ},
            )
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.strip() == "started", log_path.read_text()
        self.processes.append(process)
        return process

    def kill(self, process: subprocess.Popen[str]) -> None:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text()[-4000:]}" for path in sorted(self.log_dir.glob("host-*.log"))
        )

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)


@pytest.fixture
def processes(
    store_spec: str, ledger: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[HostProcesses]:
    group = HostProcesses(store_spec, tmp_path)
    yield group
    group.stop_all()
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print("host process logs:\n" + group.logs())


@pytest.fixture
async def client(store_spec: str) -> AsyncIterator[DurableHost]:
    """A host that serves clients only: it never takes the hub lease, like an HTTP front end."""
    store = open_store(store_spec)
    host = DurableHost(store, load_app(APP), WallClock(), hub=HUB, options=options())
    await host.start(run_dispatcher=False)
    yield host
    await store.close()


async def _wait_until(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


async def _finished(client: DurableHost, instance_id: str) -> dict:  # type: ignore[type-arg]
    async def done() -> bool:
        status = await client.get_status(instance_id)
        return status is not None and status["runtimeStatus"] in ("Completed", "Failed")

    await _wait_until(done, 60, f"instance {instance_id} to finish")
    status = await client.get_status(instance_id)
    assert status is not None
    return status


def _ledger_lines(ledger: Path) -> Counter[str]:
    return Counter(line.strip() for line in ledger.read_text().splitlines() if line.strip())


async def _assert_one_completion_per_task(client: DurableHost, instance_id: str) -> None:
    record = await client.get_record(instance_id)
    assert record is not None
    history = await client.repo.read_history(instance_id, record.history_count)
    completed = Counter(e["TaskScheduledId"] for e in history if e["EventType"] == EventType.TASK_COMPLETED)
    assert completed and max(completed.values()) == 1, "a task got two completions in history"


async def test_kill_during_fan_out_then_restart_finishes_everything(
    processes: HostProcesses, client: DurableHost, ledger: Path
) -> None:
    first = processes.spawn()
    instance_id = await client.start_new("slow_fan_out", "fan", json.dumps(200))

    async def some_progress() -> bool:
        return sum(_ledger_lines(ledger).values()) >= 30

    await _wait_until(some_progress, 30, "some activities to run")
    processes.kill(first)
    ran_before_crash = set(_ledger_lines(ledger))
    assert len(ran_before_crash) < 200, "the crash came too late to test anything"

    processes.spawn()
    status = await _finished(client, instance_id)
    assert status["runtimeStatus"] == "Completed"
    assert status["output"] == [i * i for i in range(200)]
    runs = _ledger_lines(ledger)
    assert set(runs) == {f"square {i}" for i in range(200)}
    # At least once: only work in flight at the crash may have run twice (8 activity slots).
    assert sum(runs.values()) - 200 <= 8
    await _assert_one_completion_per_task(client, instance_id)


async def test_kill_during_retry_backoff_then_restart_retries_and_completes(
    processes: HostProcesses, client: DurableHost, ledger: Path
) -> None:
    first = processes.spawn()
    instance_id = await client.start_new("retry_after_backoff", "retry", None)

    async def failed_once() -> bool:
        return _ledger_lines(ledger)["attempt job"] >= 1

    await _wait_until(failed_once, 30, "the first attempt")
    await asyncio.sleep(0.5)  # the failure is committed and the 3 s backoff timer is waiting
    processes.kill(first)
    processes.spawn()
    status = await _finished(client, instance_id)
    assert status["runtimeStatus"] == "Completed"
    assert status["output"] == "done after 2 attempts"
    assert _ledger_lines(ledger)["attempt job"] == 2


async def test_acknowledged_event_survives_a_kill(processes: HostProcesses, client: DurableHost) -> None:
    first = processes.spawn()
    instance_id = await client.start_new("waits_then_sleeps", "events", None)

    async def waiting() -> bool:
        record = await client.get_record(instance_id)
        return record is not None and record.waits.get("go", 0) == 1

    await _wait_until(waiting, 30, "the orchestrator to wait")
    assert await client.raise_event(instance_id, "go", json.dumps("payload"))
    processes.kill(first)  # maybe before, maybe after the episode: either way nothing is lost
    processes.spawn()
    status = await _finished(client, instance_id)
    assert status["runtimeStatus"] == "Completed"
    assert status["output"] == "payload"


async def test_two_competing_processes_finish_all_work_exactly_once(
    processes: HostProcesses, client: DurableHost, ledger: Path
) -> None:
    first = processes.spawn()
    processes.spawn()
    ids = [await client.start_new("slow_fan_out", f"compete-{n}", json.dumps(20)) for n in range(6)]

    async def some_progress() -> bool:
        return sum(_ledger_lines(ledger).values()) >= 20

    await _wait_until(some_progress, 30, "some activities to run")
    processes.kill(first)  # the standby (or the owner, whichever it was) carries on
    for instance_id in ids:
        status = await _finished(client, instance_id)
        assert status["runtimeStatus"] == "Completed"
        assert status["output"] == [i * i for i in range(20)]
        await _assert_one_completion_per_task(client, instance_id)
    runs = _ledger_lines(ledger)
    assert set(runs) == {f"square {i}" for i in range(20)}
    assert sum(runs.values()) - 6 * 20 <= 8


# ---------------------------------------------------------------------- a restart after kill -9 (issue #14)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _first_answer(url: str, instance_id: str, timeout: float) -> float:
    """Poll the status route from now on; the monotonic time of the first HTTP 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status, _, _ = await request("GET", f"{url}{MGMT}/instances/{instance_id}")
        except (OSError, aiohttp.ClientError):
            status = 0  # not listening yet
        if status == 200:
            return time.monotonic()
        await asyncio.sleep(0.01)
    raise AssertionError(f"no HTTP 200 within {timeout} s")


async def test_a_killed_host_restarted_serves_at_once_and_takes_its_partitions_back_before_its_leases_expire(
    store_spec: str, ledger: Path, tmp_path: Path
) -> None:
    """One `durablehost start` on a store, instances in flight, kill -9, the same command again.

    A start is mostly imports: the SDK alone takes 1.3-1.4 s on this project's 2-core machine at load 2.4,
    1.0 s of it importing openai-agents (installed for the agent app), and spawn to first answer took
    1.9-2.4 s there; so a 2 s bound on spawn-to-answer would not hold on a loaded CI machine and is not
    asserted (it is printed).
    What is asserted has no timing margin: the new process answers, owns every partition and finishes
    every in-flight instance while the dead process's leases (60 s, renewed every 20 s) are all still
    unexpired, which it can only do because it saw that their holder's pid is gone.
    """
    app = tmp_path / "app"
    app.mkdir()
    shutil.copy(APP / "function_app.py", app / "function_app.py")
    (app / "host.json").write_text(
        json.dumps({"version": "2.0", "durablehost": {"leaseDuration": "00:01:00"}})
    )
    hub = f"R{uuid.uuid4().hex[:12]}"
    port = _free_port()  # the restart listens where the first one did, as a restart under a supervisor
    args = ["--app-dir", str(app), "--port", str(port), "--store", store_spec, "--task-hub", hub]
    store = open_store(store_spec)
    control = ControlTable(store, hub, StoreOutage())
    repo = InstanceRepository(store, hub)
    first = HostProcess(args)
    second: HostProcess | None = None
    try:
        url = first.wait_listening(60)
        status, raw, _ = await request("POST", f"{url}{MGMT}/orchestrators/slow_fan_out", json_body=1)
        assert status == 202, raw
        done_before = json.loads(raw)["id"]  # its status answers 200 (a running one's answers 202)
        await wait_status(url, done_before, {"Completed"}, timeout=30)
        fan_outs = []
        for _ in range(3):
            status, raw, _ = await request("POST", f"{url}{MGMT}/orchestrators/slow_fan_out", json_body=150)
            assert status == 202, raw
            fan_outs.append(json.loads(raw)["id"])
        status, raw, _ = await request("POST", f"{url}{MGMT}/orchestrators/waits_then_sleeps")
        assert status == 202, raw
        waiting = json.loads(raw)["id"]  # in flight until its event comes, whenever the kill falls

        async def some_progress() -> bool:
            return sum(_ledger_lines(ledger).values()) >= 30

        await _wait_until(some_progress, 30, "some activities to run")
        first.stop(signal.SIGKILL)
        ran_before_crash = sum(_ledger_lines(ledger).values())
        leases = await control.read_leases()
        members = {m.member_id: m.pid for m in await control.read_members()}
        assert {members.get(lease.owner) for lease in leases.values()} == {first.process.pid}
        expires = min(lease.expires_at for lease in leases.values())  # nothing renews them any more

        spawned = time.monotonic()
        second = HostProcess(args)
        served = await _first_answer(f"http://127.0.0.1:{port}", done_before, timeout=60)
        assert datetime.now(UTC) < expires, "served only after the dead process's leases expired"

        async def owns_all() -> bool:
            assert second is not None
            leases = await control.read_leases()
            members = {m.member_id: m.pid for m in await control.read_members()}
            return {members.get(lease.owner) for lease in leases.values()} == {second.process.pid}

        await _wait_until(owns_all, 30, "the restarted process to own every partition")
        owned = time.monotonic()
        assert datetime.now(UTC) < expires, "partitions taken back only when the old leases expired"
        status, raw, _ = await request(
            "POST", f"http://127.0.0.1:{port}{MGMT}/instances/{waiting}/raiseEvent/go", json_body="payload"
        )
        assert status == 202, raw

        async def all_finished() -> bool:
            records = [await repo.get_record(i) for i in [*fan_outs, waiting]]
            return all(r is not None and r.status.is_finished for r in records)

        await _wait_until(all_finished, 30, "every instance to finish")
        finished = time.monotonic()
        assert datetime.now(UTC) < expires, "in-flight instances finished only after the old leases expired"
        print(
            f"spawn to first answer {served - spawned:.2f} s, to owning every partition "
            f"{owned - spawned:.2f} s, to every instance finished {finished - spawned:.2f} s; "
            f"old leases expired {(expires - datetime.now(UTC)).total_seconds():.0f} s later"
        )
        assert ran_before_crash < 1 + 3 * 150, "the crash came too late to test anything"
        for instance_id in fan_outs:
            record = await repo.get_record(instance_id)
            assert record is not None and record.status.value == "Completed"
            assert json.loads(record.output or "null") == [i * i for i in range(150)]
            await _assert_one_completion_per_task_in(repo, instance_id)
        done = await repo.get_record(waiting)
        assert done is not None and json.loads(done.output or "null") == "payload"
        assert set(_ledger_lines(ledger)) == {f"square {i}" for i in range(150)}
    except BaseException:
        for name, host in (("first", first), ("restarted", second)):
            if host is not None:
                print(f"--- {name} host log\n{host.log()[-4000:]}")
        raise
    finally:
        for host in (first, second):
            if host is not None and host.process.poll() is None:
                host.stop(signal.SIGKILL)
        await store.close()


async def _assert_one_completion_per_task_in(repo: InstanceRepository, instance_id: str) -> None:
    record = await repo.get_record(instance_id)
    assert record is not None
    history = await repo.read_history(instance_id, record.history_count)
    scheduled = Counter(e["EventId"] for e in history if e["EventType"] == EventType.TASK_SCHEDULED)
    completed = Counter(e["TaskScheduledId"] for e in history if e["EventType"] == EventType.TASK_COMPLETED)
    assert completed == scheduled and set(completed.values()) == {1}, f"{instance_id}: {completed}"
