"""Small orchestrators for the engine-core tests (tests/engine/test_episode*.py), written with the real SDK.

The tests call ``run_episode`` directly: nothing here runs an activity, a child or an entity (only the
names matter), so the activities are trivial. ``script`` interprets its input as a list of steps, which
lets one orchestrator yield any shape of actions, and a changed input stand for changed code.
"""

import threading
from datetime import timedelta
from typing import Any

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.orchestration_trigger(context_name="context")
def chain(context: df.DurableOrchestrationContext):
    results = []
    for city in context.get_input():
        results.append((yield context.call_activity("hello", city)))
    return results


@app.orchestration_trigger(context_name="context")
def fan_out(context: df.DurableOrchestrationContext):
    tasks = [context.call_activity("square", i) for i in range(context.get_input())]
    return (yield context.task_all(tasks))


@app.orchestration_trigger(context_name="context")
def retry(context: df.DurableOrchestrationContext):
    options = df.RetryOptions(first_retry_interval_in_milliseconds=5000, max_number_of_attempts=3)
    first = yield context.call_activity_with_retry("flaky", options, context.get_input())
    after = yield context.call_activity("hello", "after")
    return [first, after]


@app.orchestration_trigger(context_name="context")
def retry_then_more(context: df.DurableOrchestrationContext):
    """Carries on after its retry chain ran out, then fails: work scheduled after an exhausted chain."""
    options = df.RetryOptions(first_retry_interval_in_milliseconds=1000, max_number_of_attempts=2)
    try:
        yield context.call_activity_with_retry("flaky", options, None)
    except Exception:
        yield context.call_activity("hello", "fallback")
    raise RuntimeError("gave up")


@app.orchestration_trigger(context_name="context")
def sub_retry(context: df.DurableOrchestrationContext):
    options = df.RetryOptions(first_retry_interval_in_milliseconds=2000, max_number_of_attempts=2)
    return (yield context.call_sub_orchestrator_with_retry("child", options, context.get_input()))


@app.orchestration_trigger(context_name="context")
def parent(context: df.DurableOrchestrationContext):
    return (yield context.call_sub_orchestrator("child", context.get_input()))


@app.orchestration_trigger(context_name="context")
def child(context: df.DurableOrchestrationContext):
    return context.get_input() * 2


@app.orchestration_trigger(context_name="context")
def race(context: df.DurableOrchestrationContext):
    """An approval raced against a deadline; the losing timer is cancelled."""
    deadline = context.create_timer(context.current_utc_datetime + timedelta(hours=context.get_input()))
    event = context.wait_for_external_event("approval")
    winner = yield context.task_any([event, deadline])
    if winner == event:
        deadline.cancel()
        return {"approved": event.result}
    return {"expired": True}


@app.orchestration_trigger(context_name="context")
def approve_then_act(context: df.DurableOrchestrationContext):
    """The race, then more work: the cancelled deadline and the next activity in one episode."""
    deadline = context.create_timer(context.current_utc_datetime + timedelta(hours=1))
    event = context.wait_for_external_event("approval")
    winner = yield context.task_any([event, deadline])
    if winner == event:
        deadline.cancel()
    done = yield context.call_activity("hello", "act")
    return [winner == event, done]


@app.orchestration_trigger(context_name="context")
def sleeper(context: df.DurableOrchestrationContext):
    """Sleeps for the input's number of seconds and returns the time it woke up at."""
    yield context.create_timer(context.current_utc_datetime + timedelta(seconds=context.get_input()))
    return context.current_utc_datetime.isoformat()


@app.orchestration_trigger(context_name="context")
def counter(context: df.DurableOrchestrationContext):
    count = context.get_input()
    yield context.call_activity("hello", str(count))
    if count < 2:
        context.continue_as_new(count + 1)
        return None
    return count


@app.orchestration_trigger(context_name="context")
def raises(context: df.DurableOrchestrationContext):
    yield context.call_activity("hello", "x")
    raise RuntimeError("orchestrator exploded")


@app.orchestration_trigger(context_name="context")
def clock(context: df.DurableOrchestrationContext):
    """The time and a new uuid seen after each step: both are replay-stable (protocol §1.6)."""
    seen = [[context.current_utc_datetime.isoformat(), context.new_uuid()]]
    yield context.call_activity("hello", "a")
    seen.append([context.current_utc_datetime.isoformat(), context.new_uuid()])
    yield context.create_timer(context.current_utc_datetime + timedelta(minutes=5))
    seen.append([context.current_utc_datetime.isoformat(), context.new_uuid()])
    return seen


def _task(context: df.DurableOrchestrationContext, step: list[Any]) -> Any:
    """The task one step yields (None for steps that yield nothing)."""
    kind = step[0]
    if kind == "activity":
        return context.call_activity(step[1], step[2] if len(step) > 2 else None)
    if kind == "retry":
        options = df.RetryOptions(
            first_retry_interval_in_milliseconds=step[3], max_number_of_attempts=step[4]
        )
        return context.call_activity_with_retry(step[1], options, step[2])
    if kind == "timer":
        return context.create_timer(context.current_utc_datetime + timedelta(seconds=step[1]))
    if kind == "wait":
        return context.wait_for_external_event(step[1])
    if kind == "sub":
        instance_id = step[3] if len(step) > 3 else None
        return context.call_sub_orchestrator(
            step[1], step[2], instance_id, step[4] if len(step) > 4 else None
        )
    if kind == "call_entity":
        return context.call_entity(df.EntityId(step[1], step[2]), step[3], step[4] if len(step) > 4 else None)
    if kind == "http":
        return context.call_http(step[1], step[2])
    if kind == "all":
        return context.task_all([_task(context, inner) for inner in step[1]])
    if kind == "any":
        return context.task_any([_task(context, inner) for inner in step[1]])
    raise ValueError(f"unknown step {step!r}")


@app.orchestration_trigger(context_name="context")
def script(context: df.DurableOrchestrationContext):
    """Runs the steps of its input in order and returns what each yielded task gave.

    Steps: ["activity", name, input], ["retry", name, input, interval_ms, attempts], ["timer", seconds],
    ["wait", name], ["sub", name, input, instance_id?, version?], ["call_entity", name, key, op, input?],
    ["http", method, uri], ["all", [steps]], ["any", [steps]] (gives the winner's index), and the
    steps that yield nothing: ["signal", name, key, op, input], ["status", value], ["version"] (gives
    context.version), ["continue", input], ["raise", message]. A failed task gives {"failed": message}.
    """
    results: list[Any] = []
    for step in context.get_input():
        kind = step[0]
        if kind == "signal":
            context.signal_entity(df.EntityId(step[1], step[2]), step[3], step[4])
        elif kind == "status":
            context.set_custom_status(step[1])
        elif kind == "version":
            results.append(context.version)
        elif kind == "continue":
            context.continue_as_new(step[1])
            return None
        elif kind == "raise":
            raise RuntimeError(step[1])
        elif kind == "any":
            tasks = [_task(context, inner) for inner in step[1]]
            winner = yield context.task_any(tasks)
            results.append(tasks.index(winner))
        else:
            try:
                results.append((yield _task(context, step)))
            except Exception as failure:
                results.append({"failed": str(failure)})
    return results


@app.activity_trigger(input_name="city")
def hello(city: str) -> str:
    return f"Hello {city}!"


@app.activity_trigger(input_name="value")
def square(value: int) -> int:
    return value * value


@app.activity_trigger(input_name="config")
def flaky(config: Any) -> str:
    raise ValueError("flaky always fails when it really runs")


# Activities that wait for a test (tests/engine/test_tasks.py): the test opens RELEASE, and reads how
# many ran at once.
RELEASE = threading.Event()
_LOCK = threading.Lock()
RUNNING = {"now": 0, "peak": 0, "started": 0}


@app.activity_trigger(input_name="name")
def gated(name: str) -> str:
    with _LOCK:
        RUNNING["now"] += 1
        RUNNING["started"] += 1
        RUNNING["peak"] = max(RUNNING["peak"], RUNNING["now"])
    try:
        RELEASE.wait(10)
    finally:
        with _LOCK:
            RUNNING["now"] -= 1
    return name


@app.entity_trigger(context_name="context")
def counter_entity(context: df.DurableEntityContext) -> None:
    context.set_state((context.get_state(lambda: 0) or 0) + (context.get_input() or 0))
    context.set_result(context.get_state())
