"""Loading function.json (Python v1) apps: discovery, module names, bindings, refusals, both models."""

from __future__ import annotations

import json
import logging
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from durablehost.errors import AppLoadError
from durablehost.functions import FunctionIndex, load_app
from durablehost.functions.index import FUNCTION_JSON_MODEL

ORCHESTRATOR = """
import azure.durable_functions as df


def orchestrator_function(context):
    result = yield context.call_activity("Hello", "x")
    return result


main = df.Orchestrator.create(orchestrator_function)
"""
ACTIVITY = """
def main(name: str) -> str:
    return f"Hello {name}!"
"""
ORCH_BINDINGS = [{"name": "context", "type": "orchestrationTrigger", "direction": "in"}]
ACTIVITY_BINDINGS = [{"name": "name", "type": "activityTrigger", "direction": "in"}]


def function(
    app: Path, name: str, config: Any, code: str | None = ACTIVITY, script: str = "__init__.py"
) -> Path:
    """One function folder; ``config`` is a dict (written as JSON) or raw text."""
    folder = app / name
    folder.mkdir(parents=True, exist_ok=True)
    text = config if isinstance(config, str) else json.dumps(config)
    (folder / "function.json").write_text(text)
    if code is not None:
        (folder / script).write_text(textwrap.dedent(code))
    return folder / "function.json"


def refusal(app: Path) -> str:
    with pytest.raises(AppLoadError) as raised:
        load_app(app)
    return str(raised.value)


@pytest.fixture
def v1(apps: Path) -> FunctionIndex:
    return load_app(apps / "v1_durable")


# --- what is found, and how -----------------------------------------------------------------------------


def test_every_folder_with_a_function_json_is_a_function_named_after_it(
    v1: FunctionIndex, apps: Path
) -> None:
    assert v1.model == FUNCTION_JSON_MODEL
    assert v1.source == "function.json folders"
    names = [f.name for f in v1.functions]
    assert names == sorted(names, key=str.lower)  # the host's order
    assert "shared_code" not in names  # a folder without function.json is plain code
    by_name = {f.name: f for f in v1.functions}
    assert by_name["SayHello"].trigger_type == "activityTrigger"
    assert by_name["HelloSequence"].trigger_type == "orchestrationTrigger"
    assert by_name["Counter"].trigger_type == "entityTrigger"
    assert by_name["HttpStart"].trigger_type == "httpTrigger"
    hello = by_name["SayHello"]
    assert hello.declared_in == (apps / "v1_durable" / "SayHello" / "function.json").resolve()
    assert hello.function_directory == (apps / "v1_durable" / "SayHello").resolve()


def test_functions_are_modules_of_the_app_package_as_the_worker_imports_them(v1: FunctionIndex) -> None:
    hello = v1.activity("SayHello")
    assert hello.function.__module__ == "__app__.SayHello"
    assert hello.function.__name__ == "main"
    orchestrator = v1.orchestrator("HelloSequence")
    assert orchestrator.handle.orchestrator_function.__module__ == "__app__.HelloSequence"  # type: ignore[attr-defined]


def test_relative_and_absolute_imports_of_shared_code_are_two_modules_as_in_azure(v1: FunctionIndex) -> None:
    # SayHello: `from ..shared_code.greetings import greeting`; MeasureFile: `from shared_code.sizes ...`.
    assert sys.modules["__app__.shared_code.greetings"].__file__.endswith("shared_code/greetings.py")
    assert sys.modules["shared_code.sizes"].__file__.endswith("shared_code/sizes.py")
    assert "shared_code.greetings" not in sys.modules
    assert "__app__.shared_code.sizes" not in sys.modules


def test_the_same_module_imported_both_ways_is_loaded_twice(tmp_path: Path) -> None:
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "__init__.py").write_text("")
    (tmp_path / "shared" / "state.py").write_text("CALLS = []\n")
    function(
        tmp_path,
        "Relative",
        {"bindings": ACTIVITY_BINDINGS},
        "from ..shared import state\n\ndef main(name):\n    return 1\n",
    )
    function(
        tmp_path,
        "Absolute",
        {"bindings": ACTIVITY_BINDINGS},
        "from shared import state\n\ndef main(name):\n    return 2\n",
    )
    load_app(tmp_path)
    # What the worker does too (fidelity notes §1.2): module-level state is not shared between the styles.
    assert sys.modules["__app__.shared.state"] is not sys.modules["shared.state"]


def test_script_file_and_entry_point(tmp_path: Path) -> None:
    config = {"scriptFile": "handlers.py", "entryPoint": "greet", "bindings": ACTIVITY_BINDINGS}
    function(tmp_path, "Greeter", config, "def greet(name):\n    return name\n", script="handlers.py")
    (tmp_path / "Greeter" / "__init__.py").write_text("")
    index = load_app(tmp_path)
    greeter = index.activity("Greeter")
    assert greeter.function.__module__ == "__app__.Greeter.handlers"
    assert greeter.function.__name__ == "greet"


def test_without_script_file_the_only_python_file_is_the_script(tmp_path: Path) -> None:
    function(
        tmp_path, "Only", {"bindings": ACTIVITY_BINDINGS}, "def main(name):\n    return name\n", "run.py"
    )
    assert load_app(tmp_path).activity("Only").function.__module__ == "__app__.Only.run"


def test_a_script_in_another_folder_of_the_app(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "acts.py").write_text("def main(name):\n    return name\n")
    function(tmp_path, "Elsewhere", {"scriptFile": "../lib/acts.py", "bindings": ACTIVITY_BINDINGS}, None)
    assert load_app(tmp_path).activity("Elsewhere").function.__module__ == "__app__.lib.acts"


def test_a_hyphenated_folder_name_is_a_function(tmp_path: Path) -> None:
    function(tmp_path, "say-hello", {"bindings": ACTIVITY_BINDINGS})
    assert load_app(tmp_path).activity("SAY-HELLO").function.__module__ == "__app__.say-hello"


def test_disabled_inside_function_json_is_ignored_and_says_how_to_disable(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    function(tmp_path, "Hello", {"bindings": ACTIVITY_BINDINGS, "disabled": True})
    with caplog.at_level(logging.WARNING, "durablehost"):
        index = load_app(tmp_path)
    assert not index.activity("Hello").info.disabled
    assert '"disabled": true is ignored' in caplog.text
    assert "AzureWebJobs.Hello.Disabled" in caplog.text


def test_a_binding_without_direction_is_an_input_as_in_azure(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bindings = [
        {"name": "req", "type": "httpTrigger", "authLevel": "anonymous"},
        {"name": "$return", "type": "http", "direction": "out"},
        {"name": "starter", "type": "durableClient"},
    ]
    function(tmp_path, "Start", {"bindings": bindings}, "async def main(req, starter):\n    return None\n")
    with caplog.at_level(logging.WARNING, "durablehost"):
        start = load_app(tmp_path).http[0]
    assert start.client_param == "starter"
    assert [b.direction for b in start.info.bindings] == ["IN", "OUT", "IN"]
    assert '\'starter\') has no "direction"; taken as "in"' in caplog.text
    assert "'req'" not in caplog.text  # a trigger is an input anyway


def test_http_trigger_settings_from_function_json(v1: FunctionIndex) -> None:
    by_name = {f.name: f for f in v1.http}
    start = by_name["HttpStart"]
    assert start.route == "orchestrators/{functionName}"
    assert start.methods == ("POST", "GET")
    assert start.auth_level == "ANONYMOUS"
    assert (start.client_param, start.output_param, start.returns_response) == ("starter", None, True)
    named = by_name["HttpStartNamed"]  # named `message` output, the older orchestrationClient name
    assert (named.client_param, named.output_param, named.returns_response) == ("starter", "message", False)
    assert named.other_bindings == ()
    assert by_name["RetrieveEntity"].auth_level == "FUNCTION"


def test_a_route_defaults_to_the_function_name(tmp_path: Path) -> None:
    bindings = [{"name": "req", "type": "httpTrigger", "direction": "in"}]
    function(tmp_path, "Ping", {"bindings": bindings}, "def main(req):\n    return 'pong'\n")
    ping = load_app(tmp_path).http[0]
    assert (ping.route, ping.methods, ping.auth_level, ping.returns_response) == (
        "Ping",
        None,
        "FUNCTION",
        False,
    )


def test_timer_and_queue_folders_load_into_the_shape_the_decorators_give(apps: Path, tmp_path: Path) -> None:
    """Another runner serves these from FunctionInfo alone, in either model."""
    (tmp_path / "function_app.py").write_text(
        textwrap.dedent(
            """
            import azure.durable_functions as df

            app = df.DFApp()


            @app.function_name("Tick")
            @app.timer_trigger(
                schedule="%TICK_SCHEDULE%", arg_name="mytimer", run_on_startup=False, use_monitor=True
            )
            @app.durable_client_input(client_name="starter")
            async def tick(mytimer, starter):
                pass


            @app.function_name("Inbox")
            @app.queue_trigger(arg_name="msg", queue_name="%ORDERS_QUEUE%", connection="AzureWebJobsStorage")
            @app.durable_client_input(client_name="starter")
            async def inbox(msg, starter):
                pass
            """
        )
    )
    v2 = {f.name: f for f in load_app(tmp_path).functions}
    v1_functions = {f.name: f for f in load_app(apps / "v1_triggers").functions}
    for name, trigger in (("Tick", "timerTrigger"), ("Inbox", "queueTrigger")):
        old, new = v1_functions[name], v2[name]
        assert (
            (old.trigger_type, old.trigger_param)
            == (new.trigger_type, new.trigger_param)
            == (trigger, old.trigger_param)
        )
        assert {(b.name, b.type, b.direction) for b in old.bindings} == {
            (b.name, b.type, b.direction) for b in new.bindings
        }
        old_trigger = next(b.settings for b in old.bindings if b.type == trigger)
        new_trigger = next(b.settings for b in new.bindings if b.type == trigger)
        assert dict(old_trigger) == dict(new_trigger)
    tick = next(b.settings for b in v1_functions["Tick"].bindings if b.type == "timerTrigger")
    assert (tick["schedule"], tick["runOnStartup"], tick["useMonitor"]) == ("%TICK_SCHEDULE%", False, True)
    inbox = next(b.settings for b in v1_functions["Inbox"].bindings if b.type == "queueTrigger")
    assert (inbox["queueName"], inbox["connection"]) == ("%ORDERS_QUEUE%", "AzureWebJobsStorage")
    assert v1_functions["Tick"].handler.__module__ == "__app__.Tick"


def test_a_binding_durablehost_cannot_supply_loads_and_fails_only_when_used(tmp_path: Path) -> None:
    bindings = [
        {"name": "phoneNumber", "type": "activityTrigger", "direction": "in"},
        {"type": "twilioSms", "name": "message", "from": "%TwilioPhoneNumber%", "direction": "out"},
    ]
    function(tmp_path, "SendSms", {"bindings": bindings}, "def main(phoneNumber, message):\n    return 1\n")
    send = load_app(tmp_path).activity("SendSms")
    assert [(b.name, b.type) for b in send.unsupported_bindings] == [("message", "twilioSms")]


# --- both models, neither model ---------------------------------------------------------------------------


def test_an_entry_script_wins_and_the_folders_are_ignored_with_a_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    function(tmp_path, "Hello", {"bindings": ACTIVITY_BINDINGS})
    (tmp_path / "function_app.py").write_text(
        "import azure.durable_functions as df\n\napp = df.DFApp()\n\n\n"
        "@app.activity_trigger(input_name='x')\ndef from_script(x):\n    return x\n"
    )
    with caplog.at_level(logging.WARNING, "durablehost"):
        index = load_app(tmp_path)
    assert [f.name for f in index.functions] == ["from_script"]
    assert "the entry script function_app.py exists" in caplog.text
    assert "function.json folders (Hello) are ignored, as the Functions host does" in caplog.text


def test_with_the_script_setting_naming_a_missing_file_the_folders_are_the_app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHON_SCRIPT_FILE_NAME", "main.py")
    function(tmp_path, "Hello", {"bindings": ACTIVITY_BINDINGS})
    assert load_app(tmp_path).model == FUNCTION_JSON_MODEL


# --- names ----------------------------------------------------------------------------------------------


def test_two_folders_differing_only_in_case_are_refused(tmp_path: Path) -> None:
    function(tmp_path, "SayHello", {"bindings": ACTIVITY_BINDINGS})
    function(tmp_path, "sayhello", {"bindings": ACTIVITY_BINDINGS})
    message = refusal(tmp_path)
    assert "the functions 'SayHello'" in message and "'sayhello'" in message
    assert "differ only in case" in message and "rename one" in message


def test_decorator_functions_differing_only_in_case_are_refused(tmp_path: Path) -> None:
    (tmp_path / "function_app.py").write_text(
        "import azure.durable_functions as df\n\napp = df.DFApp()\n\n\n"
        "@app.activity_trigger(input_name='x')\ndef greet(x):\n    return x\n\n\n"
        "@app.orchestration_trigger(context_name='context')\ndef Greet(context):\n    yield None\n"
    )
    assert "the functions 'greet'" in refusal(tmp_path)


def test_an_alias_differing_only_in_case_collides(tmp_path: Path) -> None:
    (tmp_path / "function_app.py").write_text(
        "import azure.durable_functions as df\n\napp = df.DFApp()\n\n\n"
        "@app.activity_trigger(input_name='x', activity='Shout')\ndef first(x):\n    return x\n\n\n"
        "@app.activity_trigger(input_name='x')\ndef shout(x):\n    return x\n"
    )
    assert "two activity functions answer to the name 'shout'" in refusal(tmp_path)


# --- every refusal of a bad function.json -----------------------------------------------------------------


BAD_CONFIGS: list[tuple[str, Any, list[str]]] = [
    ("not_json", '{"bindings": [', ["not valid JSON", "line 1 column", "fix the file's syntax"]),
    ("not_an_object", "[]", ['must hold a JSON object with a "bindings" array, not an array']),
    ("no_bindings", {"scriptFile": "__init__.py"}, ['"bindings" is missing or empty', "declare the trigger"]),
    ("empty_bindings", {"bindings": []}, ['"bindings" is missing or empty']),
    ("binding_not_object", {"bindings": ["name"]}, ["bindings[0] must be a JSON object, not a string"]),
    ("no_name", {"bindings": [{"type": "activityTrigger", "direction": "in"}]},
     ['bindings[0] has no "name"', "the Python parameter that receives it"]),
    ("bad_name", {"bindings": [{"name": "my name", "type": "activityTrigger", "direction": "in"}]},
     ["\"name\": 'my name' is not a valid binding name"]),
    ("double_underscore", {"bindings": [{"name": "a__b", "type": "activityTrigger", "direction": "in"}]},
     ["'a__b' is not a valid binding name", 'without "__"']),
    ("no_type", {"bindings": [{"name": "name", "direction": "in"}]},
     ["bindings[0] ('name') has no \"type\"", '"activityTrigger", "orchestrationTrigger"']),
    ("miscased_type", {"bindings": [{"name": "name", "type": "ActivityTrigger", "direction": "in"}]},
     ["'ActivityTrigger' is spelled differently from 'activityTrigger'"]),
    ("bad_direction", {"bindings": [{"name": "name", "type": "activityTrigger", "direction": "input"}]},
     ["\"direction\": 'input' is not a valid binding direction", 'use "in" or "out"']),
    ("inout", {"bindings": [{"name": "name", "type": "activityTrigger", "direction": "inout"}]},
     ['"inout" bindings are not supported']),
    ("return_in", {"bindings": [*ACTIVITY_BINDINGS, {"name": "$return", "type": "queue", "direction": "in"}]},
     ['"$return" bindings must specify a direction of "out"']),
    ("http_in", {"bindings": [{"name": "req", "type": "httpTrigger", "direction": "in"},
                              {"name": "res", "type": "http", "direction": "in"}]},
     ['an "http" binding is the HTTP response; set "direction": "out"']),
    ("same_names", {"bindings": [*ACTIVITY_BINDINGS, {"name": "NAME", "type": "blob", "direction": "in"}]},
     ["two bindings are named 'name' and 'NAME'"]),
    ("no_trigger", {"bindings": [{"name": "name", "type": "blob", "direction": "in"}]},
     ["no trigger binding", "A function must have a trigger input binding"]),
    ("two_triggers",
     {"bindings": [*ACTIVITY_BINDINGS, {"name": "t", "type": "timerTrigger", "direction": "in"}]},
     ["2 trigger bindings ('name' (activityTrigger), 't' (timerTrigger))", "exactly one trigger"]),
    ("missing_script", {"scriptFile": "nope.py", "bindings": ACTIVITY_BINDINGS},
     ["\"scriptFile\": 'nope.py' does not exist", "relative to"]),
    ("script_not_python", {"scriptFile": "function.json", "bindings": ACTIVITY_BINDINGS},
     ["'function.json' is not a Python file"]),
    ("script_outside", {"scriptFile": "../../elsewhere.py", "bindings": ACTIVITY_BINDINGS},
     ["is outside the app folder"]),
    ("bad_entry_point", {"entryPoint": "not a name", "bindings": ACTIVITY_BINDINGS},
     ["\"entryPoint\": 'not a name' must name a Python function"]),
]  # fmt: skip


@pytest.mark.parametrize(("case", "config", "expected"), BAD_CONFIGS, ids=[c[0] for c in BAD_CONFIGS])
def test_a_bad_function_json_names_the_file_the_field_and_what_to_do(
    tmp_path: Path, case: str, config: Any, expected: list[str]
) -> None:
    app = tmp_path / "app"
    config_file = function(app, "Broken", config)
    (tmp_path / "elsewhere.py").write_text(ACTIVITY)
    message = refusal(app)
    assert str(config_file) in message, message
    for part in expected:
        assert part in message, message


def test_no_script_at_all(tmp_path: Path) -> None:
    config_file = function(tmp_path, "Empty", {"bindings": ACTIVITY_BINDINGS}, code=None)
    message = refusal(tmp_path)
    assert f'{config_file}: no "scriptFile", and the folder has no __init__.py' in message


def test_a_missing_entry_point(tmp_path: Path) -> None:
    config_file = function(tmp_path, "Hello", {"entryPoint": "run", "bindings": ACTIVITY_BINDINGS})
    message = refusal(tmp_path)
    assert (
        f'{config_file}: "entryPoint" run() is not defined in {tmp_path / "Hello" / "__init__.py"}' in message
    )


def test_the_default_entry_point_is_main(tmp_path: Path) -> None:
    function(tmp_path, "Hello", {"bindings": ACTIVITY_BINDINGS}, "def run(name):\n    return name\n")
    assert '"entryPoint" main() is not defined' in refusal(tmp_path)


def test_an_invalid_folder_name(tmp_path: Path) -> None:
    function(tmp_path, "1st", {"bindings": ACTIVITY_BINDINGS})
    message = refusal(tmp_path)
    assert "'1st' is not a valid function name" in message and "rename the folder" in message


def test_an_import_error_names_the_function_and_the_line(tmp_path: Path) -> None:
    function(tmp_path, "Hello", {"bindings": ACTIVITY_BINDINGS}, "from ..shared_code import missing\n")
    message = refusal(tmp_path)
    assert "(function 'Hello', module __app__.Hello) failed: ModuleNotFoundError" in message
    assert f"{tmp_path / 'Hello' / '__init__.py'}:1:" in message


def test_every_broken_function_is_listed_at_once(tmp_path: Path) -> None:
    function(tmp_path, "Good", {"bindings": ACTIVITY_BINDINGS})
    first = function(tmp_path, "BadOne", "{")
    second = function(tmp_path, "BadTwo", {"bindings": []})
    message = refusal(tmp_path)
    assert "2 functions of" in message and str(first) in message and str(second) in message


def test_a_plain_generator_orchestrator_is_refused_with_the_fix(tmp_path: Path) -> None:
    function(tmp_path, "Orch", {"bindings": ORCH_BINDINGS}, "def main(context):\n    yield 1\n")
    assert "write main = df.Orchestrator.create(<your generator>)" in refusal(tmp_path)


def test_an_entity_without_the_sdk_handle_is_refused_with_the_fix(tmp_path: Path) -> None:
    bindings = [{"name": "context", "type": "entityTrigger", "direction": "in"}]
    function(tmp_path, "Ent", {"bindings": bindings}, "def main(context):\n    pass\n")
    assert "write main = df.Entity.create(<your entity function>)" in refusal(tmp_path)


# The worker's parameter rules (rtv1 Registry.add_function); test_worker_loading_v1.py shows the worker
# itself refuses each of these.
PARAMETER_CASES: list[tuple[str, list[dict[str, Any]], str, str]] = [
    ("extra_parameter", ACTIVITY_BINDINGS, "def main(name, other):\n    pass\n",
     "parameter(s) other have no binding in function.json"),
    ("extra_parameter_with_default", ACTIVITY_BINDINGS, "def main(name, other=1):\n    pass\n",
     "parameter(s) other have no binding in function.json"),
    ("missing_parameter", [*ACTIVITY_BINDINGS, {"name": "extra", "type": "blob", "direction": "in"}],
     "def main(name):\n    pass\n", "binding(s) extra of function.json have no parameter"),
    ("context_wrong_annotation", ACTIVITY_BINDINGS, "def main(name, context: str):\n    pass\n",
     "the 'context' parameter is not a binding"),
    ("out_binding_not_out", [*ACTIVITY_BINDINGS, {"name": "msg", "type": "queue", "direction": "out"}],
     "def main(name, msg: str):\n    pass\n", "binding 'msg' has the \"out\" direction"),
    ("in_binding_out_annotation", [*ACTIVITY_BINDINGS, {"name": "doc", "type": "blob", "direction": "in"}],
     "import azure.functions as func\n\ndef main(name, doc: func.Out[str]):\n    pass\n",
     "binding 'doc' has the \"in\" direction in function.json, but its annotation is azure.functions.Out"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "bindings", "code", "expected"), PARAMETER_CASES, ids=[c[0] for c in PARAMETER_CASES]
)
def test_parameters_must_match_bindings_as_the_worker_requires(
    tmp_path: Path, case: str, bindings: list[dict[str, Any]], code: str, expected: str
) -> None:
    config_file = function(tmp_path, "Fn", {"bindings": bindings}, code)
    message = refusal(tmp_path)
    assert f"{config_file}: __init__.py:main()" in message and expected in message, message


def test_a_context_parameter_that_is_not_a_binding_gets_the_invocation_context(tmp_path: Path) -> None:
    code = "import azure.functions as func\n\ndef main(name, context: func.Context):\n    return name\n"
    function(tmp_path, "Fn", {"bindings": ACTIVITY_BINDINGS}, code)
    assert load_app(tmp_path).activity("Fn").wants_context
