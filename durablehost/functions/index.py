"""What an app defines: its functions, grouped by trigger, under every name a caller may use.

Built by :func:`build_index` from :class:`FunctionInfo` records, which the two programming models'
loaders produce (decorators: :mod:`durablehost.functions.loader`; function.json folders:
:mod:`durablehost.functions.folders`). Everything here is plain data plus lookups, so the engine and the
HTTP server never touch the SDK's decorator classes or function.json files.

Names are matched case-insensitively, as the Durable extension does: its registries of orchestrators,
activities and entities are keyed by ``FunctionName``, whose equality is ``OrdinalIgnoreCase`` (dfext
``FunctionName.cs``; fidelity notes §1.6). So ``call_activity("sayhello")`` reaches ``SayHello``, and two
functions whose names differ only in case are refused, since no caller could tell them apart. The
canonical ``name`` of what a lookup finds is the function's own spelling.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from durablehost.errors import AppLoadError, UnknownFunction

ORCHESTRATION_TRIGGER = "orchestrationTrigger"
ACTIVITY_TRIGGER = "activityTrigger"
ENTITY_TRIGGER = "entityTrigger"
HTTP_TRIGGER = "httpTrigger"
TIMER_TRIGGER = "timerTrigger"
QUEUE_TRIGGER = "queueTrigger"
DURABLE_CLIENT = "durableClient"
# The extension's deprecated name for durableClient, still accepted (dfext OrchestrationClientAttribute).
ORCHESTRATION_CLIENT = "orchestrationClient"
CLIENT_BINDINGS = frozenset({DURABLE_CLIENT, ORCHESTRATION_CLIENT})
HTTP_OUTPUT = "http"
RETURN_BINDING = "$return"

# The two ways the Functions host finds an app's functions (fidelity notes §1.5).
DECORATOR_MODEL = "decorators"  # Python v2: an entry script (function_app.py) registering functions
FUNCTION_JSON_MODEL = "function.json"  # Python v1: one folder per function, each with a function.json

# A parameter named `context` that is not a binding receives the invocation context, as in the Python
# worker (protocol §1.1; the client middleware reads `.invocation_id` from it, §5.1).
CONTEXT_PARAM = "context"


@dataclass(frozen=True)
class BindingInfo:
    """One binding in function.json shape (``settings`` is the whole binding dict, enums as strings).

    Both programming models give the same shape: ``direction`` is ``IN`` or ``OUT`` (upper-case, as the
    decorators write it), every other setting (``schedule``, ``runOnStartup``, ``queueName``,
    ``connection``, ``route`` …) as declared.
    """

    name: str
    type: str
    direction: str
    settings: Mapping[str, Any]


@dataclass(frozen=True)
class FunctionInfo:
    """Any function of the app, whatever its trigger; enough to list it at startup and to run it."""

    name: str  # v2: @app.function_name, else the Python __name__; v1: the folder name
    python_name: str  # what call_activity(<builder>) emits (protocol §3 surprise 7); v1: the name
    trigger_type: str  # binding type string: orchestrationTrigger, httpTrigger, timerTrigger …
    trigger_param: str
    bindings: tuple[BindingInfo, ...]  # including the trigger
    # v2: Function.get_user_function(); v1: the entry point, called with one keyword per binding
    handler: Callable[..., Any]
    app_dir: Path
    # The app setting that disables the function (AzureWebJobs.<name>.Disabled, fidelity notes §1.4).
    disabled_by: str | None = None
    declared_in: Path | None = None  # where load errors point: v1 its function.json, v2 the entry script
    directory: Path | None = None  # v1: the function's folder

    @property
    def disabled(self) -> bool:
        """A disabled function gets no trigger listener (timer, queue); HTTP answers 404."""
        return self.disabled_by is not None

    @property
    def function_directory(self) -> Path:
        """``func.Context.function_directory``: the worker passes the function's folder (v1) or the app
        folder (v2, where every function is in the entry script)."""
        return self.directory or self.app_dir


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
    function: Callable[..., Any]  # for v2 client functions the SDK's async df_client_middleware (§5.1)
    route: str  # without the host's routePrefix; defaults to the function name
    methods: tuple[str, ...] | None  # upper-case; None accepts every method
    auth_level: str  # ANONYMOUS, FUNCTION or ADMIN
    request_param: str
    client_param: str | None  # the durableClient (or orchestrationClient) binding's parameter, if any
    is_async: bool
    wants_context: bool
    # Neither trigger, durable client, nor the http output: inputs or `Out` parameters that durablehost
    # has nothing to feed, so calling such a function is refused.
    other_bindings: tuple[BindingInfo, ...]
    # A named http output (function.json `{"type": "http", "direction": "out", "name": "message"}`): the
    # parameter gets a func.Out, and what `.set()` got is the response.
    output_param: str | None = None
    # Whether a `$return` http output exists: without one the worker refuses a non-None return value.
    returns_response: bool = True


_Indexed = TypeVar("_Indexed", OrchestratorFunction, ActivityFunction, EntityFunction)


@dataclass(frozen=True)
class FunctionIndex:
    app_dir: Path
    script_file: Path  # v2: the entry script; v1: the app folder (each function has its own script)
    functions: tuple[FunctionInfo, ...]  # v2: in registration order; v1: by name, case-insensitively
    orchestrators: Mapping[str, OrchestratorFunction]  # keyed by every alias, as spelled
    activities: Mapping[str, ActivityFunction]  # keyed by every alias, as spelled
    entities: Mapping[str, EntityFunction]  # keyed by every alias, lower-case
    http: tuple[HttpFunction, ...]
    model: str = DECORATOR_MODEL  # DECORATOR_MODEL or FUNCTION_JSON_MODEL
    _folded: dict[str, Mapping[str, Any]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        folded = {
            "orchestrator": {alias.lower(): f for alias, f in self.orchestrators.items()},
            "activity": {alias.lower(): f for alias, f in self.activities.items()},
            "entity": dict(self.entities),
        }
        object.__setattr__(self, "_folded", folded)

    @property
    def source(self) -> str:
        """Where the functions come from, for the startup banner."""
        return "function.json folders" if self.model == FUNCTION_JSON_MODEL else self.script_file.name

    def orchestrator(self, name: str) -> OrchestratorFunction:
        found: OrchestratorFunction | None = self._folded["orchestrator"].get(name.lower())
        if found is None:
            raise UnknownFunction("orchestrator", name, _canonical(self.orchestrators.values()))
        return found

    def activity(self, name: str) -> ActivityFunction:
        found: ActivityFunction | None = self._folded["activity"].get(name.lower())
        if found is None:
            raise UnknownFunction("activity", name, _canonical(self.activities.values()))
        return found

    def entity(self, name: str) -> EntityFunction:
        found: EntityFunction | None = self._folded["entity"].get(name.lower())
        if found is None:
            raise UnknownFunction("entity", name, _canonical(self.entities.values()))
        return found


def _canonical(functions: Iterable[OrchestratorFunction | ActivityFunction | EntityFunction]) -> list[str]:
    return sorted({f.name for f in functions})


def build_index(
    infos: Iterable[FunctionInfo], app_dir: Path, script_file: Path, model: str = DECORATOR_MODEL
) -> FunctionIndex:
    """Index the functions a loader found; AppLoadError for names no caller could tell apart."""
    infos = tuple(infos)
    _refuse_names_differing_in_case(infos)
    orchestrators: dict[str, OrchestratorFunction] = {}
    activities: dict[str, ActivityFunction] = {}
    entities: dict[str, EntityFunction] = {}
    http: list[HttpFunction] = []
    folded: dict[str, dict[str, Any]] = {"orchestrator": {}, "activity": {}, "entity": {}}
    for info in infos:
        settings = _trigger_settings(info)
        if info.trigger_type == ORCHESTRATION_TRIGGER:
            orch = _orchestrator(info, settings.get("orchestration"))
            _register(orchestrators, folded["orchestrator"], orch, "orchestrator")
        elif info.trigger_type == ACTIVITY_TRIGGER:
            act = _activity(info, settings.get("activity"))
            _register(activities, folded["activity"], act, "activity")
        elif info.trigger_type == ENTITY_TRIGGER:
            ent = _entity(info, settings.get("entityName"))
            _register(entities, folded["entity"], ent, "entity")
        elif info.trigger_type == HTTP_TRIGGER:
            http.append(_http(info))
    return FunctionIndex(
        app_dir=app_dir,
        script_file=script_file,
        functions=infos,
        orchestrators=orchestrators,
        activities=activities,
        entities=entities,
        http=tuple(http),
        model=model,
    )


def _where(info: FunctionInfo) -> Path:
    return info.declared_in or info.app_dir


def _refuse_names_differing_in_case(infos: tuple[FunctionInfo, ...]) -> None:
    seen: dict[str, FunctionInfo] = {}
    for info in infos:
        other = seen.setdefault(info.name.lower(), info)
        if other is not info:
            raise AppLoadError(
                f"{_where(info)}: the functions {other.name!r} ({_where(other)}) and {info.name!r} have "
                "names that differ only in case. Azure matches function names case-insensitively, so no "
                "caller could tell them apart; rename one of them."
            )


def _aliases(trigger_level: Any, info: FunctionInfo) -> tuple[str, frozenset[str]]:
    # The extension resolves trigger-level name > function name (protocol §4, §6); the Python name is
    # added because call_activity(<builder>) emits it (§3 surprise 7).
    name = str(trigger_level) if trigger_level else info.name
    return name, frozenset({name, info.name, info.python_name})


def _register(table: dict[str, _Indexed], folded: dict[str, Any], entry: _Indexed, kind: str) -> None:
    """Add ``entry`` under each alias; ``folded`` holds the lower-cased aliases registered so far."""
    for alias in sorted(entry.aliases):
        other = folded.get(alias.lower())
        if other is not None and other is not entry:
            raise AppLoadError(
                f"{_where(entry.info)}: two {kind} functions answer to the name {alias!r}: "
                f"{other.info.name!r} (Python {other.info.python_name!r}) and {entry.info.name!r} "
                f"(Python {entry.info.python_name!r}). durablehost looks {kind}s up by trigger-level name, "
                "function name and Python function name, case-insensitively as Azure does; rename one."
            )
        table[alias] = entry
        folded[alias.lower()] = entry


def _orchestrator(info: FunctionInfo, trigger_level: Any) -> OrchestratorFunction:
    name, aliases = _aliases(trigger_level, info)
    # Called positionally with the payload text: the SDK handle takes a func.OrchestrationContext (what
    # the worker passes) or the bare string (df orchestrator.py), whatever the binding is named.
    return OrchestratorFunction(name=name, aliases=aliases, info=info, handle=info.handler)


def _entity(info: FunctionInfo, trigger_level: Any) -> EntityFunction:
    name, aliases = _aliases(trigger_level, info)
    return EntityFunction(
        name=name.lower(), aliases=frozenset(a.lower() for a in aliases), info=info, handle=info.handler
    )


def _activity(info: FunctionInfo, trigger_level: Any) -> ActivityFunction:
    name, aliases = _aliases(trigger_level, info)
    function = info.handler
    wants_context = _wants_context(info)
    # Activities get their input and nothing else; other bindings are refused when it is called.
    unsupported = tuple(b for b in info.bindings if b.name != info.trigger_param)
    _check_parameters(info, {b.name for b in info.bindings}, wants_context)
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


def _http(info: FunctionInfo) -> HttpFunction:
    client = next((b for b in info.bindings if b.type in CLIENT_BINDINGS and b.direction == "IN"), None)
    outputs = [b for b in info.bindings if b.type == HTTP_OUTPUT and b.direction == "OUT"]
    returned = next((b for b in outputs if b.name == RETURN_BINDING), None)
    named_output = next((b for b in outputs if b.name != RETURN_BINDING), None)
    supplied = (client, returned, named_output)
    others = tuple(
        b for b in info.bindings if b.name != info.trigger_param and all(b is not s for s in supplied)
    )
    wants_context = _wants_context(info)
    _check_parameters(info, {b.name for b in info.bindings}, wants_context)
    settings = _trigger_settings(info)
    raw_methods = settings.get("methods")
    return HttpFunction(
        name=info.name,
        info=info,
        function=info.handler,
        # The decorators' get_functions() defaults route to the function name; function.json may omit it.
        route=str(settings.get("route") or info.name),
        methods=tuple(str(m).upper() for m in raw_methods) if raw_methods else None,
        # HttpTriggerAttribute's default level is Function; function.json writes levels in lower case.
        auth_level=str(settings.get("authLevel") or "FUNCTION").upper(),
        request_param=info.trigger_param,
        client_param=client.name if client is not None else None,
        is_async=inspect.iscoroutinefunction(info.handler),
        wants_context=wants_context,
        other_bindings=others,
        output_param=named_output.name if named_output is not None else None,
        returns_response=returned is not None,
    )


def _trigger_settings(info: FunctionInfo) -> Mapping[str, Any]:
    return next(b.settings for b in info.bindings if b.name == info.trigger_param)


def _wants_context(info: FunctionInfo) -> bool:
    if any(b.name == CONTEXT_PARAM for b in info.bindings):
        return False
    return CONTEXT_PARAM in inspect.signature(info.handler).parameters


def _check_parameters(info: FunctionInfo, names: set[str], wants_context: bool) -> None:
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
            f"{_where(info)}: function {info.name!r} has parameter(s) {', '.join(missing)} that match no "
            f"binding (bindings: {', '.join(sorted(names))}); the Functions worker refuses it too"
        )
