"""Version 2 of nondet_v1: each orchestrator keeps its name but yields something else at a recorded step."""

import azure.durable_functions as df

app = df.DFApp()

RAN: list[str] = []


@app.orchestration_trigger(context_name="context")
def order(context: df.DurableOrchestrationContext):
    # Changed: action #0 was CallActivity 'reserve' in v1.
    reserved = yield context.call_activity("reserve_stock", context.get_input())
    go = yield context.wait_for_external_event("go")
    charged = yield context.call_activity("charge", {"reserved": reserved, "go": go})
    return charged


@app.orchestration_trigger(context_name="context")
def order_inserted(context: df.DurableOrchestrationContext):
    reserved = yield context.call_activity("reserve", context.get_input())
    # Changed: a new activity where v1 waited for the event (action #1).
    yield context.call_activity("notify", reserved)
    yield context.wait_for_external_event("go")
    return reserved


@app.activity_trigger(input_name="item")
def reserve(item: str) -> str:
    RAN.append("reserve")
    return f"reserved {item}"


@app.activity_trigger(input_name="item")
def reserve_stock(item: str) -> str:
    RAN.append("reserve_stock")
    return f"reserved {item}"


@app.activity_trigger(input_name="text")
def notify(text: str) -> str:
    RAN.append("notify")
    return text


@app.activity_trigger(input_name="payload")
def charge(payload: dict) -> str:
    RAN.append("charge")
    return f"charged for {payload['reserved']}"
