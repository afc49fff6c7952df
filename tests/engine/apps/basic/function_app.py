"""A Durable Functions app written with the real SDK decorators, exercising the engine."""

from datetime import timedelta

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)

# Process-wide counters the tests read: how often each activity body ran.
CALLS: dict[str, int] = {}


def _count(name: str) -> int:
    CALLS[name] = CALLS.get(name, 0) + 1
    return CALLS[name]


@app.orchestration_trigger(context_name="context")
def chain(context: df.DurableOrchestrationContext):
    cities = context.get_input() or ["Tokyo", "Seattle", "London"]
    results = []
    for city in cities:
        results.append((yield context.call_activity("hello", city)))
    return results


@app.activity_trigger(input_name="city")
def hello(city: str) -> str:
    _count("hello")
    return f"Hello {city}!"


@app.orchestration_trigger(context_name="context")
def fan_out(context: df.DurableOrchestrationContext):
    count = context.get_input()
    tasks = [context.call_activity("square", i) for i in range(count)]
    return (yield context.task_all(tasks))


@app.activity_trigger(input_name="value")
async def square(value: int) -> int:
    _count("square")
    return value * value


@app.orchestration_trigger(context_name="context")
def approval(context: df.DurableOrchestrationContext):
    """Wait for an approval raced against a deadline; the losing timer is cancelled."""
    hours = (context.get_input() or {}).get("hours", 24)
    deadline = context.create_timer(context.current_utc_datetime + timedelta(hours=hours))
    event = context.wait_for_external_event("approval")
    winner = yield context.task_any([event, deadline])
    if winner == event:
        deadline.cancel()
        return {"outcome": "approved", "data": event.result}
    return {"outcome": "expired"}


@app.orchestration_trigger(context_name="context")
def two_waits(context: df.DurableOrchestrationContext):
    first = yield context.wait_for_external_event("step")
    second = yield context.wait_for_external_event("step")
    return [first, second]


@app.orchestration_trigger(context_name="context")
def flaky_with_retry(context: df.DurableOrchestrationContext):
    options = df.RetryOptions(first_retry_interval_in_milliseconds=5000, max_number_of_attempts=3)
    result = yield context.call_activity_with_retry("flaky", options, context.get_input())
    after = yield context.call_activity("hello", "after")
    return [result, after]


@app.activity_trigger(input_name="config")
def flaky(config: dict) -> str:
    attempt = _count("flaky")
    if attempt < config["succeed_on"]:
        raise ValueError(f"boom {attempt}")
    return f"ok on attempt {attempt}"


@app.orchestration_trigger(context_name="context")
def raises(context: df.DurableOrchestrationContext):
    yield context.call_activity("hello", "x")
    raise RuntimeError("orchestrator exploded")


@app.orchestration_trigger(context_name="context")
def bad_result(context: df.DurableOrchestrationContext):
    try:
        yield context.call_activity("not_serializable", None)
    except Exception as exc:
        return {"caught": str(exc)}
    return {"caught": None}


@app.activity_trigger(input_name="ignored")
def not_serializable(ignored: object) -> object:
    return object()


@app.orchestration_trigger(context_name="context")
def deterministic(context: df.DurableOrchestrationContext):
    seen = [(context.current_utc_datetime.isoformat(), context.new_uuid())]
    yield context.call_activity("hello", "a")
    seen.append((context.current_utc_datetime.isoformat(), context.new_uuid()))
    yield context.call_activity("hello", "b")
    seen.append((context.current_utc_datetime.isoformat(), context.new_uuid()))
    return seen


@app.orchestration_trigger(context_name="context")
def sleeper(context: df.DurableOrchestrationContext):
    yield context.create_timer(context.current_utc_datetime + timedelta(days=14))
    return context.current_utc_datetime.isoformat()
