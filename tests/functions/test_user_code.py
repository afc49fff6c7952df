"""Where user code runs (durablehost.functions.workers.UserCode), as the Functions Python worker runs it:
sync functions on pool threads with no running event loop, async ones on one event loop of their own in
its own thread, never on the host's loop; cancelling the host's await cancels the user coroutine; a
shutdown stops all of it."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections.abc import Iterator

import pytest

from durablehost.functions.workers import UserCode

REQUEST = contextvars.ContextVar("request", default="none")


@pytest.fixture
def user() -> Iterator[UserCode]:
    code = UserCode(orchestrator_threads=2, activity_threads=2)
    yield code
    code.shutdown()


def _where() -> tuple[str, bool]:
    """The current thread's name, and whether an event loop is running in it."""
    try:
        asyncio.get_running_loop()
        running = True
    except RuntimeError:
        running = False
    return threading.current_thread().name, running


async def test_an_episode_runs_on_an_orchestrator_thread_with_no_running_loop(user: UserCode) -> None:
    name, running = await user.run_orchestrator(_where)
    assert name.startswith("orchestrator") and not running
    assert name != threading.current_thread().name


async def test_a_sync_activity_runs_on_an_activity_thread_with_the_callers_context(user: UserCode) -> None:
    REQUEST.set("req-1")

    def activity(suffix: str, *, twice: bool) -> tuple[str, bool, str]:
        name, running = _where()
        return name, running, REQUEST.get() + suffix * (2 if twice else 1)

    name, running, seen = await user.run_sync(activity, "!", twice=True)
    assert name.startswith("activity") and not running and seen == "req-1!!"


async def test_an_async_function_runs_on_the_user_loop_not_the_hosts(user: UserCode) -> None:
    host_loop = asyncio.get_running_loop()

    async def activity() -> tuple[str, bool]:
        return threading.current_thread().name, asyncio.get_running_loop() is host_loop

    name, on_host_loop = await user.run_async(activity())
    assert name == "user-async" and not on_host_loop
    assert user.loop is user.loop  # one loop, started once


async def test_an_exception_in_user_code_reaches_the_caller(user: UserCode) -> None:
    def sync_fails() -> None:
        raise ValueError("sync boom")

    async def async_fails() -> None:
        raise KeyError("async boom")

    with pytest.raises(ValueError, match="sync boom"):
        await user.run_sync(sync_fails)
    with pytest.raises(ValueError, match="sync boom"):
        await user.run_orchestrator(sync_fails)
    with pytest.raises(KeyError, match="async boom"):
        await user.run_async(async_fails())


async def test_blocking_user_code_does_not_block_the_host_loop(user: UserCode) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.005)

    async def blocking_async() -> None:
        time.sleep(0.1)  # noqa: ASYNC251 - an async def that blocks: it stalls the user loop, not ours

    running = asyncio.ensure_future(ticker())
    await asyncio.gather(
        user.run_orchestrator(time.sleep, 0.1),
        user.run_sync(time.sleep, 0.1),
        user.run_async(blocking_async()),
    )
    running.cancel()
    assert ticks >= 5  # the host's loop went on meanwhile


async def test_cancelling_the_hosts_await_cancels_the_user_coroutine(user: UserCode) -> None:
    started, cancelled = threading.Event(), threading.Event()

    async def long_running() -> None:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    waiting = asyncio.ensure_future(user.run_async(long_running()))
    await asyncio.to_thread(started.wait, 5)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert await asyncio.to_thread(cancelled.wait, 5)


async def test_on_user_loop_runs_there_once_the_loop_exists_and_otherwise_nothing(user: UserCode) -> None:
    seen: list[str] = []

    async def close_client() -> None:
        seen.append(threading.current_thread().name)

    await user.on_user_loop(close_client)  # the user loop never started: nothing to close there
    assert seen == []
    await user.run_async(asyncio.sleep(0))
    await user.on_user_loop(close_client)
    assert seen == ["user-async"]


async def test_shutdown_stops_the_pools_and_the_user_loop() -> None:
    user = UserCode(orchestrator_threads=1, activity_threads=1)
    await user.run_async(asyncio.sleep(0))
    thread = next(t for t in threading.enumerate() if t.name == "user-async")
    loop = user.loop
    user.shutdown()
    assert not thread.is_alive() and loop.is_closed()
    with pytest.raises(RuntimeError):
        user.submit_sync(print, "never")  # raises at once: nobody is left to run it
    with pytest.raises(RuntimeError):
        await user.run_orchestrator(print, "never")


async def test_shutdown_cancels_work_still_queued(user: UserCode) -> None:
    release = threading.Event()
    busy = user.submit_sync(release.wait, 5)  # both activity threads busy …
    also_busy = user.submit_sync(release.wait, 5)
    queued = user.submit_sync(lambda: "ran")
    await asyncio.sleep(0.01)
    user.shutdown()
    release.set()
    await asyncio.gather(busy, also_busy)
    with pytest.raises(asyncio.CancelledError):
        await queued
