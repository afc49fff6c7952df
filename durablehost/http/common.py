"""Shared pieces of the HTTP server: its settings, JSON answers, body reading and the management links."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from aiohttp import web

from durablehost.engine.host import DurableHost
from durablehost.http.keys import Keys

MANAGEMENT_PREFIX = "/runtime/webhooks/durabletask"
DEFAULT_MAX_BODY = 1024 * 1024
# The `connection` value the extension puts into its links; we serve one store, so it is informational.
CONNECTION_NAME = "Storage"


@dataclass
class ServerSettings:
    host: DurableHost
    hub: str
    keys: Keys
    max_body: int = DEFAULT_MAX_BODY
    # Where the SDK's client sends its calls (protocol §5.1). Filled in once the listening port is known.
    rpc_base_url: str = ""


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is larger than the limit of {limit} bytes")
        self.limit = limit


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, text=json.dumps(body), content_type="application/json", headers=headers
    )


def error_response(status: int, message: str, detail: str | None = None) -> web.Response:
    """An error in the extension's shape: the SDK raises ``Exception(body["ExceptionMessage"])`` (§5.2)."""
    return json_response(status, {"Message": message, "ExceptionMessage": detail or message})


def empty_response(status: int, headers: dict[str, str] | None = None) -> web.Response:
    # An empty body, not "null" or text: the SDK parses every body as JSON and an empty one gives None.
    return web.Response(status=status, headers=headers)


async def read_body(request: web.Request, limit: int) -> bytes:
    """The whole body, refusing more than ``limit`` bytes without reading them all into memory."""
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.read(64 * 1024)
        if not chunk:
            break
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def origin_of(request: web.Request) -> str:
    """``scheme://host[:port]`` as the caller addressed us (the SDK rewrites link origins the same way)."""
    return f"{request.scheme}://{request.host}"


def _code_parameter(settings: ServerSettings) -> str:
    if settings.keys.enforce and settings.keys.system:
        # As Azure does with its system key: the links must work when followed (keys.py docstring).
        return f"code={quote(settings.keys.system)}"
    return ""


def link_query(settings: ServerSettings) -> str:
    query = f"taskHub={quote(settings.hub)}&connection={CONNECTION_NAME}"
    code = _code_parameter(settings)
    return f"{query}&{code}" if code else query


def management_urls(settings: ServerSettings, origin: str, instance_id: str) -> dict[str, str]:
    """The nine links of the HttpManagementPayload (§5.3); ``instance_id`` may be the placeholder."""
    base = f"{origin}{MANAGEMENT_PREFIX}/instances/{instance_id}"
    query = link_query(settings)
    return {
        "id": instance_id,
        "statusQueryGetUri": f"{base}?{query}",
        "sendEventPostUri": f"{base}/raiseEvent/{{eventName}}?{query}",
        "terminatePostUri": f"{base}/terminate?reason={{text}}&{query}",
        "rewindPostUri": f"{base}/rewind?reason={{text}}&{query}",
        "purgeHistoryDeleteUri": f"{base}?{query}",
        "restartPostUri": f"{base}/restart?{query}",
        "suspendPostUri": f"{base}/suspend?reason={{text}}&{query}",
        "resumePostUri": f"{base}/resume?reason={{text}}&{query}",
    }


def client_binding(settings: ServerSettings, origin: str) -> dict[str, Any]:
    """The durable client binding JSON (protocol §5.1)."""
    base = f"{origin}{MANAGEMENT_PREFIX}"
    query = link_query(settings)
    create = f"{base}/orchestrators/{{functionName}}[/{{instanceId}}]"
    return {
        "taskHubName": settings.hub,
        "creationUrls": {
            "createNewInstancePostUri": f"{create}?{query}",
            "createAndWaitOnNewInstancePostUri": (
                f"{create}?timeout={{timeoutInSeconds}}&pollingInterval={{intervalInSeconds}}&{query}"
            ),
        },
        # The SDK replaces every "INSTANCEID" with the instance id (§5.1).
        "managementUrls": management_urls(settings, origin, "INSTANCEID"),
        "baseUrl": base,
        "requiredQueryStringParameters": _code_parameter(settings),
        "rpcBaseUrl": settings.rpc_base_url,
    }
