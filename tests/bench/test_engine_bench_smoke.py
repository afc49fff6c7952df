"""The engine benchmark still runs: ``--quick`` on SQLite, end to end, in a subprocess."""

from __future__ import annotations

from tests.bench.running import run_bench, written_report


def test_engine_bench_quick_on_sqlite() -> None:
    stdout = run_bench("engine_bench.py", "--store", "sqlite", "--quick")
    assert "HelloSequence5 throughput" in stdout
    report = written_report(stdout)
    metrics = {r["metric"] for r in report["results"]}
    assert {"HelloSequence5 throughput", "fan-out 50 seconds", "event to episode p50"} <= metrics
    assert all(r["store"] == "sqlite" and r["median"] > 0 for r in report["results"])
    assert report["machine"]["cpus"] and report["machine"]["python"]
