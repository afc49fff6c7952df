"""The history export document: one instance's current execution, as ``durablehost export`` writes it.

    {"format": "durablehost-history/1", "instanceId": …, "name": <orchestrator>, "input": <JSON text>,
     "executionId": …, "runtimeStatus": …, "actionCount": <int>,
     "history": [DTFx events exactly as stored, Dh* keys included]}

``durablehost.replay`` reads these documents back and replays them against the current code.
"""

from __future__ import annotations

from typing import Any

from durablehost.engine.fidelity import Fidelity
from durablehost.engine.history import HistoryEvent
from durablehost.engine.records import InstanceRecord

HISTORY_FORMAT = "durablehost-history/1"


def history_document(record: InstanceRecord, history: list[HistoryEvent]) -> dict[str, Any]:
    """The export document of one instance's current execution."""
    fidelity = {"fidelity": record.fidelity.value} if record.fidelity is not Fidelity.DURABLEHOST else {}
    return {
        "format": HISTORY_FORMAT,
        "instanceId": record.instance_id,
        "name": record.name,
        "input": record.input,
        "executionId": record.execution_id,
        "runtimeStatus": record.status.value,
        # Actions the code had yielded after its last episode, external-event waits included: waits leave
        # no event in history, and the check needs their positions to word a report as the engine does.
        "actionCount": record.action_count,
        **fidelity,
        "history": history,
    }
