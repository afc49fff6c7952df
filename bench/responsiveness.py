"""How long an unrelated answer waits while user code blocks (issue #12 item 1): one command.

    python bench/responsiveness.py [--runs 3] [--seconds 2,3,3] [--store sqlite|memory]

Starts ``durablehost start`` on bench/apps/responsive (a real subprocess, SQLite store by default) and, for
each kind of blocking user code, starts it and meanwhile times unrelated GETs over real HTTP on loopback,
one request after another (a fresh connection each, 5 ms apart):

* ``cpu orchestrator``: an orchestrator spinning pure Python for 2 s;
* ``blocking entity``: an entity operation blocked 3 s in ``time.sleep`` (a blocking model call);
* ``blocking async activity``: an ``async def`` activity blocking its event loop 3 s.

The GETs are the status of a finished instance (``GET /runtime/webhooks/durabletask/instances/{id}``),
the app's sync health route (``GET /api/health``) and, for contrast, an ``async def`` route
(``GET /api/health-async``), which runs on the user-code event loop as it runs on the worker's loop in
Azure. A GET counts when it was sent before the blocking code ended and answered after it started (the
app writes both wall-clock times). Each figure is the median over ``--runs`` runs of that run's median
and worst (maximum) answer time, in milliseconds; "idle" is the same GETs with nothing blocking.

The target (issue #12): no unrelated status answer delayed by more than 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

BENCH = Path(__file__).resolve().parent
APP = BENCH / "apps" / "responsive"
DURABLEHOST = str(Path(sys.executable).parent / "durablehost")
MGMT = "/runtime/webhooks/durabletask"
TARGET_MS = 100.0
PROBE_GAP = 0.005
PROBES = {
    "status": "{mgmt}/instances/{idle}",
    "health": "/api/health",
    "health-async": "/api/health-async",
}


@dataclass(frozen=True)
class Kind:
    name: str
    seconds: float
    start: Callable[[str, str, float], Awaitable[None]]  # (url, key, seconds): starts the blocking code


async def _post(url: str, body: Any) -> None:
    async with aiohttp.ClientSession() as session, session.post(url, json=body) as response:
        if response.status not in (200, 202):
            raise RuntimeError(f"POST {url}: {response.status} {await response.text()}")


async def start_spin(url: str, key: str, seconds: float) -> None:
    await _post(f"{url}{MGMT}/orchestrators/spin", {"seconds": seconds, "key": key})


async def start_entity(url: str, key: str, seconds: float) -> None:
    await _post(f"{url}{MGMT}/entities/blocker/{key}?op=wait", {"seconds": seconds, "key": key})


async def start_stall(url: str, key: str, seconds: float) -> None:
    await _post(f"{url}{MGMT}/orchestrators/stall_orchestrator", {"seconds": seconds, "key": key})


@dataclass
class Probe:
    target: str
    sent: float  # time.time()
    answered: float

    @property
    def ms(self) -> float:
        return (self.answered - self.sent) * 1000


class Host:
    """``durablehost start`` on the app, in a subprocess; ``url`` once it listens."""

    def __init__(self, store: str, marks: Path, workdir: Path) -> None:
        store_arg = f"sqlite:{workdir / 'state.sqlite'}" if store == "sqlite" else store
        self.process = subprocess.Popen(
            [DURABLEHOST, "start", "--app-dir", str(APP), "--port", "0", "--store", store_arg,
             "--log-level", os.environ.get("BENCH_LOG", "WARNING")],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "MARK_DIR": str(marks), "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        self.lines: list[str] = []
        self.url: str | None = None
        self._listening = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        if not self._listening.wait(60) or self.url is None:
            raise RuntimeError("durablehost did not start:\n" + "".join(self.lines))

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            found = re.search(r"Listening on (http://\S+)", line)
            if found:
                self.url = found.group(1)
                self._listening.set()
        self._listening.set()

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


async def probe_until(url: str, target: str, path: str, done: asyncio.Event) -> list[Probe]:
    """GET ``path`` one request after another until ``done``; every answer must be a 200."""
    probes: list[Probe] = []
    connector = aiohttp.TCPConnector(force_close=True)  # a fresh connection each time, as a monitor's
    async with aiohttp.ClientSession(connector=connector) as session:
        while not done.is_set():
            sent = time.time()
            async with session.get(f"{url}{path}") as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"GET {path}: {response.status}")
            probes.append(Probe(target, sent, time.time()))
            await asyncio.sleep(PROBE_GAP)
    return probes


async def started_idle(url: str) -> str:
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{url}{MGMT}/orchestrators/idle") as response:
            instance_id = str((await response.json())["id"])
        for _ in range(500):
            async with session.get(f"{url}{MGMT}/instances/{instance_id}") as response:
                if (await response.json())["runtimeStatus"] == "Completed":
                    return instance_id
            await asyncio.sleep(0.02)
    raise RuntimeError("the idle orchestration did not complete")


async def measure(
    url: str, marks: Path, kind: Kind | None, idle: str, idle_seconds: float = 1.0
) -> list[Probe]:
    """Probe every target while ``kind`` blocks (or for ``idle_seconds`` with nothing blocking); return
    the probes that overlapped the blocking time."""
    done = asyncio.Event()
    paths = {t: p.format(mgmt=MGMT, idle=idle) for t, p in PROBES.items()}
    probers = [asyncio.create_task(probe_until(url, t, p, done)) for t, p in paths.items()]
    await asyncio.sleep(0.3)  # the probers are under way before anything blocks
    if kind is None:
        start = time.time()
        await asyncio.sleep(idle_seconds)
        end = time.time()
    else:
        key = f"{kind.name.replace(' ', '-')}-{uuid.uuid4().hex[:8]}"
        await kind.start(url, key, kind.seconds)
        mark = marks / f"{key}.json"
        deadline = time.monotonic() + kind.seconds + 30
        while not mark.exists():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{kind.name} never finished")
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # a GET sent just before the end is answered and counted
        times = json.loads(mark.read_text())
        start, end = times["start"], times["end"]
    done.set()
    probes = [p for task in probers for p in await task]
    return [p for p in probes if p.sent < end and p.answered > start]


def _row(label: str, runs: list[list[Probe]], targets: list[str]) -> str:
    cells = []
    for target in targets:
        medians = [statistics.median(p.ms for p in run if p.target == target) for run in runs]
        worsts = [max(p.ms for p in run if p.target == target) for run in runs]
        counts = [sum(1 for p in run if p.target == target) for run in runs]
        cells.append(f"{statistics.median(medians):7.1f} {statistics.median(worsts):7.1f} {min(counts):4d}")
    return f"{label:<26}" + " | ".join(cells)


async def run(args: argparse.Namespace) -> int:
    seconds = [float(s) for s in args.seconds.split(",")]
    kinds = [
        Kind("cpu orchestrator", seconds[0], start_spin),
        Kind("blocking entity", seconds[1], start_entity),
        Kind("blocking async activity", seconds[2], start_stall),
    ]
    targets = list(PROBES)
    results: dict[str, list[list[Probe]]] = {"idle": []}
    results.update({k.name: [] for k in kinds})
    with tempfile.TemporaryDirectory() as tmp:
        marks = Path(tmp) / "marks"
        marks.mkdir()
        host = Host(args.store, marks, Path(tmp))
        try:
            assert host.url is not None
            idle = await started_idle(host.url)
            # Warm up: the first calls of each route start pools and the user-code loop, and import.
            await measure(host.url, marks, None, idle, idle_seconds=0.5)
            for _ in range(args.runs):
                results["idle"].append(await measure(host.url, marks, None, idle))
                for kind in kinds:
                    results[kind.name].append(await measure(host.url, marks, kind, idle))
        finally:
            host.stop()
    print(f"durablehost responsiveness: {args.runs} runs, store {args.store}, {os.cpu_count()} CPUs, "
          f"Python {sys.version.split()[0]}")  # fmt: skip
    print("answer times in ms while the user code blocks: median and worst of each run, median over runs;")
    print("n = fewest answers counted in a run")
    print(f"{'GET':<26}" + " | ".join(f"{t:^20}" for t in targets))
    print(f"{'while this blocks':<26}" + " | ".join(f"{'median':>7} {'worst':>7} {'n':>4}" for _ in targets))
    for label, runs in results.items():
        print(_row(label, runs, targets))
    worst_status = max(
        statistics.median(max(p.ms for p in run if p.target == "status") for run in runs)
        for label, runs in results.items()
        if label != "idle"
    )
    verdict = "met" if worst_status <= TARGET_MS else "MISSED"
    print(f"target: an unrelated status answer within {TARGET_MS:g} ms while user code blocks: {verdict} "
          f"(worst median-of-runs {worst_status:.1f} ms)")  # fmt: skip
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", default="2,3,3", help="cpu orchestrator, entity, async activity")
    parser.add_argument("--store", default="sqlite", help="sqlite (a temporary file) or memory")
    sys.exit(asyncio.run(run(parser.parse_args())))


if __name__ == "__main__":
    main()
