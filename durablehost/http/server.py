"""The aiohttp application: one catch-all route that dispatches to the management API or a trigger.

Own dispatching instead of aiohttp's router, because the Functions host matches routes
case-insensitively, with or without a trailing slash, and instance ids may hold percent-encoded
characters that must not split path segments.

When the host is exposed (keys.py), the SDK's client inside HTTP triggers needs a key-free way to call
the management API — Azure gives it a local-only RPC endpoint (``127.0.0.1:17071``). Here that is a
second listener on ``127.0.0.1`` (a free port) that serves the management API only, without keys.

The history viewer's files are served under ``/_durablehost/`` (durablehost.viewer), before app routes;
browser requests to the management API and the viewer pass the guards of durablehost.http.browser.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from urllib.parse import unquote

from aiohttp import web

from durablehost import viewer
from durablehost.errors import (
    EntityTooLarge,
    IdempotencyKeyReused,
    InstanceAlreadyRunning,
    InstanceFinished,
    InstanceNotFailed,
    InstanceNotFound,
    InvalidRequest,
    PayloadTooLarge,
    RewindRefused,
    StoreUnavailable,
    UnknownFunction,
)
from durablehost.http import browser, management, triggers
from durablehost.http.common import MANAGEMENT_PREFIX, BodyTooLarge, ServerSettings, error_response
from durablehost.http.keys import presented_key

log = logging.getLogger("durablehost.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# The Retry-After of a 503 while the store is away: the engine's owed writes notice its return within a
# second (durablehost.engine.owed.MAX_DELAY), so a client trying again after that finds it working.
STORE_RETRY_AFTER = "1"


def management_segments(raw_path: str) -> list[str] | None:
    """Decoded segments after the management prefix, or None if the path is not under it."""
    segments = raw_path.split("?", 1)[0].split("/")[1:]
    prefix = MANAGEMENT_PREFIX.strip("/").split("/")
    if [s.lower() for s in segments[: len(prefix)]] != prefix:
        return None
    rest = segments[len(prefix) :]
    if rest and rest[-1] == "":
        rest = rest[:-1]  # one trailing slash is allowed
    try:
        return [unquote(s, errors="strict") for s in rest]
    except UnicodeDecodeError:
        raise InvalidRequest("the path is not valid UTF-8 once percent-decoded") from None


def build_app(
    settings: ServerSettings, table: triggers.TriggerTable, *, rpc_only: bool = False
) -> web.Application:
    """The application for the public listener, or (``rpc_only``) for the key-free local RPC listener."""

    async def dispatch(request: web.Request) -> web.StreamResponse:
        try:
            return await _route(request, settings, table, rpc_only)
        except web.HTTPException:
            raise
        except Exception as exc:
            return _error(request, exc, settings)

    app = web.Application(client_max_size=settings.max_body)
    app.router.add_route("*", "/{tail:.*}", dispatch)
    return app


async def _route(
    request: web.Request, settings: ServerSettings, table: triggers.TriggerTable, rpc_only: bool
) -> web.StreamResponse:
    # The local RPC listener checks no keys even when the host is exposed: the browser guards must then
    # hold on their own (browser.py).
    key_free = rpc_only or not settings.keys.enforce
    segments = management_segments(request.raw_path)
    if segments is not None:
        refused = browser.management_refusal(request, key_free=key_free, local_rpc=rpc_only)
        if refused is not None:
            return refused
        if not rpc_only and not settings.keys.allows_management(
            presented_key(request.query, request.headers)
        ):
            return error_response(401, "the management API needs a key (code= or the x-functions-key header)")
        return await management.handle(request, settings, segments)
    if rpc_only:
        return error_response(404, "this local listener serves the management API only")
    page = viewer.viewer_path(request.path)
    if page is not None:
        return browser.rebinding_refusal(request, key_free) or viewer.serve(request, page)
    return await triggers.handle(request, settings, table)


def _error(request: web.Request, exc: Exception, settings: ServerSettings) -> web.Response:
    """Map refusals to the extension's status codes. Only the caller's mistakes (InvalidRequest, an unknown
    function, the instance's state) are 4xx. A store that cannot be reached is a 503 with Retry-After: the
    request may be sent again as it is. Any other exception — a ValueError from a corrupt stored row
    included — is the host's, a 500 whose error id is in the log line with the traceback."""
    match exc:
        case BodyTooLarge():
            return error_response(413, str(exc))
        case PayloadTooLarge() | EntityTooLarge():
            return error_response(413, f"the payload cannot be stored: {exc}")
        case InvalidRequest() | UnknownFunction():
            return error_response(400, _short(exc))
        case InstanceNotFound():
            return error_response(404, str(exc))
        case InstanceFinished() | InstanceNotFailed():
            return error_response(410, str(exc))
        case RewindRefused() | InstanceAlreadyRunning():
            return error_response(409, str(exc))
        case IdempotencyKeyReused():
            # The IETF draft's answer to a key reused with another payload (draft-ietf-httpapi-
            # idempotency-key-header, "Error Scenarios").
            return error_response(422, str(exc))
        case StoreUnavailable():
            # Once per outage in the log (with the engine's own warning), not once a request.
            settings.host.outage.refused(f"{request.method} {request.path}", exc)
            refusal = error_response(503, f"storage is unavailable: {exc}")
            refusal.headers["Retry-After"] = STORE_RETRY_AFTER
            return refusal
    error_id = uuid.uuid4().hex[:12]
    log.error("unhandled error (error id %s) on %s %s", error_id, request.method, request.path, exc_info=exc)
    return error_response(
        500, f"internal error ({type(exc).__name__}, error id {error_id}); the host log has the details"
    )


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) <= 500 else text[:500] + "…"
