"""``durablehost start`` with timer and queue functions, as a user runs it: the banner, ``--list``, and a real
subprocess whose 1-second timer and Azurite queue start orchestrations over real HTTP."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from azure.storage.queue import TextBase64EncodePolicy
from azure.storage.queue.aio import QueueClient

from tests.http.hosting import MGMT, request, run_cli, start_host
from tests.triggers.conftest import write_app

MIXED = """
@app.timer_trigger(schedule="*/1 * * * * *", arg_name="timer", run_on_startup=True)
@app.durable_client_input(client_name="client")
async def every_second(timer: func.TimerRequest, client) -> None:
    await client.start_new("record", client_input={"past_due": timer.past_due})

@app.queue_trigger(arg_name="msg", queue_name="%QUEUE_NAME%", connection="AzureWebJobsStorage")
@app.durable_client_input(client_name="client")
async def enqueued(msg: func.QueueMessage, client) -> None:
    await client.start_new("record", client_input={"body": msg.get_body().decode()})

@app.blob_trigger(arg_name="blob", path="uploads/{name}", connection="AzureWebJobsStorage")
def uploaded(blob: func.InputStream) -> None:
    pass

@app.route(route="hello", methods=["GET"])
def hello(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("hi")
"""


def lines_of(output: str) -> dict[str, str]:
    """``name: rest`` lines of a function listing, by name."""
    found = {}
    for line in output.splitlines():
        name, sep, rest = line.strip().partition(": ")
        if sep and name.isidentifier():
            found[name] = rest
    return found


def test_list_prints_every_function_and_opens_no_store(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app", MIXED)
    result = run_cli(
        "start", "--app-dir", str(app), "--list", env={"QUEUE_NAME": "work", "AzureWebJobsStorage": ""}
    )
    assert result.returncode == 0, result.stderr
    listing = lines_of(result.stdout)
    assert listing["every_second"] == (
        "timerTrigger, served: cron '*/1 * * * * *', runOnStartup, "
        "monitor off (fires more than once a minute)"
    )
    assert listing["enqueued"].startswith(
        "queueTrigger, NOT SERVED: the connection setting 'AzureWebJobsStorage' is not set"
    )
    assert listing["uploaded"].startswith(
        "blobTrigger, NOT SERVED: durablehost has no listener for blobTrigger"
    )
    assert listing["hello"] == "[GET] /api/hello"
    assert listing["record"] == "orchestrationTrigger"
    assert "served unless marked NOT SERVED" in result.stdout
    assert not (app / ".durablehost").exists()  # no store was opened


def test_list_marks_the_functions_disabled_by_app_settings(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app", MIXED)
    env = {
        "QUEUE_NAME": "work",
        "AzureWebJobsStorage": "UseDevelopmentStorage=true",
        "AzureWebJobs.every_second.Disabled": "1",
        "AzureWebJobs_enqueued_Disabled": "TRUE",
        "AzureWebJobs.hello.Disabled": "true",
    }
    result = run_cli("start", "--app-dir", str(app), "--list", env=env)
    assert result.returncode == 0, result.stderr
    listing = lines_of(result.stdout)
    fix = "; remove the setting (or set it to false) to run it"
    assert listing["every_second"] == (
        "timerTrigger, NOT SERVED: disabled by the app setting AzureWebJobs.every_second.Disabled" + fix
    )
    assert listing["enqueued"] == (
        "queueTrigger, NOT SERVED: disabled by the app setting AzureWebJobs_enqueued_Disabled" + fix
    )
    # An HTTP function keeps its route (it answers 404), and says it is disabled.
    assert listing["hello"] == "[GET] /api/hello (disabled by AzureWebJobs.hello.Disabled)"


def test_list_shows_a_queue_account_without_contacting_it(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app", MIXED)
    # Nothing listens on this port: --list must not care.
    env = {
        "QUEUE_NAME": "Work",
        "AzureWebJobsStorage": "DefaultEndpointsProtocol=http;AccountName=acct;"
        "AccountKey=a2V5;QueueEndpoint=http://127.0.0.1:9/acct",
    }
    result = run_cli("start", "--app-dir", str(app), "--list", env=env)
    assert result.returncode == 0, result.stderr
    assert lines_of(result.stdout)["enqueued"] == (
        "queueTrigger, served: queue 'work' on http://127.0.0.1:9/acct (connection AzureWebJobsStorage)"
    )
    assert "a2V5" not in result.stdout  # the account key is never printed


def test_list_names_a_bad_schedule_and_still_exits_0(tmp_path: Path) -> None:
    app = write_app(
        tmp_path / "app",
        """
        @app.timer_trigger(schedule="0 0 25 * * *", arg_name="timer")
        def nightly(timer: func.TimerRequest) -> None:
            pass
        """,
    )
    result = run_cli("start", "--app-dir", str(app), "--list")
    assert result.returncode == 0, result.stderr
    assert lines_of(result.stdout)["nightly"] == (
        "timerTrigger, NOT SERVED: the schedule '0 0 25 * * *' is neither an NCRONTAB expression (the hour "
        "field '25' has 25, outside 0-23) nor a TimeSpan; write six fields '{second} {minute} {hour} {day} "
        "{month} {day-of-week}' (e.g. '0 */5 * * * *', every five minutes), five without the seconds, or a "
        "TimeSpan such as '00:05:00'"
    )


def test_a_bad_queues_section_in_host_json_is_a_configuration_error(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app", MIXED, {"version": "2.0", "extensions": {"queues": {"batchSize": 64}}})
    result = run_cli("start", "--app-dir", str(app), "--list")
    assert result.returncode == 2
    assert "extensions.queues.batchSize must be a whole number from 1 to 32, not 64" in result.stderr
    started = run_cli("start", "--app-dir", str(app), "--port", "0", "--store", "memory")
    assert started.returncode == 2 and "batchSize" in started.stderr


@pytest.mark.azurite
@pytest.mark.slow
async def test_start_serves_a_timer_and_a_queue_over_real_http(
    tmp_path: Path, azurite_connection_string: str
) -> None:
    queue_name = f"cli-{uuid.uuid4().hex[:10]}"
    app = write_app(
        tmp_path / "app",
        MIXED,
        {"version": "2.0", "extensions": {"queues": {"maxPollingInterval": "00:00:00.2"}}},
    )
    producer = QueueClient.from_connection_string(
        azurite_connection_string, queue_name, message_encode_policy=TextBase64EncodePolicy()
    )
    await producer.create_queue()
    host = start_host(
        "--store",
        "memory",
        app=app,
        env={"QUEUE_NAME": queue_name, "AzureWebJobsStorage": azurite_connection_string},
    )
    try:
        url = host.wait_listening()
        banner = lines_of(host.log())
        assert banner["every_second"].startswith("timerTrigger, served: cron '*/1 * * * * *', runOnStartup")
        assert banner["enqueued"].startswith(
            f"queueTrigger, served: queue '{queue_name}' on http://127.0.0.1:"
        )
        assert banner["uploaded"].startswith("blobTrigger, NOT SERVED")
        await producer.send_message("from the queue")
        outputs = await _wait_for_records(
            url, lambda found: len(found) >= 3 and {"body": "from the queue"} in found
        )
    finally:
        code = host.stop()
        await producer.delete_queue()
        await producer.close()
    assert code == 0, host.log()
    ticks = [o for o in outputs if "past_due" in o]
    assert len(ticks) >= 2 and all(o == {"past_due": False} for o in ticks)


async def _wait_for_records(url: str, done: Any, timeout: float = 20.0) -> list[Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    found: list[Any] = []
    while loop.time() < deadline:
        status, body, _ = await request("GET", f"{url}{MGMT}/instances/?runtimeStatus=Completed")
        assert status == 200, body
        found = [item["output"] for item in json.loads(body) if item["name"] == "record"]
        if done(found):
            return found
        await asyncio.sleep(0.2)
    raise AssertionError(f"the records never arrived; found {found}")
