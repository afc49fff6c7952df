"""Azure will load the app: the Functions Python worker's own indexing code finds every function.

The worker validates more than the SDK's get_functions(): e.g. it refuses a binding parameter annotated
with a generic alias such as ``dict[str, Any]`` ("invalid non-type annotation"), which once broke this app.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

# tests/app has no __init__.py: pytest puts this folder on sys.path, so sibling modules import by name.
from test_app_index import ACTIVITIES, HTTP_ROUTES, ORCHESTRATORS

HERE = Path(__file__).parent

HTTP_STARTERS = set(HTTP_ROUTES)


def test_the_functions_worker_indexes_every_function_and_binding() -> None:
    done = subprocess.run(
        [sys.executable, str(HERE / "worker_index.py")], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found: dict[str, dict[str, str]] = json.loads(done.stdout)
    assert set(found) == ORCHESTRATORS | ACTIVITIES | HTTP_STARTERS
    for name in ORCHESTRATORS:
        assert found[name] == {"context": "orchestrationTrigger"}, name
    for name in ACTIVITIES:
        assert list(found[name].values()) == ["activityTrigger"], name
    for name in HTTP_STARTERS:
        assert found[name] == {"req": "httpTrigger", "client": "durableClient", "$return": "http"}, name
