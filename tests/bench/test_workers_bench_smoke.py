"""bench/workers_bench.py still runs: ``--quick`` on SQLite, the product's front (``durablehost start
--workers 2``, the inherited socket) and the engine part with 1 and 2 workers, real processes and HTTP. The
SO_REUSEPORT and relay prototypes are left out to keep this short: they live in the bench file alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.bench.running import run_bench


def test_workers_bench_quick_on_sqlite(tmp_path: Path) -> None:
    stdout = run_bench(
        "workers_bench.py", "--quick", "--store", "sqlite", "--fronts", "inherited", "--out", str(tmp_path)
    )
    assert "## Front: 2 workers behind one port" in stdout
    assert "| keep-alive | inherited |" in stdout
    assert "## Engine: HelloSequence5" in stdout
    (path,) = tmp_path.glob("workers_bench-*.json")
    report = json.loads(path.read_text())
    fronts = report["front"]
    assert {(r["scenario"], r["front"]) for r in fronts} == {
        ("keep-alive", "inherited"),
        ("new connection per request", "inherited"),
    }
    for row in fronts:
        assert row["per_second"]["median"] > 0
        assert 0 < row["p50_ms"]["median"] <= row["p99_ms"]["median"]
        assert 50 <= row["busiest_share_pct"]["median"] <= 100  # 2 workers: the busiest has half or more
        (split,) = row["connections_split"]
        assert sum(int(n) for n in split.split("/")) >= row["clients"]
    engine = report["engine"]
    assert [(r["store"], r["workers"]) for r in engine] == [("sqlite", 1), ("sqlite", 2)]
    for row in engine:
        assert row["per_second"]["median"] > 0 and row["engine_seconds"]["median"] > 0
        (split,) = row["instances_split"]
        assert sum(int(n) for n in split.split("/")) == row["instances"]
        (timed,) = row["sqlite_lock"]  # the workers timed their SQLite write transactions
        assert 1 <= len(timed) <= row["workers"]
        assert all(t["transactions"] > 0 and t["held_s"] > 0 for t in timed)
        (busy,) = row["worker_cpu_pct"]
        assert len(busy.split("/")) == row["workers"] and all(0 < float(b) for b in busy.split("/"))
    ratio = engine[1]["per_second"]["median"] / engine[0]["per_second"]["median"]
    assert engine[1]["ratio_w2_w1"] == pytest.approx(ratio, rel=1e-3)
    assert report["machine"]["cpus"] and report["load_average_after"]
