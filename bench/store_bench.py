"""Store micro-benchmark: latency and throughput of the TableStore implementations.

    python bench/store_bench.py [--store sqlite|azurite|all] [--n N]

For each store: p50/p99 latency of sequential get, insert, conditional update and 100-operation
transaction, and the throughput of inserts issued by 64 concurrent tasks. Azurite is started from the
project's node_modules (in memory, free ports) and stopped afterwards. Prints a table and writes JSON
to bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from durablehost.azurite import Azurite
from durablehost.store import Op, Properties, SqliteTableStore, TableStore, UpdateMode
from durablehost.store.azure_tables import AzureTableStore

RESULTS = Path(__file__).resolve().parent / "results"
CONCURRENCY = 64
# ~200 bytes, like the history rows of a small orchestration.
PAYLOAD: Properties = {"Name": "SayHello", "Input": '"Tokyo"' * 20, "Seq": 3, "Flag": True}


@dataclass
class Result:
    store: str
    operation: str
    count: int
    p50_ms: float
    p99_ms: float
    per_second: float


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _timed(count: int, call: Callable[[int], Awaitable[object]]) -> tuple[list[float], float]:
    latencies: list[float] = []
    started = time.perf_counter()
    for i in range(count):
        t0 = time.perf_counter()
        await call(i)
        latencies.append(time.perf_counter() - t0)
    return latencies, time.perf_counter() - started


def _result(store: str, operation: str, latencies: list[float], elapsed: float, units: int) -> Result:
    return Result(
        store,
        operation,
        len(latencies),
        round(_percentile(latencies, 0.50) * 1000, 3),
        round(_percentile(latencies, 0.99) * 1000, 3),
        round(units / elapsed, 1),
    )


async def bench_store(name: str, store: TableStore, n: int) -> list[Result]:
    table = f"bench{os.getpid()}"
    await store.create_table(table)
    results: list[Result] = []
    try:
        lat, elapsed = await _timed(n, lambda i: store.insert(table, "seq", f"{i:08}", PAYLOAD))
        results.append(_result(name, "insert", lat, elapsed, n))

        lat, elapsed = await _timed(n, lambda i: store.get(table, "seq", f"{i:08}"))
        results.append(_result(name, "get", lat, elapsed, n))

        etag = (await store.get(table, "seq", "00000000")).etag

        async def conditional_update(i: int) -> None:
            nonlocal etag
            etag = await store.update(table, "seq", "00000000", {"Seq": i}, etag=etag)

        lat, elapsed = await _timed(n, conditional_update)
        results.append(_result(name, "conditional update", lat, elapsed, n))

        batches = max(5, n // 20)

        async def transaction(i: int) -> None:
            await store.transact(
                table, [Op.upsert(f"tx{i}", f"{j:03}", PAYLOAD, UpdateMode.REPLACE) for j in range(100)]
            )

        lat, elapsed = await _timed(batches, transaction)
        results.append(_result(name, "transaction (100 ops), rows/s", lat, elapsed, 100 * batches))

        total = 2 * n
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(total):
            queue.put_nowait(i)
        lat = []

        async def worker() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                t0 = time.perf_counter()
                await store.insert(table, f"c{i % 16}", f"{i:08}", PAYLOAD)
                lat.append(time.perf_counter() - t0)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        results.append(
            _result(name, f"insert x{CONCURRENCY} concurrent", lat, time.perf_counter() - started, total)
        )
    finally:
        await store.delete_table(table)
        await store.close()
    return results


async def run(which: str, n: int) -> list[Result]:
    results: list[Result] = []
    if which in ("sqlite", "all"):
        with tempfile.TemporaryDirectory() as tmp:
            results += await bench_store(
                "sqlite (file, WAL)", SqliteTableStore(Path(tmp) / "bench.sqlite"), n
            )
        results += await bench_store("sqlite (memory)", SqliteTableStore(":memory:"), n)
    if which in ("azurite", "all"):
        async with Azurite() as azurite:
            results += await bench_store("azurite (memory)", AzureTableStore(azurite.connection_string), n)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--store", choices=["sqlite", "azurite", "all"], default="all")
    parser.add_argument("--n", type=int, default=1000, help="sequential operations per measurement")
    args = parser.parse_args()
    results = asyncio.run(run(args.store, args.n))

    header = f"{'store':<20} {'operation':<32} {'count':>6} {'p50 ms':>8} {'p99 ms':>8} {'per s':>9}"
    print(header)
    print("-" * len(header))
    for r in results:
        figures = f"{r.count:>6} {r.p50_ms:>8.3f} {r.p99_ms:>8.3f} {r.per_second:>9.1f}"
        print(f"{r.store:<20} {r.operation:<32} {figures}")

    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"store_bench-{stamp}.json"
    out.write_text(
        json.dumps(
            {
                "when": stamp,
                "args": vars(args),
                "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
                "results": [asdict(r) for r in results],
            },
            indent=2,
        )
    )
    print(f"\nwritten to {out.relative_to(Path.cwd()) if out.is_relative_to(Path.cwd()) else out}")


if __name__ == "__main__":
    main()
