"""The agent-episode benchmark still runs: a fan-out of two agents, once in each mode."""

from __future__ import annotations

from tests.bench.running import run_bench


def test_agent_episodes_bench_one_small_run() -> None:
    stdout = run_bench("agent_episodes.py", "--agents", "2", "--runs", "1")
    assert "one at a time (durablehost)" in stdout
    assert "concurrent (--fidelity azure)" in stdout
