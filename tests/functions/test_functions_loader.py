from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from durablehost.errors import AppLoadError, UnknownFunction
from durablehost.functions import FunctionIndex, load_app


def write_app(folder: Path, source: str, name: str = "function_app.py") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(textwrap.dedent(source))
    return folder


def test_orchestrators_are_found_under_trigger_level_function_and_python_names(basic: FunctionIndex) -> None:
    assert basic.orchestrator("chain").name == "chain"
    failing = basic.orchestrator("FailingOrchestration")
    assert failing.name == "FailingOrchestration"
    assert basic.orchestrator("failing_orchestrator") is failing
    assert failing.aliases == {"FailingOrchestration", "failing_orchestrator"}


def test_activities_are_found_under_all_three_names(basic: FunctionIndex) -> None:
    renamed = basic.activity("TriggerLevelName")
    assert renamed.name == "TriggerLevelName"
    assert basic.activity("RenamedActivity") is renamed
    assert basic.activity("py_activity") is renamed
    assert renamed.aliases == {"TriggerLevelName", "RenamedActivity", "py_activity"}
    assert renamed.input_param == "value"
    assert basic.activity("async_hello").is_async
    assert not basic.activity("hello").is_async


def test_names_are_matched_case_insensitively_as_the_extension_does(basic: FunctionIndex) -> None:
    hello = basic.activity("hello")
    assert basic.activity("HELLO") is hello and hello.name == "hello"
    failing = basic.orchestrator("FailingOrchestration")
    assert basic.orchestrator("failingorchestration") is failing
    assert basic.orchestrator("FAILING_ORCHESTRATOR") is failing
    assert failing.name == "FailingOrchestration"  # the canonical spelling, whatever the caller wrote
    with pytest.raises(UnknownFunction):
        basic.activity("hell")
    counter = basic.entity("Counter")
    assert counter.name == "counter"
    assert basic.entity("COUNTER") is counter
    assert basic.entity("counter_entity") is counter


def test_unknown_name_lists_the_known_ones(basic: FunctionIndex) -> None:
    with pytest.raises(UnknownFunction) as raised:
        basic.orchestrator("nope")
    message = str(raised.value)
    assert "'nope'" in message and "orchestrator" in message
    assert "FailingOrchestration" in message and "chain" in message


def test_blueprint_functions_are_merged(basic: FunctionIndex) -> None:
    assert basic.activity("from_blueprint").info.python_name == "from_blueprint"


def test_context_parameter_is_detected(basic: FunctionIndex) -> None:
    assert basic.activity("who_am_i").wants_context
    assert not basic.activity("hello").wants_context


def test_http_functions_are_described(basic: FunctionIndex) -> None:
    by_name = {f.name: f for f in basic.http}
    start = by_name["http_start"]
    assert start.route == "orchestrators/{name}"
    assert start.methods == ("POST",)
    assert start.auth_level == "ANONYMOUS"
    assert start.request_param == "req"
    assert start.client_param == "client"
    assert start.is_async
    assert start.other_bindings == ()
    plain = by_name["plain_http"]
    assert plain.route == "hello"
    assert plain.methods is None
    assert plain.client_param is None
    assert not plain.is_async


def test_every_function_is_listed_with_its_trigger(basic: FunctionIndex) -> None:
    triggers = {f.name: f.trigger_type for f in basic.functions}
    assert triggers["chain"] == "orchestrationTrigger"
    assert triggers["RenamedActivity"] == "activityTrigger"
    assert triggers["counter_entity"] == "entityTrigger"
    assert triggers["http_start"] == "httpTrigger"
    assert triggers["from_blueprint"] == "activityTrigger"
    assert len(basic.functions) == 14


def test_script_file_setting_with_a_function_app_package(monkeypatch: pytest.MonkeyPatch, apps: Path) -> None:
    monkeypatch.setenv("PYTHON_SCRIPT_FILE_NAME", "main.py")
    index = load_app(apps / "pkg_entry")
    assert index.script_file == (apps / "pkg_entry" / "main.py").resolve()
    shout = index.activity("Shout")
    assert index.activity("shout") is shout
    # The package, not an entry module, is what `function_app` names after the load.
    assert hasattr(sys.modules["function_app"], "__path__")
    assert sys.modules["main"].__file__ == str(index.script_file)


def test_loading_twice_gives_a_fresh_app(monkeypatch: pytest.MonkeyPatch, apps: Path) -> None:
    monkeypatch.setenv("PYTHON_SCRIPT_FILE_NAME", "main.py")
    first = load_app(apps / "pkg_entry")
    # A stale function_app package would hand back the same app, whose get_functions() is single-shot.
    second = load_app(apps / "pkg_entry")
    assert second.activity("Shout").function is not first.activity("Shout").function


def test_apps_loaded_one_after_another_do_not_leak_modules(tmp_path: Path) -> None:
    for label in ("one", "two"):
        folder = tmp_path / label
        write_app(
            folder / "helpers",
            f"""
            LABEL = {label!r}
            """,
            name="__init__.py",
        )
        write_app(
            folder,
            """
            import azure.durable_functions as df
            from helpers import LABEL

            app = df.DFApp()


            @app.activity_trigger(input_name="x")
            def label(x):
                return LABEL
            """,
        )
    load_app(tmp_path / "one")
    assert sys.modules["helpers"].LABEL == "one"
    load_app(tmp_path / "two")
    assert sys.modules["helpers"].LABEL == "two"


def test_explicit_script_file_wins_over_the_setting(monkeypatch: pytest.MonkeyPatch, apps: Path) -> None:
    monkeypatch.setenv("PYTHON_SCRIPT_FILE_NAME", "does_not_exist.py")
    assert load_app(apps / "pkg_entry", "main.py").activity("Shout")


# --- every AppLoadError -------------------------------------------------------------------------------


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(AppLoadError, match=r"app folder .*nowhere does not exist"):
        load_app(tmp_path / "nowhere")


def test_neither_model_names_both_ways_an_app_is_found(tmp_path: Path) -> None:
    (tmp_path / "helpers").mkdir()  # a folder without function.json is not a function
    with pytest.raises(AppLoadError) as raised:
        load_app(tmp_path)
    message = str(raised.value)
    assert f"the entry script {tmp_path / 'function_app.py'}" in message
    assert "PYTHON_SCRIPT_FILE_NAME" in message
    assert "sub-folders holding a function.json each" in message


def test_import_error_names_the_exception_and_the_line(tmp_path: Path) -> None:
    write_app(
        tmp_path,
        """
        import azure.durable_functions as df

        app = df.DFApp()
        SETTINGS = {}
        TIMEOUT = SETTINGS["timeout"]
        """,
    )
    with pytest.raises(AppLoadError) as raised:
        load_app(tmp_path)
    message = str(raised.value)
    assert "function_app.py failed: KeyError: 'timeout'" in message
    assert 'function_app.py:6: TIMEOUT = SETTINGS["timeout"]' in message
    assert "function_app" not in sys.modules or not str(sys.modules["function_app"].__file__).startswith(
        str(tmp_path)
    )


def test_syntax_error_names_the_line(tmp_path: Path) -> None:
    write_app(tmp_path, "app = (\n")
    with pytest.raises(AppLoadError, match=r"SyntaxError.*\n  at .*function_app\.py:1"):
        load_app(tmp_path)


def test_no_app_object(tmp_path: Path) -> None:
    write_app(
        tmp_path,
        """
        import azure.durable_functions as df

        bp = df.Blueprint()
        """,
    )
    with pytest.raises(AppLoadError, match="defines no module-level function app"):
        load_app(tmp_path)


def test_two_app_objects(tmp_path: Path) -> None:
    write_app(
        tmp_path,
        """
        import azure.durable_functions as df
        import azure.functions as func

        app = df.DFApp()
        same_app = app
        other = func.FunctionApp()
        """,
    )
    with pytest.raises(AppLoadError, match=r"defines 2 function apps \(app, same_app; other\)"):
        load_app(tmp_path)


def test_two_functions_with_one_name(tmp_path: Path) -> None:
    write_app(
        tmp_path,
        """
        import azure.durable_functions as df

        app = df.DFApp()


        @app.function_name("Same")
        @app.activity_trigger(input_name="x")
        def one(x):
            return x


        @app.function_name("Same")
        @app.activity_trigger(input_name="x")
        def two(x):
            return x
        """,
    )
    with pytest.raises(AppLoadError, match="indexing the app failed: ValueError: Function Same does not"):
        load_app(tmp_path)


def test_colliding_alias_names(tmp_path: Path) -> None:
    write_app(
        tmp_path,
        """
        import azure.durable_functions as df

        app = df.DFApp()


        @app.activity_trigger(input_name="x", activity="greet")
        def first(x):
            return x


        @app.activity_trigger(input_name="x")
        def greet(x):
            return x
        """,
    )
    with pytest.raises(AppLoadError, match="two activity functions answer to the name 'greet'"):
        load_app(tmp_path)


def test_entity_names_collide_case_insensitively(tmp_path: Path) -> None:
    write_app(
        tmp_path,
        """
        import azure.durable_functions as df

        app = df.DFApp()


        @app.entity_trigger(context_name="context", entity_name="Counter")
        def first(context):
            pass


        @app.entity_trigger(context_name="context")
        def counter(context):
            pass
        """,
    )
    with pytest.raises(AppLoadError, match="two entity functions answer to the name 'counter'"):
        load_app(tmp_path)


def test_entry_script_shadowed_by_a_package(tmp_path: Path) -> None:
    write_app(tmp_path / "function_app", "", name="__init__.py")
    write_app(tmp_path, "import azure.functions as func\napp = func.FunctionApp()\n")
    with pytest.raises(AppLoadError, match="same module name 'function_app'"):
        load_app(tmp_path)


def test_parameter_without_binding(tmp_path: Path) -> None:
    write_app(
        tmp_path,
        """
        import azure.durable_functions as df

        app = df.DFApp()


        @app.activity_trigger(input_name="x")
        def needs_more(x, y):
            return x
        """,
    )
    with pytest.raises(AppLoadError, match=r"'needs_more' has parameter\(s\) y that match no binding"):
        load_app(tmp_path)
