"""Approval instances recorded with the earlier orchestrator (tests/app/record_histories.py) replay on the
current code: opening the approval wait with the classification changed nothing for instances in flight
(a completed one, one that expired, and one still waiting after a reminder)."""

from __future__ import annotations

from pathlib import Path

import pytest

from durablehost.testing.replay import assert_replays
from tests.app.conftest import REPO_ROOT

HISTORIES = Path(__file__).parent / "histories"


def test_recorded_approval_histories_replay_on_the_current_code(
    isolated_app_import: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHON_SCRIPT_FILE_NAME", "main.py")
    reports = assert_replays(REPO_ROOT, HISTORIES)
    assert sorted(r.instance_id for r in reports) == ["approved", "expired", "waiting-after-reminder"]
