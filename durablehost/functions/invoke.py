"""Calling the app's functions with the payloads of the host <-> SDK protocol.

Orchestrator and entity handles are synchronous replays of JSON in to JSON out: the engine runs them on a
worker thread (durablehost.functions.workers). Activities and HTTP functions are awaited: sync ones run
on a worker thread, async ones on the user-code event loop, as the worker runs them.

Failures of user code are results (OrchestratorResult.error, ActivityFailure, entity results with
isError). Anything else — a payload the SDK refuses, a binding the host cannot supply, an SDK answer that
is not the documented JSON — raises InvocationError, so host bugs are never mistaken for user failures.
"""

from __future__ import annotations

import json
import traceback
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import CodeType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func
from azure.functions import meta
from azure.functions.durable_functions import ActivityTriggerConverter

from durablehost.errors import InvocationError, WorkAbandoned
from durablehost.functions.context import InvocationContext
from durablehost.functions.disabled import disabled_message
from durablehost.functions.index import (
    CONTEXT_PARAM,
    ActivityFunction,
    BindingInfo,
    EntityFunction,
    FunctionInfo,
    HttpFunction,
    OrchestratorFunction,
)
from durablehost.functions.workers import UserCode


def silence_sdk_notices() -> None:
    """Ignore the SDK's one-shot "called without expected_type" / loose-codec DeprecationWarnings.

    They advise app authors about a codec mode the host does not choose (protocol Appendix A) and would
    only be noise in the host's log. A process-wide filter, because catch_warnings is not thread-safe
    and activities run on threads.
    """
    warnings.filterwarnings(
        "ignore", message=r"azure\.functions (df_loads|Durable JSON codec)", category=DeprecationWarning
    )


silence_sdk_notices()

# handle() signals orchestration failure by raising Exception(f"{exc}{marker}{state_json}") (§1.3).
_OUT_OF_PROC_MARKER = "\n\n$OutOfProcData$:"


# --- orchestrators ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrchestratorResult:
    state: dict[str, Any]  # the parsed OrchestratorState: isDone, actions, output, customStatus … (§1.3)
    error: str | None = None  # set when the orchestrator failed: the message before $OutOfProcData$
    details: str | None = None  # traceback of the user's exception, when it failed

    @property
    def failed(self) -> bool:
        return self.error is not None


def call_orchestrator(orchestrator: OrchestratorFunction, payload_json: str) -> OrchestratorResult:
    """Run one episode: the trigger payload (§1.2) in, the orchestrator's state or its failure out."""
    if orchestrator.info.disabled_by is not None:
        # The extension fails the orchestration, having run nothing (durablehost.functions.disabled).
        message = disabled_message("orchestrator", orchestrator.name, orchestrator.info.disabled_by)
        return OrchestratorResult(state={"isDone": False, "actions": [], "error": message}, error=message)
    try:
        # Positionally: the handle's parameter is `context` whatever the binding is called (§1.1).
        state_json = orchestrator.handle(payload_json)
    except Exception as exc:
        return _orchestrator_failure(orchestrator, exc)
    return OrchestratorResult(state=_json_object(state_json, f"orchestrator '{orchestrator.name}'"))


def _orchestrator_failure(orchestrator: OrchestratorFunction, exc: Exception) -> OrchestratorResult:
    head, marker, tail = str(exc).rpartition(_OUT_OF_PROC_MARKER)
    if marker:
        # The state JSON holds no raw newlines, so the last marker is the SDK's own.
        state = _json_object(tail, f"orchestrator '{orchestrator.name}'")
        cause = exc.__cause__ or exc  # the SDK chains the user's exception (`raise … from`)
        error = head or str(state.get("error"))
        return OrchestratorResult(state=state, error=error, details=_traceback(cause))
    user_code = getattr(orchestrator.handle, "orchestrator_function", None)
    if user_code is not None and _raised_in(exc, user_code.__code__):
        # A plain (non-generator) orchestrator is called outside the SDK's try, so its exception arrives
        # without $OutOfProcData$. The extension fails the orchestration with the message and no actions.
        message = str(exc) or str(type(exc))
        return OrchestratorResult(
            state={"isDone": False, "actions": [], "error": message}, error=message, details=_traceback(exc)
        )
    raise InvocationError(
        f"orchestrator '{orchestrator.name}' could not process its payload: {type(exc).__name__}: {exc}"
    ) from exc


def _raised_in(exc: BaseException, code: CodeType) -> bool:
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code is code:
            return True
        tb = tb.tb_next
    return False


# --- activities ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ActivitySuccess:
    result_json: str  # df_dumps of the return value; TaskCompleted.Result (§4)


@dataclass(frozen=True)
class ActivityFailure:
    reason: str  # "Activity function '<name>' failed: <Type>: <message>"; TaskFailed.Reason (§4)
    details: str  # traceback text; TaskFailed.Details


ActivityOutcome = ActivitySuccess | ActivityFailure


async def call_activity(
    activity: ActivityFunction,
    input_json: str | None,
    *,
    workers: UserCode,
    still_ours: Callable[[], bool] | None = None,
) -> ActivityOutcome:
    """Run an activity as the worker does (§4): sync functions on a worker thread, async ones on the
    user-code loop (durablehost.functions.workers).

    ``still_ours`` is asked again on the worker thread, right before a sync function starts: a call can
    wait there for a free thread (the pool is busy, or held by timed-out attempts that cannot be
    stopped) while the process loses the instance; it then raises WorkAbandoned and never runs.
    """
    if activity.info.disabled_by is not None:
        reason = disabled_message("activity", activity.name, activity.info.disabled_by)
        return ActivityFailure(reason=reason, details="")
    if activity.unsupported_bindings:
        reason = _unsupported(activity.unsupported_bindings)
        return ActivityFailure(reason=f"Activity function '{activity.name}' failed: {reason}", details="")
    try:
        argument = _decode_activity_input(input_json)
    except Exception as exc:
        return _activity_failure(activity, exc)
    kwargs = {activity.input_param: argument}
    if activity.wants_context:
        kwargs[CONTEXT_PARAM] = _context(activity.info)
    # A sync function is submitted outside the try: a shut-down executor is the host's problem, not the
    # activity's. An async one is called inside it, where a signature mismatch raises.
    submitted = None if activity.is_async else workers.submit_sync(_guarded(activity, still_ours), **kwargs)
    try:
        if submitted is None:
            result = await workers.run_async(activity.function(**kwargs))
        else:
            result = await submitted
        encoded = ActivityTriggerConverter.encode(result, expected_type=None)
    except WorkAbandoned:
        raise
    except Exception as exc:
        return _activity_failure(activity, exc)
    return ActivitySuccess(result_json=str(encoded.value))


def _guarded(activity: ActivityFunction, still_ours: Callable[[], bool] | None) -> Callable[..., Any]:
    if still_ours is None:
        return activity.function

    def call(**kwargs: Any) -> Any:
        if not still_ours():
            raise WorkAbandoned(f"activity {activity.name} was not started: the instance is not ours now")
        return activity.function(**kwargs)

    return call


def _decode_activity_input(input_json: str | None) -> Any:
    if input_json is None:
        # No input text at all (the SDK itself schedules the text "null"): the converter refuses None,
        # and None is what the function should see.
        return None
    # df_loads, with the raw string passed through when it is not JSON, exactly as the worker decodes.
    return ActivityTriggerConverter.decode(meta.Datum(type="json", value=input_json), trigger_metadata=None)


def _activity_failure(activity: ActivityFunction, exc: Exception) -> ActivityFailure:
    return ActivityFailure(
        reason=f"Activity function '{activity.name}' failed: {_describe(exc)}", details=_traceback(exc)
    )


# --- entities -----------------------------------------------------------------------------------------


def call_entity(entity: EntityFunction, batch_request_json: str) -> dict[str, Any]:
    """Run one entity batch (§7); user exceptions are per-operation results inside the output."""
    if entity.info.disabled_by is not None:
        # The engine fails every operation of the batch with this message and keeps the state.
        raise InvocationError(disabled_message("entity", entity.name, entity.info.disabled_by))
    try:
        output = entity.handle(batch_request_json)
    except Exception as exc:
        # The SDK catches every operation's exception itself; what escapes is a malformed request or a
        # state it cannot serialise.
        raise InvocationError(
            f"entity '{entity.name}' could not run the batch: {type(exc).__name__}: {exc}"
        ) from exc
    return _json_object(output, f"entity '{entity.name}'")


# --- HTTP ---------------------------------------------------------------------------------------------


def build_http_request(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    body: bytes = b"",
    route_params: Mapping[str, str] | None = None,
) -> func.HttpRequest:
    """A ``func.HttpRequest`` as the Functions host builds it (§6); query parameters come from ``url``."""
    params: dict[str, str] = {}
    for key, value in parse_qsl(urlsplit(url).query, keep_blank_values=True):
        # The host exposes the query as a dictionary of StringValues, joining repeated keys with ','.
        params[key] = f"{params[key]},{value}" if key in params else value
    return func.HttpRequest(
        method.upper(), url, headers=headers, params=params, route_params=route_params, body=body
    )


async def call_http_function(
    fn: HttpFunction,
    request: func.HttpRequest,
    client_binding_json: str | None,
    *,
    workers: UserCode,
) -> func.HttpResponse:
    """Call an HTTP-triggered function with keyword arguments (§5.1, §6), where the worker would run it."""
    if fn.other_bindings:
        raise InvocationError(f"function '{fn.name}': {_unsupported(fn.other_bindings)}")
    kwargs: dict[str, Any] = {fn.request_param: request}
    if fn.client_param is not None:
        if client_binding_json is None:
            raise InvocationError(f"function '{fn.name}' needs a durable client binding JSON, none was given")
        # v2: the SDK's middleware builds the client from this JSON string (§5.1); v1: the function
        # gets the string and builds df.DurableOrchestrationClient(starter) itself.
        kwargs[fn.client_param] = client_binding_json
    output = OutputBinding()
    if fn.output_param is not None:
        kwargs[fn.output_param] = output
    if fn.wants_context:
        kwargs[CONTEXT_PARAM] = _context(fn.info)
    if fn.is_async:
        result = await workers.run_async(fn.function(**kwargs))
    else:
        result = await workers.run_sync(fn.function, **kwargs)
    if result is not None and not fn.returns_response:
        # The worker's own check: with no $return binding a return value has nowhere to go.
        raise InvocationError(
            f"function '{fn.name}' without a $return binding returned a non-None value "
            f"({type(result).__name__}); set the response on its http output binding instead"
        )
    return _http_response(fn, output.get() if result is None else result)


def _http_response(fn: HttpFunction, result: Any) -> func.HttpResponse:
    if result is None:
        # No response at all: the Functions host answers 200 with an empty body
        # (FunctionInvocationMiddleware falls back to OkResult).
        return func.HttpResponse(status_code=200)
    if isinstance(result, func.HttpResponse):
        return result
    if isinstance(result, str):
        # A string on the http output is a 200 text response (§6).
        return func.HttpResponse(result, status_code=200, mimetype="text/plain", charset="utf-8")
    raise InvocationError(
        f"function '{fn.name}' returned {type(result).__name__}; an HTTP function must return "
        "func.HttpResponse or str"
    )


class OutputBinding(func.Out[Any]):
    """The ``func.Out`` the worker hands a named output binding: ``.set()`` records the value."""

    def __init__(self) -> None:
        self._value: Any = None

    def set(self, val: Any) -> None:
        self._value = val

    def get(self) -> Any:
        return self._value


# --- shared -------------------------------------------------------------------------------------------


def _context(info: FunctionInfo) -> InvocationContext:
    return InvocationContext(info.name, str(info.function_directory))


def _unsupported(bindings: tuple[BindingInfo, ...]) -> str:
    listing = ", ".join(f"{b.name!r} ({b.type}, {b.direction})" for b in bindings)
    return f"durablehost cannot supply the binding(s) {listing}"


def _json_object(text: Any, who: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise InvocationError(f"{who} returned something that is not JSON text: {text!r:.200}") from exc
    if not isinstance(value, dict):
        raise InvocationError(f"{who} returned JSON that is not an object: {text!r:.200}")
    return value


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    # The SDK's converters wrap the telling error (`raise ValueError(…) from e`); keep its message too.
    if exc.__cause__ is not None:
        text += f" ({type(exc.__cause__).__name__}: {exc.__cause__})"
    return text


def _traceback(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))
