"""Reading a function folder's ``function.json`` as the Functions host does (fidelity notes §1.1).

Only the file is read here; importing the code is :mod:`durablehost.functions.folders`' job. Every
problem is an :class:`AppLoadError` naming the file, the field and what to do. The host itself logs such
a function as broken and starts the others; durablehost refuses the app instead, so a function that
Azure would silently drop is noticed before it is deployed.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from durablehost.errors import AppLoadError
from durablehost.functions.index import (
    ACTIVITY_TRIGGER,
    DURABLE_CLIENT,
    ENTITY_TRIGGER,
    HTTP_OUTPUT,
    HTTP_TRIGGER,
    ORCHESTRATION_CLIENT,
    ORCHESTRATION_TRIGGER,
    QUEUE_TRIGGER,
    RETURN_BINDING,
    TIMER_TRIGGER,
    BindingInfo,
)

log = logging.getLogger("durablehost")

FUNCTION_JSON = "function.json"
DEFAULT_SCRIPT_FILE = "__init__.py"
DEFAULT_ENTRY_POINT = "main"

# Host Utility.FunctionNameValidationRegex: a letter, then up to 127 letters, digits, _ or -; not "host".
_FUNCTION_NAME = re.compile(r"[a-z][a-z0-9_\-]{0,127}", re.IGNORECASE)
# Host Utility.BindingNameValidationRegex as of host PR #10764 (4.1038+): `_` allowed, even first, but
# not `__`. Older hosts allowed only a letter followed by letters and digits.
_BINDING_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_DIRECTIONS = {"in": "IN", "out": "OUT", "inout": "INOUT"}
# Binding types durablehost acts on. The Python worker finds a binding's converter by its exact type
# name, so a differently-cased one would silently lose its meaning (an activity's return value, say).
_KNOWN_TYPES = {
    t.lower(): t
    for t in (ORCHESTRATION_TRIGGER, ACTIVITY_TRIGGER, ENTITY_TRIGGER, HTTP_TRIGGER, DURABLE_CLIENT,
              ORCHESTRATION_CLIENT, HTTP_OUTPUT, TIMER_TRIGGER, QUEUE_TRIGGER)
}  # fmt: skip


@dataclass(frozen=True)
class FunctionJson:
    """One function of a function.json app, as declared (nothing imported yet)."""

    name: str  # the folder name
    folder: Path
    config: Path  # the function.json file
    script_file: Path  # absolute, inside the app folder
    entry_point: str
    trigger: BindingInfo
    bindings: tuple[BindingInfo, ...]  # in file order, the trigger included


def function_folders(app_dir: Path) -> list[Path]:
    """The app's function folders: immediate sub-folders holding a function.json, ordered by name
    case-insensitively, as the host orders its function list."""
    found = [entry for entry in app_dir.iterdir() if entry.is_dir() and (entry / FUNCTION_JSON).is_file()]
    return sorted(found, key=lambda folder: (folder.name.lower(), folder.name))


def read_function_json(folder: Path, app_dir: Path) -> FunctionJson:
    """Parse and check ``folder/function.json``; AppLoadError says which field is wrong and how to fix it."""
    config = folder / FUNCTION_JSON
    name = folder.name
    if not _FUNCTION_NAME.fullmatch(name) or name.lower() == "host":
        raise AppLoadError(
            f"{folder}: {name!r} is not a valid function name (the folder name is the function name: a "
            "letter, then up to 127 letters, digits, _ or -, and not 'host'); rename the folder"
        )
    document = _parse(config)
    bindings = tuple(_bindings(document, config))
    trigger = _the_trigger(bindings, config)
    _warn_about_disabled_key(document, config, name)
    return FunctionJson(
        name=name,
        folder=folder,
        config=config,
        script_file=_script_file(document, folder, app_dir, config),
        entry_point=_entry_point(document, config),
        trigger=trigger,
        bindings=bindings,
    )


def _parse(config: Path) -> Mapping[str, Any]:
    try:
        # utf-8-sig: the host strips a byte-order mark, which editors on Windows like to add.
        text = config.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise AppLoadError(f"{config}: cannot be read: {exc}") from exc
    try:
        document = json.loads(text)
    except ValueError as exc:
        where = f" at line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise AppLoadError(f"{config}: not valid JSON ({reason}{where}); fix the file's syntax") from exc
    if not isinstance(document, dict):
        raise AppLoadError(
            f'{config}: must hold a JSON object with a "bindings" array, not {_kind(document)}'
        )
    return document


def _bindings(document: Mapping[str, Any], config: Path) -> Iterator[BindingInfo]:
    raw_bindings = document.get("bindings")
    if not isinstance(raw_bindings, list) or not raw_bindings:
        raise AppLoadError(
            f'{config}: "bindings" is missing or empty ("At least one binding must be declared."); '
            'declare the trigger, e.g. {"name": "context", "type": "orchestrationTrigger", "direction": "in"}'
        )
    seen: dict[str, str] = {}
    for position, raw in enumerate(raw_bindings):
        binding = _binding(raw, position, config)
        # The host compares binding names case-insensitively ("Binding names must be unique.").
        if binding.name.lower() in seen:
            raise AppLoadError(
                f"{config}: two bindings are named {seen[binding.name.lower()]!r} and {binding.name!r} "
                "(binding names must be unique, compared case-insensitively); rename one"
            )
        seen[binding.name.lower()] = binding.name
        yield binding


def _binding(raw: Any, position: int, config: Path) -> BindingInfo:
    where = f"{config}: bindings[{position}]"
    if not isinstance(raw, dict):
        raise AppLoadError(f"{where} must be a JSON object, not {_kind(raw)}")
    name = raw.get("name")
    if name is None:
        raise AppLoadError(
            f'{where} has no "name"; add "name": the Python parameter that receives it (or "$return" '
            "for the return value)"
        )
    if not isinstance(name, str) or not _valid_binding_name(name):
        raise AppLoadError(
            f'{where} "name": {name!r} is not a valid binding name (a letter or _, then letters, digits '
            'or _, without "__"; or "$return"); rename it and the Python parameter'
        )
    binding_type = raw.get("type")
    if not isinstance(binding_type, str) or not binding_type:
        raise AppLoadError(
            f'{where} ({name!r}) has no "type" ("Bindings must specify a Type."); add one, e.g. '
            '"activityTrigger", "orchestrationTrigger", "entityTrigger", "httpTrigger", "durableClient"'
        )
    canonical = _KNOWN_TYPES.get(binding_type.lower())
    if canonical is not None and canonical != binding_type:
        raise AppLoadError(
            f'{where} ({name!r}) "type": {binding_type!r} is spelled differently from {canonical!r}; the '
            f"Python worker matches binding types exactly, so write {canonical!r}"
        )
    direction = _direction(raw.get("direction"), name, binding_type, where)
    if name == RETURN_BINDING and direction != "OUT":
        raise AppLoadError(f'{where}: "$return" bindings must specify a direction of "out"; set it')
    if binding_type == HTTP_OUTPUT and direction != "OUT":
        raise AppLoadError(
            f'{where} ({name!r}): an "http" binding is the HTTP response; set "direction": "out"'
        )
    # One shape for both programming models: the decorators write directions as "IN"/"OUT".
    settings = {**raw, "direction": direction}
    return BindingInfo(name=name, type=binding_type, direction=direction, settings=settings)


def _valid_binding_name(name: str) -> bool:
    return name == RETURN_BINDING or (_BINDING_NAME.fullmatch(name) is not None and "__" not in name)


def _direction(value: Any, name: str, binding_type: str, where: str) -> str:
    if value is None:
        # The host parses "direction" into an enum whose default is In, so Azure takes a binding without
        # one as an input (host BindingMetadata.Create). Accept it as Azure does, and say so.
        if not binding_type.lower().endswith("trigger"):
            log.warning('%s (%r) has no "direction"; taken as "in", as the Functions host does', where, name)
        return "IN"
    direction = _DIRECTIONS.get(value.lower()) if isinstance(value, str) else None
    if direction is None:
        raise AppLoadError(
            f'{where} ({name!r}) "direction": {value!r} is not a valid binding direction; use "in" or "out"'
        )
    if direction == "INOUT":
        # The Python worker refuses these (Registry.validate_binding_direction).
        raise AppLoadError(
            f'{where} ({name!r}): "inout" bindings are not supported by the Python worker; use "in" or "out"'
        )
    return direction


def _the_trigger(bindings: tuple[BindingInfo, ...], config: Path) -> BindingInfo:
    # A trigger is an input binding whose type ends with "trigger", case-insensitively (host BindingMetadata).
    triggers = [b for b in bindings if b.direction == "IN" and b.type.lower().endswith("trigger")]
    if not triggers:
        raise AppLoadError(
            f'{config}: no trigger binding ("A function must have a trigger input binding."); add one with '
            '"direction": "in", e.g. "orchestrationTrigger", "activityTrigger" or "httpTrigger"'
        )
    if len(triggers) > 1:
        names = ", ".join(f"{b.name!r} ({b.type})" for b in triggers)
        raise AppLoadError(
            f"{config}: {len(triggers)} trigger bindings ({names}); a function has exactly one trigger: keep "
            "one, and move the others to functions of their own"
        )
    return triggers[0]


def _script_file(document: Mapping[str, Any], folder: Path, app_dir: Path, config: Path) -> Path:
    declared = document.get("scriptFile")
    if declared is None or declared == "":
        script = _primary_script(folder)
        if script is None:
            raise AppLoadError(
                f'{config}: no "scriptFile", and the folder has no {DEFAULT_SCRIPT_FILE}; add '
                f'{folder / DEFAULT_SCRIPT_FILE} or set "scriptFile" to the function\'s Python file'
            )
    elif not isinstance(declared, str):
        raise AppLoadError(f'{config}: "scriptFile" must be a string (a path relative to {folder})')
    else:
        script = (folder / declared).resolve()
        if not script.is_file():
            raise AppLoadError(
                f'{config}: "scriptFile": {declared!r} does not exist ({script}); point it at the '
                f"function's Python file, relative to {folder}"
            )
    # The worker imports the script as a module under the app root (rtv1 loader.load_function).
    if not script.is_relative_to(app_dir):
        raise AppLoadError(
            f'{config}: "scriptFile" {script} is outside the app folder {app_dir}; move it inside'
        )
    if script.suffix != ".py":
        raise AppLoadError(f'{config}: "scriptFile" {script.name!r} is not a Python file (.py)')
    return script


def _primary_script(folder: Path) -> Path | None:
    """The host's choice without "scriptFile" (DeterminePrimaryScriptFile): the only file besides
    function.json, else run.* or __init__.py."""
    files = [p for p in folder.iterdir() if p.is_file() and p.name.lower() != FUNCTION_JSON]
    if len(files) == 1:
        return files[0].resolve()
    primary = [p for p in files if p.stem.lower() == "run" or p.name.lower() == DEFAULT_SCRIPT_FILE]
    return primary[0].resolve() if primary else None


def _entry_point(document: Mapping[str, Any], config: Path) -> str:
    entry_point = document.get("entryPoint")
    if entry_point is None or entry_point == "":
        return DEFAULT_ENTRY_POINT  # the worker's default when the host passes none
    if not isinstance(entry_point, str) or not entry_point.isidentifier():
        raise AppLoadError(
            f'{config}: "entryPoint": {entry_point!r} must name a Python function (default "main")'
        )
    return entry_point


def _warn_about_disabled_key(document: Mapping[str, Any], config: Path, name: str) -> None:
    if document.get("disabled") is True:
        # Read only by Functions 1.x; the 2.x+ host ignores it (azure-functions-host #2767).
        log.warning(
            '%s: "disabled": true is ignored, as by the Functions host since 2.x; to disable the function '
            "set the app setting AzureWebJobs.%s.Disabled to true",
            config,
            name,
        )


_JSON_KINDS = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "a number",
               float: "a number"}  # fmt: skip


def _kind(value: Any) -> str:
    return _JSON_KINDS.get(type(value), "null")
