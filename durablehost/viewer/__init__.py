"""The history viewer: a browser UI over the management API, served by ``durablehost start``.

Static files only (HTML, vanilla JS modules, CSS), shipped in ``static/`` and served under
``/_durablehost/`` on the same port as the app. Every piece of data the pages show comes from the
management API (``/runtime/webhooks/durabletask/``) with the key the user enters; the files themselves
hold nothing secret. Security: durablehost.http.browser, and the headers below (no framing, no inline
script, nothing loaded from elsewhere).
"""

from __future__ import annotations

from importlib.resources import files

from aiohttp import web

VIEWER_PREFIX = "/_durablehost"
_STATIC = files(__package__) / "static"
_TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def viewer_path(path: str) -> str | None:
    """The file a request path asks for (``""`` = the page), or None if it is not the viewer's."""
    lowered = path.lower()
    if lowered == VIEWER_PREFIX:
        return ""
    if not lowered.startswith(VIEWER_PREFIX + "/"):
        return None
    return path[len(VIEWER_PREFIX) + 1 :]


def serve(request: web.Request, name: str) -> web.Response:
    """``GET /_durablehost/`` is the page; ``/_durablehost/<file>`` a file of static/ (flat, no dirs)."""
    if request.method not in ("GET", "HEAD"):
        return web.Response(status=405, headers={"Allow": "GET, HEAD"})
    if name == "" and not request.path.endswith("/"):
        raise web.HTTPFound(VIEWER_PREFIX + "/")
    name = name or "index.html"
    suffix = name[name.rfind(".") :] if "." in name else ""
    resource = _STATIC / name
    if "/" in name or "\\" in name or name.startswith(".") or suffix not in _TYPES or not resource.is_file():
        return web.Response(status=404, text="not a file of the viewer", headers=SECURITY_HEADERS)
    return web.Response(
        body=resource.read_bytes(), content_type=_TYPES[suffix], charset="utf-8", headers=SECURITY_HEADERS
    )
