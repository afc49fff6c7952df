"""The timer listener of one timer function, following ``TimerListener`` (azure-webjobs-sdk-extensions,
``Timers/Listener/TimerListener.cs``; azure-fidelity-notes §4).

* It runs only while this process holds the timer's singleton lease (durablehost.triggers.lease); taking
  the lease is the listener's start, giving up or losing it its stop.
* At start, with the monitor on, the stored status is checked for a missed occurrence
  (``ScheduleMonitor.CheckPastDueAsync``): if one was missed the function runs once at once with
  ``IsPastDue=true``, however many were missed; otherwise ``runOnStartup`` runs it once. Past-due wins.
* Invocations are serialised: the next one is scheduled only after the current one finished, from the
  time it started (or from its scheduled time if the timer fired early), so a run longer than the interval
  is followed immediately by one catch-up run, never by a burst.
* An exception from the function is logged and the schedule continues; the timer trigger never retries.
* With the monitor on, Last/Next/LastUpdated are written after every invocation (best effort: a failure
  is logged, as Azure logs it).

Time is the host's clock: the wall clock under ``durablehost start``, the virtual clock in the test harness,
where ``DurableTestHost.advance`` fires timer triggers in order with durable timers. Leases run in real time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime

from durablehost.engine.clock import Clock
from durablehost.triggers.invoke import Invoke, timer_argument, timer_info_json
from durablehost.triggers.lease import SingletonLease
from durablehost.triggers.monitor import ScheduleMonitor, ScheduleStatus
from durablehost.triggers.options import ListenerTimings
from durablehost.triggers.plan import TimerPlan

log = logging.getLogger("durablehost.triggers")


class TimerListener:
    def __init__(
        self,
        plan: TimerPlan,
        *,
        clock: Clock,
        monitor: ScheduleMonitor,
        lease: SingletonLease,
        timings: ListenerTimings,
        invoke: Invoke,
        errors: list[BaseException],
    ) -> None:
        self.plan = plan
        self.name = plan.function.name
        self.clock = clock
        self.monitor = monitor
        self.lease = lease
        self.timings = timings
        self._invoke = invoke
        self._errors = errors  # unexpected failures of the host's machinery, for the harness to raise
        self._status = ScheduleStatus(last=None, next=None, last_updated=None)
        self._listening = False
        self._busy = False  # an invocation is due, running, or its status not yet recorded
        self._startup: str | None = None  # "past due" or "run on startup", until that invocation ran
        self._interrupt = asyncio.Event()  # lease lost or stopping: no further invocation
        self._stopped = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Take the lease if free and, if taken, start listening; the loop keeps trying otherwise."""
        if await self._try_acquire():
            await self._begin()
        self._task = asyncio.create_task(self._run(), name=f"timer-{self.name}")

    async def stop(self, *, drain: bool = True) -> None:
        """Stop scheduling; with ``drain`` let a running invocation finish. Releases the lease."""
        self._stopped.set()
        self._interrupt.set()
        if self._task is not None:
            if not drain:
                self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._listening = False
        try:
            await self.lease.release()
        except Exception:
            log.exception("timer %s: could not release its lease; it expires by itself", self.name)

    @property
    def active(self) -> bool:
        """This process holds the lease and runs the schedule."""
        return self._listening

    @property
    def next_due(self) -> datetime | None:
        return self._status.next if self._listening else None

    def is_idle(self, now: datetime) -> bool:
        """Nothing to run now: no invocation due, pending or running in this process."""
        if self._busy or self._startup is not None:
            return False
        due = self.next_due
        return due is None or due > now

    # ------------------------------------------------------------------ the loop

    async def _run(self) -> None:
        while not self._stopped.is_set():
            if not self._listening:
                await self._wait_for_lease()
                continue
            renewing = asyncio.create_task(self._keep_lease(), name=f"timer-lease-{self.name}")
            try:
                await self._tick()
            finally:
                renewing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await renewing
            self._listening = False

    async def _wait_for_lease(self) -> None:
        while not self._stopped.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.timings.lease_retry.total_seconds()):
                    await self._stopped.wait()
            if self._stopped.is_set():
                return
            if await self._try_acquire():
                await self._begin()
                return

    async def _try_acquire(self) -> bool:
        try:
            acquired = await self.lease.try_acquire()
        except Exception as exc:
            log.exception("timer %s: could not read its lease; retrying", self.name)
            self._errors.append(exc)
            return False
        if acquired:
            log.info("timer %s: this process runs it (%s)", self.name, self.plan.describe())
        return acquired

    async def _begin(self) -> None:
        """The listener's start (``TimerListener.StartAsync``): status, past-due check, startup run."""
        self._interrupt.clear()
        now = self.clock.now()
        status: ScheduleStatus | None = None
        past_due = False
        if self.plan.use_monitor:
            try:
                stored = await self.monitor.get(self.name)
                status, past_due = await self.monitor.check_past_due(
                    self.name, now, self.plan.schedule, stored
                )
            except Exception as exc:
                log.exception(
                    "timer %s: could not read its schedule status; not checking past due", self.name
                )
                self._errors.append(exc)
        if status is None:
            status = ScheduleStatus(last=None, next=self.plan.schedule.next_after(now), last_updated=None)
        self._status = status
        self._startup = "past due" if past_due else "run on startup" if self.plan.run_on_startup else None
        self._listening = True

    async def _tick(self) -> None:
        if self._startup is not None:
            reason = self._startup
            if reason == "past due":
                log.info(
                    "timer %s is past due (it was due at %s); running it now", self.name, self._status.next
                )
            try:
                await self._fire(past_due=reason == "past due", run_on_startup=reason == "run on startup")
            finally:
                self._startup = None
        while not self._interrupt.is_set():
            due = self._status.next
            if due is None:
                log.warning("timer %s: its schedule has no further occurrence", self.name)
                await self._interrupt.wait()
                return
            if not await self._sleep_until(due):
                return
            await self._fire()

    async def _sleep_until(self, due: datetime) -> bool:
        """Wait for ``due``; False if interrupted first."""
        sleeper = asyncio.create_task(self.clock.sleep_until(due))
        interrupted = asyncio.create_task(self._interrupt.wait())
        try:
            await asyncio.wait({sleeper, interrupted}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            interrupted.cancel()
        return not self._interrupt.is_set()

    async def _fire(self, *, past_due: bool = False, run_on_startup: bool = False) -> None:
        """``TimerListener.InvokeJobFunction``: invoke, then compute and record the next occurrence."""
        self._busy = True
        try:
            invoked_at = self.clock.now()
            shown = self._status if self.plan.use_monitor else None
            info = timer_info_json(
                adjust_for_dst=self.plan.schedule.adjust_for_dst,
                status=shown,
                past_due=past_due,
                zone=self.plan.zone,
            )
            try:
                await self._invoke(self.plan.function, timer_argument(self.plan.function, info))
            except Exception:
                log.exception(
                    "timer function %r failed; the schedule continues (timers are not retried)", self.name
                )
            base = invoked_at
            scheduled = self._status.next
            if not past_due and not run_on_startup and scheduled is not None and scheduled > invoked_at:
                base = scheduled  # fired early: count from the occurrence, not from now
            self._status = ScheduleStatus(
                last=base, next=self.plan.schedule.next_after(base), last_updated=base
            )
            if self.plan.use_monitor:
                try:
                    await self.monitor.update(self.name, self._status)
                except Exception as exc:
                    log.exception("timer %s: could not record its schedule status", self.name)
                    self._errors.append(exc)
        finally:
            self._busy = False

    async def _keep_lease(self) -> None:
        """Renew every third of the lease; on losing it, stop invoking (the current run finishes)."""
        every = self.timings.lease_duration.total_seconds() / 3
        while True:
            await asyncio.sleep(every)
            try:
                kept = await self.lease.renew()
            except Exception:
                log.exception("timer %s: could not renew its lease", self.name)
                expires = self.lease.expires_at
                kept = expires is not None and self.lease.clock.now() < expires
            if not kept:
                log.error("timer %s: lost its lease; another process runs it now", self.name)
                self._interrupt.set()
                return
