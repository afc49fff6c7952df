"""A DFApp using every trigger kind durablehost indexes, plus a merged blueprint."""

import asyncio
import threading

import azure.durable_functions as df
import azure.functions as func
from extra_blueprint import bp
from geometry import Point

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)
app.register_functions(bp)


@app.orchestration_trigger(context_name="context")
def chain(context: df.DurableOrchestrationContext):
    city = context.get_input()
    greeting = yield context.call_activity("hello", city)
    return [greeting]


@app.orchestration_trigger(context_name="context", orchestration="FailingOrchestration")
def failing_orchestrator(context: df.DurableOrchestrationContext):
    yield context.call_activity("hello", "x")
    raise ValueError("orchestrator broke")


@app.orchestration_trigger(context_name="context")
def plain_failing_orchestrator(context: df.DurableOrchestrationContext):
    raise KeyError("not a generator")


@app.activity_trigger(input_name="city")
def hello(city: str) -> str:
    return f"Hello {city}!"


@app.activity_trigger(input_name="city")
async def async_hello(city: str) -> str:
    await asyncio.sleep(0)
    return f"Hi {city}!"


@app.function_name("RenamedActivity")
@app.activity_trigger(input_name="value", activity="TriggerLevelName")
def py_activity(value: int) -> int:
    return value * 2


@app.activity_trigger(input_name="point")
def move_point(point: Point) -> Point:
    return Point(point.x + 1, point.y + 1)


@app.activity_trigger(input_name="payload")
def flaky(payload: str) -> str:
    raise ValueError(f"boom {payload}")


@app.activity_trigger(input_name="payload")
def returns_object(payload: str) -> object:
    return object()


@app.activity_trigger(input_name="payload")
def who_am_i(payload: str, context: func.Context) -> dict:
    return {
        "function": context.function_name,
        "invocation": context.invocation_id,
        "payload": payload,
        "thread": threading.current_thread().name,
    }


@app.entity_trigger(context_name="context", entity_name="Counter")
def counter_entity(context: df.DurableEntityContext):
    value = context.get_state(lambda: 0)
    operation = context.operation_name
    if operation == "add":
        value += context.get_input()
    elif operation == "fail":
        raise RuntimeError("counter refuses")
    context.set_state(value)
    context.set_result(value)


@app.route(route="orchestrators/{name}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def http_start(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    instance_id = req.route_params["name"] + "-1"
    return client.create_check_status_response(req, instance_id)


@app.route(route="hello")
def plain_http(req: func.HttpRequest) -> str:
    return f"hello {req.params.get('who', 'nobody')}"
