"""Regenerate docs/viewer-list.png and docs/viewer-detail.png: runs the agent app (the repository root)
under ``durablehost start --store memory``, starts a few workflows through its HTTP routes, approves one
request, and photographs the history viewer in headless Debian chromium.

    .venv/bin/python docs/viewer_screenshots.py
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


def post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        answer: dict[str, Any] = json.loads(response.read())
        return answer


def status(base: str, instance_id: str) -> str:
    with urllib.request.urlopen(f"{base}/runtime/webhooks/durabletask/instances/{instance_id}") as response:
        return str(json.loads(response.read())["runtimeStatus"])


def wait_until(check: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit("the workflows did not get where the screenshots need them")
        time.sleep(0.1)


def main() -> None:
    env = {**os.environ, "APP_STATE_STORE": "memory", "FAKE_TRANSIENT_FAILURES": "payments.charge=1"}
    command = [str(Path(sys.executable).parent / "durablehost"), "start", "--app-dir", str(ROOT)]
    host = subprocess.Popen(
        [*command, "--store", "memory", "--port", "0"], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert host.stdout is not None
        base = ""
        for line in host.stdout:
            found = re.search(r"Listening on (http://\S+)", line)
            if found:
                base = found.group(1)
                break
        api = f"{base}/api"
        refund = post(f"{api}/requests", {"text": "Please refund order 1234, it arrived broken",
                                          "customer": "c1", "amount": 120})["id"]  # fmt: skip
        post(f"{api}/requests", {"text": "Cancel my subscription please", "customer": "c2", "amount": 30})
        post(f"{api}/requests", {"text": "Where is my parcel?", "customer": "c3"})
        post(f"{api}/research", {"topic": "heat pumps in cold climates", "num_queries": 6})
        post(f"{api}/bookings", {"flight": "XY123", "date": "2026-12-20", "passengers": 2, "amount": 398.0,
                                 "currency": "EUR", "card_token": "tok_visa"})  # fmt: skip
        post(f"{api}/bookings", {"flight": "XY124", "date": "2026-12-21", "passengers": 1, "amount": 199.0,
                                 "currency": "EUR", "card_token": "tok_declined"})  # fmt: skip
        post(f"{api}/agent-runs", {"goal": "compare three cloud providers on price", "token_budget": 300})
        wait_until(lambda: status(base, refund) == "Running")
        time.sleep(1.5)  # the classification and the first notification run first
        post(f"{api}/approvals/{refund}", {"approval_id": "ap-001", "approver": "alice@example.com",
                                           "decision": "approve", "comment": "ok"})  # fmt: skip
        wait_until(lambda: status(base, refund) == "Completed")
        time.sleep(1.0)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 800}, timezone_id="UTC")
            page.goto(f"{base}/_durablehost/")
            page.wait_for_selector("#instances tr")
            page.wait_for_timeout(500)
            page.screenshot(path=str(DOCS / "viewer-list.png"))
            page.goto(f"{base}/_durablehost/#/instance/{refund}")
            page.wait_for_selector("#timeline")
            page.wait_for_timeout(500)
            page.screenshot(path=str(DOCS / "viewer-detail.png"), full_page=True)
            browser.close()
    finally:
        host.terminate()
        host.wait(30)


if __name__ == "__main__":
    main()
