"""The viewer test app after a careless deploy: ``approval`` now calls an activity before it waits, so
instances started by the old code fail with a non-determinism report when they replay."""

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.orchestration_trigger(context_name="context")
def approval(context: df.DurableOrchestrationContext):
    context.set_custom_status("waiting for approval")
    yield context.call_activity("audit", context.get_input())
    decision = yield context.wait_for_external_event("approval")
    return {"request": context.get_input(), "decision": decision}


@app.activity_trigger(input_name="request")
def audit(request: dict) -> str:
    return "audited"
