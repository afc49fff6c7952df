"""What an app defines: its functions, grouped by trigger, under every name a caller may use.

Built from the SDK's ``Function`` objects (protocol §6) by :func:`build_index`; the loader is the only
caller. Everything here is plain data plus lookups, so the engine and the HTTP server never touch the SDK's
decorator classes.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from durablehost.errors import AppLoadError, UnknownFunction

ORCHESTRATION_TRIGGER = "orchestrationTrigger"
ACTIVITY_TRIGGER = "activityTrigger"
ENTITY_TRIGGER = "entityTrigger"
HTTP_TRIGGER = "httpTrigger"
DURABLE_CLIENT = "durableClient"
HTTP_OUTPUT = "http"

# A parameter named `context` that is not a binding receives the invocation context, as in the Python
# worker (protocol §1.1; the client middleware reads `.invocation_id` from it, §5.1).
CONTEXT_PARAM = "context"


@dataclass(frozen=True)
class BindingInfo:
    """One binding in function.json shape (``settings`` is the whole binding dict, enums as strings)."""

    name: str
    type: str
    direction: str
    settings: Mapping[str, Any]


@dataclass(frozen=True)
class FunctionInfo:
    """Any function of the app, whatever its trigger; enough to list it at startup."""

    name: str  # @app.function_name, else the Python __name__
    python_name: str  # what call_activity(<builder>) emits (protocol §3 surprise 7)
    trigger_type: str  # binding type string: orchestrationTrigger, httpTrigger, timerTrigger …
    trigger_param: str
    bindings: tuple[BindingInfo, ...]  # including the trigger
    handler: Callable[..., Any]  # Function.get_user_function()
    app_dir: Path  # the worker's function_directory for the invocation context


@dataclass(frozen=True)
class OrchestratorFunction:
    name: str  # the name the extension registers: trigger-level orchestration=, else function name
    aliases: frozenset[str]  # every name it is found under, `name` included
    info: FunctionInfo
    handle: Callable[[str], str]  # the SDK handle: JSON payload in, OrchestratorState JSON out (§1.1)


@dataclass(frozen=True)
class ActivityFunction:
    name: str  # trigger-level activity=, else function name (§4)
    aliases: frozenset[str]
    info: FunctionInfo
    function: Callable[..., Any]  # the raw user function, sync or async
    input_param: str  # keyword that receives the decoded input
    is_async: bool
    wants_context: bool  # declares a `context` parameter that is not a binding
    unsupported_bindings: tuple[BindingInfo, ...]  # bindings durablehost cannot supply


@dataclass(frozen=True)
class EntityFunction:
    name: str  # lower-case: entity ids are compared lower-case (§6, EntityId.get_scheduler_id)
    aliases: frozenset[str]  # all lower-case
    info: FunctionInfo
    handle: Callable[[str], str]  # the SDK handle: batch request JSON in, batch result JSON out (§7)


@dataclass(frozen=True)
class HttpFunction:
    name: str
    info: FunctionInfo
    function: Callable[..., Any]  # for client functions the SDK's async df_client_middleware (§5.1)
    route: str  # without the host's routePrefix; defaults to the function name
    methods: tuple[str, ...] | None  # upper-case; None accepts every method
    auth_level: str  # ANONYMOUS, FUNCTION or ADMIN
    request_param: str
    client_param: str | None  # the durableClient binding's parameter, if any
    is_async: bool
    wants_context: bool
    # Neither trigger, durable client, nor the `$return` http output: inputs or `Out` parameters that
    # durablehost has nothing to feed, so calling such a function is refused.
    other_bindings: tuple[BindingInfo, ...]


@dataclass(frozen=True)
class FunctionIndex:
    app_dir: Path
    script_file: Path
    functions: tuple[FunctionInfo, ...]  # in registration order
    orchestrators: Mapping[str, OrchestratorFunction]  # keyed by every alias
    activities: Mapping[str, ActivityFunction]  # keyed by every alias
    entities: Mapping[str, EntityFunction]  # keyed by every alias, lower-case
    http: tuple[HttpFunction, ...]

    def orchestrator(self, name: str) -> OrchestratorFunction:
        found = self.orchestrators.get(name)
        if found is None:
            raise UnknownFunction("orchestrator", name, _canonical(self.orchestrators.values()))
        return found

    def activity(self, name: str) -> ActivityFunction:
        found = self.activities.get(name)
        if found is None:
            raise UnknownFunction("activity", name, _canonical(self.activities.values()))
        return found

    def entity(self, name: str) -> EntityFunction:
        found = self.entities.get(name.lower())
        if found is None:
            raise UnknownFunction("entity", name, _canonical(self.entities.values()))
        return found


def _canonical(functions: Iterable[OrchestratorFunction | ActivityFunction | EntityFunction]) -> list[str]:
    return sorted({f.name for f in functions})


def build_index(functions: Iterable[Any], app_dir: Path, script_file: Path) -> FunctionIndex:
    """Index the SDK ``Function`` objects returned by ``app.get_functions()``."""
    infos: list[FunctionInfo] = []
    orchestrators: dict[str, OrchestratorFunction] = {}
    activities: dict[str, ActivityFunction] = {}
    entities: dict[str, EntityFunction] = {}
    http: list[HttpFunction] = []
    for function in functions:
        info = _function_info(function, app_dir)
        infos.append(info)
        trigger = function.get_trigger()
        if info.trigger_type == ORCHESTRATION_TRIGGER:
            orch = _orchestrator(info, trigger.orchestration)
            _register(orchestrators, orch, orch.aliases, "orchestrator", script_file)
        elif info.trigger_type == ACTIVITY_TRIGGER:
            act = _activity(info, trigger.activity, script_file)
            _register(activities, act, act.aliases, "activity", script_file)
        elif info.trigger_type == ENTITY_TRIGGER:
            ent = _entity(info, trigger.entity_name)
            _register(entities, ent, ent.aliases, "entity", script_file)
        elif info.trigger_type == HTTP_TRIGGER:
            http.append(_http(info, script_file))
    return FunctionIndex(
        app_dir=app_dir,
        script_file=script_file,
        functions=tuple(infos),
        orchestrators=orchestrators,
        activities=activities,
        entities=entities,
        http=tuple(http),
    )


def _function_info(function: Any, app_dir: Path) -> FunctionInfo:
    trigger = function.get_trigger()
    # get_raw_bindings() is the function.json text with enums stringified; get_bindings_dict() keeps the
    # enums and is not JSON-safe (protocol §6).
    bindings = tuple(_binding(json.loads(raw)) for raw in function.get_raw_bindings())
    return FunctionInfo(
        name=str(function.get_function_name()),
        # Function._name is the attribute the SDK's _get_function_name emits for call_activity(<builder>)
        # and call_sub_orchestrator(<builder>) (protocol §3 surprise 7), so it is the alias that matters.
        python_name=str(function._name),
        trigger_type=str(trigger.type),
        trigger_param=str(trigger.name),
        bindings=bindings,
        handler=function.get_user_function(),
        app_dir=app_dir,
    )


def _binding(raw: dict[str, Any]) -> BindingInfo:
    return BindingInfo(
        name=str(raw["name"]), type=str(raw["type"]), direction=str(raw["direction"]), settings=raw
    )


def _aliases(trigger_level: str | None, info: FunctionInfo) -> tuple[str, frozenset[str]]:
    # The extension resolves trigger-level name > function name (protocol §4, §6); the Python name is
    # added because call_activity(<builder>) emits it (§3 surprise 7).
    name = trigger_level or info.name
    return name, frozenset({name, info.name, info.python_name})


_Indexed = TypeVar("_Indexed", OrchestratorFunction, ActivityFunction, EntityFunction)


def _register(
    table: dict[str, _Indexed], entry: _Indexed, aliases: frozenset[str], kind: str, script_file: Path
) -> None:
    for alias in sorted(aliases):
        other = table.get(alias)
        if other is not None:
            raise AppLoadError(
                f"{script_file}: two {kind} functions answer to the name {alias!r}: "
                f"{other.info.name!r} (Python {other.info.python_name!r}) and {entry.info.name!r} "
                f"(Python {entry.info.python_name!r}). durablehost looks {kind}s up by trigger-level name, "
                "function name and Python function name; rename one of them."
            )
        table[alias] = entry


def _orchestrator(info: FunctionInfo, trigger_level: str | None) -> OrchestratorFunction:
    name, aliases = _aliases(trigger_level, info)
    return OrchestratorFunction(name=name, aliases=aliases, info=info, handle=info.handler)


def _entity(info: FunctionInfo, trigger_level: str | None) -> EntityFunction:
    name, aliases = _aliases(trigger_level, info)
    return EntityFunction(
        name=name.lower(), aliases=frozenset(a.lower() for a in aliases), info=info, handle=info.handler
    )


def _activity(info: FunctionInfo, trigger_level: str | None, script_file: Path) -> ActivityFunction:
    name, aliases = _aliases(trigger_level, info)
    function = info.handler
    wants_context = _wants_context(info)
    # Activities get their input and nothing else; other bindings are refused when it is called.
    unsupported = tuple(b for b in info.bindings if b.name != info.trigger_param)
    _check_parameters(info, {b.name for b in info.bindings}, wants_context, script_file)
    return ActivityFunction(
        name=name,
        aliases=aliases,
        info=info,
        function=function,
        input_param=info.trigger_param,
        is_async=inspect.iscoroutinefunction(function),
        wants_context=wants_context,
        unsupported_bindings=unsupported,
    )


def _http(info: FunctionInfo, script_file: Path) -> HttpFunction:
    client = next((b for b in info.bindings if b.type == DURABLE_CLIENT), None)
    others = tuple(
        b
        for b in info.bindings
        if b.name != info.trigger_param
        and b is not client
        and not (b.type == HTTP_OUTPUT and b.name == "$return")
    )
    wants_context = _wants_context(info)
    _check_parameters(info, {b.name for b in info.bindings}, wants_context, script_file)
    settings = _trigger_settings(info)
    raw_methods = settings.get("methods")
    return HttpFunction(
        name=info.name,
        info=info,
        function=info.handler,
        # get_functions() has already defaulted route to the function name and auth level to the app's.
        route=str(settings["route"]),
        methods=tuple(str(m).upper() for m in raw_methods) if raw_methods else None,
        auth_level=str(settings.get("authLevel", "FUNCTION")),
        request_param=info.trigger_param,
        client_param=client.name if client is not None else None,
        is_async=inspect.iscoroutinefunction(info.handler),
        wants_context=wants_context,
        other_bindings=others,
    )


def _trigger_settings(info: FunctionInfo) -> Mapping[str, Any]:
    return next(b.settings for b in info.bindings if b.name == info.trigger_param)


def _wants_context(info: FunctionInfo) -> bool:
    if any(b.name == CONTEXT_PARAM for b in info.bindings):
        return False
    return CONTEXT_PARAM in inspect.signature(info.handler).parameters


def _check_parameters(info: FunctionInfo, names: set[str], wants_context: bool, script_file: Path) -> None:
    """Refuse a function whose required parameters nothing would fill (the worker refuses it too)."""
    supplied = names | ({CONTEXT_PARAM} if wants_context else set())
    missing = [
        p.name
        for p in inspect.signature(info.handler).parameters.values()
        if p.name not in supplied
        and p.default is inspect.Parameter.empty
        and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    ]
    if missing:
        raise AppLoadError(
            f"{script_file}: function {info.name!r} has parameter(s) {', '.join(missing)} that match no "
            f"binding (bindings: {', '.join(sorted(names))}); the Functions worker refuses it too"
        )
