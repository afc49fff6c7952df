"""The viewer's files, the read-only additions to the management API, and the guards for browser
requests: cross-site requests and DNS rebinding refused, scripts (no Origin) unaffected, keys asked for
and sent when the host is exposed."""

from __future__ import annotations

import http.client
import json
import uuid
from typing import Any
from urllib.parse import urlsplit

from playwright.sync_api import Browser, expect

from tests.http.hosting import MGMT, start_host
from tests.viewer.conftest import APP, api, start, wait_for

MASTER = "viewer-master-key-0123456789"


def raw(url: str, method: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any, Any]:
    """A request with exactly these headers (Host and Origin included), as a browser would send them."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        body = response.read()
        return response.status, response.headers, json.loads(body) if body[:1] in (b"{", b"[") else body
    finally:
        connection.close()


def test_the_viewer_is_served_with_its_security_headers(url: str) -> None:
    status, headers, body = raw(url, "GET", "/_durablehost/")
    assert status == 200 and b"main.js" in body
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert raw(url, "GET", "/_durablehost/main.js")[1]["Content-Type"].startswith("text/javascript")
    assert raw(url, "GET", "/_durablehost")[0] == 302
    for path in ("/_durablehost/..%2f__init__.py", "/_durablehost/__init__.py", "/_durablehost/nope.js"):
        assert raw(url, "GET", path)[0] == 404, path
    assert raw(url, "POST", "/_durablehost/")[0] == 405


def test_details_and_counts(url: str) -> None:
    instance_id = f"d-{uuid.uuid4().hex[:6]}"
    start(url, "approval", instance_id, {"amount": 3})
    wait_for(url, instance_id, {"Running"})
    assert api("POST", f"{url}{MGMT}/instances/{instance_id}/raiseEvent/other", {"x": 1})[0] == 202
    status, details = api("GET", f"{url}{MGMT}/instances/{instance_id}/details")
    assert status == 200
    assert details["name"] == "approval" and details["runtimeStatus"] == "Running"
    assert [e["EventType"] for e in details["history"]][:2] == [12, 0]
    assert details["inbox"] == [
        {
            "name": "other",
            "raisedTime": details["inbox"][0]["raisedTime"],
            "input": {"x": 1},
            "idempotencyKey": None,
        }
    ]
    assert api("GET", f"{url}{MGMT}/instances/nope-{instance_id}/details")[0] == 404
    status, counts = api("GET", f"{url}{MGMT}/counts?instanceIdPrefix={instance_id}")
    assert status == 200 and counts["total"] == 1 and counts["counts"]["Running"] == 1
    assert api("POST", f"{url}{MGMT}/counts")[0] == 405


def test_cross_site_requests_are_refused_and_scripts_are_not(url: str) -> None:
    instance_id = f"csrf-{uuid.uuid4().hex[:6]}"
    start(url, "approval", instance_id)
    wait_for(url, instance_id, {"Running"})
    path = f"{MGMT}/instances/{instance_id}/terminate"
    host = urlsplit(url).netloc
    for headers in (
        {"Origin": "http://evil.example", "Content-Type": "text/plain"},
        {"Origin": "null"},
        {"Origin": f"http://localhost:{urlsplit(url).port}"},  # another origin on the same machine
        {"Sec-Fetch-Site": "cross-site"},
    ):
        status, _, body = raw(url, "POST", path, headers)
        assert status == 403, (headers, body)
    assert raw(url, "DELETE", f"{MGMT}/instances/{instance_id}", {"Origin": "http://evil.example"})[0] == 403
    assert wait_for(url, instance_id, {"Running"})
    # DNS rebinding: a page of evil.example that resolves to 127.0.0.1 is same-origin with itself.
    port = urlsplit(url).port
    rebound = {"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"}
    assert raw(url, "POST", path, rebound)[0] == 403
    assert raw(url, "GET", f"{MGMT}/instances/{instance_id}", rebound)[0] == 403
    assert raw(url, "GET", "/_durablehost/", {"Host": f"evil.example:{port}"})[0] == 403
    # The viewer's own origin, and a script without Origin, may.
    assert raw(url, "POST", f"{MGMT}/instances/{instance_id}/suspend", {"Origin": f"http://{host}"})[0] == 202
    assert api("POST", f"{url}{MGMT}/instances/{instance_id}/terminate")[0] == 202


def test_an_exposed_host_asks_for_the_key_and_the_viewer_sends_it(browser: Browser) -> None:
    host = start_host(
        "--store", "memory", "--host", "127.0.0.2", app=APP, env={"DURABLEHOST_MASTER_KEY": MASTER}
    )
    try:
        assert host.url is not None and f"History viewer: {host.url}/_durablehost/" in "".join(host.lines)
        context = browser.new_context()
        page = context.new_page()
        page.goto(host.url + "/_durablehost/")
        expect(page.locator("#notice")).to_contain_text("needs a key")
        page.fill("#key-input", MASTER)
        page.click("#key-form button")
        expect(page.locator("#key-state")).to_have_text("key set (this tab)")
        expect(page.locator("#status-chips")).to_contain_text("0 instances")
        assert page.evaluate("sessionStorage.getItem('durablehost.viewer.key')") == MASTER
        context.close()
    finally:
        assert host.stop() == 0, host.log()


def test_host_names() -> None:
    from aiohttp.test_utils import make_mocked_request

    from durablehost.http.browser import host_name

    for header, name in (("127.0.0.1:7071", "127.0.0.1"), ("[::1]:7071", "[::1]"), ("LOCALHOST", "localhost"),
                         ("evil.example:80", "evil.example"), ("", "")):  # fmt: skip
        assert host_name(make_mocked_request("GET", "/", headers={"Host": header})) == name
