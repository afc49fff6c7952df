"""Golden histories replayed against the current code, the known-bad one, and export → replay-check."""

from __future__ import annotations

import copy
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from durablehost.engine.history import EventType
from durablehost.functions import load_app
from durablehost.replay import HistoryDocumentError, check_history
from durablehost.testing import DurableTestHost
from durablehost.testing.replay import assert_replays, replay_reports

GOLDEN = Path(__file__).parent
APP = GOLDEN / "app"
HISTORIES = GOLDEN / "histories"
KNOWN_BAD = GOLDEN / "known_bad"


def _calls() -> dict[str, int]:
    import function_app  # the golden app's entry module, loaded by the last load_app

    calls: dict[str, int] = function_app.CALLS
    return calls


def _document(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((HISTORIES / f"{name}.json").read_text(encoding="utf-8"))
    return document


def test_golden_histories_replay_on_the_current_code() -> None:
    reports = assert_replays(APP, HISTORIES)
    assert sorted(r.instance_id for r in reports) == [
        "approval-completed",
        "approval-waiting",
        "chain-completed",
        "fan-out-completed",
        "retry-completed",
        "timer-completed",
    ]
    assert _calls() == {}  # replaying ran the orchestrators only


def test_known_bad_history_names_the_position_and_both_sides() -> None:
    [report] = replay_reports(APP, KNOWN_BAD)
    assert not report.ok
    assert (report.instance_id, report.name) == ("chain-recorded-with-greet", "chain")
    [problem] = report.problems
    assert "at action #1 the history recorded CallActivity 'greet'" in problem
    assert "the code now yields CallActivity 'hello'" in problem
    assert "code changed while this instance was running" in problem
    with pytest.raises(AssertionError, match=r"1 of 1 histories do not replay(.|\n)*action #1"):
        assert_replays(APP, KNOWN_BAD)


def test_a_trailing_action_that_history_never_recorded_is_reported() -> None:
    document = _document("chain-completed")
    document["input"] = json.dumps(["Tokyo", "Seattle", "London", "Paris"])  # as if the code looped longer
    report = check_history(load_app(APP), document)
    [problem] = report.problems
    assert "at action #3 the history recorded nothing (the recorded actions end here)" in problem
    assert "the code now yields CallActivity 'hello'" in problem


def test_an_orchestrator_that_now_fails_where_history_recorded_progress() -> None:
    document = _document("approval-completed")
    for event in document["history"]:
        if event["EventType"] == EventType.EVENT_RAISED:
            event["Input"] = json.dumps({"verdict": "yes"})  # the code reads decision["approved"]
    [problem] = check_history(load_app(APP), document).problems
    assert problem.startswith("the orchestrator now fails where history recorded progress")
    assert "approved" in problem


def test_end_of_orchestration_disagreements() -> None:
    functions = load_app(APP)
    completed = _document("chain-completed")
    running = copy.deepcopy(completed)
    running["history"] = [e for e in running["history"] if e["EventType"] != EventType.EXECUTION_COMPLETED]
    [problem] = check_history(functions, running).problems
    assert "history recorded the instance still running, but the code now finishes" in problem

    waiting = _document("approval-waiting")
    ended = {"EventType": EventType.EXECUTION_COMPLETED, "OrchestrationStatus": 1, "Result": None}
    waiting["history"].append({**waiting["history"][-1], **ended})
    [problem] = check_history(functions, waiting).problems
    assert "history recorded the end of the orchestration, but the code now does not finish" in problem


def test_unknown_orchestrator_and_foreign_documents() -> None:
    functions = load_app(APP)
    document = _document("chain-completed")
    document["name"] = "chain_v0"
    [problem] = check_history(functions, document).problems
    assert "the app has no orchestrator for this history" in problem and "chain_v0" in problem
    bare = _document("approval-waiting")
    del bare["runtimeStatus"], bare["actionCount"]  # optional: the history alone is enough
    assert check_history(functions, bare).ok
    with pytest.raises(HistoryDocumentError, match="durablehost-history/1"):
        check_history(functions, {"historyEvents": []})


async def test_export_then_replay_check_passes_for_fresh_instances(tmp_path: Path) -> None:
    async with DurableTestHost.start(APP) as host:
        client = host.client
        ids = [
            await client.start_new("chain", client_input=["a", "b"]),
            await client.start_new("fan_out", client_input=4),
            await client.start_new("retry", client_input={"key": "fresh", "succeed_on": 2}),
            await client.start_new("approval", client_input="desk"),
            await client.start_new("reminder", client_input=1),
        ]
        await host.advance(timedelta(days=2))
        for instance_id in ids:
            document = await host.host.export_history(instance_id)
            assert document["format"] == "durablehost-history/1"
            assert document["history"] == await host.history(instance_id)  # raw, Dh* keys included
            (tmp_path / f"{instance_id}.json").write_text(json.dumps(document), encoding="utf-8")
        runs = dict(_calls())
        statuses = {i: (await client.get_status(i)).runtime_status.value for i in ids}
    assert list(statuses.values()) == ["Completed", "Completed", "Completed", "Running", "Completed"]
    assert len(assert_replays(APP, tmp_path)) == 5
    assert _calls() == {}, runs  # a fresh load of the app: nothing ran while checking
