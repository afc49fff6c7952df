"""The in-process host and client for tests: real SDK replay, an in-memory store, a virtual clock.

Timer and queue functions run too (durablehost.triggers): timers on the virtual clock, fired by ``advance``
in order with durable timers; queues in real time on the storage account of their connection setting
(read from the environment; without one they are not served, see ``host.triggers.entries``). Their durable
clients call a loopback management API (durablehost.testing.loopback). A timer or queue function whose
configuration is wrong (a bad schedule, a ``%Setting%`` that is not set …) makes ``start`` raise.
"""

from __future__ import annotations

import asyncio
import json
import os
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
from durablehost.errors import AppLoadError
from durablehost.functions import FunctionIndex, load_app
from durablehost.http.appconfig import read_behaviour, read_host_json
from durablehost.store import open_store
from durablehost.store.base import TableStore
from durablehost.testing.loopback import LoopbackApi
from durablehost.triggers.listeners import TriggerListeners
from durablehost.triggers.options import ListenerTimings, QueuesOptions
from durablehost.triggers.plan import (
    QUEUE_TRIGGER,
    NotServed,
    QueuePlan,
    TimerPlan,
    TriggerEntry,
    plan_triggers,
)


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
    triggers: TriggerListeners  # the timer and queue listeners; .entries says what is served and why not

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
        trigger_timings: ListenerTimings | None = None,
        fidelity: Fidelity | str | None = None,
        versioning: Versioning | None = None,
    ) -> AsyncIterator[DurableTestHost]:
        """``fidelity`` (``"azure"`` for Azure's exact behaviour, README "Differences from Azure") and
        ``versioning`` default to the app's host.json (``durablehost.fidelity``; ``extensions.durableTask``
        ``defaultVersion``, ``versionMatchStrategy``, ``versionFailureStrategy``), as ``durablehost
        start`` reads them; pass them to run as an app with another host.json would."""
        functions = load_app(Path(app_dir))
        entries = plan_triggers(functions.functions, os.environ, _queues_options(functions))
        _refuse_config_errors(entries, functions)
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
        api: LoopbackApi | None = None
        triggers: TriggerListeners | None = None
        await host.start(own_all=True)  # one process: it owns every partition from the start
        try:
            if _needs_client(entries):
                api = await LoopbackApi.start(host, hub)
            triggers = TriggerListeners(
                entries,
                store=the_store,
                hub=hub,
                clock=clock,
                client_binding=api.binding_json if api is not None else None,
                workers=host.user_code,
                timings=trigger_timings,
            )
            await triggers.start()
            yield cls(host, clock, functions, triggers)
        finally:
            if triggers is not None:
                await triggers.stop(drain=False)
            if api is not None:
                await api.close()
            await host.stop(drain=False)
            if own_store:
                await the_store.close()

    @property
    def client(self) -> TestClient:
        return TestClient(self.host)

    def now(self) -> datetime:
        return self.clock.now()

    async def run_until_idle(self, timeout: float = 30.0) -> None:
        """Run every episode, activity and trigger invocation that can run now; due timers (durable
        timers and timer triggers) fire, future ones wait. Queue messages in flight finish; messages still
        in the queue are not waited for."""
        async with asyncio.timeout(timeout):
            while True:
                await self.host.dispatcher.wait_idle()
                await self.triggers.wait_idle()
                if self.triggers.errors:
                    raise self.triggers.errors[0]
                if self.host.dispatcher.is_idle() and self.triggers.is_idle():
                    return

    async def advance(self, delta: timedelta, timeout: float = 30.0) -> None:
        """Move virtual time forward, firing every durable timer and timer trigger due on the way in
        order, each at its due time."""
        target = self.clock.now() + delta
        await self.run_until_idle(timeout)
        while True:
            due = _earliest(self.host.dispatcher.timers.next_due(), self.triggers.next_due())
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


def _earliest(*moments: datetime | None) -> datetime | None:
    known = [m for m in moments if m is not None]
    return min(known) if known else None


def _queues_options(functions: FunctionIndex) -> QueuesOptions:
    # host.json is read only for its queues section, and only when the app has a queue function.
    if any(info.trigger_type == QUEUE_TRIGGER for info in functions.functions):
        return read_host_json(functions.app_dir).queues
    return QueuesOptions()


def _refuse_config_errors(entries: dict[str, TriggerEntry], functions: FunctionIndex) -> None:
    wrong = [e for e in entries.values() if isinstance(e, NotServed) and e.config_error]
    if wrong:
        listing = "; ".join(f"function {e.info.name!r}: {e.reason}" for e in wrong)
        raise AppLoadError(f"{functions.script_file}: {listing}")


def _needs_client(entries: dict[str, TriggerEntry]) -> bool:
    return any(
        isinstance(e, TimerPlan | QueuePlan) and e.function.client_param is not None for e in entries.values()
    )
