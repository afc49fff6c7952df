"""The responsiveness benchmark still runs: one short run of each kind of blocking user code."""

from __future__ import annotations

from tests.bench.running import run_bench


def test_responsiveness_bench_one_short_run() -> None:
    stdout = run_bench("responsiveness.py", "--runs", "1", "--seconds", "0.5,0.5,0.5")
    rows = {line.split("  ")[0]: line for line in stdout.splitlines()}
    assert {"idle", "cpu orchestrator", "blocking entity", "blocking async activity"} <= set(rows)
    assert "target: an unrelated status answer within 100 ms" in stdout
