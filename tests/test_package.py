"""The package's shape: its layers (checked by import-linter), its type marker, and its public names."""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_the_layers_of_durablehost_are_kept() -> None:
    beside = Path(sys.executable).parent / "lint-imports"
    lint_imports = str(beside) if beside.is_file() else shutil.which("lint-imports")
    assert lint_imports, "lint-imports is missing: install the dev extra (pip install -e '.[dev]')"
    done = subprocess.run(
        [lint_imports, "--config", str(REPO_ROOT / "pyproject.toml"), "--contract", "durablehost-layers"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 kept, 0 broken" in done.stdout


def test_the_package_says_it_is_typed() -> None:
    assert (REPO_ROOT / "durablehost" / "py.typed").is_file()
    assert '"durablehost" = ["py.typed"]' in (REPO_ROOT / "pyproject.toml").read_text()


@pytest.mark.parametrize(
    "module",
    ["durablehost.testing", "durablehost.testing.replay", "durablehost.store", "durablehost.replay"],
)
def test_every_public_name_is_exported_and_exists(module: str) -> None:
    imported = importlib.import_module(module)
    for name in imported.__all__:
        assert hasattr(imported, name), f"{module}.__all__ names {name!r}, which it does not define"
