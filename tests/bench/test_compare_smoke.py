"""bench/compare.py still runs: its durablehost part, ``--quick`` on SQLite, no peer installs, no network."""

from __future__ import annotations

import json
from pathlib import Path

from tests.bench.running import run_bench


def test_compare_quick_durablehost_sqlite(tmp_path: Path) -> None:
    stdout = run_bench("compare.py", "--systems", "durablehost-sqlite", "--quick", "--out", str(tmp_path))
    assert "| HelloSequence5 throughput" in stdout
    assert (tmp_path / "compare.md").read_text().startswith("# durablehost vs")
    report = json.loads((tmp_path / "compare.json").read_text())
    assert report["systems"] == ["durablehost-sqlite"]
    assert report["unavailable"] == {}
    figures = report["results"]["durablehost-sqlite"]
    assert set(figures) == {"hello_throughput", "hello_p50", "hello_p99", "fanout_seconds", "fanout_rss",
                            "event_p50", "event_p99"}
    for key, figure in figures.items():
        assert not figure["error"], (key, figure["error"])
        assert figure["median"] is not None and figure["median"] > 0, key
    assert report["machine"]["cpus"] and report["machine"]["cpu_model"] is not None
