"""The app whose recorded histories live in tests/golden/histories: one orchestrator per replay shape.

Changing an orchestrator here in a way that changes what it yields must make test_golden.py fail; that is
the point of the golden histories. Re-record them (tests/golden/record.py) only for a deliberate change.
"""

from datetime import timedelta

import azure.durable_functions as df

app = df.DFApp()

# How often each activity body ran, per process: tests prove a replay check runs none.
CALLS: dict[str, int] = {}


def _count(name: str) -> int:
    CALLS[name] = CALLS.get(name, 0) + 1
    return CALLS[name]


@app.orchestration_trigger(context_name="context")
def chain(context: df.DurableOrchestrationContext):
    results = []
    for city in context.get_input():
        results.append((yield context.call_activity("hello", city)))
    return results


@app.activity_trigger(input_name="city")
def hello(city: str) -> str:
    _count("hello")
    return f"Hello {city}!"


@app.orchestration_trigger(context_name="context")
def fan_out(context: df.DurableOrchestrationContext):
    squares = yield context.task_all([context.call_activity("square", i) for i in range(context.get_input())])
    total = yield context.call_activity("total", squares)
    return total


@app.activity_trigger(input_name="value")
def square(value: int) -> int:
    _count("square")
    return value * value


@app.activity_trigger(input_name="values")
def total(values: list[int]) -> int:
    _count("total")
    return sum(values)


@app.orchestration_trigger(context_name="context")
def retry(context: df.DurableOrchestrationContext):
    options = df.RetryOptions(first_retry_interval_in_milliseconds=30_000, max_number_of_attempts=3)
    result = yield context.call_activity_with_retry("flaky", options, context.get_input())
    return result


@app.activity_trigger(input_name="config")
def flaky(config: dict) -> str:
    attempt = _count(f"flaky:{config['key']}")
    if attempt < config["succeed_on"]:
        raise ValueError(f"attempt {attempt} fails on purpose")
    return f"ok on attempt {attempt}"


@app.orchestration_trigger(context_name="context")
def approval(context: df.DurableOrchestrationContext):
    """Prepare, wait for a person's decision (no deadline), then act on it."""
    request = yield context.call_activity("prepare", context.get_input())
    decision = yield context.wait_for_external_event("decision")
    outcome = yield context.call_activity("act", {"request": request, "approved": decision["approved"]})
    return outcome


@app.activity_trigger(input_name="item")
def prepare(item: str) -> str:
    _count("prepare")
    return f"request for {item}"


@app.activity_trigger(input_name="payload")
def act(payload: dict) -> str:
    _count("act")
    verb = "done" if payload["approved"] else "refused"
    return f"{payload['request']}: {verb}"


@app.orchestration_trigger(context_name="context")
def reminder(context: df.DurableOrchestrationContext):
    days = context.get_input()
    yield context.create_timer(context.current_utc_datetime + timedelta(days=days))
    sent = yield context.call_activity("hello", "reminder")
    return {"sent": sent, "at": context.current_utc_datetime.isoformat()}
