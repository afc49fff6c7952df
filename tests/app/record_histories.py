"""Record histories of the approval workflow from real runs of the agent app (in-process host, virtual
time, app state in memory), for tests/app/test_history_replay.py.

    PYTHON_SCRIPT_FILE_NAME=main.py APP_STATE_STORE=memory .venv/bin/python tests/app/record_histories.py

The committed ones were recorded with the orchestrator as it was before its approval wait opened with
the classification (commit 4778b40): they are the instances a deployment may still have in flight. Keep
them; add new recordings under new names rather than re-recording these.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from durablehost.testing import DurableTestHost

HERE = Path(__file__).parent
REPO_ROOT = HERE.parents[1]
HISTORIES = HERE / "histories"
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
REFUND = {"text": "Please refund my last order", "customer": "c-1", "amount": 120}
WORKFLOW = "request_approval_orchestrator"


def approval(approval_id: str, approver: str) -> dict[str, str]:
    return {"approval_id": approval_id, "approver": approver, "decision": "approve", "comment": ""}


async def record() -> dict[str, dict[str, Any]]:
    async with DurableTestHost.start(REPO_ROOT, start_time=START) as host:
        client = host.client
        await client.start_new(WORKFLOW, "approved", {"request": REFUND})
        await client.start_new(
            WORKFLOW, "waiting-after-reminder", {"request": REFUND, "required_approvals": 2}
        )
        await client.start_new(WORKFLOW, "expired", {"request": REFUND, "deadline_hours": 30})
        await host.run_until_idle()
        await client.raise_event("approved", "approval", approval("ap-1", "alice"))
        await client.raise_event("waiting-after-reminder", "approval", approval("ap-1", "alice"))
        await host.advance(timedelta(hours=31))  # one reminder each; the 30-hour deadline passes
        return {
            i: await host.host.export_history(i) for i in ("approved", "waiting-after-reminder", "expired")
        }


def main() -> int:
    documents = asyncio.run(record())
    expected = {"approved": "Completed", "waiting-after-reminder": "Running", "expired": "Completed"}
    for instance_id, document in documents.items():
        if document["runtimeStatus"] != expected[instance_id]:
            print(f"{instance_id} ended {document['runtimeStatus']}; not writing", file=sys.stderr)
            return 1
        HISTORIES.mkdir(exist_ok=True)
        text = json.dumps(document, indent=1) + "\n"
        (HISTORIES / f"approval-{instance_id}.json").write_text(text, encoding="utf-8")
    print(f"wrote {len(documents)} histories to {HISTORIES}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
