"""``GET /api/status/{instanceId}``: a workflow's stage and result, without the management API's keys."""

from __future__ import annotations

from datetime import UTC, datetime

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
            "createdTime": _utc_text(status.created_time),
            "lastUpdatedTime": _utc_text(status.last_updated_time),
        }
    )


def _utc_text(moment: datetime | None) -> str | None:
    """A time as the management API writes it: UTC, whole seconds, ``Z`` (``2024-01-01T00:00:00Z``)."""
    if moment is None:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
