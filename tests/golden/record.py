"""Re-record the golden histories from real runs of tests/golden/app (in-process host, virtual time).

    .venv/bin/python tests/golden/record.py

Writes histories/*.json (each must replay cleanly on the current app) and known_bad/*.json (each must
produce a non-determinism report). Re-record only when an orchestrator changed on purpose, and only
once no instance recorded with the old code is still running anywhere.
"""

from __future__ import annotations

import asyncio
import copy
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from durablehost.testing import DurableTestHost

GOLDEN = Path(__file__).parent
APP = GOLDEN / "app"
HISTORIES = GOLDEN / "histories"
KNOWN_BAD = GOLDEN / "known_bad"
START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


async def record() -> dict[str, dict[str, Any]]:
    documents: dict[str, dict[str, Any]] = {}
    async with DurableTestHost.start(APP, start_time=START) as host:
        client = host.client
        await client.start_new("chain", "chain-completed", ["Tokyo", "Seattle", "London"])
        await client.start_new("fan_out", "fan-out-completed", 5)
        await client.start_new("retry", "retry-completed", {"key": "golden", "succeed_on": 3})
        await client.start_new("approval", "approval-completed", "laptop")
        await client.start_new("approval", "approval-waiting", "monitor")
        await client.start_new("reminder", "timer-completed", 2)
        await host.run_until_idle()
        await client.raise_event_raw("approval-completed", "decision", json.dumps({"approved": True}))
        await host.advance(timedelta(days=3))  # the retry backoffs and the 2-day timer fire
        for instance_id in (
            "chain-completed",
            "fan-out-completed",
            "retry-completed",
            "approval-completed",
            "approval-waiting",
            "timer-completed",
        ):
            documents[instance_id] = await host.host.export_history(instance_id)
    return documents


def renamed_second_activity(document: dict[str, Any]) -> dict[str, Any]:
    """Simulate a history recorded by older code that called 'greet' where the app now calls 'hello'."""
    old = copy.deepcopy(document)
    old["instanceId"] = "chain-recorded-with-greet"
    scheduled = [e for e in old["history"] if e.get("DhAction") == 1]
    if len(scheduled) != 1:
        raise RuntimeError("the chain history has no decision for action #1")
    scheduled[0]["Name"] = scheduled[0]["DhActionName"] = "greet"
    return old


def write(folder: Path, name: str, document: dict[str, Any]) -> None:
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")


def main() -> int:
    documents = asyncio.run(record())
    expected = {"approval-waiting": "Running"}
    for instance_id, document in documents.items():
        status = document["runtimeStatus"]
        if status != expected.get(instance_id, "Completed"):
            print(f"{instance_id} ended {status}; not writing the golden histories", file=sys.stderr)
            return 1
        write(HISTORIES, instance_id, document)
    write(KNOWN_BAD, "chain-recorded-with-greet", renamed_second_activity(documents["chain-completed"]))
    print(f"wrote {len(documents)} histories to {HISTORIES} and 1 to {KNOWN_BAD}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
