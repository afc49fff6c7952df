"""The store-outage benchmark's app (bench/outage.py), written with the real SDK decorators.

Four kinds of instance, each with an output the benchmark can check:

* ``chain``: ``n`` activities one after another (output ``n``);
* ``fan_out``: ``n`` activities at once, then their sum (output ``n * (n + 1) / 2``);
* ``timer``: a durable timer ``seconds`` after the first episode, then one activity (output 42);
* ``event``: waits for the event ``go`` (a number), then one activity on it (output the number + 1).

``step`` sleeps ``seconds`` (a real activity takes time, so work is in flight when the store goes away)
and returns its value + 1. When ``MARK_DIR`` is set, each execution of ``step`` leaves a file there named
after the instance, the step and a random suffix: activities run at least once, and the benchmark
counts the re-runs.
"""

import os
import time
import uuid
from datetime import timedelta

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


def _step(context: df.DurableOrchestrationContext, label: str, value: int, seconds: float):
    return context.call_activity(
        "step", {"instance": context.instance_id, "label": label, "value": value, "seconds": seconds}
    )


@app.orchestration_trigger(context_name="context")
def chain(context: df.DurableOrchestrationContext):
    work = context.get_input()
    value = 0
    for i in range(work["n"]):
        value = yield _step(context, f"chain{i}", value, work["seconds"])
    return value


@app.orchestration_trigger(context_name="context")
def fan_out(context: df.DurableOrchestrationContext):
    work = context.get_input()
    results = yield context.task_all(
        [_step(context, f"fan{i}", i, work["seconds"]) for i in range(work["n"])]
    )
    return sum(results)


@app.orchestration_trigger(context_name="context")
def timer(context: df.DurableOrchestrationContext):
    work = context.get_input()
    yield context.create_timer(context.current_utc_datetime + timedelta(seconds=work["fire_in"]))
    return (yield _step(context, "after-timer", 41, work["seconds"]))


@app.orchestration_trigger(context_name="context")
def event(context: df.DurableOrchestrationContext):
    work = context.get_input()
    value = yield context.wait_for_external_event("go")
    return (yield _step(context, "after-event", int(value), work["seconds"]))


@app.activity_trigger(input_name="work")
def step(work: dict) -> int:
    time.sleep(work["seconds"])
    folder = os.environ.get("MARK_DIR")
    if folder:
        name = f"{work['instance']}~{work['label']}~{uuid.uuid4().hex[:8]}"
        open(os.path.join(folder, name), "w").close()
    return work["value"] + 1
