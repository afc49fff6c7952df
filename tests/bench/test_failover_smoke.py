"""The failover benchmark still runs: one short case on SQLite (two processes, a kill -9, a take-over)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def test_failover_bench_one_quick_case_on_sqlite() -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "failover.py"),
            "--store",
            "sqlite",
            "--quick",
            "--cases",
            "on:2",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert "| sqlite | detectDeadProcesses on, lease 2 s |" in done.stdout
    written = done.stdout.strip().splitlines()[-1].removeprefix("written to ").strip()
    path = Path(written) if Path(written).is_absolute() else REPO / written
    report = json.loads(path.read_text())
    path.unlink()  # a smoke run is not a measurement worth keeping
    (row,) = report["results"]
    assert row["acknowledged"] > 0 and row["completed_once"] == row["acknowledged"] and row["stalls"] == 0
    assert row["failover"]["runs"] and 0 < row["failover"]["median"] < 10
