"""The responsiveness benchmark's app (bench/responsiveness.py, tests/http/test_responsiveness.py): user code
that holds on to its thread for seconds, next to an unrelated health route and orchestration.

* ``spin``: an orchestrator that spins pure Python for ``seconds`` (it holds the GIL all that time but
  for the interpreter's forced switches);
* ``blocker``: an entity whose ``wait`` operation blocks ``seconds`` in ``time.sleep``, as a blocking
  model call would;
* ``stall``: an ``async def`` activity that blocks its event loop ``seconds`` (``time.sleep`` without
  await), started by ``stall_orchestrator``;
* ``health`` (sync) and ``health_async`` (``async def``, on the user-code loop as in the worker), and
  ``idle``, an orchestrator that completes at once and whose status is read while the others block.

Each takes ``{"seconds": s, "key": k}`` and, when ``MARK_DIR`` is set, writes ``<k>.json`` there with the
wall-clock times (``time.time()``) it started and ended, so that a test can tell which answers arrived
while it blocked.
"""

import json
import os
import time

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


def _mark(work: dict, started: float) -> None:
    folder = os.environ.get("MARK_DIR")
    if folder:
        with open(os.path.join(folder, f"{work['key']}.json"), "w", encoding="utf-8") as out:
            json.dump({"start": started, "end": time.time()}, out)


@app.route(route="health", methods=["GET"])
def health(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("ok")


@app.route(route="health-async", methods=["GET"])
async def health_async(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("ok")


@app.orchestration_trigger(context_name="context")
def idle(context: df.DurableOrchestrationContext):
    return "idle"


@app.orchestration_trigger(context_name="context")
def spin(context: df.DurableOrchestrationContext):
    # One episode: nothing is yielded, so this never replays.
    work = context.get_input()
    started = time.time()
    deadline = time.perf_counter() + work["seconds"]
    turns = 0
    while time.perf_counter() < deadline:
        turns += 1
    _mark(work, started)
    return "spun"


@app.entity_trigger(context_name="context")
def blocker(context: df.DurableEntityContext):
    if context.operation_name == "wait":
        work = context.get_input()
        started = time.time()
        time.sleep(work["seconds"])
        _mark(work, started)
    context.set_result("done")


@app.activity_trigger(input_name="work")
async def stall(work: dict) -> str:
    started = time.time()
    # Blocks the user-code event loop on purpose, as it would block the worker's loop in Azure.
    time.sleep(work["seconds"])  # noqa: ASYNC251
    _mark(work, started)
    return "stalled"


@app.orchestration_trigger(context_name="context")
def stall_orchestrator(context: df.DurableOrchestrationContext):
    return (yield context.call_activity("stall", context.get_input()))
