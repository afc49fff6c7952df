"""``durablehost replay-check --app-dir .`` on this repository's own app (issue #14 item 9): the entry
script is ``main.py``, named only by ``PYTHON_SCRIPT_FILE_NAME`` in local.settings.json, which
replay-check reads as ``start`` does."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from azure.durable_functions.models.OrchestrationRuntimeStatus import OrchestrationRuntimeStatus

from durablehost.testing import DurableTestHost
from tests.app.conftest import REPO_ROOT

DURABLEHOST = str(Path(sys.executable).parent / "durablehost")


async def test_replay_check_runs_on_this_repositorys_app(host: DurableTestHost, tmp_path: Path) -> None:
    instance_id = await host.client.start_new(
        "research_orchestrator", client_input={"topic": "heat pumps", "num_queries": 2}
    )
    status = await host.wait_for_completion(instance_id)
    assert status.runtime_status == OrchestrationRuntimeStatus.Completed, status.output
    export = tmp_path / "research.json"
    export.write_text(json.dumps(await host.host.export_history(instance_id)), encoding="utf-8")
    # As a user runs it: from the repository, with nothing but local.settings.json naming main.py.
    env = {k: v for k, v in os.environ.items() if k != "PYTHON_SCRIPT_FILE_NAME"}
    result = await asyncio.to_thread(
        subprocess.run,
        [DURABLEHOST, "replay-check", "--app-dir", ".", str(export)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 history replayed, 0 with problems" in result.stdout
