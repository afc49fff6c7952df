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
* Listing entities (``GET entities/{name}?fetchState&top&lastOperationTimeFrom&lastOperationTimeTo``,
  continuation in ``x-ms-continuation-token``) answers as the extension does, from the instance index.
* A ``taskHub`` query parameter naming another hub, or a ``connection``/``connectionName`` other than
  ``Storage``/``AzureWebJobsStorage``, is refused with 400: this host serves one hub on one store.
* Bodies and query parameters are checked strictly (payloads.py, query.py; a purge by filter refuses
  parameters it does not know). A repeated ``Idempotency-Key`` answers the first request's 202 with
  ``Idempotent-Replayed: true``, also after the instance finished; reused for another event, 422.
* Beyond Azure: ``terminate?recursive=true`` also terminates the instance's running sub-orchestrations.
* Beyond Azure: ``GET instances/{id}/export`` answers the instance's history as a replayable document
  (``durablehost.replay``: raw stored events, for ``durablehost replay-check`` and golden histories).

Beyond Azure (read-only, insights.py): ``GET instances/{id}/details`` and ``GET counts``.
"""

from __future__ import annotations

import asyncio
import json
import re

from aiohttp import web

from durablehost.engine.host import status_json, validate_event_name, validate_instance_id
from durablehost.engine.records import RuntimeStatus
from durablehost.errors import InstanceAlreadyRunning, InvalidRequest, UnknownFunction
from durablehost.http import insights, payloads
from durablehost.http.common import (
    CONNECTION_NAME,
    ServerSettings,
    empty_response,
    error_response,
    json_response,
    management_urls,
    origin_of,
    read_body,
)
from durablehost.http.query import Query
from durablehost.store import MAX_PAGE_SIZE
from durablehost.store.limits import InvalidValue

CONTINUATION_HEADER = "x-ms-continuation-token"
IDEMPOTENCY_HEADER = "Idempotency-Key"
# A repeat of an accepted Idempotency-Key gets the original answer with this header, as Stripe's API does
# (the IETF draft draft-ietf-httpapi-idempotency-key-header names no header for it).
REPLAYED_HEADER = "Idempotent-Replayed"
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,256}$")
# Azure's row-key rules (no '/', '\\', '#', '?', control characters), for the instance id prefix.
_BAD_PREFIX = re.compile(r"[/\\#?\x00-\x1f\x7f-\x9f]")
_RUNNING = {
    RuntimeStatus.RUNNING,
    RuntimeStatus.PENDING,
    RuntimeStatus.CONTINUED_AS_NEW,
    RuntimeStatus.SUSPENDED,
}
MAX_WAIT_SECONDS = 3600.0
# The names the durable client's `connection`/`connectionName` may give for the one store served here.
_CONNECTIONS = frozenset({CONNECTION_NAME.lower(), "azurewebjobsstorage"})
_FILTER_PURGE = ("createdTimeFrom", "createdTimeTo", "runtimeStatus")
DEFAULT_ENTITY_PAGE = 100  # the extension's EntityQuery.PageSize


async def handle(request: web.Request, settings: ServerSettings, segments: list[str]) -> web.Response:
    """Route a management request; ``segments`` are the decoded path segments after the prefix."""
    query = Query(request.rel_url.raw_query_string)
    hub = query.get("taskHub")
    if hub is not None and hub.lower() != settings.hub.lower():
        raise InvalidRequest(f"this host serves the task hub {settings.hub!r} only, not taskHub={hub!r}")
    for name in ("connection", "connectionName"):
        connection = query.get(name)
        if connection is not None and connection.lower() not in _CONNECTIONS:
            raise InvalidRequest(
                f"this host serves one store, the connection {CONNECTION_NAME!r} (AzureWebJobsStorage), "
                f"not {name}={connection!r}"
            )
    if not segments:
        return _no_route(request)
    head = segments[0].lower()
    rest = segments[1:]
    if head == "orchestrators" and 1 <= len(rest) <= 2:
        return await _only(request, "POST") or await start(request, query, settings, rest)
    if head == "instances":
        return await _instances(request, query, settings, rest)
    if head == "counts" and not rest:
        return await _only(request, "GET") or await instance_counts(query, settings)
    if head == "entities" and len(rest) == 2:
        return await _only(request, "GET", "POST", "DELETE") or await entity(request, query, settings, *rest)
    if head == "entities" and len(rest) == 1:
        return await _only(request, "GET") or await list_entities(request, query, settings, rest[0])
    return _no_route(request)


async def _instances(
    request: web.Request, query: Query, settings: ServerSettings, rest: list[str]
) -> web.Response:
    if not rest:
        if request.method == "DELETE":
            return await purge_by_filter(query, settings)
        return await _only(request, "GET", "DELETE") or await list_instances(request, query, settings)
    instance_id = rest[0]
    validate_instance_id(instance_id)
    if len(rest) == 1:
        if request.method == "DELETE":
            return await purge(settings, instance_id)
        return await _only(request, "GET", "DELETE") or await get_status(
            request, query, settings, instance_id
        )
    operation = rest[1].lower()
    if operation == "raiseevent" and len(rest) == 3:
        return await _only(request, "POST") or await raise_event(request, settings, instance_id, rest[2])
    if len(rest) == 2 and operation in ("terminate", "suspend", "resume"):
        return await _only(request, "POST") or await change(query, settings, instance_id, operation)
    if len(rest) == 2 and operation == "details":
        return await _only(request, "GET") or await insights.details(settings, instance_id)
    if len(rest) == 2 and operation == "export":
        return await _only(request, "GET") or await export_history(settings, instance_id)
    if len(rest) == 2 and operation == "rewind":
        return await _only(request, "POST") or await rewind(query, settings, instance_id)
    if len(rest) == 2 and operation == "restart":
        return await _only(request, "POST") or await restart(request, query, settings, instance_id)
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
    itself JSON) is the input value itself. Bodies beyond the edge's limits raise InvalidRequest
    (durablehost.http.payloads).
    """
    if not body.strip():
        return None
    value = payloads.parse_body(payloads.decode_text(body, "the request body"), "the request body")
    if isinstance(value, str) and payloads.encoded_json(value, "the request body"):
        return value
    return json.dumps(value)


async def start(
    request: web.Request, query: Query, settings: ServerSettings, rest: list[str]
) -> web.Response:
    name = rest[0]
    instance_id = rest[1] if len(rest) == 2 else None
    if instance_id is not None:
        validate_instance_id(instance_id)
    wait = _wait_options(query)
    # The SDK's start_new(version=…) sends ?version= (URL-quoted; present but empty is the empty version),
    # which overrides host.json's defaultVersion (extension PR #3213).
    version = query.text("version", max_length=256)
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


def _wait_options(query: Query) -> tuple[float, float] | None:
    timeout = query.seconds("timeout", MAX_WAIT_SECONDS)
    interval = query.seconds("pollingInterval", MAX_WAIT_SECONDS)
    if timeout is None:
        return None
    return timeout, max(interval if interval is not None else 1.0, 0.05)


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


async def get_status(
    request: web.Request, query: Query, settings: ServerSettings, instance_id: str
) -> web.Response:
    show_history = query.flag("showHistory", False)
    show_history_output = query.flag("showHistoryOutput", False)
    show_input = query.flag("showInput", True)
    server_error_on_failure = query.flag("returnInternalServerErrorOnFailure", False)
    status = await settings.host.get_status(
        instance_id,
        show_history=show_history,
        show_history_output=show_history_output,
        show_input=show_input,
    )
    if status is None:
        return empty_response(404)
    runtime = RuntimeStatus(status["runtimeStatus"])
    if runtime in _RUNNING:
        return json_response(202, status, headers={"Location": str(request.url), "Retry-After": "5"})
    if runtime is RuntimeStatus.FAILED and server_error_on_failure:
        return json_response(500, status)
    return json_response(200, status)


def _prefix(query: Query) -> str | None:
    prefix = query.get("instanceIdPrefix")
    if not prefix:
        return None
    if len(prefix) > 256 or _BAD_PREFIX.search(prefix):
        raise InvalidRequest(
            "instanceIdPrefix must be at most 256 characters without '/', '\\', '#', '?' or control "
            "characters (instance ids cannot hold them)"
        )
    return prefix


async def instance_counts(query: Query, settings: ServerSettings) -> web.Response:
    return await insights.counts(
        settings,
        created_from=query.time("createdTimeFrom"),
        created_to=query.time("createdTimeTo"),
        prefix=_prefix(query),
    )


async def list_instances(request: web.Request, query: Query, settings: ServerSettings) -> web.Response:
    created_from = query.time("createdTimeFrom")
    created_to = query.time("createdTimeTo")
    statuses = query.statuses("runtimeStatus")
    prefix = _prefix(query)
    show_input = query.flag("showInput", False)
    top = query.whole_number("top", 1, MAX_PAGE_SIZE)
    token = request.headers.get(CONTINUATION_HEADER) or None
    found = []
    while True:
        try:
            records, token = await settings.host.list_instances(
                runtime_status=statuses or None,
                created_from=created_from,
                created_to=created_to,
                prefix=prefix,
                page_size=top or MAX_PAGE_SIZE,
                continuation=token,
            )
        except InvalidValue as exc:
            # Every other input of this query was checked above: the store refused the caller's token.
            raise InvalidRequest(f"the {CONTINUATION_HEADER} header is not a token this host issued") from exc
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
        raise InvalidRequest(f"raiseEvent needs Content-Type: application/json, not {request.content_type!r}")
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is not None and not _IDEMPOTENCY_KEY.match(key):
        raise InvalidRequest(f"the {IDEMPOTENCY_HEADER} header must be 1-256 printable ASCII characters")
    body = await read_body(request, settings.max_body)
    input_text: str | None = None
    if body.strip():
        input_text = payloads.decode_text(body, "the request body")
        payloads.parse_body(input_text, "the request body")  # refused before anything is stored
    delivered = await settings.host.raise_event(instance_id, event_name, input_text, idempotency_key=key)
    # A repeated key gets the first request's answer, marked as a replay (README, Idempotency-Key).
    return empty_response(202, headers=None if delivered else {REPLAYED_HEADER: "true"})


async def change(query: Query, settings: ServerSettings, instance_id: str, operation: str) -> web.Response:
    reason = query.text("reason")
    host = settings.host
    if operation == "terminate":
        # Beyond Azure: ?recursive=true terminates running sub-orchestrations too.
        await host.terminate(instance_id, reason, recursive=query.flag("recursive", False))
    elif operation == "suspend":
        await host.suspend(instance_id, reason)
    else:
        await host.resume(instance_id, reason)
    return empty_response(202)


async def rewind(query: Query, settings: ServerSettings, instance_id: str) -> web.Response:
    # The SDK sends `reason` unencoded (protocol §8-R8); the client's URL quoting makes it readable.
    await settings.host.rewind(instance_id, query.text("reason"))
    return empty_response(202)


async def restart(
    request: web.Request, query: Query, settings: ServerSettings, instance_id: str
) -> web.Response:
    new_id = query.flag("restartWithNewInstanceId", True)
    started = await settings.host.restart(instance_id, new_instance_id=new_id)
    return check_status_response(request, settings, started)


async def purge_by_filter(query: Query, settings: ServerSettings) -> web.Response:
    # A destructive request: every parameter must be known and readable, or nothing is deleted.
    query.only(_FILTER_PURGE, "purging by filter")
    created_from = query.time("createdTimeFrom")
    created_to = query.time("createdTimeTo")
    statuses = query.statuses("runtimeStatus")
    if created_from is None:
        raise InvalidRequest("purging by filter needs createdTimeFrom (and optionally createdTimeTo)")
    deleted = await settings.host.purge_where(
        created_from=created_from, created_to=created_to, runtime_status=statuses
    )
    if deleted == 0:
        return empty_response(404)
    return json_response(200, {"instancesDeleted": deleted})


async def list_entities(
    request: web.Request, query: Query, settings: ServerSettings, name: str
) -> web.Response:
    """One page of the entities named ``name`` (ext ``HandleListEntitiesRequestAsync``): ``top`` is the
    page size (100), the continuation token comes and goes in ``x-ms-continuation-token``."""
    top = query.whole_number("top", 1, MAX_PAGE_SIZE) or DEFAULT_ENTITY_PAGE
    try:
        entities, token = await settings.host.list_entities(
            name,
            fetch_state=query.flag("fetchState", False),
            top=top,
            last_operation_from=query.time("lastOperationTimeFrom"),
            last_operation_to=query.time("lastOperationTimeTo"),
            continuation=request.headers.get(CONTINUATION_HEADER) or None,
        )
    except InvalidValue as exc:
        # Every other input was checked above: the store refused the caller's token.
        raise InvalidRequest(f"the {CONTINUATION_HEADER} header is not a token this host issued") from exc
    headers = {CONTINUATION_HEADER: token} if token else None
    return json_response(200, entities, headers=headers)


async def entity(
    request: web.Request, query: Query, settings: ServerSettings, name: str, key: str
) -> web.Response:
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
    operation = query.get("op")
    if not operation:
        raise InvalidRequest("signalling an entity needs the operation name in ?op=")
    body = await read_body(request, settings.max_body)
    input_text: str | None = None
    if body.strip():
        text = payloads.decode_text(body, "the request body")
        if request.content_type == "application/json":
            payloads.parse_body(text, "the request body")  # refused before anything is stored
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
        # The engine refuses with the start-conflict error; the caller needs the purge's reason (the SDK
        # raises with ExceptionMessage, so both carry it).
        text = (
            f"cannot purge {instance_id!r}: it is {exc.status}, and only the history of a finished "
            "instance can be purged; terminate it first, then purge"
        )
        return error_response(409, text)
    if deleted == 0:
        return empty_response(404)
    return json_response(200, {"instancesDeleted": deleted})
