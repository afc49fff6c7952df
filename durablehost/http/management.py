"""The Durable Functions management API under ``/runtime/webhooks/durabletask/`` (protocol §5.3).

The same routes serve the SDK's ``DurableOrchestrationClient`` (its ``rpcBaseUrl`` points here, §5.1) and
people following the links of ``create_check_status_response``. Every request is validated completely
before the engine is called, so a rejected request never changes stored state.

Choices where Azure's behaviour is not a good fit, or not implemented yet:
* ``raiseEvent`` stores the raw request body as the EventRaised input, as Azure does (§5.4): a Python
  client's ``raise_event(data=v)`` therefore reaches the orchestrator as the string ``json.dumps(v)``
  (azure-functions-durable-python#295), and a ``curl -d '{"ok":true}'`` reaches it as the object.
* ``DELETE instances/{id}`` of an instance that has not finished answers 409 with a message (purging it
  would pull history from under a running orchestration).
* ``rewind`` of an instance that did not fail answers 410 (as the extension does); a rewind that would
  move sequence ids (work scheduled after a retry chain ran out) answers 409 with the reason.
* Listing entities (``GET entities/{name}``) answers 501: durablehost does not index entities yet.
* A ``taskHub`` query parameter naming another hub is refused with 400: this host serves one hub.
* Beyond Azure: ``terminate?recursive=true`` also terminates the instance's running sub-orchestrations.
* Beyond Azure: ``GET instances/{id}/export`` answers the instance's history as a replayable document
  (``durablehost.replay``: raw stored events, for ``durablehost replay-check`` and golden histories).

Beyond Azure (read-only, insights.py): ``GET instances/{id}/details`` and ``GET counts``.
"""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime

from aiohttp import web

from durablehost.engine.host import status_json, validate_event_name, validate_instance_id
from durablehost.engine.records import RuntimeStatus
from durablehost.errors import InstanceAlreadyRunning, UnknownFunction
from durablehost.http import insights
from durablehost.http.common import (
    ServerSettings,
    empty_response,
    error_response,
    json_response,
    management_urls,
    origin_of,
    read_body,
)
from durablehost.store import MAX_PAGE_SIZE

CONTINUATION_HEADER = "x-ms-continuation-token"
IDEMPOTENCY_HEADER = "Idempotency-Key"
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,256}$")
_RUNNING = {
    RuntimeStatus.RUNNING,
    RuntimeStatus.PENDING,
    RuntimeStatus.CONTINUED_AS_NEW,
    RuntimeStatus.SUSPENDED,
}
_NOT_YET = "is not implemented by durablehost yet"
MAX_WAIT_SECONDS = 3600.0


class NotImplementedRoute(Exception):
    """A route of the extension's API that the engine does not support yet: answered with 501."""


async def handle(request: web.Request, settings: ServerSettings, segments: list[str]) -> web.Response:
    """Route a management request; ``segments`` are the decoded path segments after the prefix."""
    hub = request.query.get("taskHub")
    if hub is not None and hub.lower() != settings.hub.lower():
        return error_response(400, f"this host serves the task hub {settings.hub!r} only, not {hub!r}")
    if not segments:
        return _no_route(request)
    head = segments[0].lower()
    rest = segments[1:]
    if head == "orchestrators" and 1 <= len(rest) <= 2:
        return await _only(request, "POST") or await start(request, settings, rest)
    if head == "instances":
        return await _instances(request, settings, rest)
    if head == "counts" and not rest:
        return await _only(request, "GET") or await instance_counts(request, settings)
    if head == "entities" and len(rest) == 2:
        return await _only(request, "GET", "POST", "DELETE") or await entity(request, settings, *rest)
    if head == "entities" and len(rest) == 1:
        raise NotImplementedRoute(f"listing entities {_NOT_YET}")
    return _no_route(request)


async def _instances(request: web.Request, settings: ServerSettings, rest: list[str]) -> web.Response:
    if not rest:
        if request.method == "DELETE":
            return await purge_by_filter(request, settings)
        return await _only(request, "GET", "DELETE") or await list_instances(request, settings)
    instance_id = rest[0]
    validate_instance_id(instance_id)
    if len(rest) == 1:
        if request.method == "DELETE":
            return await purge(settings, instance_id)
        return await _only(request, "GET", "DELETE") or await get_status(request, settings, instance_id)
    operation = rest[1].lower()
    if operation == "raiseevent" and len(rest) == 3:
        return await _only(request, "POST") or await raise_event(request, settings, instance_id, rest[2])
    if len(rest) == 2 and operation in ("terminate", "suspend", "resume"):
        return await _only(request, "POST") or await change(request, settings, instance_id, operation)
    if len(rest) == 2 and operation == "details":
        return await _only(request, "GET") or await insights.details(settings, instance_id)
    if len(rest) == 2 and operation == "export":
        return await _only(request, "GET") or await export_history(settings, instance_id)
    if len(rest) == 2 and operation == "rewind":
        return await _only(request, "POST") or await rewind(request, settings, instance_id)
    if len(rest) == 2 and operation == "restart":
        return await _only(request, "POST") or await restart(request, settings, instance_id)
    return _no_route(request)


async def _only(request: web.Request, *methods: str) -> web.Response | None:
    if request.method in methods:
        return None
    return web.Response(
        status=405,
        text=json.dumps({"Message": f"{request.method} is not allowed here; use {', '.join(methods)}"}),
        content_type="application/json",
        headers={"Allow": ", ".join(methods)},
    )


def _no_route(request: web.Request) -> web.Response:
    return error_response(404, f"no management route {request.method} {request.path}")


# ---------------------------------------------------------------------------------------------- start


def start_input(body: bytes) -> str | None:
    """The orchestration input text from a start request body (protocol §5.4).

    The SDK posts ``json.dumps(df_dumps(v))``: a JSON string holding JSON text, which is kept as the input
    text so that ``get_input()`` gives ``v``. Any other JSON (``curl -d '{"a":1}'``, or a string that is not
    itself JSON) is the input value itself.
    """
    if not body.strip():
        return None
    text = body.decode("utf-8")
    value = json.loads(text)
    if isinstance(value, str):
        try:
            json.loads(value)
        except ValueError:
            return json.dumps(value)
        return value
    return json.dumps(value)


async def start(request: web.Request, settings: ServerSettings, rest: list[str]) -> web.Response:
    name = rest[0]
    instance_id = rest[1] if len(rest) == 2 else None
    if instance_id is not None:
        validate_instance_id(instance_id)
    wait = _wait_options(request)
    # The SDK's start_new(version=…) sends ?version= (URL-quoted; present but empty is the empty version),
    # which overrides host.json's defaultVersion (extension PR #3213).
    version = request.query.get("version")
    input_text = start_input(await read_body(request, settings.max_body))
    try:
        instance_id = await settings.host.start_new(name, instance_id, input_text, version=version)
    except UnknownFunction as exc:
        # The extension's ArgumentException shape; the SDK raises with ExceptionMessage (§5.2).
        return error_response(
            400,
            "One or more of the arguments submitted is incorrect",
            f"The function '{name}' doesn't exist, is disabled, or is not an orchestrator function. "
            f"Additional info: {exc}",
        )
    except InstanceAlreadyRunning as exc:
        return error_response(409, str(exc))
    if wait is not None:
        done = await _wait_for_completion(settings, instance_id, *wait)
        if done is not None:
            return done
    return check_status_response(request, settings, instance_id)


def check_status_response(request: web.Request, settings: ServerSettings, instance_id: str) -> web.Response:
    links = management_urls(settings, origin_of(request), instance_id)
    return json_response(202, links, headers={"Location": links["statusQueryGetUri"], "Retry-After": "10"})


def _wait_options(request: web.Request) -> tuple[float, float] | None:
    timeout = request.query.get("timeout")
    if timeout is None:
        return None
    seconds = _number(timeout, "timeout")
    interval = _number(request.query.get("pollingInterval", "1"), "pollingInterval")
    if not 0 < seconds <= MAX_WAIT_SECONDS or not 0 < interval <= MAX_WAIT_SECONDS:
        raise ValueError(f"timeout and pollingInterval must be seconds between 0 and {MAX_WAIT_SECONDS:.0f}")
    return seconds, max(interval, 0.05)


def _number(text: str, name: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, not {text!r}") from None
    if value != value:  # NaN
        raise ValueError(f"{name} must be a number of seconds, not {text!r}")
    return value


async def _wait_for_completion(
    settings: ServerSettings, instance_id: str, timeout: float, interval: float
) -> web.Response | None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        status = await settings.host.get_status(instance_id)
        if status is not None and RuntimeStatus(status["runtimeStatus"]) not in _RUNNING:
            if status["runtimeStatus"] == RuntimeStatus.COMPLETED:
                return json_response(200, status["output"])
            return json_response(200, status)
        remaining = deadline - loop.time()
        if remaining <= 0:
            return None
        await asyncio.sleep(min(interval, remaining))


# ---------------------------------------------------------------------------------------------- status


def _flag(request: web.Request, name: str, default: bool) -> bool:
    # The SDK sends Python's "True" (§5.2): compare case-insensitively; anything unparsable = default.
    for key, value in request.query.items():
        if key.lower() == name.lower():
            lowered = value.strip().lower()
            if lowered in ("true", "false"):
                return lowered == "true"
    return default


async def get_status(request: web.Request, settings: ServerSettings, instance_id: str) -> web.Response:
    status = await settings.host.get_status(
        instance_id,
        show_history=_flag(request, "showHistory", False),
        show_history_output=_flag(request, "showHistoryOutput", False),
        show_input=_flag(request, "showInput", True),
    )
    if status is None:
        return empty_response(404)
    runtime = RuntimeStatus(status["runtimeStatus"])
    if runtime in _RUNNING:
        return json_response(202, status, headers={"Location": str(request.url), "Retry-After": "5"})
    if runtime is RuntimeStatus.FAILED and _flag(request, "returnInternalServerErrorOnFailure", False):
        return json_response(500, status)
    return json_response(200, status)


def _parse_time(text: str, name: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{name} must be an ISO 8601 time such as 2024-01-01T00:00:00Z, not {text!r}"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _statuses(text: str) -> list[RuntimeStatus]:
    by_name = {s.value.lower(): s for s in RuntimeStatus}
    wanted = []
    for part in text.split(","):
        if not part.strip():
            continue
        found = by_name.get(part.strip().lower())
        if found is None:
            raise ValueError(
                f"unknown runtimeStatus {part.strip()!r}; use {', '.join(s.value for s in RuntimeStatus)}"
            )
        wanted.append(found)
    return wanted


def _created_range(request: web.Request) -> tuple[datetime | None, datetime | None]:
    query = request.query
    created_from = (
        _parse_time(query["createdTimeFrom"], "createdTimeFrom") if "createdTimeFrom" in query else None
    )
    created_to = _parse_time(query["createdTimeTo"], "createdTimeTo") if "createdTimeTo" in query else None
    return created_from, created_to


async def instance_counts(request: web.Request, settings: ServerSettings) -> web.Response:
    created_from, created_to = _created_range(request)
    prefix = request.query.get("instanceIdPrefix") or None
    return await insights.counts(settings, created_from=created_from, created_to=created_to, prefix=prefix)


async def list_instances(request: web.Request, settings: ServerSettings) -> web.Response:
    query = request.query
    created_from, created_to = _created_range(request)
    statuses = _statuses(query.get("runtimeStatus", ""))
    prefix = query.get("instanceIdPrefix") or None
    show_input = _flag(request, "showInput", False)
    top: int | None = None
    if "top" in query:
        if not query["top"].strip().isdigit() or not 1 <= int(query["top"]) <= MAX_PAGE_SIZE:
            raise ValueError(f"top must be a whole number from 1 to {MAX_PAGE_SIZE}")
        top = int(query["top"])
    token = request.headers.get(CONTINUATION_HEADER) or None
    found = []
    while True:
        records, token = await settings.host.list_instances(
            runtime_status=statuses or None,
            created_from=created_from,
            created_to=created_to,
            prefix=prefix,
            page_size=top or MAX_PAGE_SIZE,
            continuation=token,
        )
        found.extend(records)
        # With `top` one page is returned and the caller pages with the header; without it, everything
        # (the SDK's get_status_all/get_status_by read no continuation header).
        if top is not None or token is None:
            break
    headers = {CONTINUATION_HEADER: token} if token else None
    return json_response(200, [status_json(r, show_input=show_input) for r in found], headers=headers)


# ---------------------------------------------------------------------------------------------- changes


async def raise_event(
    request: web.Request, settings: ServerSettings, instance_id: str, event_name: str
) -> web.Response:
    validate_event_name(event_name)
    if request.content_type != "application/json":
        return error_response(
            400, f"raiseEvent needs Content-Type: application/json, not {request.content_type!r}"
        )
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is not None and not _IDEMPOTENCY_KEY.match(key):
        raise ValueError(f"the {IDEMPOTENCY_HEADER} header must be 1-256 printable ASCII characters")
    body = await read_body(request, settings.max_body)
    input_text: str | None = None
    if body.strip():
        input_text = body.decode("utf-8")
        json.loads(input_text)  # refuse a body that is not JSON before anything is stored
    # True = delivered, False = a repeated Idempotency-Key: both are accepted (202), once.
    await settings.host.raise_event(instance_id, event_name, input_text, idempotency_key=key)
    return empty_response(202)


async def change(
    request: web.Request, settings: ServerSettings, instance_id: str, operation: str
) -> web.Response:
    reason = request.query.get("reason")
    host = settings.host
    if operation == "terminate":
        # Beyond Azure: ?recursive=true terminates running sub-orchestrations too.
        await host.terminate(instance_id, reason, recursive=_flag(request, "recursive", False))
    elif operation == "suspend":
        await host.suspend(instance_id, reason)
    else:
        await host.resume(instance_id, reason)
    return empty_response(202)


async def rewind(request: web.Request, settings: ServerSettings, instance_id: str) -> web.Response:
    # The SDK sends `reason` unencoded (protocol §8-R8); aiohttp's query parsing copes with both forms.
    await settings.host.rewind(instance_id, request.query.get("reason"))
    return empty_response(202)


async def restart(request: web.Request, settings: ServerSettings, instance_id: str) -> web.Response:
    new_id = _flag(request, "restartWithNewInstanceId", True)
    started = await settings.host.restart(instance_id, new_instance_id=new_id)
    return check_status_response(request, settings, started)


async def purge_by_filter(request: web.Request, settings: ServerSettings) -> web.Response:
    created_from, created_to = _created_range(request)
    if created_from is None:
        return error_response(400, "purging by filter needs createdTimeFrom (and optionally createdTimeTo)")
    statuses = _statuses(request.query["runtimeStatus"]) if "runtimeStatus" in request.query else None
    deleted = await settings.host.purge_where(
        created_from=created_from, created_to=created_to, runtime_status=statuses
    )
    if deleted == 0:
        return empty_response(404)
    return json_response(200, {"instancesDeleted": deleted})


async def entity(request: web.Request, settings: ServerSettings, name: str, key: str) -> web.Response:
    """``GET`` reads the state, ``POST ?op=`` signals an operation, ``DELETE`` signals "delete" (§5.3)."""
    key = "" if key == "$" else key  # the extension's stand-in for an empty key
    host = settings.host
    if request.method == "GET":
        state = await host.read_entity_state(name, key)
        if state is None:
            return empty_response(404)
        return web.Response(status=200, text=state, content_type="application/json")
    if request.method == "DELETE":
        await host.signal_entity(name, key, "delete", None)
        return empty_response(202)
    operation = request.query.get("op")
    if not operation:
        return error_response(400, "signalling an entity needs the operation name in ?op=")
    body = await read_body(request, settings.max_body)
    input_text: str | None = None
    if body.strip():
        text = body.decode("utf-8")
        if request.content_type == "application/json":
            json.loads(text)  # refuse malformed JSON before anything is stored
            input_text = text
        else:
            # A non-JSON body is the operation's input as a raw string (§5.3).
            input_text = json.dumps(json.dumps(text))
    await host.signal_entity(name, key, operation, input_text)
    return empty_response(202)


async def export_history(settings: ServerSettings, instance_id: str) -> web.Response:
    # An unknown id raises InstanceNotFound: the server answers 404 with the message.
    return json_response(200, await settings.host.export_history(instance_id))


async def purge(settings: ServerSettings, instance_id: str) -> web.Response:
    try:
        deleted = await settings.host.purge(instance_id)
    except InstanceAlreadyRunning as exc:
        return error_response(
            409, f"cannot purge {instance_id!r}: it has not finished; terminate it first", str(exc)
        )
    if deleted == 0:
        return empty_response(404)
    return json_response(200, {"instancesDeleted": deleted})
