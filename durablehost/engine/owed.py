"""Writes the engine owes: retried with backoff until the store takes them.

An activity's outcome, an episode, a fired timer, an entity message, a wake-up for another process: each
is work the engine has promised and nobody else will redo while this process lives. A store outage
(the disk full, a write lock held past the busy timeout, Azure Tables unreachable) must delay such work,
never strand it. So every owed write goes through :func:`until_stored`, which retries
``StoreUnavailable`` with capped exponential backoff forever (until cancelled by a stop) and reports the
outage once: one warning when it starts, one line when the store is back, whatever the number of writes
waiting on it. Only a write that waited on the outage ends it, when it gets an answer: one that succeeds
at its first attempt may never have reached the store (an instance found in the cache), and when only
writes fail (a write lock held past the busy timeout) a read goes through while the outage goes on.

A write that finds the store back wakes the writes still sleeping in their backoff, so they go on at
once instead of up to MAX_DELAY later.

Requests the HTTP edge answers 503 because the store is away are reported here too (:meth:`StoreOutage.
refused`): counted in the recovery line while an outage is known, warned one by one otherwise.

Anything but ``StoreUnavailable`` is not an outage and is raised to the caller: an ETag conflict is the
caller's to resolve, and a bug must surface, not be retried silently.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from durablehost.errors import StoreUnavailable

log = logging.getLogger("durablehost.store")

_T = TypeVar("_T")

FIRST_DELAY = 0.05
MAX_DELAY = 1.0  # the store's return is noticed within a second


class StoreOutage:
    """The health of the store as owed writes see it: one warning per outage, one line when it ends."""

    def __init__(self) -> None:
        self._since: float | None = None
        self._failures = 0
        self._refused = 0
        self._sleeping: set[asyncio.Future[None]] = set()

    @property
    def down(self) -> bool:
        return self._since is not None

    def failed(self, what: str, error: BaseException) -> None:
        self._failures += 1
        if self._since is None:
            self._since = time.monotonic()
            log.warning(
                "storage is unavailable (%s: %s); owed writes are retried until it is back", what, error
            )

    def refused(self, what: str, error: BaseException) -> None:
        """A request was answered 503 because of the store. It does not start an outage (nothing retries
        it, so nothing would see the end of a lone failure): while one is known it is only counted, for
        the line that ends it; otherwise it is warned."""
        if self._since is not None:
            self._refused += 1
            return
        log.warning("storage unavailable on %s: %s (answered 503 with Retry-After)", what, error)

    def succeeded(self) -> None:
        if self._since is None:
            return
        seconds = time.monotonic() - self._since
        failures, refused = self._failures, self._refused
        self._since, self._failures, self._refused = None, 0, 0
        answered = f"; {refused} requests answered 503" if refused else ""
        log.warning(
            "storage is back after %.1f s (%d failed attempts retried%s)", seconds, failures, answered
        )
        for sleeping in self._sleeping:
            sleeping.cancel()  # the others waiting in their backoff try again now

    async def pause(self, delay: float) -> None:
        """Wait ``delay`` seconds before a retry, or until a write finds the store back."""
        sleeping = asyncio.ensure_future(backoff_sleep(delay))
        self._sleeping.add(sleeping)
        try:
            await asyncio.wait({sleeping})  # returns when it is done or cancelled by the store's return
        finally:
            self._sleeping.discard(sleeping)
            sleeping.cancel()  # when this write itself is cancelled (a stop)


async def backoff_sleep(delay: float) -> None:
    """The wait between two attempts (tests put a recording or quicker one in its place)."""
    await asyncio.sleep(delay)


async def until_stored(outage: StoreOutage, what: str, write: Callable[[], Awaitable[_T]]) -> _T:
    """Run ``write`` until it does not raise StoreUnavailable; other errors propagate."""
    delay = FIRST_DELAY
    waited = False
    while True:
        try:
            result = await write()
        except StoreUnavailable as error:
            outage.failed(what, error)
            waited = True
            await outage.pause(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, MAX_DELAY)
            continue
        except Exception:
            if waited:
                outage.succeeded()  # the store answered, with a refusal (a conflict …): it is back
            raise
        if waited:
            outage.succeeded()
        return result
