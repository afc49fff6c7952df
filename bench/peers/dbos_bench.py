"""DBOS (PyPI ``dbos``) on a SQLite system database: the compare.py workloads, one per run.

    bench/.peers/venv/bin/python bench/peers/dbos_bench.py {throughput,latency,fanout,event} --n N ...

* steps are ``@DBOS.step()`` no-ops (DBOS's unit of durable work, checkpointed in the system database);
* fan-out enqueues 1,000 steps on a DBOS queue from the workflow and waits for every handle (the
  documented DBOS fan-out); the queue keeps DBOS's default polling interval (1 s);
* events: ``DBOS.send`` to the workflow, which waits in ``DBOS.recv``.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from _common import FAN_OUT_WARM_UP, LATENCY_WARM_UP, MARKS, READY, emit, parser
from dbos import DBOS, DBOSConfig

QUEUE_NAME = "bench_fan_out"


@DBOS.step()
def noop(value: int) -> int:
    return value


@DBOS.workflow()
def hello_sequence5() -> list[int]:
    return [noop(i) for i in range(5)]


@DBOS.workflow()
def fan_out(count: int) -> int:
    queue = DBOS.retrieve_queue(QUEUE_NAME)
    handles = [queue.enqueue(noop, i) for i in range(count)]
    return len([h.get_result() for h in handles])


@DBOS.workflow()
def ping_loop(count: int) -> int:
    workflow_id = DBOS.workflow_id
    assert workflow_id is not None
    for i in range(count):
        READY.setdefault((workflow_id, i), time.perf_counter())
        DBOS.recv("ping", timeout_seconds=120)
        MARKS.setdefault((workflow_id, i), time.perf_counter())
        noop(i)
    return count


def _wait_for(table: dict[tuple[str, int], float], key: tuple[str, int], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while key not in table:
        if time.monotonic() > deadline:
            raise TimeoutError(f"no mark {key}")
        time.sleep(0.0005)


def main() -> None:
    args = parser(__doc__ or "").parse_args()
    workdir = Path(args.workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    config: DBOSConfig = {
        "name": "durablehost-bench",
        "system_database_url": f"sqlite:///{workdir / 'dbos.sqlite'}",
        "log_level": "WARNING",
    }
    DBOS(config=config)
    DBOS.launch()
    logging.getLogger("dbos").setLevel(logging.WARNING)
    result: dict[str, Any] = {"system": "dbos", "workload": args.workload}
    try:
        if args.workload == "throughput":
            hello_sequence5()  # warm-up
            started = time.perf_counter()
            handles = [DBOS.start_workflow(hello_sequence5) for _ in range(args.n)]
            for handle in handles:
                handle.get_result()
            result["seconds"] = time.perf_counter() - started
            result["per_second"] = args.n / result["seconds"]
        elif args.workload == "latency":
            samples = []
            for i in range(args.n + LATENCY_WARM_UP):
                started = time.perf_counter()
                DBOS.start_workflow(hello_sequence5).get_result()
                if i >= LATENCY_WARM_UP:
                    samples.append((time.perf_counter() - started) * 1000)
            result["samples_ms"] = samples
        elif args.workload == "fanout":
            DBOS.register_queue(QUEUE_NAME)
            DBOS.start_workflow(fan_out, FAN_OUT_WARM_UP).get_result()
            started = time.perf_counter()
            assert DBOS.start_workflow(fan_out, args.n).get_result() == args.n
            result["seconds"] = time.perf_counter() - started
        else:
            samples = []
            for n in range(args.instances + 1):  # the first instance is the warm-up
                handle = DBOS.start_workflow(ping_loop, args.n)
                workflow_id = handle.get_workflow_id()
                for i in range(args.n):
                    _wait_for(READY, (workflow_id, i))
                    called = time.perf_counter()
                    DBOS.send(workflow_id, i, topic="ping")
                    _wait_for(MARKS, (workflow_id, i))
                    if n:
                        samples.append((MARKS[(workflow_id, i)] - called) * 1000)
                handle.get_result()
            result["samples_ms"] = samples
    finally:
        emit(result)
        DBOS.destroy(destroy_registry=True)
    os._exit(0)


if __name__ == "__main__":
    main()
