"""Failures of an episode outside the orchestrator's own code: retried a bounded number of times.

An exception in the orchestrator's code is the orchestrator's failure: the SDK reports it and the
instance fails at once, as in Azure. What is handled here is everything else that can go wrong on an
episode: the SDK refusing the payload or producing an answer that is not the protocol's (durablehost's
InvocationError), or durablehost's own machinery failing (a bug, a RecursionError on a pathological
value). Such a failure is retried with backoff — it may be passing — and after the last attempt the
instance fails visibly, with a message saying what broke and, for durablehost's own failures, that a
rewind runs it again once the cause is fixed. It is never an endless silent loop, and a draining stop
does not wait for the retries (they are timers on the loop, not work in flight).

The Durable extension fails an orchestration whose function invocation fails without the SDK's state
(TaskOrchestrationShim.InvokeUserCodeAndHandleResults: ``Orchestrator function '<name>' failed:
<message>``); durablehost words an SDK failure the same way, after its bounded retries.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable

log = logging.getLogger("durablehost.dispatcher")


class EpisodeFailures:
    def __init__(
        self,
        *,
        attempts: int,
        backoff: float,
        retry: Callable[[str], None],
        fail: Callable[[str, str], Awaitable[None]],
        report: Callable[[BaseException], None],
        spawn: Callable[[Awaitable[object]], None],
    ) -> None:
        self._attempts = attempts
        self._backoff = backoff
        self._retry = retry
        self._fail = fail
        self._report = report
        self._spawn = spawn
        self._counts: dict[str, int] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}

    @property
    def waiting(self) -> bool:
        """Are retries waiting for their time?"""
        return bool(self._timers)

    def succeeded(self, instance_id: str) -> None:
        self._counts.pop(instance_id, None)

    def failed(self, instance_id: str, problem: Exception, *, sdk: bool) -> None:
        count = self._counts[instance_id] = self._counts.get(instance_id, 0) + 1
        error_id = uuid.uuid4().hex[:8]
        what = "the SDK could not process an episode" if sdk else "durablehost failed on an episode"
        log.error(
            "instance %s: %s (attempt %d of %d, error id %s)",
            instance_id,
            what,
            count,
            self._attempts,
            error_id,
            exc_info=problem,
        )
        self._report(problem)
        old = self._timers.pop(instance_id, None)
        if old is not None:
            old.cancel()
        if count >= self._attempts:
            self._counts.pop(instance_id, None)
            if sdk:
                message = str(problem)
            else:
                message = (
                    f"durablehost failed {count} times to run an episode of this instance: "
                    f"{type(problem).__name__}: {problem} (error id {error_id}; see the host log). Once the "
                    "cause is fixed, rewind the instance to run it again."
                )
            self._spawn(self._fail(instance_id, message))
            return

        def retry() -> None:
            self._timers.pop(instance_id, None)
            self._retry(instance_id)

        delay = self._backoff * 2 ** (count - 1)
        self._timers[instance_id] = asyncio.get_running_loop().call_later(delay, retry)

    def cancel(self) -> None:
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
