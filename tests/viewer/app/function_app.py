"""The viewer tests' app: a fan-out with a retried activity, an approval that waits for an event,
a parent with a child, and a failing orchestration."""

import time

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)
_ATTEMPTS: dict[str, int] = {}


@app.orchestration_trigger(context_name="context")
def fan_out(context: df.DurableOrchestrationContext):
    delays = context.get_input() or [200, 400, 600]
    work = [context.call_activity("pause", ms) for ms in delays]
    retry = df.RetryOptions(first_retry_interval_in_milliseconds=300, max_number_of_attempts=3)
    work.append(context.call_activity_with_retry("flaky", retry, context.instance_id))
    return (yield context.task_all(work))


@app.activity_trigger(input_name="ms")
def pause(ms: int) -> int:
    time.sleep(ms / 1000)
    return ms


@app.activity_trigger(input_name="key")
def flaky(key: str) -> str:
    """Fails on its first attempt for each key, then succeeds."""
    _ATTEMPTS[key] = _ATTEMPTS.get(key, 0) + 1
    if _ATTEMPTS[key] == 1:
        raise RuntimeError("flaky: the first attempt always fails")
    return f"ok after {_ATTEMPTS[key]} attempts"


@app.orchestration_trigger(context_name="context")
def approval(context: df.DurableOrchestrationContext):
    context.set_custom_status("waiting for approval")
    decision = yield context.wait_for_external_event("approval")
    return {"request": context.get_input(), "decision": decision}


@app.orchestration_trigger(context_name="context")
def parent(context: df.DurableOrchestrationContext):
    return (yield context.call_sub_orchestrator("fan_out", [50], f"{context.instance_id}-child"))


@app.orchestration_trigger(context_name="context")
def broken(context: df.DurableOrchestrationContext):
    yield context.call_activity("pause", 10)
    raise ValueError("broken on purpose")
