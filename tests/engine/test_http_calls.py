"""context.call_http: one real HTTP request per action, and a clear failure when nothing answers."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import azure.durable_functions as df
import pytest
from aiohttp import web

from durablehost.testing import DurableTestHost

from .conftest import running_host

APP = Path(__file__).parent / "apps" / "surface"


@pytest.fixture
async def host() -> AsyncIterator[DurableTestHost]:
    async with running_host("surface", None) as running:
        yield running


@pytest.fixture
async def echo_url() -> AsyncIterator[tuple[str, list[dict[str, object]]]]:
    seen: list[dict[str, object]] = []

    async def echo(request: web.Request) -> web.Response:
        seen.append({"body": await request.text(), "header": request.headers.get("X-Test")})
        return web.json_response({"echo": json.loads(await request.text())}, status=201)

    app = web.Application()
    app.router.add_post("/echo", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}/echo", seen
    await runner.cleanup()


async def test_call_http_makes_one_request_and_returns_the_response(
    host: DurableTestHost, echo_url: tuple[str, list[dict[str, object]]]
) -> None:
    url, seen = echo_url
    instance_id = await host.client.start_new("calls_http", client_input=url)
    status = await host.wait_for_completion(instance_id)
    assert status.runtime_status == df.OrchestrationRuntimeStatus.Completed, status.output
    assert status.output["statusCode"] == 201
    assert json.loads(status.output["content"]) == {"echo": {"hello": "world"}}
    assert seen == [{"body": json.dumps({"hello": "world"}), "header": "yes"}]


async def test_call_http_to_an_unreachable_host_fails_clearly(host: DurableTestHost) -> None:
    with socket.socket() as probe:  # a port with nothing listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    instance_id = await host.client.start_new("calls_http", client_input=f"http://127.0.0.1:{port}/nothing")
    status = await host.wait_for_completion(instance_id)
    assert status.runtime_status == df.OrchestrationRuntimeStatus.Completed
    assert f"HTTP POST http://127.0.0.1:{port}/nothing failed" in status.output["error"]
    assert "ClientConnectorError" in status.output["error"] or "Connect" in status.output["error"]
