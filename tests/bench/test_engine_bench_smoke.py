"""The engine benchmark still runs: ``--quick`` on SQLite, end to end, in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_engine_bench_quick_on_sqlite() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "engine_bench.py"), "--store", "sqlite", "--quick"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert "HelloSequence5 throughput" in done.stdout
    written = done.stdout.strip().splitlines()[-1].removeprefix("written to ").strip()
    path = Path(written) if Path(written).is_absolute() else REPO / written
    report = json.loads(path.read_text())
    path.unlink()  # a smoke run is not a measurement worth keeping
    metrics = {r["metric"] for r in report["results"]}
    assert {"HelloSequence5 throughput", "fan-out 50 seconds", "event to episode p50"} <= metrics
    assert all(r["store"] == "sqlite" and r["median"] > 0 for r in report["results"])
    assert report["machine"]["cpus"] and report["machine"]["python"]
