"""Owed writes (durablehost.engine.owed): ``until_stored`` retries StoreUnavailable with capped exponential
backoff until the store takes the write, reports an outage once however many writes wait on it, and
lets every other error through at once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from durablehost.engine import owed
from durablehost.engine.owed import FIRST_DELAY, MAX_DELAY, StoreOutage, until_stored
from durablehost.errors import EtagMismatch, StoreUnavailable
from durablehost.store import open_store
from durablehost.store.base import TableStore
from tests.support.faults import WRITES, FaultyStore


class Sleeps:
    """Stands in for owed.backoff_sleep: records each backoff and yields to the loop once."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self._real = asyncio.sleep

    async def sleep(self, delay: float) -> None:
        self.delays.append(delay)
        await self._real(0)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> Sleeps:
    recorder = Sleeps()
    monkeypatch.setattr(owed, "backoff_sleep", recorder.sleep)
    return recorder


def failing(
    times: int, result: str = "stored", error: Exception | None = None
) -> Callable[[], Awaitable[str]]:
    """A write that raises ``error`` (StoreUnavailable by default) ``times`` times, then succeeds."""
    calls = {"n": 0}

    async def write() -> str:
        calls["n"] += 1
        if calls["n"] <= times:
            raise error or StoreUnavailable(f"down (call {calls['n']})")
        return result

    write.calls = calls  # type: ignore[attr-defined]
    return write


def _outage_lines(caplog: pytest.LogCaptureFixture) -> tuple[list[str], list[str]]:
    messages = [r.getMessage() for r in caplog.records if r.name == "durablehost.store"]
    down = [m for m in messages if m.startswith("storage is unavailable")]
    return down, [m for m in messages if m.startswith("storage is back")]


async def test_a_write_that_succeeds_is_done_once_and_reports_nothing(
    sleeps: Sleeps, caplog: pytest.LogCaptureFixture
) -> None:
    outage = StoreOutage()
    write = failing(0)
    assert await until_stored(outage, "writing", write) == "stored"
    assert write.calls["n"] == 1 and sleeps.delays == []  # type: ignore[attr-defined]
    assert _outage_lines(caplog) == ([], []) and not outage.down


async def test_the_backoff_doubles_from_the_first_delay_and_is_capped(sleeps: Sleeps) -> None:
    write = failing(8)
    assert await until_stored(StoreOutage(), "writing", write) == "stored"
    assert write.calls["n"] == 9  # type: ignore[attr-defined]
    nominal = [0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0]
    assert (FIRST_DELAY, MAX_DELAY) == (0.05, 1.0)
    assert len(sleeps.delays) == len(nominal)
    # Each delay is jittered by ±20 % around its nominal value, so retries of many writes spread out.
    for delay, expected in zip(sleeps.delays, nominal, strict=True):
        assert 0.8 * expected <= delay <= 1.2 * expected


async def test_an_outage_is_reported_once_and_its_end_once(
    sleeps: Sleeps, caplog: pytest.LogCaptureFixture
) -> None:
    """Three writes wait on one outage (a store that refuses its next 7 requests, whoever sends them)."""
    caplog.set_level(logging.WARNING, "durablehost.store")
    outage = StoreOutage()
    refusals = {"left": 7}

    def write(n: int) -> Callable[[], Awaitable[str]]:
        async def attempt() -> str:
            if refusals["left"] > 0:
                refusals["left"] -= 1
                raise StoreUnavailable("down")
            return f"stored {n}"

        return attempt

    results = await asyncio.gather(*(until_stored(outage, f"write {n}", write(n)) for n in range(3)))
    assert results == ["stored 0", "stored 1", "stored 2"]
    down, back = _outage_lines(caplog)
    assert len(down) == 1 and "write 0: down" in down[0]
    assert back == [back[0]] and "(7 failed attempts retried)" in back[0]
    assert not outage.down


async def test_a_second_outage_is_reported_again(sleeps: Sleeps, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "durablehost.store")
    outage = StoreOutage()
    await until_stored(outage, "first", failing(2))
    await until_stored(outage, "second", failing(1))
    down, back = _outage_lines(caplog)
    assert len(down) == 2 and len(back) == 2
    assert "(2 failed attempts retried)" in back[0] and "(1 failed attempts retried)" in back[1]


async def _waiting_on(outage: StoreOutage) -> tuple[asyncio.Future[str], asyncio.Event]:
    """An owed write under way that has failed once and fails until the returned gate is set."""
    gate, failed_once = asyncio.Event(), asyncio.Event()

    async def waiting() -> str:
        if not gate.is_set():
            failed_once.set()
            raise StoreUnavailable("down")
        return "stored"

    task = asyncio.ensure_future(until_stored(outage, "waiting", waiting))
    await failed_once.wait()
    return task, gate


async def test_a_write_answered_without_the_store_does_not_end_an_outage(
    sleeps: Sleeps, caplog: pytest.LogCaptureFixture
) -> None:
    """An owed read served from memory (an instance found in the cache) succeeds at its first attempt
    while the store is still down: it says nothing about the store. Only a write that waited on the
    outage and then got through ends it (bench/outage.py saw 8 warnings and 8 recovery lines in one
    20 s outage, each cache hit "ending" it)."""
    caplog.set_level(logging.WARNING, "durablehost.store")
    outage = StoreOutage()

    async def from_memory() -> str:
        return "cached"

    task, gate = await _waiting_on(outage)
    for _ in range(3):
        assert await until_stored(outage, "a cache hit", from_memory) == "cached"
        assert outage.down
    gate.set()
    assert await task == "stored" and not outage.down
    down, back = _outage_lines(caplog)
    assert len(down) == 1 and len(back) == 1


async def test_requests_refused_during_an_outage_are_counted_and_others_warned(
    sleeps: Sleeps, caplog: pytest.LogCaptureFixture
) -> None:
    """The HTTP edge reports each 503 it answers: silent while an outage is known (its end counts them),
    a warning each otherwise. A refusal starts no outage: nothing retries it, so nothing would end it."""
    caplog.set_level(logging.WARNING, "durablehost.store")
    outage = StoreOutage()
    outage.refused("GET /a", StoreUnavailable("locked"))
    assert not outage.down
    task, gate = await _waiting_on(outage)
    for n in range(4):
        outage.refused(f"POST /b/{n}", StoreUnavailable("down"))
    gate.set()
    await task
    outage.refused("GET /c", StoreUnavailable("locked again"))
    messages = [r.getMessage() for r in caplog.records if r.name == "durablehost.store"]
    refusals = [m for m in messages if m.startswith("storage unavailable on")]
    assert refusals == [
        "storage unavailable on GET /a: locked (answered 503 with Retry-After)",
        "storage unavailable on GET /c: locked again (answered 503 with Retry-After)",
    ]
    down, back = _outage_lines(caplog)
    assert len(down) == 1 and len(back) == 1 and back[0].endswith("; 4 requests answered 503)")


async def test_the_outage_is_down_while_writes_are_failing(sleeps: Sleeps) -> None:
    outage = StoreOutage()
    gate, third = asyncio.Event(), asyncio.Event()
    calls = {"n": 0}

    async def write() -> str:
        calls["n"] += 1
        if calls["n"] == 3:
            third.set()
        if not gate.is_set():
            raise StoreUnavailable("down")
        return "ok"

    task = asyncio.ensure_future(until_stored(outage, "writing", write))
    await third.wait()
    assert outage.down and not task.done()
    gate.set()
    assert await task == "ok" and not outage.down


@pytest.mark.parametrize(
    "error", [EtagMismatch("T", "p", "r"), ValueError("a bug"), KeyError("x")], ids=lambda e: type(e).__name__
)
async def test_other_errors_are_raised_at_once_without_a_retry(sleeps: Sleeps, error: Exception) -> None:
    write = failing(1, error=error)
    with pytest.raises(type(error)):
        await until_stored(StoreOutage(), "writing", write)
    assert write.calls["n"] == 1 and sleeps.delays == []  # type: ignore[attr-defined]


async def test_an_error_after_an_outage_is_raised_too(sleeps: Sleeps) -> None:
    calls = {"n": 0}

    async def write() -> str:
        calls["n"] += 1
        if calls["n"] < 3:
            raise StoreUnavailable("down")
        raise EtagMismatch("T", "p", "r")

    outage = StoreOutage()
    with pytest.raises(EtagMismatch):
        await until_stored(outage, "writing", write)
    assert calls["n"] == 3 and len(sleeps.delays) == 2
    assert not outage.down  # the store answered (with a refusal): it is back


async def test_a_stop_cancels_a_write_waiting_for_the_store() -> None:
    """Real sleeps here: cancelling the backoff ends the wait (a stopping host does not hang)."""

    async def down() -> None:
        raise StoreUnavailable("down")

    task = asyncio.ensure_future(until_stored(StoreOutage(), "writing", down))
    await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_the_store_s_return_wakes_the_writes_sleeping_in_their_backoff() -> None:
    """Real sleeps: one write that finds the store back lets another, in a long backoff, go on at once."""
    store_up = False
    attempts: list[float] = []
    loop = asyncio.get_running_loop()
    long_backoff = asyncio.Event()

    async def write() -> str:
        attempts.append(loop.time())
        if len(attempts) == 6:  # its backoff has grown to 0.8 s and more
            long_backoff.set()
        if not store_up:
            raise StoreUnavailable("down")
        return "stored"

    outage = StoreOutage()
    sleeper = asyncio.ensure_future(until_stored(outage, "sleeper", write))
    await long_backoff.wait()
    store_up = True
    came_back = loop.time()
    assert await until_stored(outage, "a write that waited", failing(1)) == "stored"
    assert await asyncio.wait_for(sleeper, 0.3) == "stored"  # not after the rest of its 0.8-1.6 s backoff
    assert attempts[-1] - came_back < 0.3


@pytest.fixture
async def store(engine_store: TableStore | None) -> AsyncIterator[TableStore]:
    the_store = engine_store or open_store("memory")
    await the_store.create_table("Owed")
    yield the_store
    await the_store.close()


async def test_a_write_to_a_failing_real_store_lands_once_it_heals(store: TableStore, sleeps: Sleeps) -> None:
    faulty = FaultyStore(store)
    faulty.fail(WRITES, times=4)
    outage = StoreOutage()
    etag = await until_stored(outage, "upsert", lambda: faulty.upsert("Owed", "p", "r", {"Value": 7}))
    assert etag and faulty.failures == 4 and len(sleeps.delays) == 4
    assert (await store.get("Owed", "p", "r"))["Value"] == 7
