"""The app's HTTP triggers under the route prefix (protocol §6): route matching, auth, invocation."""

from __future__ import annotations

import json
import logging

import azure.functions as func
from aiohttp import web

from durablehost.functions import HttpFunction, build_http_request, call_http_function
from durablehost.http.common import ServerSettings, client_binding, error_response, origin_of, read_body
from durablehost.http.keys import presented_key
from durablehost.http.routes import Route, compile_route, sort_routes

log = logging.getLogger("durablehost.http")


class TriggerTable:
    """The HTTP functions of the app as compiled routes, in matching order."""

    def __init__(self, functions: tuple[HttpFunction, ...], route_prefix: str) -> None:
        self.prefix = route_prefix.strip("/")
        self.routes: list[Route[HttpFunction]] = sort_routes(
            [compile_route(self._full(fn.route), fn) for fn in functions]
        )

    def _full(self, route: str) -> str:
        return f"{self.prefix}/{route.strip('/')}" if self.prefix else route.strip("/")

    def url_path(self, fn: HttpFunction) -> str:
        return "/" + self._full(fn.route)

    def find(self, path: str, method: str) -> tuple[HttpFunction, dict[str, str]] | list[str] | None:
        """The function and route parameters; or the methods allowed on a path that matched; or None."""
        allowed: list[str] = []
        for route in self.routes:
            values = route.match(path)
            if values is None:
                continue
            methods = route.target.methods
            if methods is None or method in methods:
                return route.target, values
            allowed.extend(methods)
        return sorted(set(allowed)) if allowed else None


async def handle(request: web.Request, settings: ServerSettings, table: TriggerTable) -> web.Response:
    found = table.find(request.path, request.method)
    if found is None:
        return error_response(404, f"no function answers {request.method} {request.path}")
    if isinstance(found, list):
        return web.Response(
            status=405,
            text=json.dumps({"Message": f"{request.method} is not allowed; use {', '.join(found)}"}),
            content_type="application/json",
            headers={"Allow": ", ".join(found)},
        )
    fn, route_params = found
    key = presented_key(request.query, request.headers)
    if not settings.keys.allows_trigger(fn.auth_level, key):
        return error_response(401, f"function {fn.name!r} needs a key (auth level {fn.auth_level.lower()})")
    if fn.info.disabled_by is not None and not _is_admin(settings, key):
        # As the Functions host: a disabled function keeps its route (it still shadows others) and
        # answers 404 after the key check, except to admin-level callers (FunctionInvocationMiddleware).
        return error_response(
            404, f"function {fn.name!r} is disabled by the app setting {fn.info.disabled_by}"
        )
    body = await read_body(request, settings.max_body)
    http_request = build_http_request(
        request.method,
        str(request.url),
        headers=dict(request.headers),
        body=body,
        route_params=route_params,
    )
    binding = json.dumps(client_binding(settings, origin_of(request))) if fn.client_param else None
    try:
        response = await call_http_function(fn, http_request, binding, workers=settings.host.user_code)
    except Exception:
        # The user's function (or the SDK client inside it) failed: say so briefly, log the traceback.
        log.exception("function %r failed on %s %s", fn.name, request.method, request.path)
        return error_response(500, f"function {fn.name!r} failed; see the host log for the traceback")
    try:
        return to_aiohttp(response)
    except Exception:
        # A response aiohttp cannot send (a status code out of range, a header with a newline …) is the
        # function's fault too, not the caller's: 500, never the 400 a ValueError would otherwise map to.
        log.exception("function %r returned a response that cannot be sent", fn.name)
        return error_response(500, f"function {fn.name!r} returned an invalid response; see the host log")


def _is_admin(settings: ServerSettings, key: str | None) -> bool:
    # Without enforced keys (loopback) every caller would count as admin, and a disabled function would
    # never answer 404 locally; only a presented master key counts.
    return settings.keys.enforce and settings.keys.allows_trigger("ADMIN", key)


def to_aiohttp(response: func.HttpResponse) -> web.Response:
    if not 100 <= response.status_code <= 599:
        raise ValueError(f"status code {response.status_code} is not an HTTP status")
    headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
    if not any(k.lower() == "content-type" for k in headers) and response.mimetype:
        charset = f"; charset={response.charset}" if response.charset else ""
        headers["Content-Type"] = f"{response.mimetype}{charset}"
    return web.Response(status=response.status_code, body=response.get_body(), headers=headers)
