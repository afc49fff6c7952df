"""The built-in HTTP activity behind ``context.call_http`` (protocol §2.1 type 8, §2.7).

One real request per action. There is no 202/Location polling: the extension's polling schedules
timers and tasks with sequence ids the Python SDK does not know about (protocol §2.7), so mirroring it
would desynchronise ids; an orchestrator that wants to poll does so itself with a timer loop.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiohttp

from durablehost.engine.records import TaskState

_TIMEOUT = aiohttp.ClientTimeout(total=100)  # the extension's default HTTP timeout


@dataclass(frozen=True)
class HttpOutcome:
    state: TaskState
    result: str | None = None
    reason: str | None = None
    details: str | None = None


def _request_body(content: Any) -> bytes | None:
    if content is None:
        return None
    if isinstance(content, str):
        return content.encode("utf-8")
    return json.dumps(content).encode("utf-8")


async def perform_http_call(request_json: str | None) -> HttpOutcome:
    request: dict[str, Any] = json.loads(request_json or "{}")
    method = str(request.get("method") or "GET").upper()
    uri = str(request.get("uri") or "")
    headers = {str(k): str(v) for k, v in (request.get("headers") or {}).items()}
    if request.get("tokenSource"):
        return HttpOutcome(
            TaskState.FAILED,
            reason="call_http with a token source (managed identity) is not available outside Azure",
        )
    try:
        async with (
            aiohttp.ClientSession(timeout=_TIMEOUT) as session,
            session.request(
                method, uri, data=_request_body(request.get("content")), headers=headers
            ) as response,
        ):
            content = await response.text()
            result = {
                "statusCode": response.status,
                "headers": {k: v for k, v in response.headers.items()},
                "content": content,
            }
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        return HttpOutcome(
            TaskState.FAILED,
            reason=f"HTTP {method} {uri} failed: {type(exc).__name__}: {exc}",
            details=None,
        )
    return HttpOutcome(TaskState.COMPLETED, result=json.dumps(result))
