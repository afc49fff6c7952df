"""The responsiveness benchmark still runs: one short run of each kind of blocking user code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_responsiveness_bench_one_short_run() -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "responsiveness.py"),
            "--runs",
            "1",
            "--seconds",
            "0.5,0.5,0.5",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    rows = {line.split("  ")[0]: line for line in done.stdout.splitlines()}
    assert {"idle", "cpu orchestrator", "blocking entity", "blocking async activity"} <= set(rows)
    assert "target: an unrelated status answer within 100 ms" in done.stdout
