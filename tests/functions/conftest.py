from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from durablehost.functions import FunctionIndex, load_app
from durablehost.functions.workers import UserCode
from tests.engine.conftest import engine_store  # noqa: F401 - the SQLite and Azurite stores, for the harness

APPS = Path(__file__).parent / "apps"


@pytest.fixture(autouse=True)
def no_leaked_apps(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """Undo what load_app does to sys.path and sys.modules, so other test folders never import our apps."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    saved = dict(sys.modules)
    yield
    roots = (APPS.resolve(), tmp_path_factory.getbasetemp().resolve())
    # Decide first, delete after: a nested namespace package (__app__.shared_code) reads its parent's
    # __path__ from sys.modules.
    leaked = [
        name for name, module in list(sys.modules.items()) if name not in saved and _is_in(module, roots)
    ]
    for name in leaked:
        del sys.modules[name]
    sys.modules.update(saved)  # modules the loader evicted


def _is_in(module: ModuleType, roots: tuple[Path, ...]) -> bool:
    try:
        file = getattr(module, "__file__", None) or next(iter(getattr(module, "__path__", [])), None)
    except KeyError:
        return True  # a namespace package whose parent is already gone: one of ours
    return bool(file) and any(Path(file).resolve().is_relative_to(r) for r in roots)


@pytest.fixture
def apps() -> Path:
    return APPS


@pytest.fixture
def basic() -> FunctionIndex:
    return load_app(APPS / "basic")


@pytest.fixture
def workers() -> Iterator[UserCode]:
    """Where user code runs, as in the engine: worker threads and the user-code event loop."""
    user = UserCode(orchestrator_threads=2, activity_threads=2)
    yield user
    user.shutdown()
