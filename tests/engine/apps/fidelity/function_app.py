"""Orchestrators for versioning (context.version, sub-orchestration versions, continue-as-new) and for the
places where Azure's event delivery differs from durablehost's."""

from datetime import timedelta

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)

_UNSET = object()


@app.orchestration_trigger(context_name="context")
def report_version(context: df.DurableOrchestrationContext):
    return {"version": context.version}


@app.orchestration_trigger(context_name="context")
def wait_then_report(context: df.DurableOrchestrationContext):
    """Waits for "go", so a test can hand the instance from one host to another while it runs."""
    yield context.wait_for_external_event("go")
    return {"version": context.version}


@app.orchestration_trigger(context_name="context")
def parent(context: df.DurableOrchestrationContext):
    """Starts report_version as a child (spelt as the input's "child_name" says): without a version, or
    with the input's "child_version" (the retrying call when "retry" is set)."""
    options = context.get_input() or {}
    name = options.get("child_name", "report_version")
    requested = options.get("child_version", _UNSET)
    extra = {} if requested is _UNSET else {"version": requested}
    if options.get("retry"):
        retry = df.RetryOptions(first_retry_interval_in_milliseconds=1000, max_number_of_attempts=2)
        child = yield context.call_sub_orchestrator_with_retry(name, retry, None, **extra)
    else:
        child = yield context.call_sub_orchestrator(name, None, **extra)
    return {"parent": context.version, "child": child["version"]}


@app.orchestration_trigger(context_name="context")
def generations(context: df.DurableOrchestrationContext):
    """Continues as new twice; returns the version each generation saw."""
    seen = (context.get_input() or []) + [context.version]
    yield context.call_activity("echo", len(seen))
    if len(seen) < 3:
        context.continue_as_new(seen)
        return None
    return seen


@app.orchestration_trigger(context_name="context")
def early_steps(context: df.DurableOrchestrationContext):
    """Waits for "go" first, so "step" events raised before it arrive while no wait for them exists."""
    yield context.wait_for_external_event("go")
    first = yield context.wait_for_external_event("step")
    second = yield context.wait_for_external_event("step")
    return [first, second]


@app.orchestration_trigger(context_name="context")
def continue_then_wait(context: df.DurableOrchestrationContext):
    """Generation 0 waits for "go" and continues as new; generation 1 returns the first "item"."""
    if context.get_input() is None:
        yield context.wait_for_external_event("go")
        context.continue_as_new("second generation")
        return None
    return (yield context.wait_for_external_event("item"))


@app.orchestration_trigger(context_name="context")
def long_sleep(context: df.DurableOrchestrationContext):
    days = context.get_input()
    yield context.create_timer(context.current_utc_datetime + timedelta(days=days))
    return context.current_utc_datetime.isoformat()


@app.entity_trigger(context_name="context")
def Counter(context: df.DurableEntityContext):
    total = context.get_state(lambda: 0)
    if context.operation_name == "add":
        total += context.get_input()
    context.set_state(total)


@app.activity_trigger(input_name="value")
def echo(value: int) -> int:
    return value
