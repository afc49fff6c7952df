"""Where activities run: on the owner of the scheduling instance's partition, or claimed by any process.

    python bench/activity_placement.py [--store sqlite|azurite|all] [--quick] [--repeats N]

durablehost runs an activity in the process that owns the scheduling instance's partition: the task row
is written by the episode that schedules it and the outcome by the next episode, so an activity costs no
storage request of its own. The alternative (DTFx's work-item queue, which any worker dequeues from) is
prototyped here on the real store with the best batching Table storage allows, to measure what it would
add:

* enqueue: one work row per activity in a shared work partition, through the engine's group-commit writer
  (rows scheduled together share transactions of up to 100);
* claim: two claimers (as two processes would) poll the work partition every 50 ms for unclaimed rows and
  claim each with a conditional update on its ETag (a batch of claims would fail whole on one conflict
  with the other claimer, so claims are single requests, like a queue's per-message visibility update);
* complete: the claimer deletes its row through a group-commit writer after running the (no-op) activity.
  Sending the outcome to the owner is not counted (it costs the owner-run design nothing either).

Two workloads, each repeated: a fan-out (1,000 activities enqueued at once, time until the last row is
deleted) and a sequence (100 activities one after another, each enqueued when the previous one completed:
what a chain of activities at idle sees). Requests are counted at the store port (bench/counting_store.py).
For scale, the engine's own figures on the same store in the same run: a fan-out of 1,000 activities end
to end and HelloSequence5's time per step at idle, everything included (episodes, replays, history).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

BENCH = Path(__file__).resolve().parent
for _path in (BENCH.parent, BENCH):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from counting_store import CountingStore  # noqa: E402
from engine_bench import APP, StoreMaker, fan_out, hello_latency, machine  # noqa: E402

from durablehost.azurite import Azurite  # noqa: E402
from durablehost.engine.groupcommit import PartitionWriter  # noqa: E402
from durablehost.engine.owed import StoreOutage  # noqa: E402
from durablehost.errors import EntityNotFound, EtagMismatch  # noqa: E402
from durablehost.functions import load_app  # noqa: E402
from durablehost.store import open_store  # noqa: E402
from durablehost.store.base import Condition, TableStore  # noqa: E402

RESULTS = BENCH / "results"
WORK = "work"
POLL = 0.05
CLAIM = timedelta(minutes=5)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class Run:
    seconds: float
    requests_per_activity: float
    per_activity_ms: float


class WorkTable:
    """The prototype: a shared work partition, group-committed enqueues and deletes, claiming pollers."""

    def __init__(self, store: TableStore, table: str) -> None:
        self.store = store
        self.table = table
        outage = StoreOutage()
        self.enqueuer = PartitionWriter(store, table, WORK, outage)
        self.completer = PartitionWriter(store, table, WORK, outage)
        self.done: dict[str, asyncio.Event] = {}
        self.ran = 0

    async def enqueue(self, keys: list[str]) -> None:
        for key in keys:
            self.done[key] = asyncio.Event()
        await asyncio.gather(*(self.enqueuer.upsert(key, {"ClaimedUntil": EPOCH}) for key in keys))

    async def claimer(self, name: str) -> None:
        while True:
            now = datetime.now(UTC)
            page = await self.store.query_page(
                self.table, partition_key=WORK, where=[Condition("ClaimedUntil", "lt", now)], page_size=1000
            )
            if not page.entities:
                await asyncio.sleep(POLL)
                continue
            for entity in page.entities:
                try:
                    await self.store.update(
                        self.table, WORK, entity.row_key, {"ClaimedUntil": now + CLAIM, "By": name},
                        etag=entity.etag,
                    )
                except (EtagMismatch, EntityNotFound):
                    continue  # the other claimer was first
                self.ran += 1  # the activity (a no-op) runs here
                asyncio.get_running_loop().create_task(self._complete(entity.row_key))

    async def _complete(self, key: str) -> None:
        await self.completer.delete(key)
        self.done[key].set()


async def prototype(spec: str, hub: str, count: int, *, at_once: bool) -> Run:
    store = CountingStore(open_store(spec))
    table = f"{hub}Work"
    await store.create_table(table)
    work = WorkTable(store, table)
    claimers = [asyncio.create_task(work.claimer(f"c{n}")) for n in range(2)]
    try:
        await asyncio.sleep(0.2)  # the claimers' first polls, not counted below
        before, started = store.total, time.perf_counter()
        keys = [f"{uuid.uuid4().hex}-{n}" for n in range(count)]
        if at_once:
            await work.enqueue(keys)
            await asyncio.gather(*(work.done[key].wait() for key in keys))
        else:
            for key in keys:
                await work.enqueue([key])
                await work.done[key].wait()
        seconds = time.perf_counter() - started
        requests = store.total - before
    finally:
        for task in claimers:
            task.cancel()
        await asyncio.gather(*claimers, return_exceptions=True)
        await store.close()
    if work.ran != count:
        raise RuntimeError(f"{work.ran} activities ran for {count} enqueued (a claim protocol bug)")
    return Run(seconds, requests / count, seconds / count * 1000)


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 2)


async def bench(kind: str, maker: StoreMaker, quick: bool, repeats: int) -> dict[str, float]:
    fan, chain = (50, 10) if quick else (1000, 100)
    fan_runs = [await prototype(*maker.next(), fan, at_once=True) for _ in range(repeats)]
    chain_runs = [await prototype(*maker.next(), chain, at_once=False) for _ in range(repeats)]
    functions = load_app(APP)
    engine_fan = [(await fan_out(*maker.next(), fan, 150.0))["seconds"] for _ in range(repeats)]
    steps = []
    for _ in range(repeats):
        samples = await hello_latency(*maker.next(), functions, 5 if quick else 30)
        steps.append(statistics.median(samples) / 6)  # 6 episodes: 5 activities and the last step
    return {
        "fan_out": fan,
        "claimed fan-out seconds": _median([r.seconds for r in fan_runs]),
        "claimed fan-out requests per activity": _median([r.requests_per_activity for r in fan_runs]),
        "engine fan-out seconds (owner-run, everything)": _median(engine_fan),
        "chain": chain,
        "claimed chain ms per activity": _median([r.per_activity_ms for r in chain_runs]),
        "claimed chain requests per activity": _median([r.requests_per_activity for r in chain_runs]),
        "engine ms per HelloSequence5 step (owner-run, everything)": _median(steps),
    }


async def run(which: str, quick: bool, repeats: int) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if which in ("sqlite", "all"):
            results["sqlite"] = await bench("sqlite", StoreMaker("sqlite", Path(tmp)), quick, repeats)
        if which in ("azurite", "all"):
            async with Azurite() as azurite:
                maker = StoreMaker("azurite", Path(tmp), azurite.connection_string)
                results["azurite"] = await bench("azurite", maker, quick, repeats)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--store", choices=["sqlite", "azurite", "all"], default="all")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args()
    repeats = args.repeats or (1 if args.quick else 3)
    before = machine()
    results = asyncio.run(run(args.store, args.quick, repeats))
    print(f"machine: {before['cpus']} CPUs, load average {before['load_average']}; commit {before['commit']}")
    print(f"repeats: {repeats} (medians)\n")
    for store, figures in results.items():
        print(store)
        for name, value in figures.items():
            print(f"  {name:<58} {value:>10}")
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"activity_placement-{stamp}.json"
    report = {"when": stamp, "repeats": repeats, "machine": before, "results": results}
    out.write_text(json.dumps(report, indent=2))
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
