"""Time as the engine sees it: the wall clock in a server, a virtual clock in tests.

Durable timers wait on the clock rather than on ``asyncio.sleep`` so that a test can jump 14 days ahead
in milliseconds: ``VirtualClock.advance`` moves time and wakes every waiter whose deadline passed.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, tz-aware UTC."""
        ...

    async def sleep_until(self, deadline: datetime) -> None:
        """Return once ``now() >= deadline``; cancellable."""
        ...


class WallClock:
    """Real time."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep_until(self, deadline: datetime) -> None:
        while True:
            remaining = (deadline - self.now()).total_seconds()
            if remaining <= 0:
                return
            await asyncio.sleep(remaining)


class VirtualClock:
    """Time that moves only when a test says so.

    It starts at a fixed moment (so test output is reproducible) and advances by ``advance`` or
    ``set``. Real time does not pass for it.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2024, 1, 1, tzinfo=UTC)
        self._changed = asyncio.Condition()

    def now(self) -> datetime:
        return self._now

    async def sleep_until(self, deadline: datetime) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self._now >= deadline)

    async def advance(self, delta: timedelta) -> None:
        if delta < timedelta(0):
            raise ValueError("a virtual clock cannot go back in time")
        await self.set(self._now + delta)

    async def set(self, moment: datetime) -> None:
        if moment.tzinfo is None:
            raise ValueError("virtual clock times must be timezone-aware")
        if moment < self._now:
            raise ValueError(f"a virtual clock cannot go back in time ({moment} < {self._now})")
        async with self._changed:
            self._now = moment
            self._changed.notify_all()
