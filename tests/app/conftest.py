"""Fixtures for the agent app's unit tests. The app's top-level packages (``shared``, ``activities`` …)
live at the repository root, which is not an installed package, so it is put on ``sys.path``."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
APP_TOP_LEVEL = ("main", "function_app", "orchestrators", "activities", "shared")

if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


def _is_app_module(name: str) -> bool:
    return name.partition(".")[0] in APP_TOP_LEVEL


@pytest.fixture
def isolated_app_import(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Import the app fresh from the repository root and forget it afterwards, so fixture apps of other
    suites that also have a ``function_app`` or ``main`` never mix with ours."""
    monkeypatch.setattr(sys, "path", [str(REPO_ROOT), *sys.path])
    saved = {name: module for name, module in sys.modules.items() if _is_app_module(name)}
    for name in saved:
        del sys.modules[name]
    yield
    for name in [n for n in sys.modules if _is_app_module(n)]:
        del sys.modules[name]
    sys.modules.update(saved)
