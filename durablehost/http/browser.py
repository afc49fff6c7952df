"""Guards for requests that come from a browser: cross-site request forgery and DNS rebinding.

The management API is called by the SDK's client and by scripts, which send no ``Origin`` header, and by
the history viewer (``durablehost.viewer``) in a browser, which does. A page on another origin can make a
browser send a "simple" cross-site POST (``Content-Type: text/plain``, no preflight) to
``http://127.0.0.1:7071/…/terminate``; on loopback no key stops it. So:

* **Cross-site requests are refused** (403): a request that changes state (any method but GET, HEAD,
  OPTIONS) to the management API is refused when it carries an ``Origin`` other than the host's own
  (``scheme://Host``), including ``Origin: null``, or when the browser labels it ``Sec-Fetch-Site:
  cross-site`` / ``same-site``. Browsers send ``Origin`` on every cross-origin POST and DELETE, form
  posts included, so a forged request always carries a foreign one. Callers without ``Origin`` (the SDK,
  curl) are unaffected.
* **DNS rebinding is refused** (403) on loopback, where keys are not checked: a browser request (one with
  ``Origin`` or ``Sec-Fetch-Site``) to the management API, and every request for the viewer's pages, must
  name the host ``127.0.0.1``, ``localhost`` or ``[::1]`` in ``Host``. A rebinding page
  (``evil.example`` resolving to 127.0.0.1) is same-origin with itself, so it passes the origin check,
  but its ``Host`` gives it away. When the host is exposed, keys are required and a foreign page cannot
  read the key the viewer keeps in its own origin's ``sessionStorage``.
* **The local RPC listener** (``127.0.0.1:<free port>``, key-free even when the host is exposed; it
  serves the SDK's client inside HTTP triggers, server.py) takes no browser request at all and only
  ``Host: 127.0.0.1`` / ``localhost`` / ``[::1]``: the SDK sends no ``Origin`` and names the address of
  its ``rpcBaseUrl``, while a rebound page or a forwarded request names another host.
"""

from __future__ import annotations

from aiohttp import web

from durablehost.http.common import error_response, origin_of

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "[::1]"})


def is_browser_request(request: web.Request) -> bool:
    return "Origin" in request.headers or "Sec-Fetch-Site" in request.headers


def host_name(request: web.Request) -> str:
    """The ``Host`` header without its port (``[::1]:7071`` -> ``[::1]``)."""
    host = (request.headers.get("Host") or "").lower()
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0] if ":" in host else host


def rebinding_refusal(request: web.Request, key_free: bool) -> web.Response | None:
    """403 for a request naming a foreign host on a listener that checks no keys; None to go on."""
    if not key_free or host_name(request) in _LOOPBACK_NAMES:
        return None
    return error_response(
        403, "this listener checks no keys: address it as http://127.0.0.1 or http://localhost (Host header)"
    )


def cross_site_refusal(request: web.Request) -> web.Response | None:
    if request.method in SAFE_METHODS:
        return None
    origin = request.headers.get("Origin")
    if origin is not None and origin.lower() != origin_of(request).lower():
        return error_response(403, f"cross-site request refused: Origin {origin!r} is not this host")
    if request.headers.get("Sec-Fetch-Site") in ("cross-site", "same-site"):
        return error_response(403, "cross-site request refused (Sec-Fetch-Site)")
    return None


def management_refusal(request: web.Request, *, key_free: bool, local_rpc: bool) -> web.Response | None:
    """403 for a forged or rebound request to the management API; None to go on.

    ``key_free``: the listener checks no keys (bound to loopback, or the local RPC listener);
    ``local_rpc``: the local RPC listener, which serves the SDK's client only (module docstring).
    """
    if local_rpc:
        if is_browser_request(request):
            return error_response(403, "the local RPC listener serves the durable client, not browsers")
        return rebinding_refusal(request, key_free=True)
    if not is_browser_request(request):
        return None
    return rebinding_refusal(request, key_free) or cross_site_refusal(request)
