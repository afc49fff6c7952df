from __future__ import annotations

import json
import re
import textwrap
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from durablehost.errors import InvocationError
from durablehost.functions import (
    ActivityFailure,
    ActivitySuccess,
    FunctionIndex,
    build_http_request,
    call_activity,
    call_entity,
    call_http_function,
    call_orchestrator,
    load_app,
)
from durablehost.functions.workers import UserCode
from tests.support.histories import History, Text

T0 = datetime(2024, 1, 1, tzinfo=UTC)
T1 = T0 + timedelta(seconds=1)


def first_episode(name: str, input_json: str) -> History:
    """A first-episode history (protocol §1.2, §1.4) of ``name`` with the input text ``input_json``."""
    return History(name, instance_id="abc", execution_id="e1", at=T0).started(Text(input_json))


def second_episode(name: str, input_json: str) -> History:
    """Then hello's TaskScheduled(0), and its TaskCompleted in the next episode."""
    history = first_episode(name, input_json).activity(0, "hello")
    return history.episode(at=T1).completed(0, "Hello Tokyo!")


# --- orchestrators ------------------------------------------------------------------------------------


def test_first_episode_schedules_the_activity(basic: FunctionIndex) -> None:
    result = call_orchestrator(basic.orchestrator("chain"), first_episode("chain", '"Tokyo"').payload())
    assert not result.failed
    assert result.state["isDone"] is False
    assert result.state["schemaVersion"] == 2
    assert result.state["actions"] == [[{"actionType": 0, "functionName": "hello", "input": '"Tokyo"'}]]


def test_second_episode_completes_with_the_output(basic: FunctionIndex) -> None:
    payload = second_episode("chain", '"Tokyo"').payload()
    result = call_orchestrator(basic.orchestrator("chain"), payload)
    assert result.state["isDone"] is True
    assert result.state["output"] == ["Hello Tokyo!"]


def test_raising_orchestrator_gives_the_out_of_proc_state(basic: FunctionIndex) -> None:
    payload = second_episode("FailingOrchestration", "null").payload()
    result = call_orchestrator(basic.orchestrator("FailingOrchestration"), payload)
    assert result.failed
    assert result.error == "orchestrator broke"
    assert result.state["error"] == "orchestrator broke"
    assert result.state["isDone"] is False
    # The actions so far travel in the state, to be replayed by the host (§1.3).
    assert result.state["actions"] == [[{"actionType": 0, "functionName": "hello", "input": '"x"'}]]
    assert result.details is not None and "ValueError: orchestrator broke" in result.details


def test_plain_function_orchestrator_failure_is_a_user_failure(basic: FunctionIndex) -> None:
    orchestrator = basic.orchestrator("plain_failing_orchestrator")
    result = call_orchestrator(orchestrator, first_episode("plain_failing_orchestrator", "null").payload())
    assert result.error == "'not a generator'"
    assert result.state == {"isDone": False, "actions": [], "error": "'not a generator'"}


def test_malformed_payload_is_a_host_error(basic: FunctionIndex) -> None:
    broken = json.loads(first_episode("chain", '"Tokyo"').payload())
    del broken["history"][1]["Version"]  # a key the SDK requires (§1.4)
    with pytest.raises(InvocationError, match="orchestrator 'chain' could not process its payload"):
        call_orchestrator(basic.orchestrator("chain"), json.dumps(broken))
    with pytest.raises(InvocationError):
        call_orchestrator(basic.orchestrator("chain"), "not json")


def test_orchestrator_via_python_name_alias(apps: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHON_SCRIPT_FILE_NAME", "main.py")
    index = load_app(apps / "pkg_entry")
    result = call_orchestrator(index.orchestrator("shouting"), first_episode("shouting", '"hey"').payload())
    # call_activity(<builder>) emits the Python name, which the index must resolve (§3 surprise 7).
    [[action]] = result.state["actions"]
    assert action["functionName"] == "shout"
    assert index.activity(action["functionName"]).name == "Shout"


# --- activities ---------------------------------------------------------------------------------------


async def test_sync_activity(basic: FunctionIndex, workers: UserCode) -> None:
    outcome = await call_activity(basic.activity("hello"), '"Tokyo"', workers=workers)
    assert outcome == ActivitySuccess(result_json='"Hello Tokyo!"')


async def test_sync_activity_runs_on_the_executor(basic: FunctionIndex, workers: UserCode) -> None:
    outcome = await call_activity(basic.activity("who_am_i"), '"x"', workers=workers)
    assert isinstance(outcome, ActivitySuccess)
    result = json.loads(outcome.result_json)
    assert result["function"] == "who_am_i"
    assert result["payload"] == "x"
    assert len(result["invocation"]) == 36  # a uuid
    assert result["thread"].startswith("activity")  # a worker thread, not the event loop's thread


async def test_async_activity(basic: FunctionIndex, workers: UserCode) -> None:
    outcome = await call_activity(basic.activity("async_hello"), '"Oslo"', workers=workers)
    assert outcome == ActivitySuccess(result_json='"Hi Oslo!"')


async def test_activity_by_alias_and_non_json_input(basic: FunctionIndex, workers: UserCode) -> None:
    outcome = await call_activity(basic.activity("py_activity"), "21", workers=workers)
    assert outcome == ActivitySuccess(result_json="42")
    # Input that is not JSON is passed through as the raw string, like the worker's converter does.
    outcome = await call_activity(basic.activity("from_blueprint"), "plain text", workers=workers)
    assert outcome == ActivitySuccess(result_json='"blueprint says plain text"')


async def test_activity_without_input(basic: FunctionIndex, workers: UserCode) -> None:
    outcome = await call_activity(basic.activity("from_blueprint"), None, workers=workers)
    assert outcome == ActivitySuccess(result_json='"blueprint says None"')


async def test_custom_object_round_trip(basic: FunctionIndex, workers: UserCode) -> None:
    envelope = json.dumps({"__class__": "Point", "__module__": "geometry", "__data__": {"x": 1, "y": 2}})
    outcome = await call_activity(basic.activity("move_point"), envelope, workers=workers)
    assert isinstance(outcome, ActivitySuccess)
    assert json.loads(outcome.result_json) == {
        "__class__": "Point",
        "__module__": "geometry",
        "__data__": {"x": 2, "y": 3},
    }


async def test_raising_activity(basic: FunctionIndex, workers: UserCode) -> None:
    outcome = await call_activity(basic.activity("flaky"), '"now"', workers=workers)
    assert isinstance(outcome, ActivityFailure)
    assert outcome.reason == "Activity function 'flaky' failed: ValueError: boom now"
    assert "Traceback" in outcome.details
    assert 'raise ValueError(f"boom {payload}")' in outcome.details


async def test_non_serialisable_result(basic: FunctionIndex, workers: UserCode) -> None:
    outcome = await call_activity(basic.activity("returns_object"), '"x"', workers=workers)
    assert isinstance(outcome, ActivityFailure)
    assert outcome.reason.startswith(
        "Activity function 'returns_object' failed: ValueError: activity trigger output must be json "
        "serializable"
    )
    assert "does not expose a `to_json` function" in outcome.reason


async def test_undecodable_input_is_an_activity_failure(basic: FunctionIndex, workers: UserCode) -> None:
    envelope = json.dumps({"__class__": "Nope", "__module__": "not_loaded_anywhere", "__data__": {}})
    outcome = await call_activity(basic.activity("hello"), envelope, workers=workers)
    assert isinstance(outcome, ActivityFailure)
    assert "not_loaded_anywhere" in outcome.reason


async def test_shut_down_executor_is_a_host_error(basic: FunctionIndex) -> None:
    user = UserCode(orchestrator_threads=1, activity_threads=1)
    user.shutdown()
    with pytest.raises(RuntimeError, match="shutdown"):
        await call_activity(basic.activity("hello"), '"x"', workers=user)


# --- entities -----------------------------------------------------------------------------------------


def test_entity_batch(basic: FunctionIndex) -> None:
    request = {
        "self": {"name": "counter", "key": "c1"},
        "exists": True,
        "state": "10",
        "batch": [
            # Batch inputs are doubly encoded (§7).
            {"name": "add", "input": json.dumps(json.dumps(5)), "isSignal": False},
            {"name": "fail", "input": json.dumps(json.dumps(None)), "isSignal": False},
            {"name": "add", "input": json.dumps(json.dumps(1)), "isSignal": True},
        ],
    }
    output = call_entity(basic.entity("Counter"), json.dumps(request))
    assert output["entityExists"] is True
    assert output["entityState"] == "16"
    results = output["results"]
    assert [r["isError"] for r in results] == [False, True, False]
    assert results[0]["result"] == "15"
    assert results[1]["result"] == json.dumps("counter refuses")
    assert output["signals"] == []


def test_malformed_entity_request_is_a_host_error(basic: FunctionIndex) -> None:
    with pytest.raises(InvocationError, match="entity 'counter' could not run the batch"):
        call_entity(basic.entity("counter"), json.dumps({"self": {"name": "counter", "key": "c1"}}))


# --- HTTP ---------------------------------------------------------------------------------------------

BINDING = {
    "taskHubName": "TestHub",
    "creationUrls": {},
    "managementUrls": {
        "id": "INSTANCEID",
        "statusQueryGetUri": "http://h/runtime/webhooks/durabletask/instances/INSTANCEID?taskHub=TestHub",
        "sendEventPostUri": "http://h/runtime/webhooks/durabletask/instances/INSTANCEID/raiseEvent/{eventName}",
        "terminatePostUri": "http://h/runtime/webhooks/durabletask/instances/INSTANCEID/terminate",
        "rewindPostUri": "http://h/runtime/webhooks/durabletask/instances/INSTANCEID/rewind",
        "purgeHistoryDeleteUri": "http://h/runtime/webhooks/durabletask/instances/INSTANCEID",
        "restartPostUri": "http://h/runtime/webhooks/durabletask/instances/INSTANCEID/restart",
        "suspendPostUri": "http://h/runtime/webhooks/durabletask/instances/INSTANCEID/suspend",
        "resumePostUri": "http://h/runtime/webhooks/durabletask/instances/INSTANCEID/resume",
    },
    "baseUrl": "http://h/runtime/webhooks/durabletask",
    "requiredQueryStringParameters": "",
    "rpcBaseUrl": "http://127.0.0.1:17071/durabletask/",
}


def http_function(index: FunctionIndex, name: str) -> Any:
    return next(f for f in index.http if f.name == name)


async def test_http_function_with_client_binding(basic: FunctionIndex, workers: UserCode) -> None:
    request = build_http_request(
        "post", "http://localhost:7071/api/orchestrators/chain", route_params={"name": "chain"}
    )
    response = await call_http_function(
        http_function(basic, "http_start"), request, json.dumps(BINDING), workers=workers
    )
    assert response.status_code == 202
    body = json.loads(response.get_body())
    assert body["id"] == "chain-1"
    # The SDK rewrote the links to the request's origin and the instance id: it really used the binding.
    status_uri = "http://localhost:7071/runtime/webhooks/durabletask/instances/chain-1?taskHub=TestHub"
    assert body["statusQueryGetUri"] == status_uri
    assert response.headers["Location"] == body["statusQueryGetUri"]


async def test_http_function_needs_the_binding(basic: FunctionIndex, workers: UserCode) -> None:
    request = build_http_request(
        "POST", "http://localhost/api/orchestrators/chain", route_params={"name": "x"}
    )
    with pytest.raises(InvocationError, match="needs a durable client binding"):
        await call_http_function(http_function(basic, "http_start"), request, None, workers=workers)


async def test_sync_http_function_returning_str(basic: FunctionIndex, workers: UserCode) -> None:
    request = build_http_request("GET", "http://localhost/api/hello?who=ann&who=bob", headers={"X-A": "1"})
    assert request.params["who"] == "ann,bob"
    assert request.headers["x-a"] == "1"
    response = await call_http_function(http_function(basic, "plain_http"), request, None, workers=workers)
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert response.get_body() == b"hello ann,bob"


# --- warnings -----------------------------------------------------------------------------------------


async def test_sdk_deprecation_notices_are_silenced(
    basic: FunctionIndex, workers: UserCode, monkeypatch: pytest.MonkeyPatch
) -> None:
    from azure.functions import _durable_functions

    from durablehost.functions.invoke import silence_sdk_notices

    # Make the SDK's one-shot notices fire again, with only the host's filter in place.
    monkeypatch.setattr(_durable_functions, "_no_expected_type_notice_emitted", False)
    monkeypatch.setattr(_durable_functions, "_loose_codec_notice_emitted", False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.resetwarnings()
        warnings.simplefilter("always")
        silence_sdk_notices()
        envelope = json.dumps({"__class__": "Point", "__module__": "geometry", "__data__": {"x": 1, "y": 2}})
        outcome = await call_activity(basic.activity("move_point"), envelope, workers=workers)
        warnings.warn("other deprecations still show", DeprecationWarning, stacklevel=1)
    assert isinstance(outcome, ActivitySuccess)
    assert [str(w.message) for w in caught] == ["other deprecations still show"]
    assert _durable_functions._no_expected_type_notice_emitted  # the notice really was attempted
    assert _durable_functions._loose_codec_notice_emitted


# --- bindings durablehost cannot supply ---------------------------------------------------------------


async def test_bindings_the_host_cannot_supply(tmp_path: Path, workers: UserCode) -> None:
    (tmp_path / "function_app.py").write_text(
        textwrap.dedent(
            """
            import azure.durable_functions as df

            app = df.DFApp()


            @app.activity_trigger(input_name="x")
            @app.blob_input(arg_name="blob", path="c/b", connection="AzureWebJobsStorage")
            def reads_blob(x, blob):
                return x


            @app.route(route="q")
            @app.queue_output(arg_name="msg", queue_name="q", connection="AzureWebJobsStorage")
            def enqueue(req, msg):
                return "ok"
            """
        )
    )
    index = load_app(tmp_path)
    outcome = await call_activity(index.activity("reads_blob"), '"x"', workers=workers)
    assert outcome == ActivityFailure(
        reason="Activity function 'reads_blob' failed: durablehost cannot supply the binding(s) 'blob' "
        "(blob, IN)",
        details="",
    )
    [enqueue] = index.http
    assert [b.name for b in enqueue.other_bindings] == ["msg"]
    with pytest.raises(InvocationError, match=re.escape("cannot supply the binding(s) 'msg' (queue, OUT)")):
        await call_http_function(enqueue, build_http_request("GET", "http://h/api/q"), None, workers=workers)
