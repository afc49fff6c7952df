"""Starting, stopping and restarting ``durablehost start``, and its refusals with exit codes."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from tests.http.hosting import APPS, DURABLEHOST, MGMT, SIMPLE, HostProcess, request, start_host, wait_status

JSON = {"Content-Type": "application/json"}


def run_start(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [DURABLEHOST, "start", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


@pytest.mark.slow
async def test_restart_on_the_same_sqlite_file_mid_orchestration(tmp_path: Path) -> None:
    store = f"sqlite:{tmp_path / 'state.sqlite'}"
    first = start_host("--store", store)
    assert first.url is not None
    status, body, _ = await request(
        "POST", f"{first.url}{MGMT}/orchestrators/wait_event/keep", json_body={"n": 1}
    )
    assert status == 202, body
    await wait_status(first.url, "keep", {"Running"})
    assert first.stop(signal.SIGTERM) == 0, first.log()
    assert "stopping" in first.log()

    second = start_host("--store", store)
    try:
        assert second.url is not None
        await wait_status(second.url, "keep", {"Running"})
        status, _, _ = await request(
            "POST", f"{second.url}{MGMT}/instances/keep/raiseEvent/approval", data=b'"yes"', headers=JSON
        )
        assert status == 202
        done = await wait_status(second.url, "keep", {"Completed"})
        assert done["output"] == {"approval": "yes", "input": {"n": 1}}
    finally:
        assert second.stop(signal.SIGINT) == 0, second.log()


async def test_default_store_is_sqlite_in_the_app_folder_and_settings_apply(tmp_path: Path) -> None:
    app = tmp_path / "app"
    shutil.copytree(SIMPLE, app)
    # local.settings.json Values become environment variables; an empty AzureWebJobsStorage means default.
    (app / "local.settings.json").write_text(
        json.dumps(
            {
                "IsEncrypted": False,
                "Values": {"AzureWebJobsStorage": "", "FUNCTIONS_WORKER_RUNTIME": "python"},
            }
        )
    )
    host = HostProcess(["--app-dir", str(app), "--port", "0"], env={"AzureWebJobsStorage": ""})
    try:
        url = host.wait_listening()
        banner = host.log()
        assert f"sqlite:{app / '.durablehost' / 'state.sqlite'}" in banner
        assert "Task hub:  HttpTestHub" in banner
        # A fresh hub: this process takes every partition at its first look, and shares with nobody.
        assert "Partitions: 4 of 4 owned by this process; 0 other processes share the task hub" in banner
        assert f"hello_route: [GET] {url}/api/hello/{{who:alpha}}" in banner
        assert "say_hello: activityTrigger" in banner
        status, _, _ = await request("GET", f"{url}/api/hello/Zed")
        assert status == 200
    finally:
        assert host.stop() == 0, host.log()
    assert (app / ".durablehost" / "state.sqlite").is_file()


def test_port_in_use_is_refused() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_start("--app-dir", str(SIMPLE), "--port", str(port), "--store", "memory")
    assert result.returncode == 4, result.stderr
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr


def test_bad_store_is_refused() -> None:
    result = run_start("--app-dir", str(SIMPLE), "--port", "0", "--store", "postgres://nope")
    assert result.returncode == 2, result.stderr
    assert "unrecognised store spec" in result.stderr and "sqlite:PATH" in result.stderr


def test_broken_or_missing_app_is_refused(tmp_path: Path) -> None:
    result = run_start("--app-dir", str(APPS / "broken"), "--port", "0", "--store", "memory")
    assert result.returncode == 3, result.stderr
    assert "this app is broken on purpose" in result.stderr
    result = run_start("--app-dir", str(tmp_path / "nowhere"), "--port", "0", "--store", "memory")
    assert result.returncode == 3 and "does not exist" in result.stderr
    result = run_start("--app-dir", str(tmp_path), "--port", "0", "--store", "memory")
    assert result.returncode == 3 and "function_app.py" in result.stderr


def test_bad_host_json_and_hub_name_are_refused(tmp_path: Path) -> None:
    app = tmp_path / "app"
    shutil.copytree(SIMPLE, app)
    result = run_start("--app-dir", str(app), "--port", "0", "--store", "memory", "--task-hub", "no-dashes")
    assert result.returncode == 2 and "task hub name 'no-dashes' is invalid" in result.stderr
    (app / "host.json").write_text("{broken")
    result = run_start("--app-dir", str(app), "--port", "0", "--store", "memory")
    assert result.returncode == 2 and "host.json cannot be read as JSON" in result.stderr
    (app / "host.json").write_text('{"version": "2.0", "durablehost": {"detectDeadProcesses": "no"}}')
    result = run_start("--app-dir", str(app), "--port", "0", "--store", "memory")
    assert result.returncode == 2, result.stderr
    assert (
        f"{app / 'host.json'}: durablehost.detectDeadProcesses must be true or false (a JSON boolean, "
        "unquoted), not 'no'"
    ) in result.stderr
