"""An app for crash tests: every activity appends to a ledger file so tests can count executions."""

import os
import time
from datetime import timedelta

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


def _ledger(line: str) -> int:
    path = os.environ["CRASH_LEDGER"]
    with open(path, "a", encoding="utf-8") as ledger:
        ledger.write(line + "\n")
        ledger.flush()
        os.fsync(ledger.fileno())
    with open(path, encoding="utf-8") as ledger:
        return sum(1 for entry in ledger if entry.strip() == line)


@app.orchestration_trigger(context_name="context")
def slow_fan_out(context: df.DurableOrchestrationContext):
    count = context.get_input()
    return (yield context.task_all([context.call_activity("slow_square", i) for i in range(count)]))


@app.activity_trigger(input_name="value")
def slow_square(value: int) -> int:
    time.sleep(0.02)
    _ledger(f"square {value}")
    return value * value


@app.orchestration_trigger(context_name="context")
def retry_after_backoff(context: df.DurableOrchestrationContext):
    options = df.RetryOptions(first_retry_interval_in_milliseconds=3000, max_number_of_attempts=3)
    return (yield context.call_activity_with_retry("fails_once", options, "job"))


@app.activity_trigger(input_name="name")
def fails_once(name: str) -> str:
    attempt = _ledger(f"attempt {name}")
    if attempt == 1:
        raise RuntimeError("first attempt fails")
    return f"done after {attempt} attempts"


@app.orchestration_trigger(context_name="context")
def waits_then_sleeps(context: df.DurableOrchestrationContext):
    value = yield context.wait_for_external_event("go")
    yield context.create_timer(context.current_utc_datetime + timedelta(seconds=1))
    return value
