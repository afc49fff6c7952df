"""Store outages: 10 instances in flight, the store gone for 20 s, then back (issue #14).

    python bench/outage.py [--store sqlite|azurite|all] [--outage 20] [--repeats 3] [--quick]

Each run starts a real ``durablehost start`` process on bench/apps/outage with a fresh store, starts 10
instances over the management API (3 activity chains of 6 steps of 0.25 s, 3 fan-outs of 8 activities of
lead + 0.5 s, 2 durable timers due in the middle of the outage, 2 waiting for an external event), waits
``--lead`` seconds (1 s) so that all of them are in flight, takes the store away for ``--outage``
seconds, and gives it back. Half-way through the outage the benchmark raises the two events as a careful
client does: with an Idempotency-Key, and on a 503 again after its Retry-After, until it is accepted.
When the store returns, a chain has at most ~0.5 s of activities left to run.

How the store goes away:

* **SQLite**: every operation of the store fails with ``StoreUnavailable``, as on a full disk or a write
  lock held past the busy timeout (tests/support/faults.py's ``FaultyStore``). That fault has to be
  injected inside the host's process, so the host is ``durablehost start`` run by a small launcher (this
  script with ``--serve-faulty``): the CLI's own code path, from argument parsing to the drained exit,
  with the store it opens wrapped in a FaultyStore that SIGUSR1 breaks and SIGUSR2 heals. A real
  ``BEGIN EXCLUSIVE`` from another process would not do: in WAL mode readers go on reading, and every
  write would wait out the busy timeout.
* **Azurite**: the host is a plain ``durablehost start`` whose connection string points at a TCP proxy
  (tests/support/faults.py's ``ResettingProxy``) in front of a real Azurite (in memory, free ports); while
  the store is down, the proxy resets every open and new connection, as an unreachable service does. Each
  run uses a new task hub on the one Azurite.

Measured in each run, from the moment the store is given back (the signal sent, the proxy up):

* **last finish after return**: the latest ExecutionCompleted timestamp (the engine's own, from the
  instance's history) minus that moment; target under 5 s;
* **stalled**: instances not finished ``--stall-after`` (60) seconds after the return; target 0;
* wrong outputs (each kind's output is known) and duplicate completions in history (a task, a timer or
  the event completed twice, two ExecutionCompleted); activity re-runs (at least once: allowed, counted);
* the event raises: the answers (503s, each with or without Retry-After, then 202) and when the accepted
  one was answered, relative to the return;
* the host's log lines at WARNING and above from the outage's start until every instance finished: the
  outage warnings ("storage is unavailable"), the recovery lines ("storage is back"), and every other
  line by kind. The engine should warn once per outage and log once on its end.

Every figure is a median over ``--repeats`` runs (default 3), with min and max. Prints a markdown table
and writes JSON to bench/results/. Exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
for _path in (REPO, REPO / "bench"):  # durablehost and tests.support from the checkout, and engine_bench
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import aiohttp  # noqa: E402
from engine_bench import machine  # noqa: E402

from durablehost.azurite import Azurite, AzuritePorts, connection_string  # noqa: E402
from durablehost.engine.history import EventType, parse_timestamp  # noqa: E402
from tests.http.hosting import MGMT, HostProcess  # noqa: E402
from tests.support.faults import FaultyStore, ResettingProxy  # noqa: E402

APP = Path(__file__).resolve().parent / "apps" / "outage"
RESULTS = Path(__file__).resolve().parent / "results"
SCRIPT = Path(__file__).resolve()
TARGET_SECONDS = 5.0
BREAK, HEAL = signal.SIGUSR1, signal.SIGUSR2
KINDS = ("chain", "fan_out", "timer", "event")  # instance i is KINDS[i % 4]
CHAIN_STEPS, CHAIN_STEP_SECONDS = 6, 0.25
FAN_OUT = 8
FINISHED = {"Completed", "Failed", "Terminated"}
_LOG_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) (?:\[\S+\] )?(WARNING|ERROR|CRITICAL) (\S+): (.*)$"
)


@dataclass(frozen=True)
class Config:
    outage: float
    lead: float
    repeats: int
    instances: int
    stall_after: float

    @property
    def fan_out_step(self) -> float:
        """A fan-out's activities end during the outage: their outcomes are owed when it starts."""
        return self.lead + 0.5


@dataclass(frozen=True)
class Planned:
    instance_id: str
    orchestrator: str
    input: dict[str, Any]
    expected: int
    event_value: int | None = None


def plan(config: Config, run: int) -> list[Planned]:
    planned = []
    for i in range(config.instances):
        kind = KINDS[i % len(KINDS)]
        instance_id = f"outage-{run}-{i}-{kind}-{uuid.uuid4().hex[:6]}"
        if kind == "chain":
            work: dict[str, Any] = {"n": CHAIN_STEPS, "seconds": CHAIN_STEP_SECONDS}
            planned.append(Planned(instance_id, kind, work, CHAIN_STEPS))
        elif kind == "fan_out":
            work = {"n": FAN_OUT, "seconds": config.fan_out_step}
            planned.append(Planned(instance_id, kind, work, FAN_OUT * (FAN_OUT + 1) // 2))
        elif kind == "timer":
            work = {"fire_in": config.lead + config.outage / 2, "seconds": CHAIN_STEP_SECONDS}
            planned.append(Planned(instance_id, kind, work, 42))
        else:
            work = {"seconds": CHAIN_STEP_SECONDS}
            planned.append(Planned(instance_id, kind, work, 8 + i, event_value=7 + i))
    return planned


# ---------------------------------------------------------------------- the SQLite launcher


def serve_faulty(argv: list[str]) -> int:
    """``durablehost start <argv>`` with the store wrapped in a FaultyStore: SIGUSR1 fails every operation
    from then on, SIGUSR2 heals it. The CLI is otherwise untouched (its banner names the faulty store)."""
    from durablehost.cli import main as cli_main
    from durablehost.http import serve

    choose = serve.choose_store

    async def faulty_choice(*args: Any) -> Any:
        choice = await choose(*args)
        faulty = FaultyStore(choice.store)

        def command(what: str, act: Callable[[], None]) -> None:
            act()
            print(f"fault: store {what} at {time.time():.3f}", file=sys.stderr, flush=True)

        loop = asyncio.get_running_loop()
        loop.add_signal_handler(BREAK, command, "down", faulty.fail)
        loop.add_signal_handler(HEAL, command, "back", faulty.heal)
        choice.store = faulty  # type: ignore[assignment]  # FaultyStore is a TableStore structurally
        return choice

    serve.choose_store = faulty_choice  # type: ignore[assignment]
    return cli_main(argv)


# ---------------------------------------------------------------------- one run


@dataclass
class Run:
    store: str
    in_flight_at_outage: int = 0
    last_finish_after_return: float | None = None
    finish_after_return: dict[str, float] = field(default_factory=dict)
    stalled: list[str] = field(default_factory=list)
    wrong_outputs: list[str] = field(default_factory=list)
    duplicate_completions: list[str] = field(default_factory=list)
    activity_runs: int = 0
    activity_reruns: int = 0
    raises: list[list[dict[str, Any]]] = field(default_factory=list)
    outage_warnings: int = 0
    recovery_lines: int = 0
    other_lines: dict[str, int] = field(default_factory=dict)
    host_exit: int | None = None


class Api:
    """The host's management API over one aiohttp session."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = f"{base}{MGMT}"

    async def start(self, planned: Planned) -> None:
        url = f"{self.base}/orchestrators/{planned.orchestrator}/{planned.instance_id}"
        async with self.session.post(url, json=planned.input) as answer:
            if answer.status != 202:
                raise RuntimeError(f"start {planned.instance_id}: {answer.status} {await answer.text()}")

    async def status(self, instance_id: str) -> dict[str, Any] | None:
        """The status, or None when the host could not answer it (the store is still away)."""
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with self.session.get(f"{self.base}/instances/{instance_id}") as answer:
                if answer.status in (200, 202):  # 202 while it runs
                    found: dict[str, Any] = await answer.json()
                    return found
        return None

    async def history(self, instance_id: str) -> list[dict[str, Any]]:
        async with self.session.get(f"{self.base}/instances/{instance_id}/export") as answer:
            if answer.status != 200:
                raise RuntimeError(f"export {instance_id}: {answer.status} {await answer.text()}")
            document = await answer.json()
        events: list[dict[str, Any]] = document["history"]
        return events

    async def raise_until_accepted(self, planned: Planned, deadline: float) -> list[dict[str, Any]]:
        """Raise ``go`` as a careful client does: one Idempotency-Key, and after a 503 again once its
        Retry-After has passed (1 s when it gives none), until accepted or ``deadline``."""
        url = f"{self.base}/instances/{planned.instance_id}/raiseEvent/go"
        headers = {"Content-Type": "application/json", "Idempotency-Key": uuid.uuid4().hex}
        attempts: list[dict[str, Any]] = []
        while time.time() < deadline:
            sent = time.time()
            try:
                async with self.session.post(url, data=json.dumps(planned.event_value), headers=headers) as a:
                    await a.read()
                    status, retry_after = a.status, a.headers.get("Retry-After")
            except (aiohttp.ClientError, TimeoutError) as error:
                status, retry_after = 0, None
                attempts.append({"sent": sent, "answered": time.time(), "status": 0, "error": repr(error)})
            else:
                attempts.append(
                    {"sent": sent, "answered": time.time(), "status": status, "retry_after": retry_after}
                )
            if status in (200, 202):
                break
            if status not in (0, 503):
                break  # a wrong answer: reported, not retried
            await asyncio.sleep(float(retry_after) if retry_after else 1.0)
        return attempts


def _completed_at(events: list[dict[str, Any]]) -> float | None:
    for event in events:
        if event["EventType"] == EventType.EXECUTION_COMPLETED:
            return parse_timestamp(event["Timestamp"]).timestamp()
    return None


def _duplicates(instance_id: str, events: list[dict[str, Any]]) -> list[str]:
    """Anything completed twice in one history."""
    seen: Counter[tuple[str, Any]] = Counter()
    for event in events:
        kind = EventType(event["EventType"])
        if kind in (EventType.TASK_COMPLETED, EventType.TASK_FAILED):
            seen[("task", event["TaskScheduledId"])] += 1
        elif kind is EventType.TIMER_FIRED:
            seen[("timer", event["TimerId"])] += 1
        elif kind in (EventType.TASK_SCHEDULED, EventType.TIMER_CREATED):
            seen[(kind.name, event["EventId"])] += 1
        elif kind in (EventType.EVENT_RAISED, EventType.EXECUTION_COMPLETED):
            seen[(kind.name, event.get("Name"))] += 1
    return [f"{instance_id}: {what} {key} x{n}" for (what, key), n in seen.items() if n > 1]


def _outage_lines(log: str, since: float, until: float) -> tuple[int, int, dict[str, int]]:
    """(outage warnings, recovery lines, other lines by kind) logged at WARNING+ in [since, until]."""
    down = back = 0
    others: Counter[str] = Counter()
    for line in log.splitlines():
        found = _LOG_LINE.match(line)
        if found is None:
            continue
        stamp, level, logger, message = found.groups()
        moment = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()  # local time, as logged
        if not since - 0.01 <= moment <= until:
            continue
        if message.startswith("storage is unavailable"):
            down += 1
        elif message.startswith("storage is back"):
            back += 1
        else:
            kind = re.sub(r"\b[0-9a-f]{6,}\b|\d+(\.\d+)?", "#", message)
            others[f"{level} {logger}: {kind[:110]}"] += 1
    return down, back, dict(others.most_common())


async def one_run(
    store: str,
    config: Config,
    run: int,
    launch: Callable[[Path], HostProcess],
    fault: Callable[[HostProcess], tuple[Callable[[], None], Callable[[], None]]],
    say: Callable[[str], None],
) -> Run:
    result = Run(store)
    planned = plan(config, run)
    with tempfile.TemporaryDirectory() as marks:
        host = launch(Path(marks))
        try:
            base = await asyncio.to_thread(host.wait_listening, 60)
            down, up = fault(host)
            timeout = aiohttp.ClientTimeout(total=30)
            async with aiohttp.ClientSession(timeout=timeout) as session:
                api = Api(session, base)
                await asyncio.gather(*(api.start(p) for p in planned))
                await asyncio.sleep(config.lead)
                statuses = await asyncio.gather(*(api.status(p.instance_id) for p in planned))
                result.in_flight_at_outage = sum(
                    1 for s in statuses if s is not None and s["runtimeStatus"] not in FINISHED
                )
                outage_started = time.time()
                down()
                say(f"{store} run {run + 1}: store down for {config.outage:g} s")
                give_up = outage_started + config.outage + config.stall_after

                async def raise_later(p: Planned) -> list[dict[str, Any]]:
                    await asyncio.sleep(config.outage / 2)
                    return await api.raise_until_accepted(p, give_up)

                raising = [asyncio.create_task(raise_later(p)) for p in planned if p.event_value is not None]
                await asyncio.sleep(config.outage)
                returned = time.time()
                up()
                await asyncio.sleep(0.1)  # polls sent with the signal could be answered before it lands
                pending = {p.instance_id for p in planned}
                while pending and time.time() < returned + config.stall_after:
                    looked = sorted(pending)
                    answers = await asyncio.gather(*(api.status(i) for i in looked))
                    for instance_id, status in zip(looked, answers, strict=True):
                        if status is not None and status["runtimeStatus"] in FINISHED:
                            pending.discard(instance_id)
                    await asyncio.sleep(0.1)
                settled = time.time()
                result.stalled = sorted(pending)
                result.raises = list(await asyncio.gather(*raising))
                for p in planned:
                    if p.instance_id in pending:
                        continue
                    events = await api.history(p.instance_id)
                    status = await api.status(p.instance_id) or {}
                    if status.get("runtimeStatus") != "Completed" or status.get("output") != p.expected:
                        result.wrong_outputs.append(
                            f"{p.instance_id}: {status.get('runtimeStatus')} {status.get('output')!r}, "
                            f"expected {p.expected}"
                        )
                    result.duplicate_completions += _duplicates(p.instance_id, events)
                    completed = _completed_at(events)
                    if completed is not None:
                        result.finish_after_return[p.instance_id] = round(completed - returned, 3)
                if result.finish_after_return:
                    result.last_finish_after_return = max(result.finish_after_return.values())
        finally:
            result.host_exit = await asyncio.to_thread(host.stop)
        runs = Counter(name.rsplit("~", 1)[0] for name in os.listdir(marks))
        result.activity_runs = sum(runs.values())
        result.activity_reruns = sum(n - 1 for n in runs.values())
    for attempts in result.raises:
        for attempt in attempts:
            attempt["sent"] = round(attempt["sent"] - returned, 3)
            attempt["answered"] = round(attempt["answered"] - returned, 3)
    result.outage_warnings, result.recovery_lines, result.other_lines = _outage_lines(
        host.log(), outage_started, settled
    )
    return result


# ---------------------------------------------------------------------- the stores


def _host_args(marks: Path) -> tuple[list[str], dict[str, str]]:
    args = ["--app-dir", str(APP), "--port", "0", "--log-level", "WARNING"]
    return args, {"MARK_DIR": str(marks)}


async def sqlite_runs(config: Config, say: Callable[[str], None]) -> list[Run]:
    with tempfile.TemporaryDirectory() as folder:

        def launch(run: int) -> Callable[[Path], HostProcess]:
            def start(marks: Path) -> HostProcess:
                args, env = _host_args(marks)
                store = f"sqlite:{Path(folder) / f'outage-{run}.sqlite'}"
                launcher = [sys.executable, str(SCRIPT), "--serve-faulty"]
                return HostProcess([*args, "--store", store], env=env, executable=launcher)

            return start

        def signals(host: HostProcess) -> tuple[Callable[[], None], Callable[[], None]]:
            return (lambda: host.process.send_signal(BREAK)), (lambda: host.process.send_signal(HEAL))

        return [
            await one_run("sqlite", config, run, launch(run), signals, say) for run in range(config.repeats)
        ]


async def azurite_runs(config: Config, say: Callable[[str], None]) -> list[Run]:
    async with Azurite() as azurite:
        proxy = await ResettingProxy("127.0.0.1", azurite.ports.table).start()
        ports = AzuritePorts(blob=azurite.ports.blob, queue=azurite.ports.queue, table=proxy.port)
        proxied = connection_string(ports)
        try:

            def launch(run: int) -> Callable[[Path], HostProcess]:
                def start(marks: Path) -> HostProcess:
                    args, env = _host_args(marks)
                    hub = f"Outage{os.getpid()}x{run}"
                    return HostProcess([*args, "--store", proxied, "--task-hub", hub], env=env)

                return start

            def resets(host: HostProcess) -> tuple[Callable[[], None], Callable[[], None]]:
                return proxy.down, proxy.up

            return [
                await one_run("azurite", config, run, launch(run), resets, say)
                for run in range(config.repeats)
            ]
        finally:
            await proxy.close()


STORES: dict[str, Callable[[Config, Callable[[str], None]], Awaitable[list[Run]]]] = {
    "sqlite": sqlite_runs,
    "azurite": azurite_runs,
}


# ---------------------------------------------------------------------- the report


def _spread(values: Sequence[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def summary(store: str, runs: list[Run], config: Config) -> dict[str, Any]:
    lasts = [r.last_finish_after_return for r in runs if r.last_finish_after_return is not None]
    attempts = [a for r in runs for raised in r.raises for a in raised]
    refusals = [a for a in attempts if a["status"] == 503]
    accepted = [raised[-1]["answered"] for r in runs for raised in r.raises if raised and
                raised[-1]["status"] in (200, 202)]  # fmt: skip
    events = sum(len(r.raises) for r in runs)
    others = Counter[str]()
    for r in runs:
        others.update(r.other_lines)
    met = (
        all(r.in_flight_at_outage == config.instances for r in runs)
        and len(lasts) == len(runs)
        and statistics.median(lasts) < TARGET_SECONDS
        and not any(r.stalled or r.wrong_outputs or r.duplicate_completions for r in runs)
        and len(accepted) == events
        and all(a.get("retry_after") for a in refusals)
    )
    return {
        "store": store,
        "runs": len(runs),
        "in_flight_at_outage": [r.in_flight_at_outage for r in runs],
        "last_finish_after_return": {
            "median": round(statistics.median(lasts), 3) if lasts else None,
            "min": min(lasts, default=None),
            "max": max(lasts, default=None),
            "runs": lasts,
        },
        "stalled": sum(len(r.stalled) for r in runs),
        "wrong_outputs": sum(len(r.wrong_outputs) for r in runs),
        "duplicate_completions": sum(len(r.duplicate_completions) for r in runs),
        "activity_reruns": [r.activity_reruns for r in runs],
        "event_503s": len(refusals),
        "event_503s_without_retry_after": sum(1 for a in refusals if not a.get("retry_after")),
        "events_accepted": f"{len(accepted)}/{events}",
        "event_accepted_after_return": accepted,
        "outage_warnings": [r.outage_warnings for r in runs],
        "recovery_lines": [r.recovery_lines for r in runs],
        "other_warning_lines": [sum(r.other_lines.values()) for r in runs],
        "other_warning_kinds": dict(others.most_common()),
        "target_met": met,
    }


def print_report(summaries: list[dict[str, Any]], config: Config, before: dict[str, Any], after: Any) -> None:
    print(
        f"durablehost store outages: {config.instances} instances in flight, store down {config.outage:g} s, "
        f"{config.repeats} runs per store; {before['cpus']} CPUs, Python {before['python']}, "
        f"load average {before['load_average']} before, {after} after; commit {before['commit']}\n"
    )
    print(
        "| store | in flight at the outage | last finish after return, s: median (min-max) | stalled "
        "| wrong outputs "
        "| duplicate completions | activity re-runs | event 503s (without Retry-After) | events accepted, "
        "s after return | outage warnings / recovery lines / other warning lines, per outage | target |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for s in summaries:
        last = s["last_finish_after_return"]
        accepted = ", ".join(f"{t:.2f}" for t in s["event_accepted_after_return"])
        lines = " / ".join(
            ",".join(str(n) for n in s[key])
            for key in ("outage_warnings", "recovery_lines", "other_warning_lines")
        )
        print(
            f"| {s['store']} | {min(s['in_flight_at_outage'])} of {config.instances} "
            f"| {_spread(last['runs'])} | {s['stalled']} | {s['wrong_outputs']} "
            f"| {s['duplicate_completions']} | {','.join(map(str, s['activity_reruns']))} "
            f"| {s['event_503s']} ({s['event_503s_without_retry_after']}) "
            f"| {s['events_accepted']}: {accepted} "
            f"| {lines} | {'met' if s['target_met'] else 'MISSED'} |"
        )
    print(
        f"\ntarget: the last instance finished under {TARGET_SECONDS:g} s after the store's return, "
        f"0 stalled (not finished {config.stall_after:g} s after it), every output right and completed "
        "once, every event accepted after 503s that carry Retry-After"
    )
    for s in summaries:
        for kind, count in s["other_warning_kinds"].items():
            print(f"{s['store']}: {count} x {kind}")


async def run(stores: list[str], config: Config) -> list[dict[str, Any]]:
    def say(text: str) -> None:
        print(f"# {text}", file=sys.stderr, flush=True)

    summaries = []
    details = {}
    for store in stores:
        runs = await STORES[store](config, say)
        details[store] = [asdict(r) for r in runs]
        summaries.append(summary(store, runs, config))
    for s in summaries:
        s["details"] = details[s["store"]]
    return summaries


def main() -> int:
    if sys.argv[1:2] == ["--serve-faulty"]:
        return serve_faulty(sys.argv[2:])
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--store", choices=["sqlite", "azurite", "all"], default="all")
    parser.add_argument("--outage", type=float, default=None, help="seconds the store is away (20; quick 3)")
    parser.add_argument("--repeats", type=int, default=None, help="runs per store (3; quick 1)")
    parser.add_argument("--lead", type=float, default=1.0, help="seconds between the starts and the outage")
    parser.add_argument("--instances", type=int, default=10)
    parser.add_argument("--stall-after", type=float, default=60.0, help="seconds after the return")
    parser.add_argument("--quick", action="store_true", help="a 3 s outage, one run: a smoke test")
    args = parser.parse_args()
    config = Config(
        outage=args.outage if args.outage is not None else (3.0 if args.quick else 20.0),
        lead=args.lead,
        repeats=args.repeats or (1 if args.quick else 3),
        instances=args.instances,
        stall_after=args.stall_after,
    )
    stores = ["sqlite", "azurite"] if args.store == "all" else [args.store]
    before = machine()
    started = time.perf_counter()
    summaries = asyncio.run(run(stores, config))
    after = [round(x, 2) for x in os.getloadavg()]
    print_report(summaries, config, before, after)
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"outage-{stamp}.json"
    out.write_text(
        json.dumps(
            {
                "when": stamp,
                "config": asdict(config),
                "wall_seconds": round(time.perf_counter() - started, 1),
                "machine": {**before, "load_average_after": after},
                "results": summaries,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"\nwritten to {out.relative_to(Path.cwd()) if out.is_relative_to(Path.cwd()) else out}")
    return 0 if all(s["target_met"] for s in summaries) else 1


if __name__ == "__main__":
    sys.exit(main())
