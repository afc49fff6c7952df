"""History export documents, and the replay check of exported histories against the current code.

A team changing orchestrator code needs to know whether instances in flight can carry on with it. The
check replays a recorded history through the SDK, exactly as the dispatcher's next episode would, and
compares the actions the code yields now with the decisions history recorded, using the engine's own
rule (``durablehost.engine.episode.check_determinism``, protocol §2.3, §8-R1). Nothing is stored and no
activity, timer or sub-orchestration runs: only the orchestrator function is called.

The document (``durablehost export``, ``GET …/instances/{id}/export``, ``DurableHost.export_history``)::

    {"format": "durablehost-history/1", "instanceId": …, "name": <orchestrator>, "input": <JSON text>,
     "executionId": …, "runtimeStatus": …, "actionCount": <int>,
     "history": [DTFx events exactly as stored, Dh* keys included]}

``runtimeStatus`` and ``actionCount`` are informative and optional: a document without them (written by
hand, say) is checked from its history alone. ``"fidelity": "azure"`` (only on instances created
Azure-exact, durablehost.engine.fidelity) replays with Azure's payload, whose timer limits make the SDK
split long timers as it did when the history was made.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# The underscored names are private to episode.py, imported so the check sends the payload the dispatcher
# sends (protocol §1.2) and names actions and words its reports exactly as the engine does.
from durablehost.engine.episode import (
    CONTINUE_AS_NEW,
    SCHEMA_FIELDS,
    SIGNAL_ENTITY,
    WAIT_FOR_EXTERNAL_EVENT,
    InstanceState,
    NonDeterminismError,
    action_name,
    check_determinism,
    describe_action,
    flatten_actions,
    nondeterminism_message,
    recorded_actions,
)
from durablehost.engine.export import HISTORY_FORMAT, history_document
from durablehost.engine.fidelity import Fidelity, payload_fields
from durablehost.engine.history import ORCHESTRATION_STATUS_CODES, EventType, HistoryEvent
from durablehost.engine.records import InstanceRecord, RuntimeStatus
from durablehost.errors import InvocationError, UnknownFunction
from durablehost.functions import FunctionIndex, OrchestratorResult, call_orchestrator

# Actions that never leave a decision event in history, so they have no recorded counterpart.
_UNRECORDED = (WAIT_FOR_EXTERNAL_EVENT, CONTINUE_AS_NEW, SIGNAL_ENTITY)
_FAILED = ORCHESTRATION_STATUS_CODES["Failed"]



@dataclass
class ReplayReport:
    """The outcome of replaying one exported history; ``ok`` when ``problems`` is empty."""

    instance_id: str
    name: str
    problems: list[str] = field(default_factory=list)
    source: str | None = None  # the file the document came from, for reports

    @property
    def ok(self) -> bool:
        return not self.problems

    def describe(self) -> str:
        where = f" ({self.source})" if self.source else ""
        head = f"{self.name} {self.instance_id}{where}"
        if self.ok:
            return f"ok    {head}"
        return "\n".join([f"FAIL  {head}", *(f"      {problem}" for problem in self.problems)])


class HistoryDocumentError(ValueError):
    """A file that is not a durablehost history export."""


def check_history(functions: FunctionIndex, document: dict[str, Any]) -> ReplayReport:
    """Replay ``document`` against the orchestrators in ``functions`` without running any activity."""
    _validate(document)
    report = ReplayReport(instance_id=str(document["instanceId"]), name=str(document["name"]))
    try:
        orchestrator = functions.orchestrator(report.name)
    except UnknownFunction as exc:
        report.problems.append(f"the app has no orchestrator for this history: {exc}")
        return report
    try:
        outcome = call_orchestrator(orchestrator, json.dumps(_payload(document)))
    except InvocationError as exc:
        report.problems.append(str(exc))
        return report
    problem = _first_problem(document, outcome)
    if problem is not None:
        report.problems.append(problem)
    return report


def _payload(document: dict[str, Any]) -> dict[str, Any]:
    """The trigger payload of protocol §1.2 over the whole recorded history."""
    history: list[HistoryEvent] = document["history"]
    return {
        # IsPlayed on every event makes context.is_replaying true throughout (protocol §1.6), so code
        # guarded by `if not context.is_replaying` (logging, notifications) stays quiet during a check.
        "history": [{**event, "IsPlayed": True} for event in history],
        "input": document.get("input"),
        "instanceId": document["instanceId"],
        "isReplaying": True,
        "parentInstanceId": _parent_instance_id(history),
        **SCHEMA_FIELDS,
        **payload_fields(_fidelity(document)),
    }


def _fidelity(document: dict[str, Any]) -> Fidelity:
    return Fidelity.parse(str(document.get("fidelity", Fidelity.DURABLEHOST.value)))


def _first_problem(document: dict[str, Any], outcome: OrchestratorResult) -> str | None:
    history: list[HistoryEvent] = document["history"]
    flat = flatten_actions(outcome.state.get("actions") or [])
    recorded = recorded_actions(history)
    recorded_count = max(recorded) + 1 if recorded else 0
    exported_count = document.get("actionCount")
    if isinstance(exported_count, int):
        recorded_count = max(recorded_count, exported_count)
    finished_as = _finished_status(history)
    if outcome.failed and finished_as != _FAILED:
        # The code stopped early, so history holds actions it never reached; of those before the failure,
        # a divergence is the better diagnosis, else the failure itself is.
        reached = [e for e in history if not isinstance(e.get("DhAction"), int) or e["DhAction"] < len(flat)]
        try:
            check_determinism(_state_for_messages(document, reached), flat, len(flat))
        except NonDeterminismError as exc:
            return str(exc)
        return f"the orchestrator now fails where history recorded progress: {outcome.error}"
    state = _state_for_messages(document, history)
    try:
        check_determinism(state, flat, recorded_count)
    except NonDeterminismError as exc:
        return str(exc)
    if finished_as == _FAILED:
        return None  # a failed instance is not in flight: new code going further harms nothing
    for index in range(recorded_count, len(flat)):
        kind = int(flat[index]["actionType"])
        if kind not in _UNRECORDED:
            now = describe_action(kind, action_name(flat[index]))
            return nondeterminism_message(state, index, "nothing (the recorded actions end here)", now)
    done = bool(outcome.state.get("isDone"))
    if finished_as is not None and not done:
        return "history recorded the end of the orchestration, but the code now does not finish"
    if finished_as is None and done:
        return "history recorded the instance still running, but the code now finishes on the same history"
    return None


def load_documents(paths: list[Path]) -> list[tuple[Path, dict[str, Any]]]:
    """The export documents in ``paths``: files, and every ``*.json`` under folders, in name order."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(path.rglob("*.json")))
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"{path} does not exist")
    documents = []
    for file in files:
        try:
            document = json.loads(file.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise HistoryDocumentError(f"{file}: not JSON: {exc}") from exc
        documents.append((file, document))
    return documents


def check_paths(functions: FunctionIndex, paths: list[Path]) -> list[ReplayReport]:
    """check_history for every document under ``paths``; each report names its file."""
    reports = []
    for file, document in load_documents(paths):
        try:
            report = check_history(functions, document)
        except HistoryDocumentError as exc:
            raise HistoryDocumentError(f"{file}: {exc}") from exc
        report.source = str(file)
        reports.append(report)
    return reports


def _validate(document: Any) -> None:
    if not isinstance(document, dict) or document.get("format") != HISTORY_FORMAT:
        raise HistoryDocumentError(
            f'not a durablehost history export (expected "format": "{HISTORY_FORMAT}"); '
            "produce one with `durablehost export ID`"
        )
    for key, kind in (("instanceId", str), ("name", str), ("history", list)):
        if not isinstance(document.get(key), kind):
            raise HistoryDocumentError(f"the history export has no valid {key!r}")
    try:
        _fidelity(document)
    except ValueError as exc:
        raise HistoryDocumentError(f"the history export's fidelity: {exc}") from None


def _parent_instance_id(history: list[HistoryEvent]) -> str | None:
    for event in history:
        if event.get("EventType") == EventType.EXECUTION_STARTED:
            parent = event.get("ParentInstance") or {}
            instance = parent.get("OrchestrationInstance") or {}
            found = instance.get("InstanceId")
            return str(found) if found else None
    return None


def _finished_status(history: list[HistoryEvent]) -> int | None:
    """The DTFx OrchestrationStatus of the recorded ExecutionCompleted, or None while running."""
    for event in reversed(history):
        if event.get("EventType") == EventType.EXECUTION_COMPLETED:
            return int(event.get("OrchestrationStatus", _FAILED))
    return None


def _state_for_messages(document: dict[str, Any], history: list[HistoryEvent]) -> InstanceState:
    """The engine's instance state as far as check_determinism reads it: name, id and history."""
    epoch = datetime.fromtimestamp(0, UTC)  # never read: the record only names the instance
    record = InstanceRecord(
        instance_id=str(document["instanceId"]),
        name=str(document["name"]),
        status=RuntimeStatus.RUNNING,
        execution_id=str(document.get("executionId") or ""),
        created_time=epoch,
        last_updated_time=epoch,
        input=document.get("input"),
    )
    return InstanceState(record=record, history=history, tasks={}, events=[])


__all__ = [
    "HISTORY_FORMAT",
    "HistoryDocumentError",
    "ReplayReport",
    "check_history",
    "check_paths",
    "history_document",
    "load_documents",
]
