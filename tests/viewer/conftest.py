"""Fixtures of the history viewer's browser tests: a ``durablehost start`` subprocess on the viewer test
app, and headless Debian chromium driven by Playwright (never a downloaded browser)."""

from __future__ import annotations

import json
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.http.hosting import MGMT, HostProcess, start_host

APP = Path(__file__).parent / "app"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"the viewer tests need Debian's chromium at {CHROMIUM}: apt-get install -y chromium")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def host() -> Iterator[HostProcess]:
    process = start_host("--store", "memory", app=APP)
    yield process
    assert process.stop() == 0, process.log()


@pytest.fixture
def url(host: HostProcess) -> str:
    assert host.url is not None
    return host.url


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(timezone_id="UTC", viewport={"width": 1400, "height": 900})
    context.set_default_timeout(10_000)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    yield opened
    context.close()
    assert not errors, errors


def api(method: str, url: str, body: Any = None) -> tuple[int, Any]:
    """One management API call as a script makes it (no Origin header)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read()
            return response.status, json.loads(text) if text else None
    except urllib.error.HTTPError as error:
        text = error.read()
        return error.code, json.loads(text) if text else None


def start(url: str, orchestrator: str, instance_id: str, body: Any = None) -> None:
    status, answer = api("POST", f"{url}{MGMT}/orchestrators/{orchestrator}/{instance_id}", body)
    assert status == 202, answer


def wait_for(url: str, instance_id: str, wanted: set[str], timeout: float = 15.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    status: Any = None
    while time.monotonic() < deadline:
        _, status = api("GET", f"{url}{MGMT}/instances/{instance_id}")
        if status and status["runtimeStatus"] in wanted:
            return dict(status)
        time.sleep(0.05)
    raise AssertionError(f"{instance_id} did not reach {wanted}: {status}")
