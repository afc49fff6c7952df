import azure.functions as func
from azure.durable_functions import DurableOrchestrationClient

from ..shared_code.points import Point  # noqa: TID252 - relative, as in Azure's samples


async def main(req: func.HttpRequest, starter: str, message: func.Out[func.HttpResponse]) -> None:
    body = req.get_json()
    client = DurableOrchestrationClient(starter)
    instance_id = await client.start_new("RoundTrip", client_input=Point(body["x"], body["y"]))
    message.set(client.create_check_status_response(req, instance_id))
