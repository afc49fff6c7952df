"""The deployment zip holds the app and nothing of the host, the tests or local secrets."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def _build_package_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_package", REPO_ROOT / "scripts" / "build_package.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses resolve string annotations through sys.modules, so register before executing
    sys.modules.setdefault("build_package", module)
    spec.loader.exec_module(sys.modules["build_package"])
    return sys.modules["build_package"]


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    output = tmp_path_factory.mktemp("dist") / "app.zip"
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "build_package.py"), "--output", str(output)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    with zipfile.ZipFile(output) as archive:
        assert archive.testzip() is None
        return archive.namelist()


@pytest.mark.parametrize(
    "expected",
    [
        "main.py",
        "host.json",
        "requirements.txt",
        "function_app/__init__.py",
        "orchestrators/request_approval.py",
        "activities/booking.py",
        "shared/settings.py",
        "shared/llm/openai_provider.py",
    ],
)
def test_zip_holds_the_app(packaged: list[str], expected: str) -> None:
    assert expected in packaged


@pytest.mark.parametrize(
    "excluded_top", ["tests", "durablehost", "bench", "node_modules", ".venv", ".git", "dist", ".ci"]
)
def test_zip_holds_nothing_of_host_tests_or_tooling(packaged: list[str], excluded_top: str) -> None:
    assert not [name for name in packaged if name.split("/")[0] == excluded_top]


def test_zip_holds_no_local_settings_caches_or_bytecode(packaged: list[str]) -> None:
    assert "local.settings.json" not in packaged
    assert "pyproject.toml" not in packaged
    assert not [n for n in packaged if "__pycache__" in n or n.endswith(".pyc") or ".egg-info" in n]
    # Tool caches the test runs leave in the tree (Hypothesis' example database, import-linter's cache).
    assert not [n for n in packaged if n.startswith(".") and n != ".funcignore"]


def test_ignore_rules_follow_gitignore_semantics(tmp_path: Path) -> None:
    bp = _build_package_module()
    (tmp_path / "host.json").write_text("{}")
    for name in [
        "keep.py",
        "skip.log",
        "docs/a.md",
        "pkg/build/x.py",
        "pkg/keep.log",
        "top/x.py",
        "sub/top/y.py",
    ]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    (tmp_path / ".funcignore").write_text("# comment\n*.log\n!pkg/keep.log\ndocs/\nbuild\n/top\n")
    files = bp.build_package(tmp_path, tmp_path / "dist" / "app.zip")
    assert files == [".funcignore", "host.json", "keep.py", "pkg/keep.log", "sub/top/y.py"]


def test_zip_is_reproducible(tmp_path: Path) -> None:
    bp = _build_package_module()
    root = tmp_path / "app"
    root.mkdir()
    (root / "host.json").write_text("{}")
    (root / "main.py").write_text("print()")
    first, second = tmp_path / "a.zip", tmp_path / "b.zip"
    bp.build_package(root, first)
    bp.build_package(root, second)
    assert first.read_bytes() == second.read_bytes()


def test_refuses_a_folder_without_host_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _build_package_module().main(["--root", str(tmp_path)]) == 2
    assert "has no host.json" in capsys.readouterr().err
