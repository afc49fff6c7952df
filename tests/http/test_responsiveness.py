"""User code never holds up the host (issue #12 item 1), through real HTTP on a ``durablehost start``
subprocess: while an orchestrator spins pure Python for 2 s, an entity operation blocks 3 s, or an ``async
def`` activity blocks its event loop 3 s, unrelated GETs (an instance's status, the app's sync health
route) keep being answered.

What is asserted holds on a shared 2-core machine: answers arrive while the blocking code still runs, and
the slowest of them is far below the blocking time. The figures (the 100 ms target) are measured by
``bench/responsiveness.py``. For contrast, an ``async def`` route waits for the blocking async activity:
it shares the user-code event loop, as it shares the worker's loop in Azure (azure-fidelity-notes §3).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from tests.http.hosting import MGMT, HostProcess, request, start_host, wait_status

APP = Path(__file__).resolve().parents[2] / "bench" / "apps" / "responsive"

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Answer:
    path: str
    sent: float  # time.time(), comparable with the app's marks (same machine)
    answered: float

    @property
    def seconds(self) -> float:
        return self.answered - self.sent


@pytest.fixture(scope="module")
def marks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("marks")


@pytest.fixture(scope="module")
def host(marks: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostProcess]:
    store = tmp_path_factory.mktemp("store") / "state.sqlite"
    process = start_host("--store", f"sqlite:{store}", app=APP, env={"MARK_DIR": str(marks)})
    yield process
    assert process.stop() == 0, process.log()


@pytest.fixture
async def idle_status(host: HostProcess) -> str:
    """The status path of an instance that finished before anything blocks."""
    assert host.url is not None
    status, body, _ = await request("POST", f"{host.url}{MGMT}/orchestrators/idle")
    assert status == 202, body
    instance_id = json.loads(body)["id"]
    await wait_status(host.url, instance_id, {"Completed"})
    return f"{MGMT}/instances/{instance_id}"


async def answers_while(url: str, paths: list[str], mark: Path, timeout: float = 30.0) -> list[Answer]:
    """GET each path one request after another until ``mark`` is written (and a little longer)."""
    done = asyncio.Event()

    async def probe(path: str) -> list[Answer]:
        found = []
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
            while not done.is_set():
                sent = time.time()
                async with session.get(f"{url}{path}") as response:
                    assert response.status == 200, await response.text()
                    await response.read()
                found.append(Answer(path, sent, time.time()))
                await asyncio.sleep(0.01)
        return found

    probes = [asyncio.create_task(probe(p)) for p in paths]
    written = await asyncio.to_thread(_wait_for_file, mark, timeout)
    await asyncio.sleep(0.2)  # a GET sent just before the end is answered and counted
    done.set()
    found = [a for task in probes for a in await task]
    assert written, "the blocking user code never finished"
    return found


def _wait_for_file(path: Path, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def during(answers: list[Answer], mark: Path, path: str) -> tuple[list[Answer], list[Answer]]:
    """The answers to ``path`` that overlapped the blocking time, and those that fell entirely inside it."""
    times = json.loads(mark.read_text())
    start, end = times["start"], times["end"]
    overlapping = [a for a in answers if a.path == path and a.sent < end and a.answered > start]
    inside = [a for a in overlapping if a.sent >= start and a.answered <= end]
    return overlapping, inside


def assert_unhindered(answers: list[Answer], mark: Path, path: str, blocked: float) -> None:
    overlapping, inside = during(answers, mark, path)
    worst = max(a.seconds for a in overlapping)
    # A held-up host answers nothing while the code blocks, then one late answer of about `blocked`.
    assert len(inside) >= 5, f"{path}: only {len(inside)} answers while the user code blocked"
    assert worst < blocked / 2, f"{path}: an answer took {worst:.3f} s while the user code blocked"


async def start_work(url: str, route: str, seconds: float) -> Path:
    key = f"work-{uuid.uuid4().hex[:8]}"
    status, body, _ = await request(
        "POST", f"{url}{MGMT}/{route}", json_body={"seconds": seconds, "key": key}
    )
    assert status == 202, body
    return Path(key)


async def test_a_cpu_bound_orchestrator_holds_up_no_unrelated_answer(
    host: HostProcess, marks: Path, idle_status: str
) -> None:
    assert host.url is not None
    key = await start_work(host.url, "orchestrators/spin", 2.0)
    answers = await answers_while(host.url, [idle_status, "/api/health"], marks / f"{key}.json")
    for path in (idle_status, "/api/health"):
        assert_unhindered(answers, marks / f"{key}.json", path, blocked=2.0)


async def test_an_entity_blocked_in_a_call_holds_up_no_unrelated_answer(
    host: HostProcess, marks: Path, idle_status: str
) -> None:
    assert host.url is not None
    key = await start_work(host.url, "entities/blocker/slow?op=wait", 3.0)
    answers = await answers_while(host.url, [idle_status, "/api/health"], marks / f"{key}.json")
    for path in (idle_status, "/api/health"):
        assert_unhindered(answers, marks / f"{key}.json", path, blocked=3.0)


async def test_an_async_activity_blocking_its_loop_holds_up_async_functions_only(
    host: HostProcess, marks: Path, idle_status: str
) -> None:
    assert host.url is not None
    key = await start_work(host.url, "orchestrators/stall_orchestrator", 3.0)
    mark = marks / f"{key}.json"
    answers = await answers_while(host.url, [idle_status, "/api/health", "/api/health-async"], mark)
    for path in (idle_status, "/api/health"):
        assert_unhindered(answers, mark, path, blocked=3.0)
    # The async route shares the blocked loop: it is answered only once the activity lets go.
    overlapping, inside = during(answers, mark, "/api/health-async")
    assert not inside
    assert max(a.seconds for a in overlapping) > 1.5
