"""``GET …/instances/{id}/export`` and the ``export`` and ``replay-check`` commands, as a user runs them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.http.hosting import MGMT, HostProcess, request, run_cli, start_host, wait_status

GOLDEN = Path(__file__).parent
APP = GOLDEN / "app"


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    host: HostProcess = start_host("--store", "memory", app=APP)
    assert host.url is not None
    yield host.url
    assert host.stop() == 0, host.log()


async def test_export_route(url: str) -> None:
    status, body, _ = await request("POST", f"{url}{MGMT}/orchestrators/chain/http-chain", json_body=["x"])
    assert status == 202, body
    await wait_status(url, "http-chain", {"Completed"})
    status, body, _ = await request("GET", f"{url}{MGMT}/instances/http-chain/export")
    assert status == 200, body
    document = json.loads(body)
    assert (document["format"], document["instanceId"], document["name"]) == (
        "durablehost-history/1",
        "http-chain",
        "chain",
    )
    assert document["input"] == '["x"]' and document["runtimeStatus"] == "Completed"
    assert [e["DhActionName"] for e in document["history"] if "DhAction" in e] == ["hello"]
    status, _, _ = await request("GET", f"{url}{MGMT}/instances/nobody/export")
    assert status == 404
    status, _, headers = await request("POST", f"{url}{MGMT}/instances/http-chain/export")
    assert status == 405 and headers["Allow"] == "GET"


async def test_export_then_replay_check_commands(url: str, tmp_path: Path) -> None:
    status, body, _ = await request("POST", f"{url}{MGMT}/orchestrators/approval/cli-wait", json_body="chair")
    assert status == 202, body
    await wait_status(url, "cli-wait", {"Running"})
    exported = tmp_path / "cli-wait.json"
    result = run_cli("export", "cli-wait", "--url", url, "-o", str(exported))
    assert result.returncode == 0, result.stderr
    assert json.loads(exported.read_text())["runtimeStatus"] == "Running"
    printed = run_cli("export", "cli-wait", "--url", url)
    assert printed.returncode == 0 and json.loads(printed.stdout)["instanceId"] == "cli-wait"
    assert run_cli("export", "nobody", "--url", url).returncode == 1

    checked = run_cli("replay-check", "--app-dir", str(APP), str(exported), str(GOLDEN / "histories"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "7 histories replayed, 0 with problems" in checked.stdout

    bad = run_cli("replay-check", "--app-dir", str(APP), str(exported), str(GOLDEN / "known_bad"))
    assert bad.returncode == 1
    assert "FAIL  chain chain-recorded-with-greet" in bad.stdout
    assert "at action #1 the history recorded CallActivity 'greet'" in bad.stdout
    assert "2 histories replayed, 1 with problems" in bad.stdout

    missing = run_cli("replay-check", "--app-dir", str(APP), str(tmp_path / "none.json"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    (tmp_path / "status.json").write_text(json.dumps({"runtimeStatus": "Running"}))
    foreign = run_cli("replay-check", "--app-dir", str(APP), str(tmp_path / "status.json"))
    assert foreign.returncode == 2 and "not a durablehost history export" in foreign.stderr
    no_app = run_cli("replay-check", "--app-dir", str(tmp_path / "no-app"), str(exported))
    assert no_app.returncode == 3
