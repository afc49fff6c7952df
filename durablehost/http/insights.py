"""Read-only routes of the management API beyond Azure's, for the history viewer and for scripts.

* ``GET instances/{id}/details``: what the status route does not show — the orchestration version, the
  raw DTFx history (event ids, ``TaskScheduledId``, timestamps, retries as TimerCreated/TaskScheduled
  pairs), the task rows of the current execution with their real start and end times, retry chain, child
  instance and failure, the events waiting in the inbox, and the parent instance. 404 for an unknown
  instance.
* ``GET counts?createdTimeFrom&createdTimeTo&instanceIdPrefix``: instances per runtime status. It reads
  every instance row the filter selects (there is no stored aggregate), so it costs one full scan; the
  list route stays one page per request.

Neither changes stored state, and both follow the management API's key rules.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from aiohttp import web

from durablehost.engine.history import format_timestamp
from durablehost.engine.records import EventMessage, RuntimeStatus, TaskRecord
from durablehost.http.common import ServerSettings, empty_response, json_response
from durablehost.store import MAX_PAGE_SIZE


async def details(settings: ServerSettings, instance_id: str) -> web.Response:
    loaded = await settings.host.repo.load(instance_id)
    if loaded is None:
        return empty_response(404)
    record = loaded.record
    body = {
        "instanceId": record.instance_id,
        "executionId": record.execution_id,
        "name": record.name,
        "runtimeStatus": record.status.value,
        # Kept here rather than in the status JSON, which has no version in Azure (StatusResponsePayload).
        "version": record.version,
        "parentInstanceId": record.parent_instance_id,
        "completedTime": _time(record.completed_time),
        "history": loaded.history,
        "tasks": [task_json(t) for t in sorted(loaded.tasks.values(), key=lambda t: t.task_id)],
        "inbox": [inbox_json(e) for e in loaded.events],
    }
    return json_response(200, body)


def task_json(task: TaskRecord) -> dict[str, Any]:
    retry = task.retry
    return {
        "taskId": task.task_id,
        "kind": task.kind.value,
        "name": task.name,
        "state": task.state.value,
        "scheduledTime": format_timestamp(task.scheduled_time),
        "completedTime": _time(task.completed_time),
        "fireAt": _time(task.fire_at),
        "childInstanceId": task.child_instance_id,
        "retry": None
        if retry is None
        else {
            "chainId": retry.chain_id,
            "attempt": retry.attempt,
            "maxAttempts": retry.max_attempts,
            "intervalMs": retry.interval_ms,
        },
        "finalRetryTimer": task.final_retry_timer,
        "input": _json_or_text(task.input),
        "result": _json_or_text(task.result),
        "reason": task.reason,
        "details": task.details,
    }


def inbox_json(event: EventMessage) -> dict[str, Any]:
    return {
        "name": event.name,
        "raisedTime": format_timestamp(event.raised_time),
        "input": _json_or_text(event.input),
        "idempotencyKey": event.idempotency_key,
    }


async def counts(
    settings: ServerSettings,
    *,
    created_from: datetime | None,
    created_to: datetime | None,
    prefix: str | None,
) -> web.Response:
    found = {status.value: 0 for status in RuntimeStatus}
    token: str | None = None
    while True:
        records, token = await settings.host.list_instances(
            created_from=created_from,
            created_to=created_to,
            prefix=prefix,
            page_size=MAX_PAGE_SIZE,
            continuation=token,
        )
        for record in records:
            found[record.status.value] += 1
        if token is None:
            break
    return json_response(200, {"counts": found, "total": sum(found.values())})


def _time(moment: datetime | None) -> str | None:
    return format_timestamp(moment) if moment is not None else None


def _json_or_text(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text
