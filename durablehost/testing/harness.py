"""The in-process host and client for tests: real SDK replay, an in-memory store, a virtual clock."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from azure.durable_functions.models.DurableOrchestrationStatus import DurableOrchestrationStatus
from azure.functions._durable_functions import _serialize_custom_object

from durablehost.engine.clock import VirtualClock
from durablehost.engine.dispatcher import DispatcherOptions
from durablehost.engine.fidelity import Fidelity
from durablehost.engine.host import DurableHost
from durablehost.engine.versioning import Versioning
from durablehost.functions import FunctionIndex, load_app
from durablehost.http.appconfig import read_behaviour
from durablehost.store import open_store
from durablehost.store.base import TableStore


def _df_dumps(value: Any) -> str:
    return json.dumps(value, default=_serialize_custom_object)


class TestClient:
    """The SDK client's method names and semantics, in-process (protocol §5.2).

    Inputs are encoded as ``df.DurableOrchestrationClient`` encodes them and the extension decodes
    them, so the orchestrator sees exactly what it would see in Azure: ``start_new`` input arrives as
    the value; ``raise_event`` data arrives as the SDK's double-encoded body (protocol §5.4), i.e. a
    JSON *string* for anything but a string.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, host: DurableHost) -> None:
        self._host = host

    async def start_new(
        self,
        orchestration_function_name: str,
        instance_id: str | None = None,
        client_input: Any = None,
        version: str | None = None,
    ) -> str:
        input_text = _df_dumps(client_input) if client_input is not None else None
        return await self._host.start_new(
            orchestration_function_name, instance_id, input_text, version=version
        )

    async def raise_event(
        self,
        instance_id: str,
        event_name: str,
        event_data: Any = None,
        *,
        idempotency_key: str | None = None,
    ) -> bool:
        # The SDK posts json.dumps(json.dumps(data)) and the extension stores that body as the event
        # Input (protocol §5.4, azure-functions-durable-python#295).
        body = json.dumps(json.dumps(event_data))
        return await self._host.raise_event(instance_id, event_name, body, idempotency_key=idempotency_key)

    async def raise_event_raw(
        self, instance_id: str, event_name: str, body_text: str | None, *, idempotency_key: str | None = None
    ) -> bool:
        """Raise with a raw JSON body, as ``curl -d '{"approved": true}'`` to the HTTP API does."""
        return await self._host.raise_event(
            instance_id, event_name, body_text, idempotency_key=idempotency_key
        )

    async def get_status(
        self,
        instance_id: str,
        show_history: bool = False,
        show_history_output: bool = False,
        show_input: bool = True,
    ) -> DurableOrchestrationStatus:
        status = await self._host.get_status(
            instance_id,
            show_history=show_history,
            show_history_output=show_history_output,
            show_input=show_input,
        )
        if status is None:
            return DurableOrchestrationStatus()
        return DurableOrchestrationStatus.from_json(status)

    async def terminate(self, instance_id: str, reason: str | None = None) -> None:
        await self._host.terminate(instance_id, reason)

    async def suspend(self, instance_id: str, reason: str | None = None) -> None:
        await self._host.suspend(instance_id, reason)

    async def resume(self, instance_id: str, reason: str | None = None) -> None:
        await self._host.resume(instance_id, reason)

    async def purge_instance_history(self, instance_id: str) -> int:
        return await self._host.purge(instance_id)


@dataclass
class DurableTestHost:
    """A running in-process host. Create it with ``DurableTestHost.start(app_dir)``."""

    host: DurableHost
    clock: VirtualClock
    functions: FunctionIndex

    @classmethod
    @asynccontextmanager
    async def start(
        cls,
        app_dir: str | Path,
        *,
        store: TableStore | None = None,
        start_time: datetime | None = None,
        hub: str = "TestHub",
        options: DispatcherOptions | None = None,
        fidelity: Fidelity | str | None = None,
        versioning: Versioning | None = None,
    ) -> AsyncIterator[DurableTestHost]:
        """``fidelity`` (``"azure"`` for Azure's exact behaviour, README "Differences from Azure") and
        ``versioning`` default to the app's host.json (``durablehost.fidelity``; ``extensions.durableTask``
        ``defaultVersion``, ``versionMatchStrategy``, ``versionFailureStrategy``), as ``durablehost
        start`` reads them; pass them to run as an app with another host.json would."""
        functions = load_app(Path(app_dir))
        configured_versioning, configured_fidelity = read_behaviour(Path(app_dir))
        options = replace(
            options or DispatcherOptions(),
            versioning=versioning or configured_versioning,
            fidelity=Fidelity.parse(fidelity) if fidelity is not None else configured_fidelity,
        )
        clock = VirtualClock(start_time)
        own_store = store is None
        the_store = store if store is not None else open_store("memory")
        host = DurableHost(the_store, functions, clock, hub=hub, options=options)
        await host.start(own_all=True)  # one process: it owns every partition from the start
        try:
            yield cls(host, clock, functions)
        finally:
            await host.stop(drain=False)
            if own_store:
                await the_store.close()

    @property
    def client(self) -> TestClient:
        return TestClient(self.host)

    def now(self) -> datetime:
        return self.clock.now()

    async def run_until_idle(self, timeout: float = 30.0) -> None:
        """Run every episode and activity that can run now; due timers fire, future ones wait."""
        await self.host.dispatcher.wait_idle(timeout=timeout)

    async def advance(self, delta: timedelta, timeout: float = 30.0) -> None:
        """Move virtual time forward, firing every timer due on the way in order, each at its due time."""
        target = self.clock.now() + delta
        await self.run_until_idle(timeout)
        while True:
            due = self.host.dispatcher.timers.next_due()
            if due is None or due > target:
                break
            await self.clock.set(max(due, self.clock.now()))
            await self.host.dispatcher.fire_due_timers()
            await self.run_until_idle(timeout)
        await self.clock.set(target)
        await self.run_until_idle(timeout)

    async def wait_for_completion(
        self, instance_id: str, timeout: float = 30.0
    ) -> DurableOrchestrationStatus:
        """Run until idle and return the status (advancing no time)."""
        await self.run_until_idle(timeout)
        return await self.client.get_status(instance_id)

    async def history(self, instance_id: str) -> list[dict[str, Any]]:
        """The raw stored history (DTFx events as the SDK receives them)."""
        state = await self.host.state_of(instance_id)
        return list(state.history) if state else []
