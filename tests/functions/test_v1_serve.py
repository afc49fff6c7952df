"""A function.json app under ``durablehost start``, over real HTTP, with the real SDK client in its
starters: the same surface as a decorator app (HTTP triggers, management API, CLI export and
replay-check, the history viewer)."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.functions.conftest import APPS
from tests.http.hosting import MGMT, HostProcess, request, run_cli, start_host, wait_status
from tests.viewer.conftest import CHROMIUM, CHROMIUM_ARGS, start, wait_for

APP = APPS / "v1_durable"


@pytest.fixture(scope="module")
def host() -> Iterator[HostProcess]:
    process = start_host("--store", "memory", app=APP)
    yield process
    assert process.stop() == 0, process.log()


@pytest.fixture
def url(host: HostProcess) -> str:
    assert host.url is not None
    return host.url


async def started(url: str, path: str, body: Any = None) -> dict[str, Any]:
    """POST to a starter; the 202 body holds the check-status links (create_check_status_response)."""
    status, answer, headers = await request("POST", f"{url}{path}", json_body=body)
    assert status == 202, answer
    links: dict[str, Any] = json.loads(answer)
    assert headers["Location"] == links["statusQueryGetUri"]
    return links


async def test_the_banner_lists_the_folders_and_the_disabled_function(host: HostProcess) -> None:
    log = host.log()
    assert f"App:       {APP.resolve()} (function.json folders)" in log
    assert "HelloSequence: orchestrationTrigger" in log
    assert "HttpStart: [POST,GET] http://127.0.0.1:" in log and "/api/orchestrators/{functionName}" in log
    assert "Retired: [GET] " in log and "/api/retired (disabled by AzureWebJobs.Retired.Disabled)" in log


async def test_an_http_starter_answering_through_return(url: str) -> None:
    links = await started(url, "/api/orchestrators/HelloSequence", ["Kyiv"])
    status = await wait_status(url, links["id"], {"Completed", "Failed"})
    assert status["output"] == ["Hello Kyiv!"]


async def test_an_http_starter_answering_through_a_named_output_binding(url: str) -> None:
    links = await started(url, "/api/named/ChainWithStatus")
    status = await wait_status(url, links["id"], {"Completed", "Failed"})
    assert (status["output"], status["customStatus"]) == (3, "1 -> 2 -> 3")


async def test_a_named_output_never_set_answers_200_empty(url: str) -> None:
    status, body, _ = await request("GET", f"{url}/api/silent")
    assert (status, body) == (200, b"")


async def test_the_management_api_starts_an_orchestrator_by_another_spelling(url: str) -> None:
    status, body, _ = await request(
        "POST", f"{url}{MGMT}/orchestrators/helloSEQUENCE/spelled-1", json_body=["Bern"]
    )
    assert status == 202, body
    done = await wait_status(url, "spelled-1", {"Completed", "Failed"})
    assert (done["name"], done["output"]) == ("HelloSequence", ["Hello Bern!"])
    status, body, _ = await request("POST", f"{url}{MGMT}/orchestrators/NoSuchThing", json_body=None)
    assert status == 400 and b"NoSuchThing" in body  # as the extension: an ArgumentException


async def test_a_counter_read_by_the_sdk_client(url: str) -> None:
    links = await started(url, "/api/orchestrators/CounterOrchestration", "web")
    assert (await wait_status(url, links["id"], {"Completed", "Failed"}))["output"] == 7
    status, body, _ = await request("GET", f"{url}/api/entity/Counter/web")
    assert status == 200, body
    assert json.loads(body) == {"key": "web", "state": 7}
    status, body, _ = await request("GET", f"{url}/api/entity/Counter/nobody")
    assert (status, body) == (404, b"Entity not found")


async def test_a_custom_class_from_an_http_starter(url: str) -> None:
    links = await started(url, "/api/points", {"x": 4, "y": 5})
    status = await wait_status(url, links["id"], {"Completed", "Failed"})
    assert status["output"] == {"start": [4, 5], "moved": [50, 60], "type": "Point"}


async def test_approval_over_http(url: str) -> None:
    links = await started(url, "/api/orchestrators/Approval", {"hours": 1})
    await wait_status(url, links["id"], {"Running"})
    raise_url = links["sendEventPostUri"].replace("{eventName}", "Approval")
    status, body, _ = await request("POST", raise_url, json_body={"approved": True})
    assert status == 202, body
    assert (await wait_status(url, links["id"], {"Completed", "Failed"}))["output"] == "approved"


async def test_a_function_disabled_by_app_setting_answers_404(url: str) -> None:
    status, body, _ = await request("GET", f"{url}/api/retired")
    assert status == 404
    assert "disabled by the app setting AzureWebJobs.Retired.Disabled" in json.loads(body)["Message"]


async def test_export_and_replay_check_on_a_function_json_app(url: str, tmp_path: Path) -> None:
    links = await started(url, "/api/orchestrators/BackupSite", 3)
    await wait_status(url, links["id"], {"Completed"})
    exported = tmp_path / "backup.json"
    done = run_cli("export", links["id"], "--url", url, "-o", str(exported))
    assert done.returncode == 0, done.stderr
    checked = run_cli("replay-check", "--app-dir", str(APP), str(exported))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "1 history replayed, 0 with problems" in checked.stdout
    # A changed orchestrator is caught: the same history against an app whose BackupSite differs.
    changed = tmp_path / "changed"
    for folder in ("BackupSite", "ListFiles", "MeasureFile", "shared_code"):
        _copy(APP / folder, changed / folder)
    source = changed / "BackupSite" / "__init__.py"
    source.write_text(source.read_text().replace('"ListFiles"', '"MeasureFile"'))
    refused = run_cli("replay-check", "--app-dir", str(changed), str(exported))
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "1 history replayed, 1 with problems" in refused.stdout


def _copy(source: Path, target: Path) -> None:
    target.mkdir(parents=True)
    for item in source.iterdir():
        if item.is_file():
            (target / item.name).write_bytes(item.read_bytes())


def test_the_history_viewer_shows_a_function_json_instance(url: str) -> None:
    start(url, "HelloSequence", "viewer-1", ["Nice", "Lyon"])
    wait_for(url, "viewer-1", {"Completed"})
    # A browser of this test's own: the viewer tests' session-wide one would keep Playwright's event
    # loop running under every later test of the session.
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.set_default_timeout(10_000)
        page.goto(f"{url}/_durablehost/#/instance/viewer-1")
        expect(page.locator("h1 .badge")).to_have_text("Completed")
        expect(page.locator(".tl-row[data-kind=activity][data-name=sayhello] .tl-seg")).to_have_count(2)
        expect(page.locator("section:has(h2:text-is('Output'))")).to_contain_text("Hello Lyon!")
        browser.close()


def test_an_app_with_both_models_serves_the_script_and_says_so(tmp_path: Path) -> None:
    folder = tmp_path / "Hello"
    folder.mkdir()
    (folder / "function.json").write_text('{"bindings": [{"name": "n", "type": "activityTrigger"}]}')
    (folder / "__init__.py").write_text("def main(n):\n    return n\n")
    (tmp_path / "function_app.py").write_text(
        textwrap.dedent(
            """
            import azure.durable_functions as df

            app = df.DFApp()


            @app.activity_trigger(input_name="x")
            def from_script(x):
                return x
            """
        )
    )
    process = start_host("--store", "memory", app=tmp_path)
    try:
        log = process.log()
        assert "(function_app.py)" in log and "from_script: activityTrigger" in log
        assert "Hello: activityTrigger" not in log
        assert "function.json folders (Hello) are ignored, as the Functions host does" in log
    finally:
        assert process.stop() == 0, process.log()


def test_an_app_folder_with_neither_model_is_refused_naming_both(tmp_path: Path) -> None:
    process = HostProcess(["--app-dir", str(tmp_path), "--port", "0", "--store", "memory"])
    assert process.wait_exit() == 3
    log = process.log()
    assert "cannot load the app" in log and "function_app.py" in log and "function.json" in log
