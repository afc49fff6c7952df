"""The store-outage benchmark still runs: one 2 s outage on SQLite with one instance of each kind, in a
subprocess, end to end (a launched ``durablehost start`` whose store fails on command)."""

from __future__ import annotations

from tests.bench.running import run_bench, written_report


def test_outage_bench_quick_on_sqlite() -> None:
    quick = ("--quick", "--outage", "2", "--instances", "4", "--stall-after", "15")
    stdout = run_bench("outage.py", "--store", "sqlite", *quick)
    assert "| sqlite | 4 of 4 |" in stdout
    report = written_report(stdout)
    (result,) = report["results"]
    assert result["store"] == "sqlite" and result["runs"] == 1 and result["target_met"]
    assert result["stalled"] == 0 and result["wrong_outputs"] == 0 and result["duplicate_completions"] == 0
    assert 0 < result["last_finish_after_return"]["median"] < 5
    assert result["outage_warnings"] == [1] and result["recovery_lines"] == [1]
    assert result["event_503s"] >= 1 and result["event_503s_without_retry_after"] == 0
    assert result["events_accepted"] == "1/1"
    assert report["config"]["outage"] == 2 and report["machine"]["cpus"]
