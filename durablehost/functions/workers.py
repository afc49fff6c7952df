"""Where user code runs: as the Functions Python worker runs it, never on the host's event loop.

The worker (azure_functions_runtime 1.3.0, ``handle_event.py`` ``invocation_request``) awaits an
``async def`` function on its own event loop and runs every other function in a thread pool with
``loop.run_in_executor`` (azure-fidelity-notes §3). Orchestrator and entity handles
(``df.Orchestrator.create``, ``df.Entity.create``) are plain functions, so every episode and entity batch
runs on a pool thread with no running event loop — which is what lets code such as the OpenAI Agents
integration's ``Runner.run_sync`` work inside an orchestrator.

In Azure the worker is a process of its own, so user code never holds up the Functions host (its HTTP
server, its leases). durablehost keeps that separation inside one process: sync user code runs on pools
of threads, async user code on a dedicated event loop in a thread of its own, and the host's loop only
awaits them. An ``async def`` that blocks (``time.sleep`` without await) stalls other async user code,
as it stalls the worker in Azure, but not the host.

What one process cannot separate is the GIL: a thread computing in pure Python (a CPU-bound
orchestrator) gives it up to a waiting thread only once the switch interval has passed, and the host's
loop waits for it each time it wakes — several times per answer (accept, request, the SQLite store's
thread handing back a row, response). With CPython's default 5 ms an unrelated status answer took 20 ms
(median) and up to 97 ms while an orchestrator spun; with 1 ms, 10 ms and 40-50 ms
(``bench/responsiveness.py``). Shorter intervals gained little more. Forced switches cost CPU-bound
threads nothing measurable: three threads computing side by side took as long at 1 ms as at 5 ms.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import sys
import threading
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

_T = TypeVar("_T")

# The longest a waiting thread (the host's event loop) waits for a computing thread to give up the GIL.
SWITCH_INTERVAL = 0.001


class UserCode:
    """The thread pools and the event loop that user functions run on."""

    def __init__(self, *, orchestrator_threads: int, activity_threads: int) -> None:
        # Process-wide, so never raised: an embedding process may have chosen shorter (module docstring).
        if sys.getswitchinterval() > SWITCH_INTERVAL:
            sys.setswitchinterval(SWITCH_INTERVAL)
        self.orchestrators = ThreadPoolExecutor(
            max_workers=orchestrator_threads, thread_name_prefix="orchestrator"
        )
        self.activities = ThreadPoolExecutor(max_workers=activity_threads, thread_name_prefix="activity")
        # One thread for the episodes that must not overlap (durablehost.functions.agent_runner).
        self.one_at_a_time = ThreadPoolExecutor(max_workers=1, thread_name_prefix="agent-orchestrator")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._lock = threading.Lock()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop of async user functions (started on first use)."""
        with self._lock:
            if self._loop is None:
                self._thread = threading.Thread(target=self._run_loop, name="user-async", daemon=True)
                self._thread.start()
                self._ready.wait()
            loop = self._loop
        if loop is None:
            raise RuntimeError("the event loop for async user functions did not start")
        return loop

    def _run_loop(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        self._ready.set()
        loop.run_forever()
        loop.close()

    async def run_orchestrator(self, fn: Callable[..., _T], *args: Any, one_at_a_time: bool = False) -> _T:
        """A sync orchestrator episode or entity batch, on a pool thread with no running loop; with
        ``one_at_a_time``, on a thread of its own that runs such episodes in turn."""
        pool = self.one_at_a_time if one_at_a_time else self.orchestrators
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)

    async def run_sync(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """A sync activity or trigger function, on a pool thread (context variables copied)."""
        return await self.submit_sync(fn, *args, **kwargs)

    def submit_sync(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> asyncio.Future[_T]:
        """Submit now (raising at once if the pool is shut down); await the returned future."""
        call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
        return asyncio.get_running_loop().run_in_executor(self.activities, call)

    async def run_async(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        """An async user function, on the user loop; cancelling the await cancels it there."""
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            future.cancel()
            raise

    async def on_user_loop(self, make: Callable[[], Awaitable[None]]) -> None:
        """Await ``make()`` on the user loop, if it ever started (e.g. to close a client created there)."""
        with self._lock:
            loop = self._loop
        if loop is None:
            return

        async def run() -> None:
            await make()

        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(run(), loop))

    def shutdown(self) -> None:
        for pool in (self.orchestrators, self.one_at_a_time, self.activities):
            pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            loop, self._loop = self._loop, None
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)
            if self._thread is not None:
                self._thread.join(timeout=5)
