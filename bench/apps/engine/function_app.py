"""The engine benchmark's app (bench/engine_bench.py), written with the real SDK decorators.

Activities are plain synchronous no-ops, the way most Functions apps write them, so they run in the
host's activity thread pool.
"""

import time

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)

# (instance id, ping number) -> time.perf_counter() when the orchestrator code after the ping-th wait ran
# for the first time, i.e. live rather than in a replay. Read by the benchmark in the same process.
MARKS: dict[tuple[str, int], float] = {}


@app.orchestration_trigger(context_name="context")
def hello_sequence5(context: df.DurableOrchestrationContext):
    results = []
    for i in range(5):
        results.append((yield context.call_activity("noop", i)))
    return results


@app.orchestration_trigger(context_name="context")
def fan_out(context: df.DurableOrchestrationContext):
    count = context.get_input()
    tasks = [context.call_activity("noop", i) for i in range(count)]
    results = yield context.task_all(tasks)
    return len(results)


@app.orchestration_trigger(context_name="context")
def ping_loop(context: df.DurableOrchestrationContext):
    """Wait for ``count`` pings; after each, mark the time and call an activity (a real next step)."""
    count = context.get_input()
    for i in range(count):
        yield context.wait_for_external_event("ping")
        MARKS.setdefault((context.instance_id, i), time.perf_counter())
        yield context.call_activity("noop", i)
    return count


@app.activity_trigger(input_name="value")
def noop(value: int) -> int:
    return value
