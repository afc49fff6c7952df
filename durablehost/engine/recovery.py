"""What a process does when it gains or loses a partition, and the sweep that catches what was missed.

Gaining a partition (at start-up, from a process that stopped or died, or handed over by a busier one)
resumes every unfinished instance in it: scheduled activities run again (at least once), timers are
re-armed, episodes run, and instances that finished just before a crash get their bookkeeping (their
parent's outcome, their marker) finished. Losing one drains it first when the hand-over is graceful —
running episodes commit, activities finish and their outcomes are stored — then forgets its instances.
The sweep looks at every owned instance now and then: an instance whose wake-up was lost, or whose work
an earlier failure left neither queued nor running, is picked up again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import timedelta
from typing import Protocol

from durablehost.engine.cache import InstanceCache
from durablehost.engine.clock import WallClock
from durablehost.engine.control import ControlTable
from durablehost.engine.episode import InstanceState
from durablehost.engine.outcomes import HeldOutcomes
from durablehost.engine.owed import StoreOutage, until_stored
from durablehost.engine.records import InstanceRecord
from durablehost.engine.timers import TimerQueue

log = logging.getLogger("durablehost.recovery")

# How long a creator may take between writing an instance's active marker and its instance row.
ORPHAN_GRACE = timedelta(minutes=5)
_CONCURRENT_LOADS = 16


class RecoveryHost(Protocol):
    """What recovery needs from the dispatcher."""

    cache: InstanceCache
    control: ControlTable
    outcomes: HeldOutcomes
    timers: TimerQueue
    outage: StoreOutage

    def may_start(self, instance_id: str) -> bool: ...

    def partition(self, instance_id: str) -> int: ...

    def schedule(self, instance_id: str) -> None: ...

    def resume_tasks(self, state: InstanceState) -> None: ...

    def busy_with(self, mine: Callable[[str], bool]) -> bool: ...

    def spawn(self, work: Awaitable[object]) -> None: ...

    def publish(self, record: InstanceRecord) -> None: ...

    async def after_finish(self, state: InstanceState) -> None: ...

    async def refresh(self, instance_id: str) -> None: ...


class Recovery:
    def __init__(self, host: RecoveryHost, *, drain_timeout: float) -> None:
        self._host = host
        self._drain_timeout = drain_timeout

    async def acquired(self, partition: int) -> None:
        self._host.spawn(self.recover(partition))

    async def recover(self, partition: int) -> None:
        """Resume every unfinished instance of a partition."""
        host = self._host
        ids = await until_stored(
            host.outage, "listing active instances", lambda: host.control.list_active(partition)
        )
        limit = asyncio.Semaphore(_CONCURRENT_LOADS)

        async def recover(instance_id: str) -> None:
            async with limit:
                if not host.may_start(instance_id):
                    return
                state = await until_stored(
                    host.outage, "loading an instance", lambda: host.cache.load(instance_id)
                )
                if state is None:
                    # A marker without an instance: its creator crashed between the two writes, or is
                    # between them right now (the marker goes first). Only an old one is an orphan.
                    older_than = WallClock().now() - ORPHAN_GRACE
                    await until_stored(
                        host.outage,
                        "removing an orphan marker",
                        lambda: host.control.remove_orphan_marker(
                            partition, instance_id, older_than=older_than
                        ),
                    )
                    return
                # The index may lag after a crash (it is written after the instance row); a finished
                # instance's copy is written by after_finish, before its marker goes.
                if state.record.status.is_finished:
                    await host.after_finish(state)
                    return
                host.publish(state.record)
                host.resume_tasks(state)
                host.schedule(instance_id)

        await asyncio.gather(*(recover(instance_id) for instance_id in ids))

    async def resumed(self, partition: int) -> None:
        """The lease lapsed (renewals failed) and was renewed: pick up what waited meanwhile."""
        for state in self._host.cache.cached():
            instance_id = state.record.instance_id
            if self._host.partition(instance_id) == partition:
                self._host.resume_tasks(state)
                self._host.schedule(instance_id)

    async def released(self, partition: int, graceful: bool) -> None:
        """Stop working on a partition: drain it (graceful), then forget its instances."""
        host = self._host

        def mine(instance_id: str) -> bool:
            return host.partition(instance_id) == partition

        if graceful:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._drain_timeout):
                    while host.busy_with(mine):  # noqa: ASYNC110 - several kinds of work to watch
                        await asyncio.sleep(0.01)
                    # The next owner's index copies must not be overtaken by this process's lingering ones.
                    await host.control.flush()
        for instance_id in host.outcomes.instances():
            if mine(instance_id):
                host.spawn(host.outcomes.store_directly(instance_id))
        host.cache.drop_where(mine)
        for key in host.timers.keys():
            if mine(key.instance_id):
                host.timers.cancel(key)

    async def sweep(self, partitions: Iterable[int]) -> None:
        """Catch instances that are not cached (a lost wake-up) and cached ones whose work is neither
        queued nor running (an earlier failure)."""
        host = self._host
        for partition in partitions:
            for instance_id in await host.control.list_active(partition):
                if instance_id not in host.cache:
                    await host.refresh(instance_id)
        for state in host.cache.cached():
            instance_id = state.record.instance_id
            if not host.may_start(instance_id) or state.record.status.is_finished:
                continue
            host.resume_tasks(state)
            if state.has_work() or host.outcomes.pending(instance_id):
                host.schedule(instance_id)
