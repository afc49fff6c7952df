"""The trigger listeners of one app: started after the engine, stopped before the engine drains.

``durablehost start`` and the test harness both use ``TriggerListeners``: one ``TimerListener`` per timer
function, one ``QueueListener`` per queue function, from the plan (durablehost.triggers.plan). Functions that
durablehost cannot serve are reported, never dropped: ``entries`` keeps a ``NotServed`` for each, including a
queue whose account does not answer at start.

The durable client binding handed to the functions is the JSON of the server that runs beside the
listeners (``durablehost start``'s own, or the harness's loopback listener); the SDK client inside the
function calls its management API over HTTP (protocol §5.1), as in Azure.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime
from typing import Any

from durablehost.engine.clock import Clock
from durablehost.functions.workers import UserCode
from durablehost.store.base import TableStore
from durablehost.triggers.azure_queues import AzureQueue, QueueUnreachable
from durablehost.triggers.invoke import call_trigger_function
from durablehost.triggers.lease import SingletonLease
from durablehost.triggers.monitor import ScheduleMonitor
from durablehost.triggers.options import ListenerTimings
from durablehost.triggers.plan import NotServed, QueuePlan, TimerPlan, TriggerEntry, TriggerFunction
from durablehost.triggers.queue import QueueListener
from durablehost.triggers.timer import TimerListener

log = logging.getLogger("durablehost.triggers")


class TriggerListeners:
    def __init__(
        self,
        entries: dict[str, TriggerEntry],
        *,
        store: TableStore,
        hub: str,
        clock: Clock,
        client_binding: str | None,
        workers: UserCode,
        timings: ListenerTimings | None = None,
    ) -> None:
        needs_client = [
            e.function.name
            for e in entries.values()
            if isinstance(e, TimerPlan | QueuePlan) and e.function.client_param is not None
        ]
        if needs_client and client_binding is None:
            raise ValueError(
                f"functions {needs_client} have a durable client binding but no client JSON was given"
            )
        self.entries = dict(entries)
        self.store = store
        self.control_table = f"{hub}Control"
        self.clock = clock
        self.client_binding = client_binding
        self.workers = workers  # the engine's: trigger functions run where every other function runs
        self.timings = timings or ListenerTimings()
        self.owner = uuid.uuid4().hex[:12]
        self.timers: dict[str, TimerListener] = {}
        self.queues: dict[str, QueueListener] = {}
        self.errors: list[BaseException] = []  # failures of the listeners' machinery (not of user code)

    async def start(self) -> None:
        """Start every listener; a queue whose account does not answer becomes NotServed with the reason."""
        for entry in self.entries.values():
            if isinstance(entry, NotServed) and entry.config_error:
                log.error("function %r is not served: %s", entry.info.name, entry.reason)
            elif isinstance(entry, NotServed) and entry.disabled:
                log.info("function %r is disabled: %s", entry.info.name, entry.reason)
        timers = [e for e in self.entries.values() if isinstance(e, TimerPlan)]
        if timers:
            await self.store.create_table(self.control_table)
        monitor = ScheduleMonitor(self.store, self.control_table)
        for plan in timers:
            lease = SingletonLease(
                self.store, self.control_table, plan.function.name, self.owner, self.timings.lease_duration
            )
            listener = TimerListener(
                plan,
                clock=self.clock,
                monitor=monitor,
                lease=lease,
                timings=self.timings,
                invoke=self._invoke,
                errors=self.errors,
            )
            await listener.start()
            self.timers[plan.function.name] = listener
        for entry in list(self.entries.values()):
            if isinstance(entry, QueuePlan):
                await self._start_queue(entry)

    async def _start_queue(self, plan: QueuePlan) -> None:
        queue = AzureQueue(plan.connection_string, plan.queue_name)
        try:
            await queue.probe(self.timings.probe_timeout)
        except QueueUnreachable as exc:
            await queue.close()
            reason = (
                f"queue '{plan.queue_name}' on {plan.account} (connection {plan.connection_setting}) cannot "
                f"be reached: {exc}; start the storage service or fix the setting, then restart (durablehost "
                "starts Azurite itself only when the task hub is kept there: --store azurite)"
            )
            log.error("function %r is not served: %s", plan.function.name, reason)
            self.entries[plan.function.name] = NotServed(plan.function.info, reason, config_error=False)
            return
        poison = AzureQueue(plan.connection_string, plan.poison_queue) if plan.poison_queue else None
        listener = QueueListener(
            plan, queue=queue, poison=poison, timings=self.timings, invoke=self._invoke, errors=self.errors
        )
        await listener.start()
        self.queues[plan.function.name] = listener
        log.info("function %s: %s", plan.function.name, plan.describe())

    async def stop(self, *, drain: bool = True) -> None:
        """Stop every listener; with ``drain``, invocations in flight finish first."""
        listeners: list[TimerListener | QueueListener] = [*self.timers.values(), *self.queues.values()]
        results = await asyncio.gather(*(x.stop(drain=drain) for x in listeners), return_exceptions=True)
        for listener, result in zip(listeners, results, strict=True):
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                log.error("stopping the listener of %s failed", listener.name, exc_info=result)

    def is_idle(self) -> bool:
        now = self.clock.now()
        return all(t.is_idle(now) for t in self.timers.values()) and all(
            q.is_idle() for q in self.queues.values()
        )

    def next_due(self) -> datetime | None:
        """The earliest next occurrence of a timer this process runs."""
        due = [d for d in (t.next_due for t in self.timers.values()) if d is not None]
        return min(due) if due else None

    async def wait_idle(self, *, timeout: float | None = None) -> None:
        """Wait until no timer is due or running and no queue message is in flight here."""
        async with asyncio.timeout(timeout):
            quiet = 0
            while quiet < 3:
                await asyncio.sleep(0 if quiet else 0.001)
                quiet = quiet + 1 if self.is_idle() else 0

    def describe(self, name: str) -> str | None:
        """The banner text of a function with an entry, None for functions served elsewhere."""
        entry = self.entries.get(name)
        return entry.describe() if entry is not None else None

    async def _invoke(self, fn: TriggerFunction, argument: Any) -> None:
        await call_trigger_function(fn, argument, self.client_binding, workers=self.workers)
