"""The timer's singleton lease on the TableStore: one holder at a time, expiry, renewal, release."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from durablehost.engine.clock import VirtualClock
from durablehost.store import open_store
from durablehost.store.base import TableStore
from durablehost.triggers.lease import LEASE_PARTITION, SingletonLease

TABLE = "LeaseHubControl"
DURATION = timedelta(seconds=15)


@pytest.fixture
async def store() -> AsyncIterator[TableStore]:
    opened = open_store("memory")
    await opened.create_table(TABLE)
    yield opened
    await opened.close()


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(datetime(2024, 1, 1, tzinfo=UTC))


def lease(store: TableStore, clock: VirtualClock, owner: str) -> SingletonLease:
    return SingletonLease(store, TABLE, "tick", owner, DURATION, clock)


async def test_one_holder_at_a_time(store: TableStore, clock: VirtualClock) -> None:
    first, second = lease(store, clock, "a"), lease(store, clock, "b")
    assert await first.try_acquire()
    assert not await second.try_acquire()
    assert first.held and not second.held
    row = await store.get(TABLE, LEASE_PARTITION, "tick")
    assert row["Owner"] == "a" and row["ExpiresAt"] == clock.now() + DURATION


async def test_the_holder_takes_it_again_and_renews(store: TableStore, clock: VirtualClock) -> None:
    first = lease(store, clock, "a")
    assert await first.try_acquire()
    await clock.advance(timedelta(seconds=10))
    assert await first.renew()
    assert await first.try_acquire()
    await clock.advance(timedelta(seconds=10))  # 20 s after the first take, 10 s after the renewal
    assert not await lease(store, clock, "b").try_acquire()


async def test_an_expired_lease_is_taken_over_and_the_old_holder_loses_it(
    store: TableStore, clock: VirtualClock
) -> None:
    first, second = lease(store, clock, "a"), lease(store, clock, "b")
    assert await first.try_acquire()
    await clock.advance(DURATION + timedelta(seconds=1))
    assert await second.try_acquire()
    assert not await first.renew()  # the row's ETag changed: the renewal is refused
    assert not first.held
    assert (await store.get(TABLE, LEASE_PARTITION, "tick"))["Owner"] == "b"


async def test_release_frees_it_at_once_and_only_its_holder_can(
    store: TableStore, clock: VirtualClock
) -> None:
    first, second = lease(store, clock, "a"), lease(store, clock, "b")
    assert await first.try_acquire()
    await second.release()  # not held: nothing happens
    assert not await second.try_acquire()
    await first.release()
    assert await second.try_acquire()


async def test_a_stale_holder_cannot_delete_the_new_lease(store: TableStore, clock: VirtualClock) -> None:
    first, second = lease(store, clock, "a"), lease(store, clock, "b")
    assert await first.try_acquire()
    await clock.advance(DURATION * 2)
    assert await second.try_acquire()
    await first.release()  # its ETag is stale: the delete is refused
    assert (await store.get(TABLE, LEASE_PARTITION, "tick"))["Owner"] == "b"
