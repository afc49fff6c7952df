"""Sub-orchestrations, continue-as-new, entities and HTTP calls, written with the real SDK decorators."""

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)

ATTEMPTS: dict[str, int] = {}


@app.orchestration_trigger(context_name="context")
def tree_root(context: df.DurableOrchestrationContext):
    spec = context.get_input()
    results = []
    for branch in spec["branches"]:
        try:
            results.append((yield context.call_sub_orchestrator("tree_middle", branch)))
        except Exception as exc:
            results.append({"failed": str(exc)})
    return results


@app.orchestration_trigger(context_name="context")
def tree_middle(context: df.DurableOrchestrationContext):
    branch = context.get_input()
    leaves = [context.call_sub_orchestrator("tree_leaf", leaf) for leaf in branch]
    return (yield context.task_all(leaves))


@app.orchestration_trigger(context_name="context")
def tree_leaf(context: df.DurableOrchestrationContext):
    value = context.get_input()
    if value < 0:
        raise ValueError(f"negative leaf {value}")
    doubled = yield context.call_activity("double", value)
    return {"leaf": value, "doubled": doubled, "parent": context.parent_instance_id}


@app.activity_trigger(input_name="value")
def double(value: int) -> int:
    return value * 2


@app.orchestration_trigger(context_name="context")
def named_child(context: df.DurableOrchestrationContext):
    child_id = context.get_input()
    return (yield context.call_sub_orchestrator("tree_leaf", 21, instance_id=child_id))


@app.orchestration_trigger(context_name="context")
def child_with_retry(context: df.DurableOrchestrationContext):
    options = df.RetryOptions(first_retry_interval_in_milliseconds=1000, max_number_of_attempts=3)
    return (yield context.call_sub_orchestrator_with_retry("flaky_child", options, "job"))


@app.orchestration_trigger(context_name="context")
def flaky_child(context: df.DurableOrchestrationContext):
    attempt = yield context.call_activity("count_attempt", context.get_input())
    if attempt < 2:
        raise RuntimeError(f"child attempt {attempt} fails")
    return f"child ok on attempt {attempt}"


@app.activity_trigger(input_name="key")
def count_attempt(key: str) -> int:
    ATTEMPTS[key] = ATTEMPTS.get(key, 0) + 1
    return ATTEMPTS[key]


@app.orchestration_trigger(context_name="context")
def eternal_counter(context: df.DurableOrchestrationContext):
    state = context.get_input()
    value = yield context.call_activity("double", state["value"])
    if state["generation"] + 1 < state["limit"]:
        context.continue_as_new(
            {"value": value // 2 + 1, "generation": state["generation"] + 1, "limit": state["limit"]}
        )
        return None
    return {"value": value // 2, "generation": state["generation"]}


@app.orchestration_trigger(context_name="context")
def event_loop(context: df.DurableOrchestrationContext):
    """Consumes one event per generation; events raised meanwhile must carry over."""
    seen = context.get_input() or []
    item = yield context.wait_for_external_event("item")
    seen = [*seen, item]
    if len(seen) < 3:
        context.continue_as_new(seen)
        return None
    return seen


FIXED: dict[str, bool] = {}


@app.activity_trigger(input_name="name")
def fragile(name: str) -> str:
    count_attempt(f"fragile:{name}")
    if not FIXED.get(name):
        raise ConnectionError(f"{name} is down")
    return f"{name} ok"


@app.orchestration_trigger(context_name="context")
def fails_until_fixed(context: df.DurableOrchestrationContext):
    first = yield context.call_activity("double", 1)
    second = yield context.call_activity("fragile", "svc")
    return [first, second]


@app.orchestration_trigger(context_name="context")
def retries_until_fixed(context: df.DurableOrchestrationContext):
    options = df.RetryOptions(first_retry_interval_in_milliseconds=1000, max_number_of_attempts=2)
    return (yield context.call_activity_with_retry("fragile", options, "retried"))


@app.orchestration_trigger(context_name="context")
def parent_of_fragile(context: df.DurableOrchestrationContext):
    return (yield context.call_sub_orchestrator("fails_until_fixed", None))


@app.orchestration_trigger(context_name="context")
def noop(context: df.DurableOrchestrationContext):
    return context.get_input()


@app.orchestration_trigger(context_name="context")
def waiter(context: df.DurableOrchestrationContext):
    return (yield context.wait_for_external_event("go"))


@app.entity_trigger(context_name="context")
def Counter(context: df.DurableEntityContext):
    value = context.get_state(lambda: 0)
    operation = context.operation_name
    if operation == "add":
        amount = context.get_input()
        if not isinstance(amount, int):
            raise TypeError(f"add takes an int, not {amount!r}")
        value += amount
    elif operation == "reset":
        value = 0
    elif operation == "delete":
        context.destruct_on_exit()
        return
    context.set_state(value)
    context.set_result(value)


@app.orchestration_trigger(context_name="context")
def uses_counter(context: df.DurableOrchestrationContext):
    entity = df.EntityId("Counter", context.get_input())
    context.signal_entity(entity, "add", 5)
    after_add = yield context.call_entity(entity, "add", 10)
    try:
        yield context.call_entity(entity, "add", "not a number")
        error = None
    except Exception as exc:
        error = str(exc)
    current = yield context.call_entity(entity, "get")
    return {"after_add": after_add, "error": error, "current": current}


@app.orchestration_trigger(context_name="context")
def calls_http(context: df.DurableOrchestrationContext):
    url = context.get_input()
    try:
        response = yield context.call_http("POST", url, content={"hello": "world"}, headers={"X-Test": "yes"})
    except Exception as exc:
        return {"error": str(exc)}
    return response


@app.orchestration_trigger(context_name="context")
def parent_of_waiter(context: df.DurableOrchestrationContext):
    return (yield context.call_sub_orchestrator("waiter", None, instance_id=context.get_input()))


@app.activity_trigger(input_name="seconds")
async def slow_then_fast(seconds: float) -> int:
    """Hangs on its first two attempts, then answers at once."""
    import asyncio

    attempt = count_attempt("slow_then_fast")
    if attempt <= 2:
        await asyncio.sleep(seconds)
    return attempt


@app.orchestration_trigger(context_name="context")
def calls_slow(context: df.DurableOrchestrationContext):
    return (yield context.call_activity("slow_then_fast", context.get_input()))


@app.entity_trigger(context_name="context")
def Journal(context: df.DurableEntityContext):
    entries = context.get_state(list)
    if context.operation_name == "append":
        entries.append(context.get_input())
    context.set_state(entries)
    context.set_result(entries)


@app.orchestration_trigger(context_name="context")
def journal_writer(context: df.DurableOrchestrationContext):
    journal = df.EntityId("Journal", context.get_input())
    for n in range(20):
        context.signal_entity(journal, "append", n)
    return (yield context.call_entity(journal, "get"))
