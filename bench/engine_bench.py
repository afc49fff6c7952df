"""Engine benchmark: orchestrations end to end on a real store, against the goals of issue #3.

    python bench/engine_bench.py [--store sqlite|azurite|all] [--quick] [--repeats N]

Workloads (app: bench/apps/engine), each on SQLite (a file, WAL) and on Azurite (started from the
project's node_modules, in memory, free ports), each repeated ``--repeats`` times (default 3):

* HelloSequence5 throughput: 100 instances started at once (concurrent ``start_new``), 5 sequential
  no-op activities each; count / (last CompletedTime - first CreatedTime), the Netherite/MSSQL method of
  backend-notes §5. The timestamps are the engine's own (instance rows), so how the benchmark waits for
  the end does not affect the figure.
* HelloSequence5 latency at idle: one instance at a time, CompletedTime - CreatedTime, p50/p99 over 30
  runs after 3 warm-up runs.
* Table requests per HelloSequence5 instance, counted at the store port (bench/counting_store.py: one per
  single-entity call, per batch, per query page, as Azure bills them): 100 instances at once, and 30 one at
  a time (the next starts when the engine has finished the last), from the first start until the engine
  is idle again (writes that linger included). The figure includes the background requests made
  meanwhile (lease renewals, wake-up polls); their rate, measured over 3 s at idle before, is shown too.
* Fan-out/fan-in of 1,000 and 10,000 no-op activities: end-to-end seconds (CompletedTime - CreatedTime)
  and peak RSS increase, measured in a child process that hosts the engine alone: the peak is reset
  (/proc/self/clear_refs) after a warm-up run, baseline = VmRSS then, peak = VmHWM at the end.
* Event to episode: p50/p99 from ``raise_event`` returning to the orchestrator code after
  ``yield wait_for_external_event("ping")`` running live (the app marks time.perf_counter() the first
  time that line runs; replays find the mark set). The engine alone decides when that happens; the
  benchmark only waits for the host to go idle between pings. 10 instances x 25 pings (250 samples)
  after a warm-up instance; each instance's history stays below ~180 events.

The host runs in-process with a WallClock and default DispatcherOptions. Every metric is a median over
the repeats, with min and max. Prints a table and writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
for _path in (REPO, REPO / "bench"):  # durablehost from the checkout, and this folder's helpers
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from counting_store import CountingStore  # noqa: E402
from procinfo import machine  # noqa: E402

from durablehost.azurite import Azurite  # noqa: E402
from durablehost.engine.clock import WallClock  # noqa: E402
from durablehost.engine.host import DurableHost  # noqa: E402
from durablehost.engine.records import InstanceRecord, RuntimeStatus  # noqa: E402
from durablehost.functions import FunctionIndex, load_app  # noqa: E402
from durablehost.store import TableStore, open_store  # noqa: E402

APP = Path(__file__).resolve().parent / "apps" / "engine"
RESULTS = Path(__file__).resolve().parent / "results"
SCRIPT = Path(__file__).resolve()
# A fan-out that has not finished after this long is stopped and reported as "> limit" (not repeated).
FAN_OUT_LIMIT_S = 150.0


@dataclass(frozen=True)
class Sizes:
    hello_instances: int
    latency_runs: int
    fan_outs: tuple[int, ...]
    event_instances: int
    pings_per_instance: int
    counted_at_once: int  # instances whose store requests are counted, started at once
    counted_one_by_one: int  # ... and one at a time
    background_window: float  # seconds of idle over which the background request rate is measured


FULL = Sizes(
    hello_instances=100,
    latency_runs=30,
    fan_outs=(1000, 10000),
    event_instances=10,
    pings_per_instance=25,
    counted_at_once=100,
    counted_one_by_one=30,
    background_window=3.0,
)
QUICK = Sizes(
    hello_instances=10,
    latency_runs=5,
    fan_outs=(50,),
    event_instances=2,
    pings_per_instance=5,
    counted_at_once=5,
    counted_one_by_one=5,
    background_window=0.5,
)

# (store, metric) -> (comparison, target) from issue #3; metrics without an entry have no target.
TARGETS: dict[tuple[str, str], tuple[str, float]] = {
    ("sqlite", "HelloSequence5 throughput"): (">=", 171),
    ("azurite", "HelloSequence5 throughput"): (">=", 45),
    # issue #13: at most 9 Table requests per HelloSequence5 instance (it was about 16)
    ("sqlite", "requests per instance, 100 at once"): ("<=", 9),
    ("azurite", "requests per instance, 100 at once"): ("<=", 9),
    ("sqlite", "requests per instance, one at a time"): ("<=", 9),
    ("azurite", "requests per instance, one at a time"): ("<=", 9),
    ("sqlite", "fan-out 1000 seconds"): ("<=", 5),
    ("sqlite", "fan-out 10000 seconds"): ("<=", 45),
    ("sqlite", "fan-out 10000 RSS increase"): ("<=", 300),
    ("sqlite", "event to episode p50"): ("<=", 25),
    # backend-notes §5, G2/G3/G5 (not in the list, shown for reference)
    ("sqlite", "HelloSequence5 latency p50"): ("<=", 100),
    ("sqlite", "HelloSequence5 latency p99"): ("<=", 250),
    ("sqlite", "fan-out 1000 RSS increase"): ("<=", 100),
    ("sqlite", "event to episode p99"): ("<=", 150),
}


@dataclass
class Metric:
    store: str
    metric: str
    unit: str
    runs: list[float]
    median: float = 0.0
    low: float = 0.0
    high: float = 0.0
    target: str = ""
    met: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.median = round(statistics.median(self.runs), 3)
        self.low = round(min(self.runs), 3)
        self.high = round(max(self.runs), 3)
        goal = TARGETS.get((self.store, self.metric))
        if goal is not None:
            comparison, value = goal
            self.target = f"{comparison} {value:g}"
            self.met = self.median >= value if comparison == ">=" else self.median <= value


def _percentile(samples: Sequence[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _seconds(record: InstanceRecord) -> float:
    assert record.completed_time is not None
    return (record.completed_time - record.created_time).total_seconds()


# ---------------------------------------------------------------------- running a host


class StoreMaker:
    """A fresh store for each measurement: a new SQLite file, or a new task hub on the one Azurite."""

    def __init__(self, kind: str, tmp: Path, connection_string: str | None = None) -> None:
        self.kind = kind
        self.tmp = tmp
        self.connection_string = connection_string
        self.count = 0

    def next(self) -> tuple[str, str]:
        """(store spec, hub name)"""
        self.count += 1
        hub = f"Bench{os.getpid()}x{self.count}"
        if self.kind == "sqlite":
            return f"sqlite:{self.tmp / f'bench-{self.count}.sqlite'}", hub
        assert self.connection_string is not None
        return self.connection_string, hub


@asynccontextmanager
async def running_host(
    spec: str, hub: str, functions: FunctionIndex, wrap: Callable[[TableStore], TableStore] | None = None
) -> AsyncIterator[DurableHost]:
    store: TableStore = open_store(spec)
    if wrap is not None:
        store = wrap(store)
    host = DurableHost(store, functions, WallClock(), hub=hub)
    await host.start()
    try:
        yield host
    finally:
        await host.stop(drain=False)
        await store.close()


async def wait_finished(host: DurableHost, ids: Sequence[str], timeout: float = 600) -> list[InstanceRecord]:
    """Wait until every instance is finished; return their rows. Polls the dispatcher cheaply (no I/O)."""
    async with asyncio.timeout(timeout):
        while True:
            if host.dispatcher.errors:
                raise host.dispatcher.errors[0]
            if host.dispatcher.is_idle(include_timers=False):
                records = [await host.get_record(i) for i in ids]
                if all(r is not None and r.status.is_finished for r in records):
                    done = [r for r in records if r is not None]
                    failed = [r for r in done if r.status is not RuntimeStatus.COMPLETED]
                    if failed:
                        bad = failed[0]
                        raise RuntimeError(f"{bad.instance_id} ended {bad.status}: {bad.output}")
                    return done
            await asyncio.sleep(0.02)


async def wait_idle(host: DurableHost) -> None:
    while not host.dispatcher.is_idle(include_timers=False):
        if host.dispatcher.errors:
            raise host.dispatcher.errors[0]
        await asyncio.sleep(0.005)


# ---------------------------------------------------------------------- workloads


async def hello_throughput(spec: str, hub: str, functions: FunctionIndex, n: int) -> float:
    async with running_host(spec, hub, functions) as host:
        warm = await host.start_new("hello_sequence5")
        await wait_finished(host, [warm])
        ids = await asyncio.gather(*(host.start_new("hello_sequence5") for _ in range(n)))
        records = await wait_finished(host, ids)
    first = min(r.created_time for r in records)
    last = max(r.completed_time for r in records if r.completed_time is not None)
    return n / (last - first).total_seconds()


async def hello_latency(spec: str, hub: str, functions: FunctionIndex, runs: int) -> list[float]:
    async with running_host(spec, hub, functions) as host:
        samples = []
        for i in range(runs + 3):
            instance_id = await host.start_new("hello_sequence5")
            (record,) = await wait_finished(host, [instance_id])
            if i >= 3:
                samples.append(_seconds(record) * 1000)
    return samples


async def hello_requests(
    spec: str, hub: str, functions: FunctionIndex, n: int, *, at_once: bool, background_window: float
) -> dict[str, Any]:
    """Store requests per instance (see the module docstring); completion is seen in the engine's cache,
    so the benchmark itself makes no request."""
    counting: list[CountingStore] = []

    def wrap(store: TableStore) -> TableStore:
        counting.append(CountingStore(store))
        return counting[0]

    async def finished(instance_id: str) -> None:
        while True:
            state = host.dispatcher.cache.get(instance_id)
            if state is not None and state.record.status.is_finished:
                return
            await asyncio.sleep(0.001)

    async with running_host(spec, hub, functions, wrap) as host:
        store = counting[0]
        warm = await host.start_new("hello_sequence5")
        await wait_finished(host, [warm])
        await wait_idle(host)
        await asyncio.sleep(background_window / 3)
        before, idle_started = store.total, time.perf_counter()
        await asyncio.sleep(background_window)
        background = (store.total - before) / (time.perf_counter() - idle_started)
        start_counts, started = store.snapshot(), time.perf_counter()
        if at_once:
            ids = await asyncio.gather(*(host.start_new("hello_sequence5") for _ in range(n)))
            await asyncio.gather(*(finished(i) for i in ids))
        else:
            for _ in range(n):
                await finished(await host.start_new("hello_sequence5"))
        await wait_idle(host)
        seconds = time.perf_counter() - started
        counts = store.snapshot()
        counts.subtract(start_counts)
        total = sum(counts.values())
    by_kind = {
        f"{op} {table.removeprefix(hub)}": round(v / n, 2) for (op, table), v in counts.most_common() if v
    }
    return {
        "per_instance": total / n,
        "per_instance_without_background": (total - background * seconds) / n,
        "background_per_second": background,
        "seconds": seconds,
        "by_kind": by_kind,
    }


async def event_latency(
    spec: str, hub: str, functions: FunctionIndex, instances: int, pings: int
) -> tuple[list[float], list[float]]:
    """Latencies (ms) from raise_event returning, and from calling it, to the orchestrator's next step."""
    marks: dict[tuple[str, int], float] = sys.modules["function_app"].MARKS
    after: list[float] = []
    before: list[float] = []
    async with running_host(spec, hub, functions) as host:
        for n in range(instances + 1):  # the first instance is the warm-up
            instance_id = await host.start_new("ping_loop", input_text=json.dumps(pings))
            await wait_idle(host)
            for i in range(pings):
                called = time.perf_counter()
                await host.raise_event(instance_id, "ping", None)
                returned = time.perf_counter()
                await wait_idle(host)
                if n:
                    after.append((marks[(instance_id, i)] - returned) * 1000)
                    before.append((marks[(instance_id, i)] - called) * 1000)
            await wait_finished(host, [instance_id])
    return after, before


async def fan_out_child(spec: str, hub: str, count: int, limit: float) -> dict[str, float]:
    """Runs in the child process: one fan-out after a small warm-up, with memory figures."""
    functions = load_app(APP)
    async with running_host(spec, hub, functions) as host:
        warm = await host.start_new("fan_out", input_text="20")
        await wait_finished(host, [warm])
        reset = _reset_peak_rss()
        baseline = _proc_status_kb("VmRSS")
        episodes_before = host.dispatcher.episodes
        started = time.perf_counter()
        instance_id = await host.start_new("fan_out", input_text=json.dumps(count))
        try:
            (record,) = await wait_finished(host, [instance_id], timeout=limit)
            seconds, timed_out, consumed = _seconds(record), 0.0, float(count)
        except TimeoutError:
            state = await host.state_of(instance_id)
            seconds, timed_out = time.perf_counter() - started, 1.0
            consumed = float(sum(t.consumed for t in state.tasks.values())) if state else 0.0
        peak = _proc_status_kb("VmHWM") if reset else max(baseline, _proc_status_kb("VmHWM"))
        episodes = host.dispatcher.episodes - episodes_before
    return {
        "seconds": seconds,
        "timed_out": timed_out,
        "results_in_history": consumed,
        "rss_baseline_mb": baseline / 1024,
        "rss_peak_mb": peak / 1024,
        "rss_increase_mb": (peak - baseline) / 1024,
        "peak_was_reset": float(reset),
        "episodes": float(episodes),
    }


def _proc_status_kb(field_name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field_name}")


def _reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0), so the peak is the run's own."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


async def fan_out(spec: str, hub: str, count: int, limit: float) -> dict[str, float]:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        str(SCRIPT),
        "--child-fan-out",
        str(count),
        spec,
        hub,
        str(limit),
        stdout=subprocess.PIPE,
        cwd=REPO,
    )
    out, _ = await asyncio.wait_for(child.communicate(), timeout=limit + 120)
    if child.returncode != 0:
        raise RuntimeError(f"fan-out child exited with {child.returncode}")
    result: dict[str, float] = json.loads(out.decode().strip().splitlines()[-1])
    return result


# ---------------------------------------------------------------------- one store


Progress = Callable[[str], None]


async def bench_store(
    store: str, maker: StoreMaker, sizes: Sizes, repeats: int, say: Progress
) -> list[Metric]:
    functions = load_app(APP)
    metrics: list[Metric] = []

    say(f"{store}: HelloSequence5 x{sizes.hello_instances} throughput")
    runs = [await hello_throughput(*maker.next(), functions, sizes.hello_instances) for _ in range(repeats)]
    metrics.append(Metric(store, "HelloSequence5 throughput", "orch/s", runs))

    for label, at_once, count in (
        (f"{sizes.counted_at_once} at once", True, sizes.counted_at_once),
        ("one at a time", False, sizes.counted_one_by_one),
    ):
        say(f"{store}: Table requests per HelloSequence5 instance, {label}")
        counted = [
            await hello_requests(
                *maker.next(), functions, count, at_once=at_once, background_window=sizes.background_window
            )
            for _ in range(repeats)
        ]
        extra = {
            "instances": count,
            "without_background": [round(c["per_instance_without_background"], 2) for c in counted],
            "background_per_second": [round(c["background_per_second"], 1) for c in counted],
            "by_kind_first_run": counted[0]["by_kind"],
        }
        metrics.append(
            Metric(
                store,
                f"requests per instance, {label}",
                "req",
                [c["per_instance"] for c in counted],
                extra=extra,
            )
        )

    say(f"{store}: HelloSequence5 latency at idle")
    p50s, p99s = [], []
    for _ in range(repeats):
        samples = await hello_latency(*maker.next(), functions, sizes.latency_runs)
        p50s.append(_percentile(samples, 0.5))
        p99s.append(_percentile(samples, 0.99))
    metrics.append(Metric(store, "HelloSequence5 latency p50", "ms", p50s))
    metrics.append(Metric(store, "HelloSequence5 latency p99", "ms", p99s))

    for count in sizes.fan_outs:
        say(f"{store}: fan-out/fan-in {count}")
        outcomes: list[dict[str, float]] = []
        for _ in range(repeats):
            outcomes.append(await fan_out(*maker.next(), count, FAN_OUT_LIMIT_S))
            if outcomes[-1]["timed_out"]:
                break  # the engine is far off here; repeating a timed-out run only costs minutes
        extra = {
            "baseline_mb": [round(o["rss_baseline_mb"], 1) for o in outcomes],
            "episodes": [o["episodes"] for o in outcomes],
            "timed_out": any(o["timed_out"] for o in outcomes),
            "results_in_history_at_stop": [o["results_in_history"] for o in outcomes],
        }
        metrics.append(
            Metric(store, f"fan-out {count} seconds", "s", [o["seconds"] for o in outcomes], extra=extra)
        )
        metrics.append(
            Metric(store, f"fan-out {count} RSS increase", "MB", [o["rss_increase_mb"] for o in outcomes])
        )

    say(f"{store}: event to episode")
    after50, after99, before50 = [], [], []
    samples_count = 0
    for _ in range(repeats):
        after, before = await event_latency(
            *maker.next(), functions, sizes.event_instances, sizes.pings_per_instance
        )
        samples_count = len(after)
        after50.append(_percentile(after, 0.5))
        after99.append(_percentile(after, 0.99))
        before50.append(_percentile(before, 0.5))
    extra = {"samples_per_run": samples_count}
    metrics.append(Metric(store, "event to episode p50", "ms", after50, extra=extra))
    metrics.append(Metric(store, "event to episode p99", "ms", after99, extra=extra))
    metrics.append(Metric(store, "event incl. raise_event p50", "ms", before50, extra=extra))
    return metrics


async def run(which: str, sizes: Sizes, repeats: int, say: Progress) -> list[Metric]:
    metrics: list[Metric] = []
    with tempfile.TemporaryDirectory() as tmp:
        if which in ("sqlite", "all"):
            metrics += await bench_store("sqlite", StoreMaker("sqlite", Path(tmp)), sizes, repeats, say)
        if which in ("azurite", "all"):
            async with Azurite() as azurite:
                maker = StoreMaker("azurite", Path(tmp), azurite.connection_string)
                metrics += await bench_store("azurite", maker, sizes, repeats, say)
    return metrics


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--store", choices=["sqlite", "azurite", "all"], default="all")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repeat: a smoke test")
    parser.add_argument("--repeats", type=int, default=None, help="runs per metric (default 3, quick 1)")
    parser.add_argument(
        "--child-fan-out", nargs=4, metavar=("COUNT", "SPEC", "HUB", "LIMIT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()

    if args.child_fan_out:
        count, spec, hub, limit = args.child_fan_out
        print(json.dumps(asyncio.run(fan_out_child(spec, hub, int(count), float(limit)))), flush=True)
        return

    sizes = QUICK if args.quick else FULL
    repeats = args.repeats or (1 if args.quick else 3)
    before = machine()
    started = time.perf_counter()
    metrics = asyncio.run(run(args.store, sizes, repeats, lambda text: print(f"# {text}", file=sys.stderr)))
    elapsed = time.perf_counter() - started
    after_load = [round(x, 2) for x in os.getloadavg()]

    print(
        f"machine: {before['cpus']} CPUs, Python {before['python']}, {before['platform']}, "
        f"load average {before['load_average']} before, {after_load} after; commit {before['commit']}"
    )
    print(f"repeats: {repeats}; sizes: {asdict(sizes)}; wall time {elapsed:.0f} s\n")
    header = (
        f"{'store':<8} {'metric':<38} {'unit':<7} {'median':>9} {'min':>9} {'max':>9} {'target':>8} {'ok':>4}"
    )
    print(header)
    print("-" * len(header))
    for m in metrics:
        ok = "" if m.met is None else ("yes" if m.met else "NO")
        if m.extra.get("timed_out") and m.unit == "s":
            ok += " (stopped at limit: a lower bound)"
        print(
            f"{m.store:<8} {m.metric:<38} {m.unit:<7} {m.median:>9.2f} {m.low:>9.2f} {m.high:>9.2f} "
            f"{m.target:>8} {ok:>4}"
        )
    for m in metrics:
        if m.metric.startswith("requests per instance"):
            print(
                f"\n{m.store} {m.metric}: without background {m.extra['without_background']}, background "
                f"{m.extra['background_per_second']} req/s; first run by kind: {m.extra['by_kind_first_run']}"
            )

    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"engine_bench-{stamp}.json"
    out.write_text(
        json.dumps(
            {
                "when": stamp,
                "args": {k: v for k, v in vars(args).items() if k != "child_fan_out"},
                "repeats": repeats,
                "sizes": asdict(sizes),
                "wall_seconds": round(elapsed, 1),
                "machine": {**before, "load_average_after": after_load},
                "results": [asdict(m) for m in metrics],
            },
            indent=2,
        )
    )
    print(f"\nwritten to {out.relative_to(Path.cwd()) if out.is_relative_to(Path.cwd()) else out}")


if __name__ == "__main__":
    main()
