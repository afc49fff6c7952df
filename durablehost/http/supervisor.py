"""``durablehost start --workers N``: N worker processes behind one port, supervised.

A Python process uses one core for Python code. Like ``FUNCTIONS_WORKER_PROCESS_COUNT`` in Azure, N worker
processes run the app side by side; each is a full durablehost (HTTP server, management API, engine) and a
member of the task hub, so the hub's partitions are balanced among them (durablehost.engine.ownership)
and every worker serves every request.

The supervisor (this process) reads the configuration, chooses the store (starting Azurite once, if it
must), binds and listens on the port, and starts the workers with the listening socket inherited: the
kernel hands each new connection to one of the processes accepting on it. (Measured against
SO_REUSEPORT sockets and against a front process relaying bytes, bench/workers_bench.py: as good as
SO_REUSEPORT for a connection per request, far cheaper than a relay on 2 cores, but keep-alive
connections opened at once all land on the worker that accepts first.) Each worker
also gets two pipes: one to say it serves (the supervisor waits for every worker before it says the
group is up) and a lifeline: when the supervisor is gone, even killed, the pipe closes and the worker
stops gracefully instead of serving on as an orphan.

Signals: the workers run in a session of their own, so Ctrl-C reaches only the supervisor, which passes
each SIGINT/SIGTERM on as one SIGTERM to every worker: the first one drains (in-flight work finishes,
partitions are handed over), a second one stops at once. A worker that exits while the group runs is
restarted with a log line; one that fails while starting (a bad app, a store that cannot be opened)
stops the group with its exit code, since the next would fail alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from durablehost.errors import AzuriteError, StoreError
from durablehost.http.serve import (
    EXIT_CONFIG,
    EXIT_OK,
    EXIT_STORE,
    LISTEN_BACKLOG,
    StartOptions,
    StartupError,
    WorkerRole,
    bind_socket,
    prepare,
)
from durablehost.http.stores import STORAGE_SETTING, StoreChoice, choose_store

log = logging.getLogger("durablehost.supervisor")

ROLE_VARIABLE = "_DURABLEHOST_WORKER"  # how the supervisor tells a process it is a worker
_RESTART_DELAY = 1.0  # seconds before a worker that died is started again


def role_from_environment() -> WorkerRole | None:
    """The worker role this process was started with, if any (set by the supervisor)."""
    text = os.environ.pop(ROLE_VARIABLE, None)
    if text is None:
        return None
    return WorkerRole(**json.loads(text))


@dataclass
class _Worker:
    index: int
    process: asyncio.subprocess.Process | None = None
    ready: bool = False
    starts: int = 0


async def supervise(options: StartOptions, count: int, argv: Sequence[str]) -> int:
    """Run ``count`` workers of ``durablehost start`` (``argv`` are their arguments) until a signal."""
    prepared = prepare(options)
    spec = options.store if options.store is not None else os.environ.get(STORAGE_SETTING)
    if spec is not None and spec.strip() == "memory":
        raise StartupError(
            "--store memory cannot be shared by several workers (each process would have its own); use "
            "sqlite:PATH or Azurite, or --workers 1",
            EXIT_CONFIG,
        )
    try:
        # Here rather than in each worker: one of them would start Azurite and the others would race it.
        choice = await choose_store(options.store, os.environ.get(STORAGE_SETTING), prepared.app_dir)
    except ValueError as exc:
        raise StartupError(str(exc), EXIT_CONFIG) from exc
    except (AzuriteError, StoreError) as exc:
        raise StartupError(f"cannot open the store: {exc}", EXIT_STORE) from exc
    sock = bind_socket(options.host, prepared.port)
    try:
        await choice.store.close()  # the workers open their own; an Azurite started here keeps running
        sock.listen(LISTEN_BACKLOG)
        return await _Group(count, argv, sock).run()
    finally:
        sock.close()
        await _stop_azurite(choice)


async def _stop_azurite(choice: StoreChoice) -> None:
    if choice.azurite is not None:
        await choice.azurite.stop_async()


class _Group:
    def __init__(self, count: int, argv: Sequence[str], sock: socket.socket) -> None:
        self._count = count
        self._argv = list(argv)
        self._sock = sock
        self._workers = [_Worker(i) for i in range(count)]
        self._stopping = False
        self._failure: int | None = None
        self._signals = 0
        self._changed = asyncio.Event()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal)
        watchers = [asyncio.create_task(self._keep(worker)) for worker in self._workers]
        try:
            await asyncio.gather(*watchers)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            for watcher in watchers:
                watcher.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)
        return self._failure if self._failure is not None else EXIT_OK

    def _on_signal(self) -> None:
        self._signals += 1
        if self._signals == 1:
            log.info(
                "stopping %d workers: they finish in-flight work (signal again to stop at once)", self._count
            )
        self._stopping = True
        for worker in self._workers:
            process = worker.process
            if process is not None and process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)

    async def _keep(self, worker: _Worker) -> None:
        """Run one worker, and again whenever it dies while the group runs."""
        while not self._stopping:
            code = await self._run_once(worker)
            if self._stopping:
                return
            if not worker.ready:
                # It failed while starting: so would the next. Stop the group with its exit code.
                log.error("worker w%d failed to start (exit code %s); stopping", worker.index + 1, code)
                self._failure = code if code and code > 0 else EXIT_STORE
                self._on_signal()
                return
            log.warning(
                "worker w%d (pid %s) exited with code %s; starting a new one",
                worker.index + 1,
                _pid(worker),
                code,
            )
            await asyncio.sleep(_RESTART_DELAY)

    async def _run_once(self, worker: _Worker) -> int | None:
        ready_read, ready_write = os.pipe()
        lifeline_read, lifeline_write = os.pipe()
        role = WorkerRole(
            index=worker.index,
            count=self._count,
            listen_fd=self._sock.fileno(),
            ready_fd=ready_write,
            lifeline_fd=lifeline_read,
            restarted=worker.starts > 0,
        )
        worker.starts += 1
        worker.ready = False
        env = {**os.environ, ROLE_VARIABLE: json.dumps(asdict(role))}
        try:
            worker.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "durablehost",
                *self._argv,
                env=env,
                pass_fds=(self._sock.fileno(), ready_write, lifeline_read),
                start_new_session=True,  # terminal signals go to the supervisor, which passes them on
            )
        finally:
            os.close(ready_write)
            os.close(lifeline_read)
        ready = asyncio.create_task(_read_ready(ready_read))
        exited = asyncio.create_task(worker.process.wait())
        try:
            await asyncio.wait({ready, exited}, return_when=asyncio.FIRST_COMPLETED)
            if ready.done() and ready.result():
                worker.ready = True
            return await exited
        finally:
            ready.cancel()
            os.close(ready_read)
            os.close(lifeline_write)  # the worker's lifeline: it is gone anyway, or must go


async def _read_ready(fd: int) -> bool:
    """True once the worker writes that it serves; False if the pipe closes first."""
    loop = asyncio.get_running_loop()
    os.set_blocking(fd, False)
    received = asyncio.Event()
    data = bytearray()

    def readable() -> None:
        try:
            chunk = os.read(fd, 64)
        except BlockingIOError:
            return
        data.extend(chunk)
        if not chunk or b"\n" in data:
            received.set()

    loop.add_reader(fd, readable)
    try:
        await received.wait()
    finally:
        loop.remove_reader(fd)
    return data.startswith(b"ready")


def _pid(worker: _Worker) -> str:
    return str(worker.process.pid) if worker.process is not None else "?"
