"""What is served, how, and why not: the plan built from ``FunctionInfo`` (the shape both programming models
produce), the settings and host.json; and the pieces the listeners hand to functions (TimerRequest,
QueueMessage, decoding, polling back-off)."""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import azure.functions as func
import pytest

from durablehost.errors import InvocationError
from durablehost.functions import BindingInfo, FunctionInfo
from durablehost.functions.workers import UserCode
from durablehost.http.appconfig import ConfigError, read_host_json
from durablehost.triggers.invoke import (
    ReceivedMessage,
    call_trigger_function,
    queue_argument,
    timer_argument,
    timer_info_json,
)
from durablehost.triggers.monitor import ScheduleStatus
from durablehost.triggers.options import QueuesOptions
from durablehost.triggers.plan import NotServed, QueuePlan, TimerPlan, TriggerEntry, plan_triggers
from durablehost.triggers.queue import PollingBackoff, decode_body

AZURITE = "UseDevelopmentStorage=true"
ACCOUNT = (
    "DefaultEndpointsProtocol=https;AccountName=prod;AccountKey=c2VjcmV0;EndpointSuffix=core.windows.net"
)


def info(
    trigger: dict[str, Any], handler: Callable[..., Any], *extra: dict[str, Any], name: str = "fn"
) -> FunctionInfo:
    bindings = tuple(
        BindingInfo(name=b["name"], type=b["type"], direction=b["direction"], settings=b)
        for b in (*extra, trigger)
    )
    return FunctionInfo(
        name=name,
        python_name=name,
        trigger_type=trigger["type"],
        trigger_param=trigger["name"],
        bindings=bindings,
        handler=handler,
        app_dir=Path("/app"),
    )


def timer(schedule: str, **settings: Any) -> dict[str, Any]:
    return {"type": "timerTrigger", "name": "timer", "direction": "in", "schedule": schedule, **settings}


def queue(name: str = "work", **settings: Any) -> dict[str, Any]:
    return {"type": "queueTrigger", "name": "msg", "direction": "in", "queueName": name, **settings}


async def on_timer(timer: func.TimerRequest) -> None:
    return None


async def on_message(msg: func.QueueMessage) -> None:
    return None


def plan_one(
    function: FunctionInfo, environ: dict[str, str] | None = None, queues: QueuesOptions | None = None
) -> TriggerEntry:
    return plan_triggers([function], environ or {}, queues or QueuesOptions())[function.name]


# --- which functions -------------------------------------------------------------------------------------


def test_durable_and_http_functions_are_not_in_the_plan() -> None:
    functions = [
        info({"type": t, "name": "x", "direction": "in"}, on_timer, name=t)
        for t in ("orchestrationTrigger", "activityTrigger", "entityTrigger", "httpTrigger")
    ]
    assert plan_triggers(functions, {}, QueuesOptions()) == {}


@pytest.mark.parametrize(
    "trigger_type",
    [
        "blobTrigger",
        "serviceBusTrigger",
        "eventGridTrigger",
        "eventHubTrigger",
        "cosmosDBTrigger",
        "kafkaTrigger",
        "warmupTrigger",
        "sqlTrigger",
    ],
)
def test_every_other_trigger_is_listed_not_served(trigger_type: str) -> None:
    entry = plan_one(info({"type": trigger_type, "name": "x", "direction": "in"}, on_timer))
    assert isinstance(entry, NotServed) and not entry.config_error
    assert entry.describe() == (
        f"NOT SERVED: durablehost has no listener for {trigger_type} functions (it serves HTTP, timer and "
        "queue triggers and durable functions); it never runs here"
    )


def disabled(function: FunctionInfo, setting: str = "AzureWebJobs.fn.Disabled") -> FunctionInfo:
    return dataclasses.replace(function, disabled_by=setting)


@pytest.mark.parametrize(
    "function",
    [
        info(timer("0 */5 * * * *"), on_timer),
        info(queue(), on_message),  # no connection setting either: being disabled is what matters
        info({"type": "blobTrigger", "name": "x", "direction": "in"}, on_timer),
    ],
    ids=["timer", "queue", "blob"],
)
def test_a_disabled_function_gets_no_listener_and_says_which_setting(function: FunctionInfo) -> None:
    entry = plan_one(disabled(function, "AzureWebJobs_fn_Disabled"), {"AzureWebJobsStorage": AZURITE})
    assert isinstance(entry, NotServed) and entry.disabled and not entry.config_error
    assert entry.describe() == (
        "NOT SERVED: disabled by the app setting AzureWebJobs_fn_Disabled; remove the setting (or set it "
        "to false) to run it"
    )


def test_a_disabled_function_with_a_configuration_error_reports_the_error() -> None:
    # The host indexes a disabled function like any other; only its listener is not started.
    entry = plan_one(disabled(info(timer("0 0 25 * * *"), on_timer)))
    assert isinstance(entry, NotServed) and entry.config_error and not entry.disabled
    assert "the hour field '25'" in entry.reason


# --- timers ---------------------------------------------------------------------------------------------


def test_a_timer_with_a_durable_client_in_function_json_shape() -> None:
    async def main(timer: func.TimerRequest, starter: str) -> None:
        return None

    # function.json: lower-case direction, the older orchestrationClient name, flags as written by hand.
    client = {"type": "orchestrationClient", "name": "starter", "direction": "in"}
    entry = plan_one(info(timer("0 0 * * * *", runOnStartup="true", useMonitor=False), main, client))
    assert isinstance(entry, TimerPlan)
    assert entry.function.client_param == "starter" and entry.function.is_async
    assert entry.run_on_startup and not entry.use_monitor and not entry.monitor_turned_off
    assert entry.describe() == "served: cron '0 0 * * * *', runOnStartup, monitor off"


def test_the_zone_comes_from_the_settings() -> None:
    entry = plan_one(info(timer("0 0 9 * * *"), on_timer), {"WEBSITE_TIME_ZONE": "Europe/Berlin"})
    assert isinstance(entry, TimerPlan) and entry.zone == ZoneInfo("Europe/Berlin")
    assert entry.describe() == "served: cron '0 0 9 * * *' in Europe/Berlin"


def test_a_schedule_from_a_setting_says_so() -> None:
    entry = plan_one(info(timer("%NIGHTLY%"), on_timer), {"NIGHTLY": "0 0 2 * * *"})
    assert isinstance(entry, TimerPlan)
    assert entry.describe() == "served: cron '0 0 2 * * *' (from %NIGHTLY%)"


def test_a_bad_zone_is_a_configuration_error_of_each_timer() -> None:
    entry = plan_one(info(timer("0 0 9 * * *"), on_timer), {"TZ": "Mars/Olympus_Mons"})
    assert isinstance(entry, NotServed) and entry.config_error
    assert "the setting TZ='Mars/Olympus_Mons' is not an IANA time zone name" in entry.reason


def test_a_timer_without_a_schedule() -> None:
    entry = plan_one(info({"type": "timerTrigger", "name": "timer", "direction": "in"}, on_timer))
    assert isinstance(entry, NotServed) and entry.config_error and "has no schedule" in entry.reason


def test_a_non_boolean_flag_is_refused() -> None:
    entry = plan_one(info(timer("0 0 * * * *", runOnStartup="yes"), on_timer))
    assert isinstance(entry, NotServed) and entry.reason == "runOnStartup must be true or false, not 'yes'"


def test_bindings_durablehost_cannot_supply_make_it_not_served() -> None:
    async def main(timer: func.TimerRequest, out: func.Out[str]) -> None:
        return None

    entry = plan_one(info(timer("0 0 * * * *"), main, {"type": "queue", "name": "out", "direction": "out"}))
    assert isinstance(entry, NotServed) and not entry.config_error
    assert entry.reason.startswith("durablehost cannot supply the binding(s) 'out' (queue, out)")


def test_parameters_that_match_no_binding_are_a_configuration_error() -> None:
    async def main(timer: func.TimerRequest, forgotten: str) -> None:
        return None

    entry = plan_one(info(timer("0 0 * * * *"), main))
    assert isinstance(entry, NotServed) and entry.config_error
    assert entry.reason.startswith("parameter(s) forgotten match no binding")


# --- queues ---------------------------------------------------------------------------------------------


def test_connection_default_and_names_resolved_and_lower_cased() -> None:
    entry = plan_one(
        info(queue("%ORDERS%"), on_message), {"ORDERS": "Orders-In", "AzureWebJobsStorage": AZURITE}
    )
    assert isinstance(entry, QueuePlan)
    assert entry.queue_name == "orders-in" and entry.poison_queue == "orders-in-poison"
    assert entry.connection_setting == "AzureWebJobsStorage"
    assert entry.describe() == (
        "served: queue 'orders-in' on Azurite (devstoreaccount1 at http://127.0.0.1:10001) "
        "(connection AzureWebJobsStorage)"
    )


def test_a_connection_name_is_looked_up_with_the_azurewebjobs_prefix_first() -> None:
    environ = {"AzureWebJobsOrders": ACCOUNT, "Orders": AZURITE}
    entry = plan_one(info(queue(connection="Orders"), on_message), environ)
    assert isinstance(entry, QueuePlan) and entry.connection_setting == "AzureWebJobsOrders"
    assert entry.account == "account 'prod' (queue.core.windows.net)"
    assert "c2VjcmV0" not in repr(entry)  # the key never shows
    plain = plan_one(info(queue(connection="Orders"), on_message), {"Orders": AZURITE})
    assert isinstance(plain, QueuePlan) and plain.connection_setting == "Orders"


def test_no_connection_setting_is_not_a_configuration_error() -> None:
    entry = plan_one(info(queue(), on_message))
    assert isinstance(entry, NotServed) and not entry.config_error
    assert "the connection setting 'AzureWebJobsStorage' is not set" in entry.reason


def test_identity_based_connections_are_not_supported() -> None:
    entry = plan_one(
        info(queue(), on_message), {"AzureWebJobsStorage__queueServiceUri": "https://a.queue.core"}
    )
    assert isinstance(entry, NotServed) and not entry.config_error
    assert "identity-based" in entry.reason


def test_a_setting_that_is_not_a_connection_string_is_a_configuration_error() -> None:
    entry = plan_one(info(queue(), on_message), {"AzureWebJobsStorage": "memory"})
    assert isinstance(entry, NotServed) and entry.config_error
    assert "'AzureWebJobsStorage' is not an Azure Storage connection string" in entry.reason


@pytest.mark.parametrize("name", ["ab", "a" * 64, "-work", "work-", "wo--rk", "wörk", "work_1"])
def test_invalid_queue_names(name: str) -> None:
    entry = plan_one(info(queue(name), on_message), {"AzureWebJobsStorage": AZURITE})
    assert isinstance(entry, NotServed) and entry.config_error and "is invalid" in entry.reason


def test_no_poison_queue_for_a_poison_queue_or_a_name_too_long_for_the_suffix() -> None:
    def plan(name: str) -> QueuePlan:
        entry = plan_one(info(queue(name), on_message), {"AzureWebJobsStorage": AZURITE})
        assert isinstance(entry, QueuePlan)
        return entry

    assert plan("orders-poison").poison_queue is None
    assert plan("a" * 57).poison_queue is None  # 57 + 7 = 64 > 63
    assert plan("a" * 56).poison_queue == "a" * 56 + "-poison"


# --- host.json extensions.queues ------------------------------------------------------------------------


def write_host_json(folder: Path, queues: dict[str, Any]) -> Path:
    (folder / "host.json").write_text(json.dumps({"version": "2.0", "extensions": {"queues": queues}}))
    return folder


def test_queue_options_defaults_and_values(tmp_path: Path) -> None:
    assert read_host_json(tmp_path).queues == QueuesOptions()
    assert QueuesOptions().threshold(processors=4) == 32  # batchSize/2 x processors
    options = read_host_json(
        write_host_json(
            tmp_path,
            {
                "BatchSize": 8,
                "newBatchThreshold": 0,
                "maxPollingInterval": "00:00:02",
                "visibilityTimeout": "00:00:30",
                "maxDequeueCount": 3,
                "messageEncoding": "None",
            },
        )
    ).queues
    assert options == QueuesOptions(
        batch_size=8,
        new_batch_threshold=0,
        max_polling_interval=timedelta(seconds=2),
        visibility_timeout=timedelta(seconds=30),
        max_dequeue_count=3,
        message_encoding="none",
    )
    assert options.threshold(processors=4) == 0


@pytest.mark.parametrize(
    ("queues", "fragment"),
    [
        ({"batchSize": 0}, "batchSize must be a whole number from 1 to 32, not 0"),
        ({"batchSize": 33}, "from 1 to 32, not 33"),
        ({"batchSize": True}, "not True"),
        ({"newBatchThreshold": -1}, "newBatchThreshold must be a whole number of at least 0"),
        ({"maxDequeueCount": 0}, "maxDequeueCount must be a whole number of at least 1"),
        ({"maxPollingInterval": "00:00:00.05"}, "maxPollingInterval must be at least 00:00:00.1"),
        ({"maxPollingInterval": 2000}, 'maxPollingInterval must be a TimeSpan string such as "00:00:02"'),
        ({"visibilityTimeout": "soon"}, "visibilityTimeout: 'soon' is not a TimeSpan"),
        ({"visibilityTimeout": "8.00:00:00"}, "between 00:00:00 and 7.00:00:00"),
        ({"messageEncoding": "utf8"}, 'messageEncoding must be "base64" (the default) or "none"'),
        ({"maxDequeCount": 2}, "extensions.queues.maxDequeCount is not a queue setting"),
    ],
)
def test_queue_options_errors_name_the_setting(tmp_path: Path, queues: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigError) as raised:
        read_host_json(write_host_json(tmp_path, queues))
    assert fragment in str(raised.value) and "host.json" in str(raised.value)


# --- what the function receives --------------------------------------------------------------------------


def test_timer_info_json_is_what_the_host_sends() -> None:
    status = ScheduleStatus(
        last=datetime(2024, 1, 1, 8, 0, tzinfo=UTC),
        next=datetime(2024, 1, 1, 9, 0, tzinfo=UTC),
        last_updated=datetime(2024, 1, 1, 8, 0, 0, 250_000, tzinfo=UTC),
    )
    text = timer_info_json(adjust_for_dst=True, status=status, past_due=True, zone=ZoneInfo("Europe/Berlin"))
    assert json.loads(text) == {
        "Schedule": {"AdjustForDST": True},
        "ScheduleStatus": {
            "Last": "2024-01-01T09:00:00+01:00",
            "Next": "2024-01-01T10:00:00+01:00",
            "LastUpdated": "2024-01-01T09:00:00.25+01:00",
        },
        "IsPastDue": True,
    }
    assert json.loads(timer_info_json(adjust_for_dst=False, status=None, past_due=False, zone=UTC)) == {
        "Schedule": {"AdjustForDST": False},
        "ScheduleStatus": None,
        "IsPastDue": False,
    }


def test_timer_request_is_built_by_the_sdk_converter() -> None:
    entry = plan_one(info(timer("0 0 * * * *"), on_timer))
    assert isinstance(entry, TimerPlan)
    request = timer_argument(
        entry.function, timer_info_json(adjust_for_dst=True, status=None, past_due=True, zone=UTC)
    )
    assert isinstance(request, func.TimerRequest)
    assert (
        request.past_due is True
        and request.schedule_status == {}
        and request.schedule == {"AdjustForDST": True}
    )


MESSAGE = ReceivedMessage(
    id="m1",
    body=b"hi",
    dequeue_count=2,
    insertion_time=datetime(2024, 1, 1, 8, 0, tzinfo=UTC),
    expiration_time=datetime(2024, 1, 8, 8, 0, tzinfo=UTC),
    next_visible_time=datetime(2024, 1, 1, 8, 10, tzinfo=UTC),
    pop_receipt="receipt",
)


def test_queue_message_is_built_by_the_sdk_converter_from_the_metadata() -> None:
    entry = plan_one(info(queue(), on_message), {"AzureWebJobsStorage": AZURITE})
    assert isinstance(entry, QueuePlan)
    message = queue_argument(entry.function, MESSAGE)
    assert isinstance(message, func.QueueMessage)
    assert (message.id, message.get_body(), message.dequeue_count, message.pop_receipt) == (
        "m1",
        b"hi",
        2,
        "receipt",
    )
    assert message.insertion_time == datetime(2024, 1, 1, 8, 0, tzinfo=UTC)
    assert message.expiration_time == datetime(2024, 1, 8, 8, 0, tzinfo=UTC)
    assert message.time_next_visible == datetime(2024, 1, 1, 8, 10, tzinfo=UTC)


def test_str_and_bytes_annotations_get_the_raw_body() -> None:
    async def as_text(msg: str) -> None:
        return None

    async def as_bytes(msg: bytes) -> None:
        return None

    environ = {"AzureWebJobsStorage": AZURITE}
    text_entry = plan_one(info(queue(), as_text), environ)
    bytes_entry = plan_one(info(queue(), as_bytes), environ)
    assert isinstance(text_entry, QueuePlan) and isinstance(bytes_entry, QueuePlan)
    assert queue_argument(text_entry.function, MESSAGE) == "hi"
    binary = dataclasses.replace(MESSAGE, body=b"\xff\x00")
    assert queue_argument(bytes_entry.function, binary) == b"\xff\x00"


async def test_a_function_without_a_return_binding_that_returns_a_value_fails() -> None:
    async def returns(timer: func.TimerRequest) -> str:
        return "oops"

    entry = plan_one(info(timer("0 0 * * * *"), returns, name="returns"))
    assert isinstance(entry, TimerPlan)
    workers = UserCode(orchestrator_threads=1, activity_threads=1)
    try:
        with pytest.raises(InvocationError, match="without a \\$return binding"):
            await call_trigger_function(entry.function, None, None, workers=workers)
    finally:
        workers.shutdown()


@pytest.mark.parametrize(
    ("text", "body"),
    [
        ("aGVsbG8=", b"hello"),
        ("aGVs\r\nbG8=", b"hello"),
        (" aGVsbG8= ", b"hello"),
        ("", b""),
        ("aGVsbG8", None),
        ("hello world", None),
        ("aGVsbG8=!", None),
    ],
)
def test_base64_decoding_as_dotnet_does(text: str, body: bytes | None) -> None:
    assert decode_body(text, "base64") == body


def test_no_encoding_takes_the_text_as_is() -> None:
    assert decode_body("aGVsbG8=", "none") == b"aGVsbG8="
    assert decode_body(base64.b64encode(b"x").decode(), "none") == b"eA=="


def test_polling_back_off_grows_randomly_to_the_maximum_and_resets() -> None:
    backoff = PollingBackoff(timedelta(seconds=1))
    delays = [backoff.next_delay(False) for _ in range(8)]
    assert delays[0] == pytest.approx(0.1)
    assert 0.1 + 0.08 <= delays[1] <= 0.1 + 0.12  # 100 ms + (0.8-1.2) x 100 ms
    assert 0.1 + 0.16 <= delays[2] <= 0.1 + 0.24  # 100 ms + (0.8-1.2) x 200 ms
    assert delays == sorted(delays) and delays[-1] == 1.0
    assert backoff.next_delay(True) == pytest.approx(0.1)
    assert 0.1 + 0.08 <= backoff.next_delay(False) <= 0.1 + 0.12
