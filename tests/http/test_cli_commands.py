"""The management commands of the CLI against a running host."""

from __future__ import annotations

import json
import socket

from tests.http.hosting import MGMT, request, run_cli, wait_status


async def test_commands_against_a_running_host(url: str) -> None:
    status, body, _ = await request("POST", f"{url}{MGMT}/orchestrators/two_waits/cli-1", data=b"")
    assert status == 202, body
    await wait_status(url, "cli-1", {"Running"})

    shown = run_cli("status", "cli-1", "--url", url)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["runtimeStatus"] == "Running"

    listed = run_cli("list", "--url", url, "--status", "running", "--prefix", "cli-")
    assert listed.returncode == 0 and "cli-1" in listed.stdout and "two_waits" in listed.stdout

    raised = run_cli("raise", "cli-1", "step", '{"n": 1}', "--url", url, "--idempotency-key", "once")
    assert raised.returncode == 0, raised.stderr
    again = run_cli("raise", "cli-1", "step", '{"n": 1}', "--url", url, "--idempotency-key", "once")
    assert again.returncode == 0 and "before with this idempotency key" in again.stdout, again.stdout
    bad = run_cli("raise", "cli-1", "step", "not json", "--url", url)
    assert bad.returncode == 2 and "not valid JSON" in bad.stderr

    history = run_cli("history", "cli-1", "--url", url)
    assert history.returncode == 0
    assert "ExecutionStarted" in history.stdout and history.stdout.count("EventRaised") == 1

    stopped = run_cli("terminate", "cli-1", "--reason", "done here", "--url", url)
    assert stopped.returncode == 0
    assert (await wait_status(url, "cli-1", {"Terminated"}))["output"] == "done here"
    refused = run_cli("terminate", "cli-1", "--url", url)
    assert refused.returncode == 1 and "410" in refused.stderr

    purged = run_cli("purge", "cli-1", "--url", url)
    assert purged.returncode == 0 and "purged 1" in purged.stdout
    missing = run_cli("status", "cli-1", "--url", url)
    assert missing.returncode == 1 and "no instance" in missing.stderr


def test_unreachable_host() -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    result = run_cli("list", "--url", f"http://127.0.0.1:{port}")
    assert result.returncode == 3 and "is `durablehost start` running" in result.stderr


def test_help_shows_plain_text() -> None:
    shown = run_cli("--help")
    assert shown.returncode == 0
    assert "Exit codes of start: 0 stopped cleanly" in shown.stdout, shown.stdout
    assert "``" not in shown.stdout  # the module docstring's reST markup
