"""``durablehost start``: configuration, store, engine and HTTP server, from startup to a drained exit.

Order matters for clear failures and untouched state: the port is bound (not yet listening) first, so a
busy port fails before the app is imported or any store is opened; the app is loaded before the store is
opened; the engine starts before the server listens, and the timer and queue listeners
(durablehost.triggers) once it listens, since their functions call its management API. On SIGINT/SIGTERM
the trigger listeners stop (invocations in flight finish), the HTTP listeners close, in-flight requests
finish, the engine drains (``stop(drain=True)``), the store closes. A second signal stops without
draining.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import json
import logging
import os
import signal
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest

from durablehost.engine.clock import WallClock
from durablehost.engine.dispatcher import DispatcherOptions
from durablehost.engine.fidelity import Fidelity
from durablehost.engine.host import DurableHost
from durablehost.engine.versioning import Versioning
from durablehost.errors import AppLoadError, AzuriteError, DurableHostError, StoreError
from durablehost.functions import FunctionIndex, load_app
from durablehost.http.appconfig import (
    ConfigError,
    HostJson,
    apply_settings,
    read_host_json,
    read_local_settings,
    validate_hub_name,
)
from durablehost.http.common import DEFAULT_MAX_BODY, MANAGEMENT_PREFIX, ServerSettings, client_binding
from durablehost.http.keys import KeyConfigError, Keys
from durablehost.http.listing import function_lines
from durablehost.http.server import build_app
from durablehost.http.stores import STORAGE_SETTING, StoreChoice, choose_store
from durablehost.http.triggers import TriggerTable
from durablehost.triggers.listeners import TriggerListeners
from durablehost.triggers.plan import TriggerEntry, plan_triggers
from durablehost.viewer import VIEWER_PREFIX

log = logging.getLogger("durablehost")

DEFAULT_PORT = 7071
DEFAULT_BIND = "127.0.0.1"

# Exit codes of `durablehost start`, documented in the CLI help.
EXIT_OK = 0
EXIT_CONFIG = 2  # bad arguments, settings, host.json, store spec or keys
EXIT_APP = 3  # the app cannot be loaded
EXIT_PORT = 4  # the port cannot be bound
EXIT_STORE = 5  # the store (or Azurite) cannot be opened


class StartupError(Exception):
    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class WorkerRole:
    """This process is worker ``index`` (0-based) of ``count`` behind one port (durablehost.http.workers):
    it serves the listening socket it inherited, says on ``ready_fd`` that it serves, and stops when
    ``lifeline_fd`` closes (its supervisor is gone)."""

    index: int
    count: int
    listen_fd: int
    ready_fd: int
    lifeline_fd: int
    restarted: bool = False

    @property
    def label(self) -> str:
        return f"w{self.index + 1}"


@dataclass(frozen=True)
class StartOptions:
    app_dir: Path
    host: str = DEFAULT_BIND
    port: int | None = None
    store: str | None = None
    task_hub: str | None = None
    max_body: int = DEFAULT_MAX_BODY
    fidelity: Fidelity | None = None  # --fidelity; None: host.json's durablehost.fidelity
    worker: WorkerRole | None = None  # set in the worker processes of `--workers N`


class _AccessLogger(AbstractAccessLogger):
    """Method, path and status only: the query string may hold a key (``code=``) and is never logged."""

    def log(self, request: BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info("%s %s -> %s (%.0f ms)", request.method, request.path, response.status, time * 1000)


# Connections the kernel queues before they are accepted: a burst of clients (100 starts at once) must
# not be refused or wait for SYN retries. aiohttp's own default (128) would apply on every (re)listen.
LISTEN_BACKLOG = 1024


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind without listening: the port is ours, but no connection is accepted before we serve."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise StartupError(f"cannot resolve the address {host!r}: {exc}", EXIT_CONFIG) from exc
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # restart right after a stop
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise StartupError(
                f"port {port} on {host} is already in use (another durablehost or func start?); "
                "stop it or choose another port with --port",
                EXIT_PORT,
            ) from exc
        raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror or exc}", EXIT_PORT) from exc
    sock.setblocking(False)
    return sock


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _dispatcher_options(
    config: HostJson, fidelity: Fidelity | None, worker: WorkerRole | None = None
) -> DispatcherOptions:
    defaults = DispatcherOptions()
    return DispatcherOptions(
        max_concurrent_activities=config.max_activities or defaults.max_concurrent_activities,
        max_concurrent_orchestrations=config.max_orchestrations or defaults.max_concurrent_orchestrations,
        activity_timeout=config.function_timeout,
        versioning=config.versioning,
        fidelity=fidelity or config.fidelity,
        partition_count=config.partition_count,
        lease_duration=config.lease_duration,
        detect_dead_processes=config.detect_dead_processes,
        member_label=worker.label if worker is not None else "",
    )


def banner(
    index: FunctionIndex,
    table: TriggerTable,
    choice: StoreChoice,
    hub: str,
    public_url: str,
    out: TextIO,
    triggers: dict[str, TriggerEntry],
    engine: DispatcherOptions | None = None,
    partitions: str | None = None,
    workers: int = 1,
) -> None:
    """What ``func start`` prints: the functions with their triggers, HTTP ones with their URLs, timer and
    queue ones with what they listen to, and those durablehost cannot serve marked NOT SERVED."""
    lines = [
        f"App:       {index.app_dir} ({index.source})",
        f"Store:     {choice.store.description} ({choice.source})",
        f"Task hub:  {hub}",
        *([f"Partitions: {partitions}"] if partitions else []),
        *(
            [f"Workers:   {workers} processes serve this port (logs prefixed [w1] … [w{workers}])"]
            if workers > 1
            else []
        ),
        *_behaviour_lines(engine or DispatcherOptions()),
        "",
        "Functions:",
        "",
    ]
    lines += [f"        {line}" for line in function_lines(index, table, public_url, triggers)]
    lines += [
        "",
        f"Management API: {public_url}{MANAGEMENT_PREFIX}/",
        f"History viewer: {public_url}{VIEWER_PREFIX}/",
        f"Listening on {public_url} (Ctrl-C to stop)",
    ]
    print("\n".join(lines), file=out, flush=True)


def _behaviour_lines(engine: DispatcherOptions) -> list[str]:
    """The versioning and fidelity settings, when they are not the defaults."""
    lines = []
    versioning = engine.versioning
    if versioning != Versioning():
        lines.append(
            f"Versioning: defaultVersion {versioning.default_version!r}, "
            f"{versioning.match.value}, {versioning.failure.value}"
        )
    if engine.fidelity is Fidelity.AZURE:
        lines.append("Fidelity:  azure (Azure's behaviour where durablehost differs; README)")
    return lines


@dataclass(frozen=True)
class Prepared:
    """What ``start`` reads before it opens anything: settings, host.json, the hub, keys, the port."""

    app_dir: Path
    config: HostJson
    hub: str
    keys: Keys
    port: int


def prepare(options: StartOptions) -> Prepared:
    """Read and check the configuration (StartupError with the exit code for what is wrong)."""
    app_dir = options.app_dir.resolve()
    if not app_dir.is_dir():
        raise StartupError(f"the app folder {app_dir} does not exist", EXIT_APP)
    try:
        local = read_local_settings(app_dir)
        apply_settings(local.values, os.environ)
        config = read_host_json(app_dir)
        hub = options.task_hub or config.hub_name
        validate_hub_name(hub, "--task-hub")
        keys = Keys.from_settings(os.environ, options.host)
    except (ConfigError, KeyConfigError) as exc:
        raise StartupError(str(exc), EXIT_CONFIG) from exc
    port = options.port if options.port is not None else (local.http_port or DEFAULT_PORT)
    return Prepared(app_dir, config, hub, keys, port)


async def run(options: StartOptions, out: TextIO = sys.stdout) -> int:
    """Serve until SIGINT/SIGTERM; returns the exit code. StartupError for a refused start."""
    prepared = prepare(options)
    if options.worker is not None:
        # A worker of `--workers N` serves the socket its supervisor bound (and listens on already).
        sock = socket.socket(fileno=options.worker.listen_fd)
        sock.setblocking(False)
    else:
        sock = bind_socket(options.host, prepared.port)
    rpc_sock = bind_socket(DEFAULT_BIND, 0) if prepared.keys.enforce else None
    try:
        return await _serve(options, prepared, sock, rpc_sock, out)
    finally:
        sock.close()
        if rpc_sock is not None:
            rpc_sock.close()


async def _serve(
    options: StartOptions,
    prepared: Prepared,
    sock: socket.socket,
    rpc_sock: socket.socket | None,
    out: TextIO,
) -> int:
    app_dir, config, hub, keys = prepared.app_dir, prepared.config, prepared.hub, prepared.keys
    try:
        index = load_app(app_dir)
        table = TriggerTable(index.http, config.route_prefix)
    except (AppLoadError, ValueError) as exc:
        raise StartupError(f"cannot load the app: {exc}", EXIT_APP) from exc
    plan = plan_triggers(index.functions, os.environ, config.queues)
    try:
        choice = await choose_store(options.store, os.environ.get(STORAGE_SETTING), app_dir)
    except ValueError as exc:
        raise StartupError(str(exc), EXIT_CONFIG) from exc
    except (AzuriteError, StoreError) as exc:
        raise StartupError(f"cannot open the store: {exc}", EXIT_STORE) from exc
    try:
        engine_options = _dispatcher_options(config, options.fidelity, options.worker)
        engine = DurableHost(choice.store, index, WallClock(), hub=hub, options=engine_options)
        try:
            await engine.start()
        except DurableHostError as exc:
            raise StartupError(f"cannot start the task hub {hub!r} on {choice.store.description}: {exc}",
                               EXIT_STORE) from exc  # fmt: skip
        try:
            return await _listen(options, engine, index, table, plan, choice, hub, keys, sock, rpc_sock, out)
        except BaseException:
            await engine.stop(drain=False)  # the server failed: do not leave the dispatcher running
            raise
    finally:
        await choice.close()


async def _listen(
    options: StartOptions,
    engine: DurableHost,
    index: FunctionIndex,
    table: TriggerTable,
    plan: dict[str, TriggerEntry],
    choice: StoreChoice,
    hub: str,
    keys: Keys,
    sock: socket.socket,
    rpc_sock: socket.socket | None,
    out: TextIO,
) -> int:
    port = sock.getsockname()[1]
    public_url = f"http://{_url_host(options.host)}:{port}"
    settings = ServerSettings(host=engine, hub=hub, keys=keys, max_body=options.max_body)
    if rpc_sock is not None:
        settings.rpc_base_url = f"http://{DEFAULT_BIND}:{rpc_sock.getsockname()[1]}{MANAGEMENT_PREFIX}/"
    else:
        settings.rpc_base_url = f"{public_url}{MANAGEMENT_PREFIX}/"
    listeners = [(build_app(settings, table), sock)]
    if rpc_sock is not None:
        listeners.append((build_app(settings, table, rpc_only=True), rpc_sock))
    runners = [
        web.AppRunner(app, handle_signals=False, access_log_class=_AccessLogger, shutdown_timeout=10.0)
        for app, _ in listeners
    ]
    signals_seen = 0
    stop = asyncio.Event()
    force = asyncio.Event()

    def on_signal() -> None:
        nonlocal signals_seen
        signals_seen += 1
        (stop if signals_seen == 1 else force).set()

    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, on_signal)
    triggers = TriggerListeners(
        plan,
        store=choice.store,
        hub=hub,
        clock=engine.clock,
        client_binding=json.dumps(client_binding(settings, public_url)),
        workers=engine.user_code,
    )
    # The app, the SDKs and the host are loaded for good: keep them out of the collector's reach. A full
    # collection of that heap took 70-150 ms, pausing every thread, the HTTP server's included
    # (bench/responsiveness.py); frozen, it is never scanned again, only what is allocated later.
    gc.collect()
    gc.freeze()
    try:
        try:
            for runner, (_, listening) in zip(runners, listeners, strict=True):
                await runner.setup()
                await web.SockSite(runner, listening, backlog=LISTEN_BACKLOG).start()
            try:
                await _start_triggers(triggers, choice)
                # Requests are served already; the banner waits (briefly) for the first look at the leases.
                partitions = await engine.dispatcher.ownership_summary(timeout=3.0)
                worker = options.worker
                if worker is None or (worker.index == 0 and not worker.restarted):
                    banner(
                        index,
                        table,
                        choice,
                        hub,
                        public_url,
                        out,
                        triggers.entries,
                        engine=engine.dispatcher.options,
                        partitions=partitions,
                        workers=worker.count if worker is not None else 1,
                    )
                if worker is not None:
                    log.info("worker %s (pid %d) serves %s; partitions: %s", worker.label, os.getpid(),
                             public_url, partitions)  # fmt: skip
                if worker is not None:
                    _watch_supervisor(worker, stop)
                    os.write(worker.ready_fd, b"ready\n")
                await stop.wait()
                log.info("stopping: no new requests; finishing in-flight work (signal again to stop at once)")
            finally:
                await _stop_triggers(triggers, force)  # their functions still call the management API
        finally:
            for runner in runners:
                await runner.cleanup()  # closes the listeners, then waits for in-flight requests
        await _close_sdk_session(engine)
        await _drain(engine, force)
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
    return EXIT_OK


def _watch_supervisor(worker: WorkerRole, stop: asyncio.Event) -> None:
    """Stop gracefully when the supervisor is gone (even killed): its end of the lifeline pipe closes."""
    loop = asyncio.get_running_loop()

    def lifeline_closed() -> None:
        try:
            data = os.read(worker.lifeline_fd, 64)
        except BlockingIOError:
            return
        if not data:
            loop.remove_reader(worker.lifeline_fd)
            log.warning("the supervisor is gone; stopping")
            stop.set()

    os.set_blocking(worker.lifeline_fd, False)
    loop.add_reader(worker.lifeline_fd, lifeline_closed)


async def _close_sdk_session(engine: DurableHost) -> None:
    """Close the SDK client's process-wide aiohttp session (its own private helper), else asyncio
    reports it unclosed at exit. It lives on the loop the app's async functions run on."""
    try:
        from azure.durable_functions.models.utils.http_utils import _close_session
    except ImportError:
        return  # an SDK version without the shared session: nothing to close
    await engine.user_code.on_user_loop(_close_session)


async def _start_triggers(triggers: TriggerListeners, choice: StoreChoice) -> None:
    try:
        await triggers.start()
    except StoreError as exc:  # the timers' status and lease rows live in the task hub's store
        message = f"cannot start the timer listeners on {choice.store.description}: {exc}"
        raise StartupError(message, EXIT_STORE) from exc


async def _stop_triggers(triggers: TriggerListeners, force: asyncio.Event) -> None:
    """Stop the timer and queue listeners, letting invocations finish unless a second signal comes."""
    draining = asyncio.create_task(triggers.stop(drain=True))
    forced = asyncio.create_task(force.wait())
    try:
        await asyncio.wait([draining, forced], return_when=asyncio.FIRST_COMPLETED)
    finally:
        forced.cancel()
    if not draining.done():
        draining.cancel()
        await triggers.stop(drain=False)
    else:
        draining.result()


async def _drain(engine: DurableHost, force: asyncio.Event) -> None:
    """``stop(drain=True)``, unless a second signal asks to stop at once."""
    drain = asyncio.create_task(engine.stop(drain=True))
    forced = asyncio.create_task(force.wait())
    try:
        await asyncio.wait([drain, forced], return_when=asyncio.FIRST_COMPLETED)
    finally:
        forced.cancel()
    if not drain.done():
        log.warning("second signal: stopping without waiting for in-flight work")
        drain.cancel()
        await engine.stop(drain=False)
    else:
        drain.result()  # re-raise a failure of the drain rather than hiding it
