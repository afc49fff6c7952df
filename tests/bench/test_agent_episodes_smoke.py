"""The agent-episode benchmark still runs: a fan-out of two agents, once in each mode."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_agent_episodes_bench_one_small_run() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "agent_episodes.py"), "--agents", "2", "--runs", "1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert "one at a time (durablehost)" in done.stdout
    assert "concurrent (--fidelity azure)" in done.stdout
