"""Invoking function.json functions as the worker does: named http outputs, missing responses, context."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from durablehost.errors import InvocationError
from durablehost.functions import (
    ActivitySuccess,
    build_http_request,
    call_activity,
    call_http_function,
    load_app,
)
from durablehost.functions.workers import UserCode
from tests.functions.test_v1_loading import ACTIVITY_BINDINGS, function

HTTP_IN = {"name": "req", "type": "httpTrigger", "direction": "in", "authLevel": "anonymous"}


def http_app(tmp_path: Path, outputs: list[dict[str, str]], code: str) -> Path:
    function(tmp_path, "Fn", {"bindings": [HTTP_IN, *outputs]}, code)
    return tmp_path


async def call(app: Path) -> tuple[int, bytes]:
    fn = load_app(app).http[0]
    workers = UserCode(orchestrator_threads=1, activity_threads=1)
    try:
        request = build_http_request("GET", "http://localhost/api/Fn")
        response = await call_http_function(fn, request, None, workers=workers)
    finally:
        workers.shutdown()
    return response.status_code, response.get_body()


async def test_a_named_output_carries_the_response(tmp_path: Path) -> None:
    code = (
        "import azure.functions as func\n\n"
        "def main(req, res):\n    res.set(func.HttpResponse('made', status_code=201))\n"
    )
    app = http_app(tmp_path, [{"name": "res", "type": "http", "direction": "out"}], code)
    assert await call(app) == (201, b"made")


async def test_a_string_on_a_named_output_is_a_200_text(tmp_path: Path) -> None:
    app = http_app(
        tmp_path,
        [{"name": "res", "type": "http", "direction": "out"}],
        "def main(req, res):\n    res.set('hi')\n",
    )
    assert await call(app) == (200, b"hi")


@pytest.mark.parametrize(
    "outputs",
    [
        [],
        [{"name": "$return", "type": "http", "direction": "out"}],
        [{"name": "res", "type": "http", "direction": "out"}],
    ],
    ids=["no_output", "return_binding", "named_output"],
)
async def test_no_response_at_all_is_200_empty_as_the_host_answers(
    tmp_path: Path, outputs: list[dict[str, str]]
) -> None:
    params = "req, res" if outputs and outputs[0]["name"] == "res" else "req"
    app = http_app(tmp_path, outputs, f"def main({params}):\n    return None\n")
    assert await call(app) == (200, b"")


async def test_a_return_value_without_a_return_binding_is_refused_as_the_worker_does(tmp_path: Path) -> None:
    app = http_app(
        tmp_path,
        [{"name": "res", "type": "http", "direction": "out"}],
        "def main(req, res):\n    return 'lost'\n",
    )
    with pytest.raises(InvocationError, match="without a \\$return binding returned a non-None value"):
        await call(app)


async def test_a_return_binding_of_another_type_is_not_an_http_response(tmp_path: Path) -> None:
    app = http_app(
        tmp_path,
        [{"name": "$return", "type": "queue", "direction": "out"}],
        "def main(req):\n    return 'x'\n",
    )
    fn = load_app(app).http[0]
    assert not fn.returns_response
    assert [(b.name, b.type) for b in fn.other_bindings] == [("$return", "queue")]
    with pytest.raises(InvocationError, match="cannot supply the binding"):
        await call(app)


async def test_the_invocation_context_names_the_function_folder(
    tmp_path: Path, workers: UserCode
) -> None:
    code = "def main(name, context):\n    return [context.function_name, context.function_directory]\n"
    function(tmp_path, "WhoAmI", {"bindings": ACTIVITY_BINDINGS}, code)
    outcome = await call_activity(load_app(tmp_path).activity("whoami"), '"x"', workers=workers)
    assert isinstance(outcome, ActivitySuccess)
    assert json.loads(outcome.result_json) == ["WhoAmI", str((tmp_path / "WhoAmI").resolve())]
