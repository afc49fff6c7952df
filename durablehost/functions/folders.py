"""Loading a function.json (Python v1) app as the Python worker loads it (fidelity notes §1.2).

Each function folder's script is imported as ``__app__.<path relative to the app folder>`` (a final
``__init__`` dropped: ``HttpStart/__init__.py`` is ``__app__.HttpStart``), where ``__app__`` is a
namespace package whose path is the app folder, and the app folder is on ``sys.path`` too. So, as in
Azure, ``from ..shared_code.x import Y`` (``__app__.shared_code.x``) and ``from shared_code.x import Y``
both work, and they are two different module objects: module-level state is duplicated when an app mixes
the two styles (verified with the worker's own loader), and a custom class passed through ``df_dumps``
carries ``__module__`` = ``__app__.shared_code.x`` or ``shared_code.x`` accordingly. Keeping the worker's
names keeps those envelopes readable by both Azure and durablehost.

Parameters must match bindings exactly, as the worker's ``Registry.add_function`` requires.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import inspect
import os
import sys
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

from durablehost.errors import AppLoadError
from durablehost.functions.disabled import disabling_setting
from durablehost.functions.function_json import FunctionJson, read_function_json
from durablehost.functions.index import (
    CONTEXT_PARAM,
    ENTITY_TRIGGER,
    FUNCTION_JSON_MODEL,
    ORCHESTRATION_TRIGGER,
    RETURN_BINDING,
    FunctionIndex,
    FunctionInfo,
    build_index,
)
from durablehost.functions.modules import ImportTracker, evict_stale_modules, failing_line, put_first_on_path

APP_PACKAGE = "__app__"


def load_function_folders(app_dir: Path, folders: list[Path]) -> FunctionIndex:
    """Import every function folder and index the functions; one AppLoadError lists every problem."""
    evict_stale_modules(app_dir, {APP_PACKAGE})
    put_first_on_path(app_dir)
    _install_app_package(app_dir)
    infos: list[FunctionInfo] = []
    problems: list[str] = []
    for folder in folders:
        try:
            infos.append(_load_function(read_function_json(folder, app_dir), app_dir))
        except AppLoadError as exc:
            problems.append(str(exc))
    if len(problems) == 1:
        raise AppLoadError(problems[0])
    if problems:
        listing = "\n".join(f"  - {problem}" for problem in problems)
        raise AppLoadError(f"{len(problems)} functions of {app_dir} cannot be loaded:\n{listing}")
    return build_index(infos, app_dir, app_dir, FUNCTION_JSON_MODEL)


def _install_app_package(app_dir: Path) -> None:
    """A fresh ``__app__`` namespace package rooted at the app folder (rtv1 ``loader.install``)."""
    spec = importlib.machinery.ModuleSpec(APP_PACKAGE, None, is_package=True)
    spec.submodule_search_locations = [str(app_dir)]
    with ImportTracker():
        package = importlib.util.module_from_spec(spec)
        package.__path__ = [str(app_dir)]
        sys.modules[APP_PACKAGE] = package


def module_name(script_file: Path, app_dir: Path) -> str:
    """The worker's module name for a function script (rtv1 ``loader.load_function``)."""
    relative = script_file.relative_to(app_dir)
    parts = [APP_PACKAGE, *relative.parts[:-1]]
    # "If the __init__.py contains the code, we should avoid double loading."
    if relative.stem.lower() != "__init__":
        parts.append(relative.stem)
    return ".".join(parts)


def _load_function(declared: FunctionJson, app_dir: Path) -> FunctionInfo:
    entry = _entry_point(declared, app_dir)
    _check_parameters(entry, declared)
    return FunctionInfo(
        name=declared.name,
        # There is no function builder in this model: call_activity and friends take the name.
        python_name=declared.name,
        trigger_type=declared.trigger.type,
        trigger_param=declared.trigger.name,
        bindings=declared.bindings,
        handler=entry,
        app_dir=app_dir,
        disabled_by=disabling_setting(declared.name, os.environ),
        declared_in=declared.config,
        directory=declared.folder,
    )


def _entry_point(declared: FunctionJson, app_dir: Path) -> Callable[..., Any]:
    name = module_name(declared.script_file, app_dir)
    with ImportTracker():
        try:
            module = importlib.import_module(name)
        except (Exception, SystemExit) as exc:
            raise AppLoadError(
                f"importing {declared.script_file} (function {declared.name!r}, module {name}) failed: "
                f"{type(exc).__name__}: {exc}\n  at {failing_line(exc, app_dir)}"
            ) from exc
    entry: Callable[..., Any] | None = getattr(module, declared.entry_point, None)
    if entry is None or not callable(entry):
        raise AppLoadError(
            f'{declared.config}: "entryPoint" {declared.entry_point}() is not defined in '
            f'{declared.script_file} (default: main); define it there, or set "entryPoint" to the '
            "function's name"
        )
    if declared.trigger.type == ORCHESTRATION_TRIGGER and inspect.isgeneratorfunction(entry):
        raise AppLoadError(
            f"{declared.script_file}: {declared.entry_point}() is a generator; an orchestrator's entry point "
            f"is the SDK's handle: write {declared.entry_point} = df.Orchestrator.create(<your generator>)"
        )
    if declared.trigger.type == ENTITY_TRIGGER and not hasattr(entry, "entity_function"):
        raise AppLoadError(
            f"{declared.script_file}: {declared.entry_point}() is not an entity handle; write "
            f"{declared.entry_point} = df.Entity.create(<your entity function>)"
        )
    return entry


def _check_parameters(entry: Callable[..., Any], declared: FunctionJson) -> None:
    """The worker's rules (rtv1 ``Registry.add_function``): parameters and bindings match one to one,
    but for a non-binding ``context``, and ``func.Out`` annotations agree with the directions."""
    where = f"{declared.config}: {declared.script_file.name}:{declared.entry_point}()"
    params = dict(inspect.signature(entry).parameters)
    bound = {b.name: b for b in declared.bindings if b.name != RETURN_BINDING}
    try:
        hints = typing.get_type_hints(entry)
    except Exception as exc:
        raise AppLoadError(
            f"{where}: its annotations cannot be resolved ({type(exc).__name__}: {exc})"
        ) from exc
    if CONTEXT_PARAM in params and CONTEXT_PARAM not in bound:
        params.pop(CONTEXT_PARAM)
        annotation = hints.get(CONTEXT_PARAM)
        if annotation is not None and getattr(annotation, "__name__", None) != "Context":
            raise AppLoadError(
                f"{where}: the 'context' parameter is not a binding, so it receives the invocation context "
                f"and must be annotated azure.functions.Context (or not at all), not {annotation!r}"
            )
    unbound = sorted(set(params) - set(bound))
    if unbound:
        raise AppLoadError(
            f"{where}: parameter(s) {', '.join(unbound)} have no binding in function.json (the worker: "
            '"declared in Python but not in function.json"); add a binding with that "name", or remove '
            "the parameter"
        )
    unused = sorted(set(bound) - set(params))
    if unused:
        raise AppLoadError(
            f"{where}: binding(s) {', '.join(unused)} of function.json have no parameter (the worker: "
            '"declared in function.json but not in Python"); add the parameter(s)'
        )
    for param in params:
        is_out = _is_out_annotation(hints.get(param))
        if bound[param].direction == "OUT" and param in hints and not is_out:
            raise AppLoadError(
                f'{where}: binding {param!r} has the "out" direction, but its annotation is not '
                "azure.functions.Out; annotate it func.Out[...] or not at all"
            )
        if bound[param].direction == "IN" and is_out:
            raise AppLoadError(
                f'{where}: binding {param!r} has the "in" direction in function.json, but its annotation is '
                'azure.functions.Out; set "direction": "out" or change the annotation'
            )


def _is_out_annotation(annotation: Any) -> bool:
    origin = typing.get_origin(annotation) or annotation
    return isinstance(origin, type) and origin.__name__ == "Out"
