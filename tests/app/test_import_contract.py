"""The app never imports durablehost (it must run on Azure unchanged), and orchestrators import no I/O
clients. The contracts live in pyproject.toml ([tool.importlinter]); CI can also run ``lint-imports``."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_import_linter_contracts_are_kept() -> None:
    # CI runs .venv/bin/python without activating the venv, so look beside the interpreter first.
    beside = Path(sys.executable).parent / "lint-imports"
    lint_imports = str(beside) if beside.is_file() else shutil.which("lint-imports")
    assert lint_imports, "lint-imports is missing: install the dev extra (pip install -e '.[dev]')"
    done = subprocess.run(
        [
            lint_imports,
            "--config",
            str(REPO_ROOT / "pyproject.toml"),
            "--contract",
            "app-never-imports-durablehost",
            "--contract",
            "orchestrators-do-no-io",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 kept, 0 broken" in done.stdout


def test_entry_script_imports_only_the_app() -> None:
    # main.py is a module, not a package, so import-linter cannot take it as a root: check it here.
    tree = ast.parse((REPO_ROOT / "main.py").read_text())
    imported = {
        alias.name.partition(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        node.module.partition(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert imported == {"function_app"}
