"""``GET /api/status/{instanceId}``: a workflow's stage and result, without the management API's keys."""

from __future__ import annotations

import azure.durable_functions as df
import azure.functions as func

from function_app._http import json_response, problem

bp = df.Blueprint(http_auth_level=func.AuthLevel.FUNCTION)


@bp.route(route="status/{instanceId}", methods=["GET"])
@bp.durable_client_input(client_name="client")
async def workflow_status(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """200 ``{"instanceId", "name", "runtimeStatus", "customStatus", "output", "createdTime",
    "lastUpdatedTime"}``, or 404."""
    instance_id = req.route_params["instanceId"]
    status = await client.get_status(instance_id)
    if not status:
        return problem(404, f"no instance {instance_id}")
    return json_response(
        {
            "instanceId": instance_id,
            "name": status.name,
            "runtimeStatus": status.runtime_status.value if status.runtime_status else None,
            "customStatus": status.custom_status,
            "output": status.output,
            "createdTime": status.created_time.isoformat() if status.created_time else None,
            "lastUpdatedTime": status.last_updated_time.isoformat() if status.last_updated_time else None,
        }
    )
