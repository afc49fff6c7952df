"""An app whose host.json sets defaultVersion 2.0, started through the real SDK client."""

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="start/{functionName}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def http_start(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Starts an orchestrator with the query's ``version`` (none: host.json's defaultVersion)."""
    instance_id = await client.start_new(req.route_params["functionName"], version=req.params.get("version"))
    return client.create_check_status_response(req, instance_id)


@app.orchestration_trigger(context_name="context")
def report_version(context: df.DurableOrchestrationContext):
    return {"version": context.version}


@app.orchestration_trigger(context_name="context")
def early_steps(context: df.DurableOrchestrationContext):
    yield context.wait_for_external_event("go")
    first = yield context.wait_for_external_event("step")
    second = yield context.wait_for_external_event("step")
    return [first, second]
