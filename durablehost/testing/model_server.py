"""A scripted OpenAI-compatible model server on loopback, for testing LLM agents without a network.

    with ModelServer() as server:
        server.script(text("hi"), tool_call("get_weather", {"city": "Oslo"}), text("It is sunny"))
        client = openai.OpenAI(base_url=server.base_url, api_key="test")
        ...
        server.assert_requests(3)
        assert server.requests[2].tool_outputs[0].output == "sunny"

It speaks the Responses API (``POST /v1/responses``) and Chat Completions (``POST /v1/chat/completions``),
plain and streamed, as the real service does (``model_protocol``), so the real ``openai`` client,
openai-agents and Agent Framework talk to it unchanged. Answers come from the script (replies handed out
in order to whatever asks next) and from rules (``server.when(instructions="planner").reply(...)``),
rules first; see ``model_script`` for the replies, failures included. Every request is logged
(``server.requests``) with the reply it got and its token usage; a request nothing was scripted for is
answered 400 and listed in ``server.errors``, which ``assert_requests`` reports.

The server runs on its own thread and event loop: sync clients, async clients on any loop, and other
processes (a ``durablehost start`` subprocess) can all call it, and a test blocked in a sync call never
stalls it.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from types import TracebackType
from typing import Any

from aiohttp import web

from durablehost.testing import model_protocol as protocol
from durablehost.testing._json_schema import SchemaMismatch
from durablehost.testing.model_script import (
    Answer,
    Api,
    Failure,
    Matcher,
    ModelRequest,
    Rule,
    Scripted,
    Usage,
    answer_usage,
    concrete_parts,
    request_matcher,
    resolve,
)

_START_TIMEOUT = 10.0


class ModelServer:
    """The scripted server. Use it as a context manager (sync or async), or ``start()``/``stop()``."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host = host
        self._port = port
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._log: list[ModelRequest] = []
        self._queue: list[Scripted] = []
        self._rules: list[Rule] = []
        self._errors: list[str] = []
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._release: asyncio.Event | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None

    # ---------------------------------------------------------------------------------- lifecycle

    def start(self) -> ModelServer:
        """Start serving on a free port (or the one given); returns when it listens."""
        if self._thread is not None:
            raise RuntimeError("the model server is already running")
        self._thread = threading.Thread(target=self._serve, name="model-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(_START_TIMEOUT):
            raise RuntimeError(f"the model server did not start within {_START_TIMEOUT:g} s")
        if self._startup_error is not None:
            raise RuntimeError(f"the model server could not start: {self._startup_error}")
        return self

    def stop(self) -> None:
        """Stop serving; requests held by ``hang()`` are dropped."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        stopping = self._stopping
        if stopping is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stopping.set)
        thread.join(_START_TIMEOUT)
        self._thread = None
        self._loop = None

    def __enter__(self) -> ModelServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> ModelServer:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.stop)

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        finally:
            loop.close()

    async def _main(self) -> None:
        self._release = asyncio.Event()
        self._stopping = asyncio.Event()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/responses", self._responses)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        try:
            await runner.setup()
            site = web.TCPSite(runner, self._host, self._port)
            await site.start()
            self._port = int(runner.addresses[0][1])
        except OSError as error:
            self._startup_error = error
            self._ready.set()
            await runner.cleanup()
            return
        self._ready.set()
        await self._stopping.wait()
        self._release.set()  # held requests end (their connections close) before the runner stops
        await runner.cleanup()

    # ---------------------------------------------------------------------------------- scripting

    @property
    def base_url(self) -> str:
        """The OpenAI base URL, ``http://127.0.0.1:<port>/v1``: pass it as ``base_url``."""
        if not self._ready.is_set():
            raise RuntimeError("the model server is not running; use it as a context manager or start()")
        return f"http://{self._host}:{self._port}/v1"

    def script(self, *replies: Scripted) -> ModelServer:
        """Queue replies: each answers the next request that no rule takes, in order."""
        with self._lock:
            self._queue.extend(replies)
        return self

    def when(
        self,
        *,
        model: str | None = None,
        instructions: str | None = None,
        input: str | None = None,
        tool: str | None = None,
        after_tool: str | bool | None = None,
        api: Api | None = None,
        where: Matcher | None = None,
    ) -> Rule:
        """A rule for the requests matching every given criterion (see ``request_matcher``); give it
        replies with ``.reply(...)`` (one each, in order) or ``.always(...)``. Rules are tried in the
        order they were added, before the script."""
        rule = Rule(
            request_matcher(
                model=model,
                instructions=instructions,
                input=input,
                tool=tool,
                after_tool=after_tool,
                api=api,
                where=where,
            )
        )
        with self._lock:
            self._rules.append(rule)
        return rule

    def release(self) -> None:
        """End every request held by ``hang()`` now (their connections are closed)."""
        loop, release = self._loop, self._release
        if loop is not None and release is not None:
            loop.call_soon_threadsafe(release.set)

    def reset(self) -> None:
        """Forget the log, the script, the rules and the errors."""
        with self._lock:
            self._log.clear()
            self._queue.clear()
            self._rules.clear()
            self._errors.clear()

    # ---------------------------------------------------------------------------------- the log

    @property
    def requests(self) -> list[ModelRequest]:
        """Every request received so far, in arrival order."""
        with self._lock:
            return list(self._log)

    @property
    def errors(self) -> list[str]:
        """Requests the script could not answer (nothing matched, a structured answer off-schema)."""
        with self._lock:
            return list(self._errors)

    @property
    def usage(self) -> Usage:
        """Token totals over every answered request."""
        with self._lock:
            total = Usage()
            for request in self._log:
                total = total + request.usage
            return total

    @property
    def pending(self) -> int:
        """Scripted replies not handed out yet (queue and ``reply`` rules; ``always`` rules excluded)."""
        with self._lock:
            return len(self._queue) + sum(len(r._queue) for r in self._rules)

    def repeats(self) -> list[tuple[int, int]]:
        """Pairs ``(first, again)`` of request numbers whose bodies are identical: a call repeated, as
        a durable host re-running an in-flight model activity after a crash does."""
        seen: dict[str, int] = {}
        pairs: list[tuple[int, int]] = []
        for request in self.requests:
            key = request.fingerprint()
            if key in seen:
                pairs.append((seen[key], request.index))
            else:
                seen[key] = request.index
        return pairs

    def wait_for_requests_sync(self, count: int, timeout: float = 10.0) -> list[ModelRequest]:
        """Block until ``count`` requests have arrived; return them. Raises AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len(self._log) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(self._describe(f"expected {count} requests within {timeout:g} s"))
                self._arrived.wait(left)
            return list(self._log)

    async def wait_for_requests(self, count: int, timeout: float = 10.0) -> list[ModelRequest]:
        """``wait_for_requests_sync`` for async tests (the waiting happens off the event loop)."""
        return await asyncio.to_thread(self.wait_for_requests_sync, count, timeout)

    def assert_requests(self, count: int | None = None, *, all_scripted_used: bool = True) -> None:
        """Fail with the whole log unless every request was answered as scripted, ``count`` requests
        arrived (if given), and (``all_scripted_used``) no queued reply is left over."""
        problems: list[str] = []
        log = self.requests
        if count is not None and len(log) != count:
            problems.append(f"expected {count} requests, got {len(log)}")
        problems += self.errors
        if all_scripted_used and self.pending:
            problems.append(f"{self.pending} scripted replies were never asked for")
        if problems:
            raise AssertionError(self._describe("; ".join(problems)))

    def _describe(self, headline: str) -> str:
        lines = [f"model server: {headline}"]
        for request in self.requests:
            lines.append(f"  {request!r} -> {request.reply!r}")
        return "\n".join(lines)

    # ---------------------------------------------------------------------------------- serving

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": []})

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        return await self._answer(request, "responses")

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        return await self._answer(request, "chat")

    def _record(
        self, api: Api, body: dict[str, Any], headers: dict[str, str]
    ) -> tuple[ModelRequest, Scripted | None]:
        with self._arrived:
            logged = ModelRequest(index=len(self._log), api=api, body=body, headers=headers)
            self._log.append(logged)
            self._arrived.notify_all()
            scripted: Scripted | None = None
            for rule in self._rules:
                if not rule.exhausted and rule.matcher(logged):
                    scripted = rule.take()
                    break
            if scripted is None and self._queue:
                scripted = self._queue.pop(0)
            if scripted is None:
                self._errors.append(f"request #{logged.index} had no scripted reply: {logged!r}")
            return logged, scripted

    async def _answer(self, request: web.Request, api: Api) -> web.StreamResponse:
        try:
            body = await request.json()
        except json.JSONDecodeError as exc:
            return web.json_response(protocol.error_body(400, f"body is not JSON: {exc}"), status=400)
        if not isinstance(body, dict):
            return web.json_response(protocol.error_body(400, "body must be a JSON object"), status=400)
        logged, scripted = self._record(api, body, dict(request.headers))
        if scripted is None:
            message = f"durablehost ModelServer: nothing scripted for request #{logged.index} ({logged!r})"
            return web.json_response(protocol.error_body(400, message), status=400)
        try:
            reply = resolve(scripted, logged)
        except Exception as exc:  # a reply function's bug is reported like a missing reply
            return self._refuse(logged, f"the reply function for request #{logged.index} failed: {exc!r}")
        logged.reply = reply
        if isinstance(reply, Failure):
            return await self._fail(request, reply)
        return await self._succeed(request, logged, reply)

    def _refuse(self, logged: ModelRequest, message: str) -> web.Response:
        with self._lock:
            self._errors.append(message)
        return web.json_response(protocol.error_body(400, f"durablehost ModelServer: {message}"), status=400)

    async def _fail(self, request: web.Request, failure: Failure) -> web.StreamResponse:
        if failure.kind == "status":
            headers = {}
            if failure.retry_after is not None:
                headers["Retry-After"] = f"{failure.retry_after:g}"
            return web.json_response(
                protocol.error_body(failure.status, failure.message), status=failure.status, headers=headers
            )
        if failure.kind == "hang" and self._release is not None:
            try:
                await asyncio.wait_for(self._release.wait(), failure.seconds)
            except TimeoutError:
                pass  # the hang's time is up: drop the connection, as a stalled upstream would
        _drop(request)
        return web.Response(status=204)

    async def _succeed(
        self, request: web.Request, logged: ModelRequest, answer: Answer
    ) -> web.StreamResponse:
        try:
            parts = concrete_parts(answer, logged)
        except SchemaMismatch as mismatch:
            return self._refuse(logged, f"request #{logged.index}: structured answer off-schema: {mismatch}")
        usage = answer_usage(answer, logged, parts)
        logged.usage = usage
        if not logged.stream:
            if logged.api == "responses":
                return web.json_response(protocol.response_object(logged, parts, usage))
            return web.json_response(protocol.chat_completion(logged, parts, usage))
        stream = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await stream.prepare(request)
        events: Iterator[dict[str, Any]]
        if logged.api == "responses":
            events = protocol.response_events(logged, parts, usage)
        else:
            events = protocol.chat_chunks(logged, parts, usage)
        for event in events:
            await stream.write(protocol.sse(event, named=logged.api == "responses"))
        if logged.api == "chat":
            await stream.write(b"data: [DONE]\n\n")
        await stream.write_eof()
        return stream


def _drop(request: web.Request) -> None:
    """Close the client's connection without a response (aiohttp then writes nothing)."""
    transport = request.transport
    if transport is not None:
        transport.abort()
