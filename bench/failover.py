"""Failover: how soon the survivor of a kill -9 works on the dead process's partitions. One command:

    python bench/failover.py [--store sqlite|azurite|all] [--repeats 3] [--rate 10] [--seed 1]
                             [--cases on:15,on:5,off:15,off:5] [--quick]

Each run, on a fresh task hub (a new SQLite file, or a new hub on one Azurite started from the project's
node_modules, in memory, on free ports):

1. Two real ``durablehost start`` processes (bench/apps/engine, a copy with its own host.json:
   ``partitionCount`` 4, ``durablehost.leaseDuration`` and ``durablehost.detectDeadProcesses`` of the
   case) serve one store; the benchmark waits until each owns 2 of the 4 partitions (read from the lease
   rows in the control table).
2. A steady stream of HelloSequence5 instances (5 sequential no-op activities; ``--rate`` starts a
   second, alternating between the two processes, over the management API's start route) runs for 3 s
   plus a random part of a renewal period (a third of the lease; seeded by ``--seed``), so that the kill
   falls anywhere in the renewal cycle rather than always at the same point of it.
3. The process owning most partitions (2 each once balanced: the first one started) gets SIGKILL. The
   stream goes on through the survivor until it has held all four partitions for 2 s (at most one lease
   period + 10 s), then stops.
4. The benchmark waits until every instance whose start was acknowledged (202) has finished.

**Failover time** = the store's commit time of the first episode, in any partition the dead process
owned, that started after the kill, minus the wall-clock time just before ``kill(pid, SIGKILL)``. Each
episode writes an ``OrchestratorStarted`` history row stamped with the episode's start (the engine's wall
clock); an episode that started after the kill can only be the survivor's. Its commit time is the row's
``Timestamp``, set by the store when the transaction was written (SQLite: the writing process's clock;
Azurite: its own, on the same machine), so the figure is what a client could see: the first progress in
a dead partition. Every instance in the dead partitions is read after the run, so no poll interval is
involved. Also shown: when the benchmark saw the survivor hold every lease of the dead process (it reads
the lease rows every 50 ms; a look takes a few ms more), and when the last instance that was in flight in
a dead partition at the kill finished (HelloSequence5 takes tens of milliseconds, so at 10 starts a
second few are: the table gives their number).

**Exactly once**: every acknowledged instance must be Completed with the output ``[0, 1, 2, 3, 4]``,
with one ExecutionStarted, one ExecutionCompleted, and exactly one completion in history per scheduled
task; an instance not finished 60 s after the stream stops is a stall. Any of these fails the run.

Cases ``on:15`` means detectDeadProcesses true, leaseDuration 15 s. With detection on, the survivor sees
at its next look at the leases (every second) that the holder's pid is gone on this machine; with it
off, it waits for the leases to expire (renewed every third of the lease, so 2/3 to 3/3 of a lease after
the kill). The project's target: at most one lease period + 2 s. Every figure is the median over
``--repeats`` runs with min and max. Prints a markdown table and writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from procinfo import machine  # noqa: E402

from durablehost.azurite import Azurite  # noqa: E402
from durablehost.engine.control import ControlTable  # noqa: E402
from durablehost.engine.history import EventType, parse_timestamp  # noqa: E402
from durablehost.engine.owed import StoreOutage  # noqa: E402
from durablehost.engine.partition import InstanceRepository  # noqa: E402
from durablehost.engine.placement import partition_of  # noqa: E402
from durablehost.engine.records import HISTORY_PREFIX, RuntimeStatus, history_from_properties  # noqa: E402
from durablehost.store import TableStore, open_store  # noqa: E402

BENCH = Path(__file__).resolve().parent
APP = BENCH / "apps" / "engine"
RESULTS = BENCH / "results"
DURABLEHOST = str(Path(sys.executable).parent / "durablehost")
MGMT = "/runtime/webhooks/durabletask"
PARTITIONS = 4
WARM_UP = 3.0  # seconds of stream before the kill
AFTER_TAKEOVER = 2.0  # seconds of stream once the survivor holds every partition
STALL_LIMIT = 60.0  # an acknowledged instance not finished this long after the stream stops is a stall
EXPECTED_OUTPUT = [0, 1, 2, 3, 4]


@dataclass(frozen=True)
class Case:
    detect: bool
    lease: int  # seconds

    @property
    def name(self) -> str:
        return f"detectDeadProcesses {'on' if self.detect else 'off'}, lease {self.lease} s"

    @property
    def target(self) -> float:
        return self.lease + 2.0  # the project's target: at most one lease period + 2 s


def parse_cases(text: str) -> list[Case]:
    cases = []
    for part in text.split(","):
        mode, _, lease = part.strip().partition(":")
        if mode not in ("on", "off") or not lease.isdigit() or not 2 <= int(lease) <= 600:
            raise argparse.ArgumentTypeError(f"a case is on:SECONDS or off:SECONDS (2-600), not {part!r}")
        cases.append(Case(mode == "on", int(lease)))
    return cases


# ---------------------------------------------------------------------- the processes


class Host:
    """One ``durablehost start`` subprocess; its log (stderr) goes to a file."""

    def __init__(self, app: Path, spec: str, hub: str, log_path: Path) -> None:
        self.log_path = log_path
        self.url: str | None = None
        self._listening = threading.Event()
        with log_path.open("w") as log:
            self.process = subprocess.Popen(
                [
                    DURABLEHOST,
                    "start",
                    "--app-dir",
                    str(app),
                    "--port",
                    "0",
                    "--store",
                    spec,
                    "--task-hub",
                    hub,
                ],
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if self.url is None and "Listening on " in line:
                self.url = line.split("Listening on ", 1)[1].split()[0]
                self._listening.set()
        self._listening.set()

    @property
    def pid(self) -> int:
        return self.process.pid

    async def wait_listening(self, timeout: float = 60.0) -> str:
        await asyncio.to_thread(self._listening.wait, timeout)
        if self.url is None:
            raise RuntimeError(f"durablehost did not start (exit {self.process.poll()}):\n{self.log()}")
        return self.url

    def log(self) -> str:
        return self.log_path.read_text()[-4000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def write_app(folder: Path, case: Case) -> Path:
    app = folder / "app"
    app.mkdir()
    shutil.copy(APP / "function_app.py", app / "function_app.py")
    host_json = {
        "version": "2.0",
        "extensions": {"durableTask": {"storageProvider": {"partitionCount": PARTITIONS}}},
        "durablehost": {
            "leaseDuration": f"00:{case.lease // 60:02d}:{case.lease % 60:02d}",
            "detectDeadProcesses": case.detect,
        },
    }
    (app / "host.json").write_text(json.dumps(host_json))
    return app


async def owners(control: ControlTable) -> tuple[dict[int, str], dict[str, int]]:
    """(partition -> owner member id, member id -> pid), as the lease and member rows say now."""
    leases = await control.read_leases()
    members = {m.member_id: m.pid for m in await control.read_members()}
    return {p: lease.owner for p, lease in leases.items()}, members


def owned_by_pid(leases: dict[int, str], members: dict[str, int], pid: int) -> set[int]:
    return {p for p, owner in leases.items() if owner and members.get(owner) == pid}


async def until(check: Any, what: str, timeout: float, every: float = 0.05) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return time.time()
        await asyncio.sleep(every)
    raise RuntimeError(f"timed out after {timeout} s waiting for {what}")


# ---------------------------------------------------------------------- the stream of instances


@dataclass
class Stream:
    rate: float
    targets: list[Host]
    acknowledged: dict[str, float] = field(default_factory=dict)  # instance id -> wall time of its 202
    refused: int = 0  # starts that got no 202 (sent to the process as it was killed)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, session: aiohttp.ClientSession) -> None:
        loop = asyncio.get_running_loop()
        next_at, n = loop.time(), 0
        while not self._stop.is_set():
            host = self.targets[n % len(self.targets)]
            n += 1
            task = asyncio.create_task(self._start(session, host))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            next_at += 1 / self.rate
            await asyncio.sleep(max(0.0, next_at - loop.time()))
        await asyncio.gather(*list(self._tasks))

    async def _start(self, session: aiohttp.ClientSession, host: Host) -> None:
        try:
            async with session.post(
                f"{host.url}{MGMT}/orchestrators/hello_sequence5", timeout=aiohttp.ClientTimeout(total=30)
            ) as response:
                body = await response.read()
                if response.status == 202:
                    self.acknowledged[json.loads(body)["id"]] = time.time()
                    return
        except (aiohttp.ClientError, TimeoutError):
            pass
        self.refused += 1

    def stop(self) -> None:
        self._stop.set()


# ---------------------------------------------------------------------- one run


async def first_commits_after(
    store: TableStore, hub: str, instance_ids: list[str], killed_at: float
) -> tuple[float | None, float | None]:
    """(commit time, start time) of the first episode that started after ``killed_at`` among the
    instances, from their OrchestratorStarted history rows (see the module docstring)."""
    table = f"{hub}Instances"
    first_commit: float | None = None
    first_start: float | None = None
    for instance_id in instance_ids:
        rows = store.query(table, partition_key=instance_id, row_key_from=HISTORY_PREFIX, row_key_to="I")
        async for row in rows:
            event = history_from_properties(row.properties)
            if event["EventType"] != EventType.ORCHESTRATOR_STARTED or row.timestamp is None:
                continue
            started = parse_timestamp(event["Timestamp"]).timestamp()
            if started <= killed_at:
                continue
            committed = row.timestamp.timestamp()
            if first_commit is None or committed < first_commit:
                first_commit, first_start = committed, started
            break  # later rows of this instance are later episodes
    return first_commit, first_start


async def check_exactly_once(repo: InstanceRepository, ids: list[str]) -> tuple[list[str], dict[str, float]]:
    """Problems found (empty: all good) and each completed instance's CompletedTime (epoch seconds)."""
    problems: list[str] = []
    completed_at: dict[str, float] = {}
    for instance_id in ids:
        record = await repo.get_record(instance_id)
        if record is None or record.status is not RuntimeStatus.COMPLETED:
            problems.append(f"{instance_id}: {record.status if record else 'missing'}")
            continue
        if json.loads(record.output or "null") != EXPECTED_OUTPUT:
            problems.append(f"{instance_id}: output {record.output}")
        history = await repo.read_history(instance_id, record.history_count)
        kinds = Counter(e["EventType"] for e in history)
        if kinds[EventType.EXECUTION_STARTED] != 1 or kinds[EventType.EXECUTION_COMPLETED] != 1:
            problems.append(
                f"{instance_id}: {kinds[EventType.EXECUTION_STARTED]} starts, "
                f"{kinds[EventType.EXECUTION_COMPLETED]} completions"
            )
        scheduled = Counter(e["EventId"] for e in history if e["EventType"] == EventType.TASK_SCHEDULED)
        completed = Counter(
            e["TaskScheduledId"] for e in history if e["EventType"] == EventType.TASK_COMPLETED
        )
        if scheduled != completed or len(scheduled) != 5 or max(completed.values(), default=0) != 1:
            problems.append(f"{instance_id}: task completions {dict(completed)} for {dict(scheduled)}")
        if record.completed_time is not None:
            completed_at[instance_id] = record.completed_time.timestamp()
    return problems, completed_at


async def run_once(
    spec: str, hub: str, case: Case, rate: float, folder: Path, kill_after: float, say: Any
) -> dict[str, Any]:
    app = write_app(folder, case)
    store = open_store(spec)
    control = ControlTable(store, hub, StoreOutage())
    repo = InstanceRepository(store, hub)
    hosts: list[Host] = []
    try:
        first = Host(app, spec, hub, folder / "host-0.log")
        hosts.append(first)
        await first.wait_listening()
        second = Host(app, spec, hub, folder / "host-1.log")
        hosts.append(second)
        await second.wait_listening()

        async def balanced() -> bool:
            leases, members = await owners(control)
            return all(len(owned_by_pid(leases, members, h.pid)) == PARTITIONS // 2 for h in hosts)

        await until(balanced, "the two processes to own 2 partitions each", 60, every=0.1)
        stream = Stream(rate, [first, second])
        async with aiohttp.ClientSession() as session:
            streaming = asyncio.create_task(stream.run(session))
            await asyncio.sleep(kill_after)
            leases, members = await owners(control)
            victim = max(hosts, key=lambda h: len(owned_by_pid(leases, members, h.pid)))
            survivor = second if victim is first else first
            dead_partitions = owned_by_pid(leases, members, victim.pid)
            survivor_member = next(m for m, pid in members.items() if pid == survivor.pid)
            in_flight_before = set(stream.acknowledged)
            stream.targets = [survivor]
            killed_at = time.time()
            os.kill(victim.pid, signal.SIGKILL)
            victim.process.wait()

            async def taken_over() -> bool:
                leases = {p: lease.owner for p, lease in (await control.read_leases()).items()}
                return all(leases[p] == survivor_member for p in dead_partitions)

            try:
                leases_taken_at: float | None = await until(
                    taken_over, "the survivor to hold the dead process's leases", case.lease + 10
                )
            except RuntimeError:
                leases_taken_at = None
            await asyncio.sleep(AFTER_TAKEOVER)
            stream.stop()
            await streaming
        ids = list(stream.acknowledged)
        say(f"  {len(ids)} instances acknowledged ({stream.refused} starts refused); waiting for them")

        async def all_finished() -> bool:
            for instance_id in ids:
                record = await repo.get_record(instance_id)
                if record is None or not record.status.is_finished:
                    return False
            return True

        stalled = False
        try:
            await until(all_finished, "every acknowledged instance to finish", STALL_LIMIT, every=0.25)
        except RuntimeError:
            stalled = True
        problems, completed_at = await check_exactly_once(repo, ids)
        dead_ids = [i for i in ids if partition_of(i, PARTITIONS) in dead_partitions]
        first_commit, first_start = await first_commits_after(store, hub, dead_ids, killed_at)
        # In flight at the kill: acknowledged before it, finished after it.
        in_flight_dead = [
            i for i in dead_ids if i in in_flight_before and completed_at.get(i, float("inf")) > killed_at
        ]
        last_in_flight_done = max((completed_at.get(i, float("nan")) for i in in_flight_dead), default=None)
        return {
            "failover_s": None if first_commit is None else first_commit - killed_at,
            "first_episode_started_s": None if first_start is None else first_start - killed_at,
            "leases_taken_s": None if leases_taken_at is None else leases_taken_at - killed_at,
            "in_flight_recovered_s": None if last_in_flight_done is None else last_in_flight_done - killed_at,
            "kill_after_s": round(kill_after, 3),
            "dead_partitions": sorted(dead_partitions),
            "acknowledged": len(ids),
            "refused": stream.refused,
            "in_dead_partitions": len(dead_ids),
            "in_flight_in_dead_partitions_at_kill": len(in_flight_dead),
            "stalled": stalled,
            "problems": problems[:20],
            "problem_count": len(problems),
        }
    except Exception:
        for n, host in enumerate(hosts):
            say(f"--- host {n} log (tail)\n{host.log()}")
        raise
    finally:
        for host in hosts:
            host.stop()
        await store.close()


# ---------------------------------------------------------------------- all runs


@dataclass
class Figure:
    runs: list[float]
    median: float = 0.0
    low: float = 0.0
    high: float = 0.0

    def __post_init__(self) -> None:
        if self.runs:
            self.median = round(statistics.median(self.runs), 3)
            self.low = round(min(self.runs), 3)
            self.high = round(max(self.runs), 3)


@dataclass
class Row:
    store: str
    case: str
    target_s: float
    failover: Figure
    leases_taken: Figure
    in_flight_recovered: Figure
    in_flight_at_kill: int  # in dead partitions, over all runs
    acknowledged: int
    completed_once: int
    stalls: int
    met: bool
    runs: list[dict[str, Any]]


def summarise(store: str, case: Case, runs: list[dict[str, Any]]) -> Row:
    def figures(key: str) -> Figure:
        return Figure([r[key] for r in runs if r[key] is not None])

    failover = figures("failover_s")
    acknowledged = sum(r["acknowledged"] for r in runs)
    bad = sum(r["problem_count"] for r in runs)
    stalls = sum(1 for r in runs if r["stalled"])
    met = len(failover.runs) == len(runs) and failover.high <= case.target and bad == 0 and stalls == 0
    return Row(
        store=store,
        case=case.name,
        target_s=case.target,
        failover=failover,
        leases_taken=figures("leases_taken_s"),
        in_flight_recovered=figures("in_flight_recovered_s"),
        in_flight_at_kill=sum(r["in_flight_in_dead_partitions_at_kill"] for r in runs),
        acknowledged=acknowledged,
        completed_once=acknowledged - bad,
        stalls=stalls,
        met=met,
        runs=runs,
    )


async def run(
    stores: list[str], cases: list[Case], repeats: int, rate: float, seed: int, say: Any
) -> list[Row]:
    rows: list[Row] = []
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        count = 0

        async def one_store(kind: str, connection: str | None) -> None:
            nonlocal count
            for case in cases:
                runs = []
                for repeat in range(repeats):
                    count += 1
                    folder = Path(tmp) / f"run-{count}"
                    folder.mkdir()
                    hub = f"Failover{uuid.uuid4().hex[:10]}"
                    spec = f"sqlite:{folder / 'store.sqlite'}" if connection is None else connection
                    say(f"{kind}: {case.name}, run {repeat + 1} of {repeats}")
                    kill_after = WARM_UP + rng.uniform(0, case.lease / 3)
                    result = await run_once(spec, hub, case, rate, folder, kill_after, say)
                    say(
                        f"  failover {result['failover_s']}, leases {result['leases_taken_s']}, "
                        f"problems {result['problem_count']}, stalled {result['stalled']}"
                    )
                    runs.append(result)
                rows.append(summarise(kind, case, runs))

        if "sqlite" in stores:
            await one_store("sqlite", None)
        if "azurite" in stores:
            async with Azurite() as azurite:
                await one_store("azurite", azurite.connection_string)
    return rows


def _cell(figure: Figure) -> str:
    if not figure.runs:
        return "n/a"
    return f"{figure.median:.2f} ({figure.low:.2f}-{figure.high:.2f})"


def markdown(rows: list[Row]) -> str:
    lines = [
        "| store | case | failover s, median (min-max) | target s | leases taken s | in-flight done s "
        "(instances) | completed once / acknowledged | stalls | ok |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r.store} | {r.case} | {_cell(r.failover)} | <= {r.target_s:g} | {_cell(r.leases_taken)} "
            f"| {_cell(r.in_flight_recovered)} ({r.in_flight_at_kill}) "
            f"| {r.completed_once} / {r.acknowledged} | {r.stalls} "
            f"| {'yes' if r.met else 'NO'} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--store", choices=["sqlite", "azurite", "all"], default="all")
    parser.add_argument("--repeats", type=int, default=None, help="runs per case (default 3, quick 1)")
    parser.add_argument("--rate", type=float, default=10.0, help="instances started per second")
    parser.add_argument("--seed", type=int, default=1, help="for the kill's point in the renewal cycle")
    parser.add_argument(
        "--cases", type=parse_cases, default=None, help="default on:15,on:5,off:15,off:5 (quick: on:2,off:2)"
    )
    parser.add_argument("--quick", action="store_true", help="a smoke test: lease 2 s, one repeat")
    args = parser.parse_args()
    cases = args.cases or parse_cases("on:2,off:2" if args.quick else "on:15,on:5,off:15,off:5")
    repeats = args.repeats or (1 if args.quick else 3)
    stores = ["sqlite", "azurite"] if args.store == "all" else [args.store]
    before = machine()
    uptime = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    started = time.perf_counter()
    say = lambda text: print(f"# {text}", file=sys.stderr)  # noqa: E731
    rows = asyncio.run(run(stores, cases, repeats, args.rate, args.seed, say))
    elapsed = time.perf_counter() - started
    after_load = [round(x, 2) for x in os.getloadavg()]

    print(
        f"machine: {before['cpus']} CPUs, Python {before['python']}, {before['platform']}; load average "
        f"{before['load_average']} before, {after_load} after; commit {before['commit']}"
    )
    print(
        f"repeats: {repeats}; {args.rate:g} HelloSequence5 starts/s; seed {args.seed}; "
        f"wall time {elapsed:.0f} s; uptime before: {uptime}\n"
    )
    print(markdown(rows))
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"failover-{stamp}.json"
    out.write_text(
        json.dumps(
            {
                "when": stamp,
                "args": {
                    "store": args.store,
                    "rate": args.rate,
                    "seed": args.seed,
                    "cases": [asdict(c) for c in cases],
                },
                "repeats": repeats,
                "wall_seconds": round(elapsed, 1),
                "machine": {**before, "uptime_before": uptime, "load_average_after": after_load},
                "results": [asdict(r) for r in rows],
            },
            indent=2,
        )
    )
    print(f"\nwritten to {out.relative_to(Path.cwd()) if out.is_relative_to(Path.cwd()) else out}")
    if any(r.stalls or r.completed_once != r.acknowledged for r in rows):
        sys.exit(1)  # a correctness failure, not a missed target


if __name__ == "__main__":
    main()
