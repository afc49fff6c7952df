"""Replay exported histories in a test: is a code change safe for the instances in flight?

    from durablehost.testing.replay import assert_replays

    def test_in_flight_instances_survive_this_change() -> None:
        assert_replays("path/to/app", "tests/golden")      # every *.json export under the folder

Histories come from ``durablehost export ID -o FILE`` (or ``DurableHost.export_history``). Only the
orchestrator functions run, over the recorded history; no activity, timer or sub-orchestration does.
"""

from __future__ import annotations

from pathlib import Path

from durablehost.functions import load_app
from durablehost.replay import ReplayReport, check_paths


def replay_reports(app_dir: str | Path, *paths: str | Path) -> list[ReplayReport]:
    """One report per export file under ``paths``, replayed against the app in ``app_dir``."""
    return check_paths(load_app(Path(app_dir)), [Path(p) for p in paths])


def assert_replays(app_dir: str | Path, *paths: str | Path) -> list[ReplayReport]:
    """Fail the test with a readable report unless every export under ``paths`` replays cleanly."""
    reports = replay_reports(app_dir, *paths)
    if not reports:
        raise AssertionError(f"no history exports (*.json) found in {', '.join(map(str, paths))}")
    failed = [report for report in reports if not report.ok]
    if failed:
        lines = [f"{len(failed)} of {len(reports)} histories do not replay on the current code:"]
        raise AssertionError("\n".join(lines + [report.describe() for report in failed]))
    return reports


__all__ = ["assert_replays", "replay_reports"]
