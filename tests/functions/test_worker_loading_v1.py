"""Azure would load the function.json test apps: the Python worker's own v1 loader
(azure-functions-runtime-v1, installed test-only by ./dev setup) loads them into the same modules as
durablehost does, and refuses what durablehost refuses."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from durablehost.errors import AppLoadError
from durablehost.functions import FunctionIndex, load_app
from tests.functions.test_v1_loading import ACTIVITY_BINDINGS, PARAMETER_CASES

WORKER_SCRIPT = Path(__file__).parent / "worker_load_v1.py"


def worker_load(app_dir: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(WORKER_SCRIPT), str(app_dir)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found: dict[str, Any] = json.loads(done.stdout)
    return found


def _user_module(index: FunctionIndex, name: str) -> str:
    info = next(f for f in index.functions if f.name == name)
    code = getattr(
        info.handler, "orchestrator_function", getattr(info.handler, "entity_function", info.handler)
    )
    return str(code.__module__)


@pytest.mark.parametrize("app_name", ["v1_durable", "v1_triggers"])
def test_the_worker_loads_every_test_app_function_into_the_same_modules(apps: Path, app_name: str) -> None:
    app = apps / app_name
    worker = worker_load(app)
    errors = {name: f["error"] for name, f in worker["functions"].items() if "error" in f}
    assert errors == {}
    index = load_app(app)
    assert set(worker["functions"]) == {f.name for f in index.functions}
    for name, found in worker["functions"].items():
        assert found["module"] == _user_module(index, name), name
        info = next(f for f in index.functions if f.name == name)
        assert found["is_async"] == inspect.iscoroutinefunction(info.handler), name
        # Every binding but $return reaches a parameter, inputs and outputs as durablehost reads them.
        declared = {b.name: b.direction for b in info.bindings if b.name != "$return"}
        assert {**dict.fromkeys(found["inputs"], "IN"), **dict.fromkeys(found["outputs"], "OUT")} == declared
    # The same modules, the double import of shared_code included (SayHello relative, MeasureFile absolute).
    ours = sorted(m for m in sys.modules if m.partition(".")[0] in {"__app__", "shared_code"})
    assert worker["modules"] == ours
    if app_name == "v1_durable":
        assert "__app__.shared_code.greetings" in ours and "shared_code.sizes" in ours
        assert worker["functions"]["HttpStartNamed"]["outputs"] == {"message": "http"}
        assert worker["functions"]["SayHello"]["return"] == "activityTrigger"  # implicit output


@pytest.mark.parametrize(
    ("case", "bindings", "code", "expected"), PARAMETER_CASES, ids=[c[0] for c in PARAMETER_CASES]
)
def test_the_worker_refuses_what_durablehost_refuses(
    tmp_path: Path, case: str, bindings: list[dict[str, Any]], code: str, expected: str
) -> None:
    folder = tmp_path / "Fn"
    folder.mkdir()
    (folder / "function.json").write_text(json.dumps({"bindings": bindings}))
    (folder / "__init__.py").write_text(textwrap.dedent(code))
    worker = worker_load(tmp_path)
    assert "FunctionLoadError: cannot load the Fn function" in worker["functions"]["Fn"]["error"]
    with pytest.raises(AppLoadError, match="Fn"):
        load_app(tmp_path)


def test_what_the_worker_accepts_durablehost_accepts(tmp_path: Path) -> None:
    """The edge cases of the parameter rules that are allowed: a context parameter, an unannotated Out."""
    folder = tmp_path / "Fn"
    folder.mkdir()
    bindings = [*ACTIVITY_BINDINGS, {"name": "msg", "type": "queue", "direction": "out"}]
    (folder / "function.json").write_text(json.dumps({"bindings": bindings}))
    (folder / "__init__.py").write_text(
        "import azure.functions as func\n\ndef main(name, msg, context: func.Context):\n    pass\n"
    )
    worker = worker_load(tmp_path)
    assert worker["functions"]["Fn"]["requires_context"] is True
    activity = load_app(tmp_path).activity("Fn")
    assert activity.wants_context
