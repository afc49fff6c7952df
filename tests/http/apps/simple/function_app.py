"""A small app for the HTTP server tests: an HTTP starter with the real durable client binding,
orchestrators that finish, wait for events or fail, and plain triggers with each auth level."""

import json

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)


@app.route(route="orchestrators/{functionName}/{instanceId?}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def http_start(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    body = req.get_body()
    data = json.loads(body) if body else None
    instance_id = await client.start_new(
        req.route_params["functionName"], req.route_params.get("instanceId"), data
    )
    return client.create_check_status_response(req, instance_id)


@app.route(route="events/{instanceId}/{eventName}", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@app.durable_client_input(client_name="client")
async def sdk_raise(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    await client.raise_event(req.route_params["instanceId"], req.route_params["eventName"], req.get_json())
    return func.HttpResponse(status_code=202)


@app.route(route="sdk-status/{instanceId}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@app.durable_client_input(client_name="client")
async def sdk_status(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    status = await client.get_status(req.route_params["instanceId"], show_input=True)
    if not status:
        return func.HttpResponse(status_code=404)
    body = {
        "runtimeStatus": status.runtime_status.value if status.runtime_status else None,
        "output": status.output,
        "input": status.input_,
    }
    return func.HttpResponse(json.dumps(body), mimetype="application/json")


@app.route(route="hello/{who:alpha}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def hello_route(req: func.HttpRequest) -> func.HttpResponse:
    greeting = req.params.get("greeting", "Hello")
    return func.HttpResponse(
        f"{greeting} {req.route_params['who']} ({req.headers.get('x-test', '-')})", mimetype="text/plain"
    )


@app.route(route="files/{*path}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def files(req: func.HttpRequest) -> str:
    return f"path={req.route_params.get('path', '')}"


@app.route(route="admin/ping", methods=["GET"], auth_level=func.AuthLevel.ADMIN)
def admin_ping(req: func.HttpRequest) -> str:
    return "pong"


@app.route(route="boom", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("secret detail that must not reach the caller")


@app.orchestration_trigger(context_name="context")
def hello_sequence(context: df.DurableOrchestrationContext):
    cities = context.get_input() or ["Tokyo"]
    results = []
    for city in cities:
        results.append((yield context.call_activity("say_hello", city)))
    return results


@app.activity_trigger(input_name="city")
def say_hello(city: str) -> str:
    return f"Hello {city}!"


@app.orchestration_trigger(context_name="context")
def wait_event(context: df.DurableOrchestrationContext):
    data = yield context.wait_for_external_event("approval")
    return {"approval": data, "input": context.get_input()}


@app.orchestration_trigger(context_name="context")
def two_waits(context: df.DurableOrchestrationContext):
    first = yield context.wait_for_external_event("step")
    second = yield context.wait_for_external_event("step")
    return [first, second]


@app.orchestration_trigger(context_name="context")
def fails(context: df.DurableOrchestrationContext):
    yield context.call_activity("say_hello", "x")
    raise ValueError("orchestrator gave up")


@app.route(route="bad-status", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def bad_status(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("x", status_code=1000)


@app.entity_trigger(context_name="context")
def Counter(context: df.DurableEntityContext):
    value = context.get_state(lambda: 0)
    if context.operation_name == "add":
        value += context.get_input()
    elif context.operation_name == "delete":
        context.destruct_on_exit()
        return
    context.set_state(value)


@app.route(route="counter/{key}", methods=["POST", "GET"], auth_level=func.AuthLevel.ANONYMOUS)
@app.durable_client_input(client_name="client")
async def counter_via_sdk(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    entity = df.EntityId("Counter", req.route_params["key"])
    if req.method == "POST":
        await client.signal_entity(entity, "add", int(req.params.get("amount", "1")))
        return func.HttpResponse(status_code=202)
    state = await client.read_entity_state(entity)
    body = json.dumps({"exists": state.entity_exists, "state": state.entity_state})
    return func.HttpResponse(body, mimetype="application/json")
