"""An app for tests with several host processes: every activity run appends a ledger line (what ran,
for which instance, in which process), so tests can count executions and see who did the work."""

import os
import time

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


def _ledger(line: str) -> None:
    with open(os.environ["CLUSTER_LEDGER"], "a", encoding="utf-8") as ledger:
        ledger.write(f"{line} pid={os.getpid()}\n")
        ledger.flush()
        os.fsync(ledger.fileno())


@app.activity_trigger(input_name="job")
def work(job: dict) -> int:
    time.sleep(job.get("sleep", 0.005))
    _ledger(f"work {job['id']}")
    return int(job["value"]) * 2


@app.orchestration_trigger(context_name="context")
def chain(context: df.DurableOrchestrationContext):
    total = 0
    for step in range(context.get_input()):
        total += yield context.call_activity("work", {"id": f"{context.instance_id}/{step}", "value": step})
    return total


@app.orchestration_trigger(context_name="context")
def fan(context: df.DurableOrchestrationContext):
    jobs = [{"id": f"{context.instance_id}/{n}", "value": n} for n in range(context.get_input())]
    return sum((yield context.task_all([context.call_activity("work", job) for job in jobs])))


@app.orchestration_trigger(context_name="context")
def waits(context: df.DurableOrchestrationContext):
    received = yield context.wait_for_external_event("go")
    doubled = yield context.call_activity("work", {"id": f"{context.instance_id}/after", "value": 1})
    return {"received": received, "doubled": doubled}


@app.orchestration_trigger(context_name="context")
def parent(context: df.DurableOrchestrationContext):
    children = [context.call_sub_orchestrator("chain", 2), context.call_sub_orchestrator("fan", 3)]
    return sum((yield context.task_all(children)))


@app.orchestration_trigger(context_name="context")
def counts(context: df.DurableOrchestrationContext):
    counter = df.EntityId("tally", context.get_input())
    context.signal_entity(counter, "add", 2)
    return (yield context.call_entity(counter, "add", 3))


@app.entity_trigger(context_name="context")
def tally(context: df.DurableEntityContext):
    value = context.get_state(lambda: 0)
    if context.operation_name == "add":
        value += context.get_input()
    context.set_state(value)
    context.set_result(value)
