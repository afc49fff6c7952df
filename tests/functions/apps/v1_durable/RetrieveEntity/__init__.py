import json

import azure.functions as func
from azure.durable_functions import DurableOrchestrationClient, EntityId


async def main(req: func.HttpRequest, starter: str) -> func.HttpResponse:
    client = DurableOrchestrationClient(starter)
    entity = EntityId(req.route_params["entityName"], req.route_params["entityKey"])
    state = await client.read_entity_state(entity)
    if not state.entity_exists:
        return func.HttpResponse("Entity not found", status_code=404)
    return func.HttpResponse(
        json.dumps({"key": entity.key, "state": state.entity_state}), mimetype="application/json"
    )
