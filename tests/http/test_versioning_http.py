"""Versioning and the Azure-exact fidelity through ``durablehost start`` and real HTTP: host.json's
defaultVersion, the SDK client's ``start_new(version=)`` reaching the management API's ``?version=``,
``--fidelity azure``, and a bad versioning setting refusing the start."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.http.hosting import APPS, MGMT, HostProcess, request, run_cli, start_host, wait_status

APP = APPS / "versioned"


@pytest.fixture(scope="module")
def azure_exact() -> Iterator[HostProcess]:
    host = start_host("--store", "memory", "--fidelity", "azure", app=APP)
    yield host
    assert host.stop() == 0, host.log()


def base(host: HostProcess) -> str:
    assert host.url is not None
    return host.url


async def started(url: str, path: str) -> str:
    status, body, _ = await request("POST", f"{url}{path}", data=b"")
    assert status == 202, body
    return str(json.loads(body)["id"])


def test_the_banner_shows_versioning_and_fidelity(azure_exact: HostProcess) -> None:
    log = azure_exact.log()
    assert "Versioning: defaultVersion '2.0', CurrentOrOlder, Reject" in log
    assert "Fidelity:  azure" in log


@pytest.mark.parametrize(("query", "version"), [("", "2.0"), ("?version=1.0", "1.0"), ("?version=", "")])
async def test_the_sdk_client_start_new_version_reaches_the_orchestrator(
    azure_exact: HostProcess, query: str, version: str
) -> None:
    url = base(azure_exact)
    # The app's starter calls client.start_new(..., version=<the query's>), which the SDK sends as
    # ?version= to the management API (only when it is not None).
    instance_id = await started(url, f"/api/start/report_version{query}")
    status = await wait_status(url, instance_id, {"Completed"})
    assert status["output"] == {"version": version}
    assert "version" not in status  # Azure's status JSON has no version (StatusResponsePayload)


async def test_the_start_route_takes_a_version_and_refuses_to_run_a_newer_one(
    azure_exact: HostProcess,
) -> None:
    url = base(azure_exact)
    older = await started(url, f"{MGMT}/orchestrators/report_version?version=1.5")
    assert (await wait_status(url, older, {"Completed"}))["output"] == {"version": "1.5"}
    newer = await started(url, f"{MGMT}/orchestrators/report_version?version=2.1")
    status, body, _ = await request("GET", f"{url}{MGMT}/instances/{newer}?showHistory=true")
    assert status == 202 and json.loads(body)["runtimeStatus"] == "Pending"
    assert json.loads(body)["historyEvents"] == []  # Reject: nothing was written
    status, body, _ = await request("GET", f"{url}{MGMT}/instances/{newer}/details")
    assert (status, json.loads(body)["version"]) == (200, "2.1")  # what the viewer shows
    assert f"instance {newer} (report_version) waits untouched" in azure_exact.log()


async def test_azure_fidelity_hands_an_early_event_to_every_later_wait(azure_exact: HostProcess) -> None:
    url = base(azure_exact)
    instance_id = await started(url, f"{MGMT}/orchestrators/early_steps")
    await wait_status(url, instance_id, {"Running"})
    for event, body in (("step", b'"only"'), ("go", b"null")):
        status, text, _ = await request(
            "POST",
            f"{url}{MGMT}/instances/{instance_id}/raiseEvent/{event}",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        assert status == 202, text
    done = await wait_status(url, instance_id, {"Completed"})
    assert done["output"] == ["only", "only"]  # azure-functions-durable-python#507, as in Azure


def test_a_bad_versioning_setting_stops_the_start(tmp_path: Path) -> None:
    app = tmp_path / "app"
    shutil.copytree(APP, app)
    host_json = json.loads((app / "host.json").read_text())
    host_json["extensions"]["durableTask"]["versionMatchStrategy"] = "Latest"
    (app / "host.json").write_text(json.dumps(host_json))
    result = run_cli("start", "--app-dir", str(app), "--port", "0", "--store", "memory")
    assert result.returncode == 2, result.stderr
    assert f"{app / 'host.json'}: extensions.durableTask.versionMatchStrategy must be one of" in result.stderr
    assert "'Latest'" in result.stderr
