"""An app for the paused-owner test (tests/engine/test_cluster.py): each activity execution appends its
process id and wall-clock start time to a ledger, then waits until the test opens a gate (a file: the
one for every process, or the one for its own pid), so the test decides when activities finish, in which
process, and knows that none is between its ownership check and its start."""

import json
import os
import time

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.orchestration_trigger(context_name="context")
def gated_steps(context: df.DurableOrchestrationContext):
    results = []
    for step in range(context.get_input()):
        results.append(
            (yield context.call_activity("gated_step", {"instance": context.instance_id, "step": step}))
        )
    return results


@app.activity_trigger(input_name="job")
def gated_step(job: dict) -> int:
    line = json.dumps(
        {"pid": os.getpid(), "t": time.time(), "instance": job["instance"], "step": job["step"]}
    )
    with open(os.environ["PAUSED_LEDGER"], "a", encoding="utf-8") as ledger:
        ledger.write(line + "\n")
        ledger.flush()
        os.fsync(ledger.fileno())
    gates = (os.environ["PAUSED_GATE"], f"{os.environ['PAUSED_GATE']}-{os.getpid()}")
    deadline = time.monotonic() + 60
    while not any(os.path.exists(gate) for gate in gates) and time.monotonic() < deadline:
        time.sleep(0.01)
    return job["step"] * 10
