"""The history viewer end to end in headless chromium against ``durablehost start``."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from playwright.sync_api import Page, Request, expect

from tests.http.hosting import MGMT, start_host
from tests.viewer.conftest import APP, api, start, wait_for

VIEWER = "/_durablehost/"


def _ids(page: Page) -> list[str]:
    return page.locator("#instances tr").evaluate_all("rows => rows.map(r => r.dataset.id)")


def _local(moment: datetime) -> str:
    """A datetime-local value (the browser runs in UTC)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


def test_the_list_filters_instances(page: Page, url: str) -> None:
    run = uuid.uuid4().hex[:6]
    early = [f"{run}-fan-{i}" for i in range(2)] + [f"{run}-broken-0"]
    for instance_id in early[:2]:
        start(url, "fan_out", instance_id, [10])
    start(url, "broken", early[2])
    for instance_id in early:
        wait_for(url, instance_id, {"Completed", "Failed"})
    # The created-time filter has whole seconds: the later instances are created in a later second.
    boundary = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    time.sleep(max(0.0, (boundary - datetime.now(UTC)).total_seconds()) + 0.05)
    late = [f"{run}-wait-{i}" for i in range(3)]
    for instance_id in late:
        start(url, "approval", instance_id, {"amount": 1})
    for instance_id in late:
        wait_for(url, instance_id, {"Running"})

    page.goto(url + VIEWER)
    page.fill("input[name=prefix]", run)
    page.click("#filters button[type=submit]")
    expect(page.locator("#instances tr")).to_have_count(6)
    assert sorted(_ids(page)) == sorted(early + late)
    running_chip = page.locator("#status-chips [data-status=Running]")
    expect(running_chip).to_contain_text("3")  # counts follow the prefix filter
    expect(page.locator("#status-chips [data-status=Failed]")).to_contain_text("1")

    running_chip.click()  # status filter
    expect(page.locator("#instances tr")).to_have_count(3)
    assert sorted(_ids(page)) == late
    assert "status=Running" in page.url

    page.locator("#status-chips [data-status=Running]").click()  # off again
    page.fill("input[name=name]", "fan_out")  # orchestrator name
    page.click("#filters button[type=submit]")
    expect(page.locator("#instances tr")).to_have_count(2)
    assert sorted(_ids(page)) == early[:2]

    page.goto(f"{url}{VIEWER}#/?prefix={run}&to={_local(boundary - timedelta(seconds=1))}")
    expect(page.locator("#instances tr")).to_have_count(3)
    assert sorted(_ids(page)) == sorted(early)
    page.goto(f"{url}{VIEWER}#/?prefix={run}&from={_local(boundary)}")
    expect(page.locator("#instances tr")).to_have_count(3)
    assert sorted(_ids(page)) == late
    page.goto(f"{url}{VIEWER}#/?prefix={run}-nothing")
    expect(page.locator("#list-message")).to_have_text("No instances match.")

    page.goto(f"{url}{VIEWER}#/?prefix={run}")  # a row opens the instance
    page.click(f"a:text-is('{late[0]}')")
    expect(page.locator("#instance-id")).to_have_text(late[0])


def test_fan_out_with_a_retried_activity_shows_steps_and_durations(page: Page, url: str) -> None:
    instance_id = f"fan-{uuid.uuid4().hex[:6]}"
    start(url, "fan_out", instance_id, [200, 400, 600])
    wait_for(url, instance_id, {"Completed"})
    page.goto(f"{url}{VIEWER}#/instance/{instance_id}")
    expect(page.locator("h1 .badge")).to_have_text("Completed")

    pauses = page.locator(".tl-row[data-kind=activity][data-name=pause] .tl-seg")
    expect(pauses).to_have_count(3)
    durations = sorted(int(d) for d in pauses.evaluate_all("s => s.map(x => x.dataset.durationMs)"))
    for took, slept in zip(durations, [200, 400, 600], strict=True):
        assert slept <= took < slept + 400, durations
    expect(page.locator(".tl-row[data-name=pause]").first).to_contain_text("ms")

    flaky = page.locator(".tl-row[data-name=flaky]")
    expect(flaky).to_contain_text("2 of 3 attempts, 1 failed")
    attempts = flaky.locator(".tl-seg[data-type=attempt]")
    expect(attempts).to_have_count(2)
    assert attempts.evaluate_all("s => s.map(x => [x.dataset.attempt, x.dataset.state])") == [
        ["1", "failed"],
        ["2", "completed"],
    ]
    wait = flaky.locator(".tl-seg[data-type=wait]")
    expect(wait).to_have_count(1)
    assert 300 <= int(wait.get_attribute("data-duration-ms") or 0) < 1500  # the 300 ms retry interval
    expect(flaky).to_contain_text("#1 failed")

    expect(page.locator(".failure")).to_contain_text("flaky: the first attempt always fails")
    expect(page.locator("section:has(h2:text-is('Output'))")).to_contain_text("ok after 2 attempts")
    history = page.locator("#history tbody tr")
    assert history.evaluate_all("r => r.filter(x => x.dataset.type === 'TaskFailed').length") == 1
    assert history.evaluate_all("r => r.filter(x => x.dataset.type === 'TimerCreated').length") == 1
    assert history.evaluate_all("r => r.filter(x => x.dataset.type === 'TaskScheduled').length") == 5
    expect(page.locator("#history tbody tr[data-type=ExecutionCompleted]")).to_be_visible()


def test_a_parent_links_to_its_child_and_back(page: Page, url: str) -> None:
    instance_id = f"parent-{uuid.uuid4().hex[:6]}"
    start(url, "parent", instance_id)
    wait_for(url, instance_id, {"Completed"})
    page.goto(f"{url}{VIEWER}#/instance/{instance_id}")
    page.click(f"#children a:text-is('{instance_id}-child')")
    expect(page.locator("#instance-id")).to_have_text(f"{instance_id}-child")
    page.click("#parent a")
    expect(page.locator("#instance-id")).to_have_text(instance_id)


def _raise_requests(page: Page) -> list[str]:
    seen: list[str] = []

    def record(request: Request) -> None:
        if "/raiseEvent/" in request.url:
            seen.append(request.url)

    page.on("request", record)
    return seen


def test_raising_the_approval_from_the_page_completes_the_instance(page: Page, url: str) -> None:
    instance_id = f"approve-{uuid.uuid4().hex[:6]}"
    start(url, "approval", instance_id, {"amount": 120})
    wait_for(url, instance_id, {"Running"})
    page.goto(f"{url}{VIEWER}#/instance/{instance_id}")
    expect(page.locator("h1 .badge")).to_have_text("Running")
    expect(page.locator("section:has(h2:text-is('Custom status'))")).to_contain_text("waiting for approval")
    sent = _raise_requests(page)

    page.click("[data-action='raise event']")
    page.fill("#event-name", "approval")
    page.fill("#event-payload", '{"approved": true, "by": "viewer"}')
    page.fill("#idempotency-key", "approve-once")
    expect(page.locator("#payload-state")).to_have_text("valid JSON")
    page.click("#confirm-action")
    expect(page.locator("#action-answer")).to_contain_text("HTTP 202")
    assert len(sent) == 1
    page.click("dialog button:text-is('Close')")

    expect(page.locator("h1 .badge")).to_have_text("Completed", timeout=15_000)
    status = wait_for(url, instance_id, {"Completed"})
    assert status["output"] == {"request": {"amount": 120}, "decision": {"approved": True, "by": "viewer"}}


def test_a_bad_json_payload_is_refused_in_the_page_without_a_request(page: Page, url: str) -> None:
    instance_id = f"bad-{uuid.uuid4().hex[:6]}"
    start(url, "approval", instance_id)
    wait_for(url, instance_id, {"Running"})
    page.goto(f"{url}{VIEWER}#/instance/{instance_id}")
    sent = _raise_requests(page)
    page.click("[data-action='raise event']")
    page.fill("#event-name", "approval")
    page.fill("#event-payload", '{"approved": tru')
    expect(page.locator("#payload-state")).to_contain_text("invalid JSON")
    expect(page.locator("#confirm-action")).to_be_disabled()
    page.press("#event-name", "Enter")  # submitting the form anyway
    page.evaluate("document.querySelector('dialog form').requestSubmit()")
    page.wait_for_timeout(300)
    assert sent == []
    expect(page.locator("#action-answer")).to_have_count(0)
    _, details = api("GET", f"{url}{MGMT}/instances/{instance_id}/details")
    assert details["inbox"] == [] and wait_for(url, instance_id, {"Running"})


def test_each_action_confirms_and_shows_the_answer(page: Page, url: str) -> None:
    instance_id = f"act-{uuid.uuid4().hex[:6]}"
    start(url, "approval", instance_id)
    wait_for(url, instance_id, {"Running"})
    page.goto(f"{url}{VIEWER}#/instance/{instance_id}")

    page.click("[data-action=suspend]")
    expect(page.locator("dialog")).to_contain_text(f"/instances/{instance_id}/suspend")
    page.fill("dialog input[name=reason]", "looking into it")
    page.click("#confirm-action")
    expect(page.locator("#action-answer")).to_contain_text("HTTP 202")
    page.click("dialog button:text-is('Close')")
    expect(page.locator("h1 .badge")).to_have_text("Suspended")

    page.click("[data-action=purge]")  # refused while it has not finished: the page shows why
    page.click("#confirm-action")
    expect(page.locator("#action-answer")).to_contain_text("HTTP 409")
    page.click("dialog button:text-is('Close')")

    page.click("[data-action=terminate]")
    page.click("#confirm-action")
    expect(page.locator("#action-answer")).to_contain_text("HTTP 202")
    page.click("dialog button:text-is('Close')")
    expect(page.locator("h1 .badge")).to_have_text("Terminated")

    page.click("[data-action=purge]")
    page.click("#confirm-action")
    expect(page.locator("#action-answer")).to_contain_text('"instancesDeleted": 1')
    assert api("GET", f"{url}{MGMT}/instances/{instance_id}")[0] == 404


def test_a_non_determinism_failure_is_reported(page: Page, tmp_path: Path) -> None:
    store = f"sqlite:{tmp_path / 'state.sqlite'}"
    old = start_host("--store", store, app=APP)
    try:
        assert old.url is not None
        start(old.url, "approval", "nd-1", {"amount": 7})
        wait_for(old.url, "nd-1", {"Running"})
    finally:
        assert old.stop() == 0, old.log()
    changed = start_host("--store", store, app=APP.parent / "app_changed")
    try:
        assert changed.url is not None
        assert api("POST", f"{changed.url}{MGMT}/instances/nd-1/raiseEvent/approval", {"ok": True})[0] == 202
        wait_for(changed.url, "nd-1", {"Failed"})
        page.goto(f"{changed.url}{VIEWER}#/instance/nd-1")
        failure = page.locator("#instance-failure")
        expect(failure).to_have_class("failure nondeterminism")
        expect(failure).to_contain_text("Non-determinism detected")
        expect(failure).to_contain_text("the code now yields CallActivity 'audit'")
    finally:
        assert changed.stop() == 0, changed.log()


def test_the_list_pages_with_the_continuation_token(page: Page, url: str) -> None:
    run = uuid.uuid4().hex[:6]
    ids = [f"{run}-page-{i:02d}" for i in range(53)]
    for instance_id in ids:
        start(url, "approval", instance_id)
    page.goto(f"{url}{VIEWER}#/?prefix={run}")
    expect(page.locator("#instances tr")).to_have_count(50)
    first = _ids(page)
    page.click("#next-page")
    expect(page.locator("#instances tr")).to_have_count(3)
    assert sorted(first + _ids(page)) == ids
    expect(page.locator("#next-page")).to_be_disabled()
    page.click("#previous-page")
    expect(page.locator("#instances tr")).to_have_count(50)
    assert _ids(page) == first


def test_restart_from_the_page_links_to_the_new_instance(page: Page, url: str) -> None:
    instance_id = f"rs-{uuid.uuid4().hex[:6]}"
    start(url, "broken", instance_id)
    wait_for(url, instance_id, {"Failed"})
    page.goto(f"{url}{VIEWER}#/instance/{instance_id}")
    page.click("[data-action=restart]")
    page.check("dialog input[name=fresh]")
    expect(page.locator("dialog")).to_contain_text("restartWithNewInstanceId=true")
    page.click("#confirm-action")
    expect(page.locator("#action-answer")).to_contain_text("HTTP 202")
    started = page.locator("#started").inner_text()
    assert started != instance_id
    page.click("#started")
    expect(page.locator("#instance-id")).to_have_text(started)
    expect(page.locator("h1 .badge")).to_have_text("Failed")  # the same input fails the same way


def test_the_version_of_an_instance_is_shown(page: Page, url: str) -> None:
    versioned, unversioned = (f"version-{uuid.uuid4().hex[:6]}" for _ in range(2))
    status, answer = api("POST", f"{url}{MGMT}/orchestrators/parent/{versioned}?version=1.5")
    assert status == 202, answer
    start(url, "parent", unversioned)
    wait_for(url, unversioned, {"Completed"})
    # This app sets no defaultVersion, so a 1.5 instance is newer than it and waits, never run: the page
    # shows its version all the same (from the instance row, as its history is empty).
    page.goto(f"{url}{VIEWER}#/instance/{versioned}")
    expect(page.locator("#version")).to_have_text("1.5")
    expect(page.locator("h1 .badge")).to_have_text("Pending")
    page.goto(f"{url}{VIEWER}#/instance/{unversioned}")
    expect(page.locator("#instance-id")).to_have_text(unversioned)
    expect(page.locator("#version")).to_have_count(0)  # an unversioned instance shows no version
