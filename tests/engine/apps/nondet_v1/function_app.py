"""Version 1 of an app whose orchestrators nondet_v2 changes under instances in flight."""

import azure.durable_functions as df

app = df.DFApp()

# Activity bodies that ran in this process, in order: the tests prove v2 runs none of the mismatched steps.
RAN: list[str] = []


@app.orchestration_trigger(context_name="context")
def order(context: df.DurableOrchestrationContext):
    reserved = yield context.call_activity("reserve", context.get_input())
    go = yield context.wait_for_external_event("go")
    charged = yield context.call_activity("charge", {"reserved": reserved, "go": go})
    return charged


@app.orchestration_trigger(context_name="context")
def order_inserted(context: df.DurableOrchestrationContext):
    reserved = yield context.call_activity("reserve", context.get_input())
    yield context.wait_for_external_event("go")
    return reserved


@app.activity_trigger(input_name="item")
def reserve(item: str) -> str:
    RAN.append("reserve")
    return f"reserved {item}"


@app.activity_trigger(input_name="payload")
def charge(payload: dict) -> str:
    RAN.append("charge")
    return f"charged for {payload['reserved']}"
