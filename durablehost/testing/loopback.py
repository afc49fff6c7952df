"""The management API on a loopback port, for the durable clients of trigger functions in the harness.

A timer or queue function with a durable client binding gets the binding JSON and the SDK's
``DurableOrchestrationClient`` makes real HTTP calls to its ``rpcBaseUrl`` (protocol §5.1). Under
``durablehost start`` that is the running server; the in-process harness has none, so it starts this one:
the server's own application (``durablehost.http.server.build_app``, management API only, no keys) on
``127.0.0.1`` and a free port, in the harness's event loop, in front of the harness's engine.
"""

from __future__ import annotations

import json

from aiohttp import web

from durablehost.engine.host import DurableHost
from durablehost.http.common import MANAGEMENT_PREFIX, ServerSettings, client_binding
from durablehost.http.keys import Keys
from durablehost.http.server import build_app
from durablehost.http.triggers import TriggerTable

LOOPBACK = "127.0.0.1"


class LoopbackApi:
    def __init__(self, host: DurableHost, runner: web.AppRunner, settings: ServerSettings, url: str) -> None:
        self._host = host
        self._runner = runner
        self.url = url
        self.binding_json = json.dumps(client_binding(settings, url))

    @classmethod
    async def start(cls, host: DurableHost, hub: str) -> LoopbackApi:
        settings = ServerSettings(host=host, hub=hub, keys=Keys(enforce=False))
        runner = web.AppRunner(build_app(settings, TriggerTable((), ""), rpc_only=True), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, LOOPBACK, 0)
        await site.start()
        port = runner.addresses[0][1]
        url = f"http://{LOOPBACK}:{port}"
        settings.rpc_base_url = f"{url}{MANAGEMENT_PREFIX}/"
        return cls(host, runner, settings, url)

    async def close(self) -> None:
        """Stop serving, and close the SDK client's process-wide aiohttp session (a private helper of the
        SDK): it lives on the user-code loop of this test's host, which stops with the host, and the next
        test's functions run on another."""
        await self._runner.cleanup()
        try:
            from azure.durable_functions.models.utils.http_utils import _close_session
        except ImportError:
            return  # an SDK version without the shared session: nothing to close
        await self._host.user_code.on_user_loop(_close_session)
