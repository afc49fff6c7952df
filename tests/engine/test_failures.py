"""Episode failures outside the orchestrator's code (durablehost.engine.failures.EpisodeFailures): retried
a bounded number of times with doubling backoff, then the instance fails with a message that says what
broke, worded as the extension words an SDK failure, or saying that a rewind runs it again."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable

import pytest

from durablehost.engine.failures import EpisodeFailures
from durablehost.errors import InvocationError


class Recorder:
    """What EpisodeFailures calls back: retries (with their loop time), failures, reports, spawns."""

    def __init__(self, attempts: int = 3, backoff: float = 0.01) -> None:
        self.retries: list[tuple[str, float]] = []
        self.failed: list[tuple[str, str]] = []
        self.reported: list[BaseException] = []
        self.spawned: list[asyncio.Task[object]] = []
        self.failures = EpisodeFailures(
            attempts=attempts,
            backoff=backoff,
            retry=self._retry,
            fail=self._fail,
            report=self.reported.append,
            spawn=self._spawn,
        )

    def _retry(self, instance_id: str) -> None:
        self.retries.append((instance_id, asyncio.get_running_loop().time()))

    async def _fail(self, instance_id: str, message: str) -> None:
        self.failed.append((instance_id, message))

    def _spawn(self, work: Awaitable[object]) -> None:
        self.spawned.append(asyncio.ensure_future(work))

    async def retried(self, count: int) -> None:
        async with asyncio.timeout(5):
            while len(self.retries) < count:  # noqa: ASYNC110 - waiting for the loop's own timers
                await asyncio.sleep(0.001)


async def test_failures_are_retried_with_doubling_backoff_then_fail_the_instance() -> None:
    calls = Recorder(attempts=4, backoff=0.02)
    loop = asyncio.get_running_loop()
    delays = []
    for attempt in range(1, 4):
        start = loop.time()
        calls.failures.failed("i1", RuntimeError("boom"), sdk=False)
        assert calls.failures.waiting
        await calls.retried(attempt)
        delays.append(calls.retries[-1][1] - start)
        assert not calls.failures.waiting
    for attempt, delay in enumerate(delays, start=1):
        assert 0.02 * 2 ** (attempt - 1) <= delay < 0.02 * 2 ** (attempt - 1) + 0.5, delays
    assert calls.failed == []
    calls.failures.failed("i1", RuntimeError("boom"), sdk=False)  # the fourth: no more retries
    await asyncio.gather(*calls.spawned)
    assert [instance for instance, _ in calls.failed] == ["i1"] and len(calls.retries) == 3
    assert not calls.failures.waiting and len(calls.reported) == 4


async def test_the_final_message_of_a_host_failure_says_what_broke_and_to_rewind(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = Recorder(attempts=2)
    calls.failures.failed("i1", KeyError("lost"), sdk=False)
    calls.failures.failed("i1", RecursionError("too deep"), sdk=False)
    await asyncio.gather(*calls.spawned)
    [(_, message)] = calls.failed
    match = re.fullmatch(
        r"durablehost failed 2 times to run an episode of this instance: RecursionError: too deep "
        r"\(error id ([0-9a-f]{8}); see the host log\)\. Once the cause is fixed, rewind the instance to run "
        r"it again\.",
        message,
    )
    assert match is not None, message
    # The error id leads from the instance's output to the log line with the traceback.
    logged = [r for r in caplog.records if r.levelno == logging.ERROR and match.group(1) in r.getMessage()]
    assert len(logged) == 1 and "attempt 2 of 2" in logged[0].getMessage() and logged[0].exc_info


async def test_the_final_message_of_an_sdk_failure_is_the_sdks() -> None:
    calls = Recorder(attempts=1)
    problem = InvocationError("orchestrator 'chain' could not process its payload: KeyError: 'Version'")
    calls.failures.failed("i1", problem, sdk=True)
    await asyncio.gather(*calls.spawned)
    assert calls.failed == [("i1", str(problem))] and calls.retries == []


async def test_a_success_starts_the_count_again() -> None:
    calls = Recorder(attempts=2)
    calls.failures.failed("i1", RuntimeError("once"), sdk=False)
    await calls.retried(1)
    calls.failures.succeeded("i1")
    calls.failures.failed("i1", RuntimeError("again"), sdk=False)  # attempt 1 again, not 2
    await calls.retried(2)
    assert calls.failed == []


async def test_counts_are_per_instance() -> None:
    calls = Recorder(attempts=2)
    calls.failures.failed("a", RuntimeError("x"), sdk=False)
    calls.failures.failed("b", RuntimeError("y"), sdk=False)
    await calls.retried(2)
    assert sorted(i for i, _ in calls.retries) == ["a", "b"] and calls.failed == []
    calls.failures.failed("a", RuntimeError("x"), sdk=False)
    await asyncio.gather(*calls.spawned)
    assert [i for i, _ in calls.failed] == ["a"]


async def test_a_new_failure_replaces_the_waiting_retry() -> None:
    calls = Recorder(attempts=5, backoff=0.05)
    calls.failures.failed("i1", RuntimeError("first"), sdk=False)
    calls.failures.failed("i1", RuntimeError("second"), sdk=False)  # before the first retry fired
    await calls.retried(1)
    await asyncio.sleep(0.15)
    assert len(calls.retries) == 1  # one retry, not one per failure


async def test_cancel_drops_every_waiting_retry() -> None:
    calls = Recorder(backoff=0.01)
    calls.failures.failed("a", RuntimeError("x"), sdk=False)
    calls.failures.failed("b", RuntimeError("y"), sdk=False)
    calls.failures.cancel()
    assert not calls.failures.waiting
    await asyncio.sleep(0.05)
    assert calls.retries == []
