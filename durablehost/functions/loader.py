"""Import a Functions app the way the Functions host and the Python worker do, and index it.

Two programming models, chosen as the host chooses (fidelity notes §1.5): if the entry script
(``script_file``, else ``$PYTHON_SCRIPT_FILE_NAME``, else ``function_app.py``) exists, the worker indexes
it (Python v2, decorators) and **every function.json folder is ignored**; otherwise the host reads the
function.json folders (Python v1, :mod:`durablehost.functions.folders`). The two are never merged.

The v2 entry script is run from the app folder with that folder at the front of ``sys.path``, under the
module name the worker uses: the file's stem (``function_app``, ``main`` …). Keeping the worker's name
keeps ``__module__`` of classes defined in the entry script identical, which custom-object envelopes
carry (protocol Appendix A). It cannot collide with an app package such as ``function_app/`` next to
``main.py``; the one ambiguous case, ``function_app.py`` next to a ``function_app/`` package, is refused.
Module hygiene between loads: :mod:`durablehost.functions.modules`.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import azure.functions as func

from durablehost.errors import AppLoadError
from durablehost.functions.disabled import disabling_setting
from durablehost.functions.folders import APP_PACKAGE, load_function_folders
from durablehost.functions.function_json import FUNCTION_JSON, function_folders
from durablehost.functions.index import BindingInfo, FunctionIndex, FunctionInfo, build_index
from durablehost.functions.modules import (
    NEVER_EVICT,
    ImportTracker,
    evict_stale_modules,
    failing_line,
    put_first_on_path,
)

log = logging.getLogger("durablehost")

DEFAULT_SCRIPT_FILE = "function_app.py"
SCRIPT_FILE_SETTING = "PYTHON_SCRIPT_FILE_NAME"


def load_app(app_dir: Path, script_file: str | None = None) -> FunctionIndex:
    """Import the app in ``app_dir`` and index its functions; AppLoadError says what went wrong."""
    if not app_dir.is_dir():
        raise AppLoadError(f"the app folder {app_dir} does not exist (or is not a folder)")
    app_dir = app_dir.resolve()
    script_name = script_file or os.environ.get(SCRIPT_FILE_SETTING) or DEFAULT_SCRIPT_FILE
    script = app_dir / script_name
    folders = function_folders(app_dir)
    if script.is_file():
        if folders:
            log.warning(
                "%s: the entry script %s exists, so its functions are served and the function.json folders "
                "(%s) are ignored, as the Functions host does; remove one of the two",
                app_dir,
                script.name,
                ", ".join(folder.name for folder in folders),
            )
        return _load_entry_script(app_dir, script)
    if folders:
        return load_function_folders(app_dir, folders)
    raise AppLoadError(
        f"{app_dir} holds no Functions app. An app is found in one of two ways: the entry script {script} "
        f"(Python v2, decorators; another script is chosen with the app setting {SCRIPT_FILE_SETTING}), "
        f"or sub-folders holding a {FUNCTION_JSON} each (Python v1, one folder per function); neither "
        "exists. Check --app-dir."
    )


def _load_entry_script(app_dir: Path, script: Path) -> FunctionIndex:
    module_name = script.stem
    _check_module_name(module_name, app_dir, script)
    evict_stale_modules(app_dir, {module_name, APP_PACKAGE})  # APP_PACKAGE: a function.json app's
    put_first_on_path(app_dir)
    module = _execute(module_name, script, app_dir)
    app = _find_app(module, script)
    try:
        # Exactly once: a second call raises "does not have a unique function name" (§3 surprise 6).
        functions = app.get_functions()
    except Exception as exc:
        raise AppLoadError(f"{script}: indexing the app failed: {type(exc).__name__}: {exc}") from exc
    return build_index((_function_info(f, app_dir, script) for f in functions), app_dir, script)


def _function_info(function: Any, app_dir: Path, script: Path) -> FunctionInfo:
    """A FunctionInfo from one of the SDK's ``Function`` objects (protocol §6)."""
    trigger = function.get_trigger()
    # get_raw_bindings() is the function.json text with enums stringified; get_bindings_dict() keeps the
    # enums and is not JSON-safe (protocol §6).
    bindings = tuple(_binding(json_text) for json_text in function.get_raw_bindings())
    name = str(function.get_function_name())
    return FunctionInfo(
        name=name,
        # Function._name is the attribute the SDK's _get_function_name emits for call_activity(<builder>)
        # and call_sub_orchestrator(<builder>) (protocol §3 surprise 7), so it is the alias that matters.
        python_name=str(function._name),
        trigger_type=str(trigger.type),
        trigger_param=str(trigger.name),
        bindings=bindings,
        handler=function.get_user_function(),
        app_dir=app_dir,
        disabled_by=disabling_setting(name, os.environ),
        declared_in=script,
    )


def _binding(json_text: str) -> BindingInfo:
    raw = json.loads(json_text)
    return BindingInfo(
        name=str(raw["name"]), type=str(raw["type"]), direction=str(raw["direction"]), settings=raw
    )


def _check_module_name(module_name: str, app_dir: Path, script: Path) -> None:
    if module_name in NEVER_EVICT:
        raise AppLoadError(
            f"{script}: the entry script's module name {module_name!r} is taken by Python or the host; "
            "rename the script"
        )
    if (app_dir / module_name / "__init__.py").is_file():
        raise AppLoadError(
            f"{script}: the entry script and the package {app_dir / module_name} have the same module name "
            f"{module_name!r} (the worker would import the package); rename one, or set "
            f"{SCRIPT_FILE_SETTING} to another entry script"
        )


def _execute(module_name: str, script: Path, app_dir: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(module_name, script)
    if spec is None or spec.loader is None:
        raise AppLoadError(f"{script}: Python cannot load this file as a module")
    module = importlib.util.module_from_spec(spec)
    with ImportTracker():
        sys.modules[module_name] = module  # as importlib does, so the script may import itself
        try:
            spec.loader.exec_module(module)
        except (Exception, SystemExit) as exc:
            del sys.modules[module_name]
            raise AppLoadError(
                f"importing {script} failed: {type(exc).__name__}: {exc}\n  at {failing_line(exc, app_dir)}"
            ) from exc
    return module


def _find_app(module: ModuleType, script: Path) -> func.FunctionRegister:
    found: dict[int, list[str]] = {}
    apps: dict[int, func.FunctionRegister] = {}
    for attr, value in vars(module).items():
        if isinstance(value, func.FunctionRegister):
            found.setdefault(id(value), []).append(attr)
            apps[id(value)] = value
    if not apps:
        raise AppLoadError(
            f"{script} defines no module-level function app (df.DFApp or func.FunctionApp); a Blueprint "
            "alone is not indexed: register it with app.register_functions(bp)"
        )
    if len(apps) > 1:
        # The worker refuses this too; picking one would silently drop the other's functions.
        listing = "; ".join(", ".join(names) for names in found.values())
        raise AppLoadError(
            f"{script} defines {len(apps)} function apps ({listing}); keep one and merge the others into "
            "it as Blueprints with app.register_functions(bp)"
        )
    return next(iter(apps.values()))
