"""The failover benchmark still runs: one short case on SQLite (two processes, a kill -9, a take-over)."""

from __future__ import annotations

import pytest

from tests.bench.running import run_bench, written_report

pytestmark = pytest.mark.slow


def test_failover_bench_one_quick_case_on_sqlite() -> None:
    stdout = run_bench("failover.py", "--store", "sqlite", "--quick", "--cases", "on:2")
    assert "| sqlite | detectDeadProcesses on, lease 2 s |" in stdout
    report = written_report(stdout)
    (row,) = report["results"]
    assert row["acknowledged"] > 0 and row["completed_once"] == row["acknowledged"] and row["stalls"] == 0
    assert row["failover"]["runs"] and 0 < row["failover"]["median"] < 10
