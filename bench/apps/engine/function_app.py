"""The engine benchmark's app (bench/engine_bench.py, bench/workers_bench.py, bench/compare.py), written
with the real SDK decorators.

Activities are plain synchronous functions, the way most Functions apps write them, so they run in the
host's activity thread pool: ``noop`` returns its input, ``burn`` first spends ``ms`` milliseconds of its
thread's CPU time in a busy loop (CPU-bound work, not a sleep; ``hello_sequence5_cpu``).

Marks: ``MARKS`` (in memory, for a benchmark hosting the engine in its own process) and, when the
environment variable ``MARK_DIR`` is set (a benchmark driving ``durablehost start`` from another process,
possibly several workers), one file per mark in that folder holding ``time.time()``, written once: the
first writer is the live run, a replay (in any process) finds the file there.
"""

import os
import time

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)

# (instance id, ping number) -> time.perf_counter() when the orchestrator code after the ping-th wait ran
# for the first time, i.e. live rather than in a replay. Read by the benchmark in the same process.
MARKS: dict[tuple[str, int], float] = {}


def _mark_file(name: str) -> None:
    folder = os.environ.get("MARK_DIR")
    if not folder:
        return
    final = os.path.join(folder, name)
    if os.path.exists(final):
        return
    scratch = f"{final}.{os.getpid()}.tmp"
    with open(scratch, "w", encoding="ascii") as out:
        out.write(repr(time.time()))
    try:
        os.link(scratch, final)  # atomic and exclusive: a reader never sees a half-written mark
    except FileExistsError:
        pass
    finally:
        os.unlink(scratch)


@app.orchestration_trigger(context_name="context")
def hello_sequence5(context: df.DurableOrchestrationContext):
    results = []
    for i in range(5):
        results.append((yield context.call_activity("noop", i)))
    return results


@app.orchestration_trigger(context_name="context")
def hello_sequence5_cpu(context: df.DurableOrchestrationContext):
    """HelloSequence5 whose activities each burn ``ms`` (the input, default 2) milliseconds of CPU."""
    ms = context.get_input() or 2
    results = []
    for _ in range(5):
        results.append((yield context.call_activity("burn", ms)))
    return results


@app.orchestration_trigger(context_name="context")
def fan_out(context: df.DurableOrchestrationContext):
    count = context.get_input()
    tasks = [context.call_activity("noop", i) for i in range(count)]
    results = yield context.task_all(tasks)
    return len(results)


@app.orchestration_trigger(context_name="context")
def ping_loop(context: df.DurableOrchestrationContext):
    """Wait for ``count`` pings; after each, mark the time and call an activity (a real next step).

    File marks (MARK_DIR): ``<id>.waiting.<i>`` when the code first reaches the i-th wait, and
    ``<id>.ping.<i>`` when the code after it first runs."""
    count = context.get_input()
    for i in range(count):
        _mark_file(f"{context.instance_id}.waiting.{i}")
        yield context.wait_for_external_event("ping")
        MARKS.setdefault((context.instance_id, i), time.perf_counter())
        _mark_file(f"{context.instance_id}.ping.{i}")
        yield context.call_activity("noop", i)
    return count


@app.activity_trigger(input_name="value")
def noop(value: int) -> int:
    return value


@app.activity_trigger(input_name="ms")
def burn(ms: float) -> float:
    until = time.thread_time() + ms / 1000
    while time.thread_time() < until:
        pass
    return ms


@app.route(route="whoami", methods=["GET"])
def whoami(req: func.HttpRequest) -> func.HttpResponse:
    """A trivial HTTP route: the pid of the process that served it (which worker, behind one port)."""
    return func.HttpResponse(str(os.getpid()))
