"""``durablehost start --workers N``: how connections reach the workers, and what a second worker buys.

    python bench/workers_bench.py [--part front|engine|all] [--store sqlite|azurite|all] [--quick]
                                  [--repeats N] [--fronts inherited,reuseport,relay] [--out DIR]

Everything runs as real processes over real HTTP on loopback, on bench/apps/engine. Each measurement is
repeated ``--repeats`` times (default 3, quick 1), the variants interleaved within each repeat so that a
noisy minute hits all of them; every figure is the median over the repeats (min-max shown).

**Front mechanism** (``--part front``): three ways to put 2 workers behind one port, each worker a full
``durablehost start`` (HTTP server, management API, engine; one SQLite task hub), serving the app's trivial
route ``GET /api/whoami`` (it answers the worker's pid):

* ``inherited``: what the supervisor does (durablehost/http/supervisor.py), run as the product itself,
  ``durablehost start --workers 2``: one listening socket, bound by the supervisor, inherited by both
  workers, which accept on it; the kernel gives each new connection to whichever accepts first.
* ``reuseport``: each worker has its own listening socket bound to the same port with SO_REUSEPORT; the
  kernel spreads new connections over the sockets by a hash of the addresses. (A prototype here: the
  workers are started as the supervisor starts them, through its worker role, but each with its own
  socket.)
* ``relay``: the workers listen on private ports and a front process (an asyncio relay here, one
  process) accepts on the port and copies bytes both ways, each new connection to the next worker in
  turn.

A client in this process (a lean asyncio protocol, so that it costs the 2 cores little) keeps
``clients`` connections busy, one request at a time each, for ``seconds``, in two scenarios: keep-alive
(the connections are opened at once at the start and kept: a connection pool, the SDK's client) and a new
connection for every request (``Connection: close``: curl, monitors). Figures: requests/s, p50/p99
latency (the connect included for new connections), the busiest worker's share of the requests, and how
the connections were split over the workers. Each group is measured once its partitions are balanced (a
hand-over under way costs CPU; ``--quick`` does not wait), after a warm-up round.

**Engine scaling** (``--part engine``): HelloSequence5 whose 5 sequential activities each burn 2 ms of
their thread's CPU time (``hello_sequence5_cpu``, a busy loop on ``time.thread_time()``), 100 instances
started at once through the management API's start route (``POST /runtime/webhooks/durabletask/
orchestrators/hello_sequence5_cpu/{id}``, 100 concurrent requests, each its own connection) with
``durablehost start --workers 1`` and ``--workers 2``, on SQLite (a file, WAL) and on Azurite (started
once per store from the project's node_modules, in memory; a fresh task hub for every measurement, as a
fresh SQLite file). Before each measurement the bench waits until the partitions are balanced (each
worker holds its share of the lease rows) and runs 4 warm-up instances per worker. Completion is seen
through the management API (``GET counts?instanceIdPrefix=``, every 0.25 s: light on purpose, since the
figure does not depend on it); the figure comes from the engine's own instance rows, read from the store
afterwards as bench/engine_bench.py does: instances / (last CompletedTime - first CreatedTime). Also
shown: the ratio w2/w1 of the medians (the target of issue #13 on a 2-core machine: >= 1.5), how the
instances' partitions were split over the 2 workers, and how busy each worker (and Azurite) was: CPU time
from /proc over the measurement's wall time, so that one sees whether the workers were short of CPU or
waiting, and the CPU the rest of the machine used meanwhile. On SQLite the workers also time their write
transactions (a ``sitecustomize`` put on their PYTHONPATH wraps the store's ``BEGIN IMMEDIATE`` ...
``COMMIT``; two clock reads each): how long each worker's store thread waited for SQLite's one write lock
and held it. Both include the waits of that thread for its own process's GIL, which the activities'
threads hold while they burn CPU.

The machine's load (``os.getloadavg``) is printed before and after. Prints markdown tables and writes the
data to bench/results/workers_bench-<time>.json.

bench/compare.py's systems ``durablehost-sqlite-w2`` and ``durablehost-azurite-w2`` use the functions of
this file (``HostGroup``, ``hello_throughput_http``, ``hello_latency_http``, ``fan_out_http``,
``event_latency_http``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import select
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from procinfo import cmdline, descendants, machine, status_kb  # noqa: E402

from durablehost.azurite import Azurite  # noqa: E402
from durablehost.engine.control import LEASE_PARTITION  # noqa: E402
from durablehost.engine.partition import InstanceRepository  # noqa: E402
from durablehost.engine.placement import partition_of  # noqa: E402
from durablehost.engine.records import InstanceRecord, RuntimeStatus  # noqa: E402
from durablehost.http.serve import WorkerRole  # noqa: E402
from durablehost.http.supervisor import ROLE_VARIABLE  # noqa: E402
from durablehost.store import open_store  # noqa: E402

BENCH = Path(__file__).resolve().parent
APP = BENCH / "apps" / "engine"
RESULTS = BENCH / "results"
SCRIPT = Path(__file__).resolve()
MGMT = "/runtime/webhooks/durabletask"
LOOPBACK = "127.0.0.1"
PARTITIONS = 4  # the app's host.json sets none: the default
FRONTS = ("inherited", "reuseport", "relay")
STORES = ("sqlite", "azurite")
START_TIMEOUT = 120.0
RUN_TIMEOUT = 300.0


@dataclass(frozen=True)
class Sizes:
    clients: int  # concurrent connections of the front measurement
    seconds: float  # length of one front round
    instances: int  # HelloSequence5 instances started at once
    burn_ms: float  # CPU each activity burns
    warmups_per_worker: int


FULL = Sizes(clients=16, seconds=3.0, instances=100, burn_ms=2.0, warmups_per_worker=4)
QUICK = Sizes(clients=8, seconds=0.3, instances=10, burn_ms=2.0, warmups_per_worker=1)


def say(text: str) -> None:
    print(f"# {text}", file=sys.stderr, flush=True)


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (the rule of bench/engine_bench.py)."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# ---------------------------------------------------------------------- processes


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (all its threads)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU time all processes of the machine have used since boot (every core), from /proc/stat."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _stop(process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _listening_socket(port: int = 0, *, reuse_port: bool = False) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((LOOPBACK, port))
    sock.listen(1024)  # the supervisor's backlog
    return sock


class HostGroup:
    """``workers`` durablehost processes on bench/apps/engine behind one port on loopback.

    ``front="inherited"`` runs the product, ``durablehost start --workers N``; ``reuseport`` and ``relay``
    start the workers as the supervisor does (its worker role: a listening socket, a ready pipe, a
    lifeline) but give each its own socket, on one port with SO_REUSEPORT or on private ports behind a
    relay process. Output goes to ``workdir/host-*.log``."""

    def __init__(
        self,
        workers: int,
        spec: str,
        hub: str,
        workdir: Path,
        *,
        front: str = "inherited",
        env: dict[str, str] | None = None,
    ) -> None:
        self.workers = workers
        self.spec = spec
        self.hub = hub
        self.workdir = workdir
        self.front = front
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.port = 0
        self._main: subprocess.Popen[bytes] | None = None  # the supervisor (or the only worker)
        self._workers: list[subprocess.Popen[bytes]] = []  # started here (reuseport, relay)
        self._relay: subprocess.Popen[bytes] | None = None
        self._lifelines: list[int] = []
        self._logs: list[Path] = []

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def _args(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "durablehost",
            "start",
            "--app-dir",
            str(APP),
            "--port",
            "0",
            "--store",
            self.spec,
            "--task-hub",
            self.hub,
            "--log-level",
            "WARNING",
        ]

    def _log(self, name: str) -> Any:
        path = self.workdir / f"host-{self.hub}-{name}.log"
        self._logs.append(path)
        return path.open("wb")

    def start(self) -> None:
        if self.front == "inherited":
            self._start_product()
        else:
            self._start_own_sockets()

    def _start_product(self) -> None:
        with self._log("main") as log:
            self._main = subprocess.Popen(
                [*self._args(), "--workers", str(self.workers)],
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
            )
        path = self._logs[-1]
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            text = path.read_text(errors="replace")
            for line in text.splitlines():
                if line.startswith("Listening on http://"):
                    self.port = int(line.split()[2].rsplit(":", 1)[1])
                    return
            if self._main.poll() is not None:
                raise RuntimeError(f"durablehost exited with {self._main.returncode}: {text[-2000:]}")
            time.sleep(0.05)
        raise RuntimeError(f"durablehost did not listen within {START_TIMEOUT:.0f} s: {self.log_tail()}")

    def _start_own_sockets(self) -> None:
        if self.front == "reuseport":
            first = _listening_socket(reuse_port=True)
            self.port = first.getsockname()[1]
            sockets = [first] + [
                _listening_socket(self.port, reuse_port=True) for _ in range(self.workers - 1)
            ]
        elif self.front == "relay":
            sockets = [_listening_socket() for _ in range(self.workers)]
            public = _listening_socket()
            self.port = public.getsockname()[1]
            backends = ",".join(str(s.getsockname()[1]) for s in sockets)
            with self._log("relay") as log:
                self._relay = subprocess.Popen(
                    [sys.executable, str(SCRIPT), "--child-relay", str(public.fileno()), backends],
                    pass_fds=(public.fileno(),),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=self.env,
                )
            public.close()
        else:
            raise ValueError(f"unknown front {self.front!r}")
        readers = []
        try:
            for index, sock in enumerate(sockets):
                ready_read, ready_write = os.pipe()
                lifeline_read, lifeline_write = os.pipe()
                role = WorkerRole(
                    index=index,
                    count=self.workers,
                    listen_fd=sock.fileno(),
                    ready_fd=ready_write,
                    lifeline_fd=lifeline_read,
                )
                with self._log(f"w{index + 1}") as log:
                    self._workers.append(
                        subprocess.Popen(
                            self._args(),
                            cwd=REPO,
                            stdout=log,
                            stderr=subprocess.STDOUT,
                            env={**self.env, ROLE_VARIABLE: json.dumps(asdict(role))},
                            pass_fds=(sock.fileno(), ready_write, lifeline_read),
                            start_new_session=True,
                        )
                    )
                os.close(ready_write)
                os.close(lifeline_read)
                self._lifelines.append(lifeline_write)
                readers.append(ready_read)
            deadline = time.monotonic() + START_TIMEOUT
            for reader in readers:
                left = deadline - time.monotonic()
                readable, _, _ = select.select([reader], [], [], max(0.0, left))
                if not readable or not os.read(reader, 64).startswith(b"ready"):
                    raise RuntimeError(f"a worker did not start: {self.log_tail()}")
        finally:
            for reader in readers:
                os.close(reader)
            for sock in sockets:
                sock.close()  # the workers have theirs

    def worker_pids(self) -> list[int]:
        if self._workers:
            return [p.pid for p in self._workers]
        assert self._main is not None
        if self.workers == 1:
            return [self._main.pid]
        return [pid for pid in descendants(self._main.pid) if b"durablehost" in cmdline(pid)]

    def pids(self) -> list[int]:
        """Every process of the group (supervisor, workers, relay)."""
        found = list(self.worker_pids())
        if self._main is not None and self._main.pid not in found:
            found.append(self._main.pid)
        if self._relay is not None:
            found.append(self._relay.pid)
        return found

    def peak_rss_mb(self) -> float:
        return sum(status_kb(pid, "VmHWM") or 0 for pid in self.pids()) / 1024

    def log_tail(self) -> str:
        return " | ".join(p.read_text(errors="replace")[-800:] for p in self._logs if p.exists())

    def stop(self) -> None:
        if self._main is not None:
            _stop(self._main)
        for process in self._workers:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        for process in self._workers:
            _stop(process)
        for fd in self._lifelines:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._lifelines.clear()
        if self._relay is not None:
            _stop(self._relay)

    async def wait_balanced(self, timeout: float = 60.0) -> dict[int, str]:
        """Wait until every worker holds its share of the hub's partitions; return partition -> owner."""
        store = open_store(self.spec)
        share = PARTITIONS // self.workers
        try:
            deadline = time.monotonic() + timeout
            while True:
                leases = {}
                async for entity in store.query(f"{self.hub}Control", partition_key=LEASE_PARTITION):
                    if entity.row_key.startswith("p") and entity.row_key[1:].isdigit():
                        leases[int(entity.row_key[1:])] = (
                            str(entity.get("Owner") or ""),
                            str(entity.get("NextOwner") or ""),
                        )
                owners = Counter(owner for owner, _ in leases.values() if owner)
                if (
                    len(leases) == PARTITIONS
                    and len(owners) == self.workers
                    and all(n == share for n in owners.values())
                    and not any(asked for _, asked in leases.values())
                ):
                    return {p: owner for p, (owner, _) in leases.items()}
                if time.monotonic() > deadline:
                    raise TimeoutError(f"partitions not balanced within {timeout:.0f} s: {leases}")
                await asyncio.sleep(0.2)
        finally:
            await store.close()


# ---------------------------------------------------------------------- SQLite's write lock, timed

# Imported by the workers' interpreters at start-up (PYTHONPATH): it times every write transaction of the
# SQLite store, from BEGIN IMMEDIATE being sent to the lock being held ("wait") and from then to COMMIT
# having returned ("held"), and writes them to LOCK_STATS_DIR/lock-<pid>.json at exit. Two clock reads per
# transaction; if the store's internals have moved, it does nothing and the figures are missing.
_LOCK_TIMER = """
import atexit, json, os, time

def _install():
    try:
        from durablehost.store import sqlite
        transaction = sqlite._WriteTransaction
        enter, leave = transaction.__enter__, transaction.__exit__
    except (ImportError, AttributeError):
        return
    samples = []

    def timed_enter(self):
        sent = time.monotonic()
        enter(self)
        self._bench_locked = time.monotonic()
        samples.append([sent, self._bench_locked - sent, 0.0])

    def timed_exit(self, *exc):
        try:
            return leave(self, *exc)
        finally:
            samples[-1][2] = time.monotonic() - self._bench_locked

    transaction.__enter__, transaction.__exit__ = timed_enter, timed_exit

    def dump():
        path = os.path.join(os.environ["LOCK_STATS_DIR"], f"lock-{os.getpid()}.json")
        with open(path, "w") as out:
            json.dump(samples, out)

    atexit.register(dump)

if os.environ.get("LOCK_STATS_DIR"):
    _install()
"""


def lock_timer_env(folder: Path) -> dict[str, str]:
    """The environment that makes durablehost processes time their SQLite write lock into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(_LOCK_TIMER)
    path = os.environ.get("PYTHONPATH")
    return {
        "PYTHONPATH": f"{folder}{os.pathsep}{path}" if path else str(folder),
        "LOCK_STATS_DIR": str(folder),
    }


def lock_stats(folder: Path, pids: Sequence[int], start: float, end: float) -> list[dict[str, float]]:
    """Per worker (in ``pids`` order), the write transactions begun in [start, end] (time.monotonic)."""
    out = []
    for pid in pids:
        path = folder / f"lock-{pid}.json"
        if not path.exists():
            continue
        rows = [r for r in json.loads(path.read_text()) if start <= r[0] <= end]
        if not rows:
            continue
        waits, helds = [r[1] for r in rows], [r[2] for r in rows]
        out.append(
            {
                "transactions": len(rows),
                "wait_s": sum(waits),
                "held_s": sum(helds),
                "wait_p99_ms": percentile(waits, 0.99) * 1000,
                "held_p50_ms": percentile(helds, 0.5) * 1000,
                "held_p99_ms": percentile(helds, 0.99) * 1000,
                "wait_share_pct": 100 * sum(waits) / (end - start),
                "held_share_pct": 100 * sum(helds) / (end - start),
            }
        )
    return out


# ---------------------------------------------------------------------- the relay (a child process)


class _Side(asyncio.Protocol):
    """One side of a relayed connection: what it receives goes to the other side (buffered until that
    one is connected)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer: _Side | None = None
        self.pending = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.set_write_buffer_limits(1 << 20)
        if self.pending:
            transport.write(bytes(self.pending))
            self.pending.clear()

    def data_received(self, data: bytes) -> None:
        peer = self.peer
        if peer is None:
            return
        if peer.transport is None:
            peer.pending += data
        else:
            peer.transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        peer = self.peer
        if peer is not None and peer.transport is not None:
            peer.transport.close()
        self.peer = None


async def relay(listen_fd: int, backends: list[int]) -> None:
    """Accept on ``listen_fd``; connect each connection to the next backend port in turn; copy bytes."""
    loop = asyncio.get_running_loop()
    turn = itertools.cycle(backends)

    def accepted() -> _Side:
        front, back = _Side(), _Side()
        front.peer, back.peer = back, front

        async def connect() -> None:
            try:
                await loop.create_connection(lambda: back, LOOPBACK, next(turn))
            except OSError:
                if front.transport is not None:
                    front.transport.close()

        loop.create_task(connect())  # noqa: RUF006 (the connection's own transports keep it going)
        return front

    sock = socket.socket(fileno=listen_fd)
    sock.setblocking(False)
    server = await loop.create_server(accepted, sock=sock, backlog=1024)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


# ---------------------------------------------------------------------- the front measurement's client


class _Client(asyncio.Protocol):
    """One HTTP/1.1 connection: one request at a time, responses with a Content-Length."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[bytes] | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def request(self, data: bytes) -> asyncio.Future[bytes]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return self.waiter

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0 or self.waiter is None:
            return
        head = bytes(self.buffer[:end]).lower()
        at = head.find(b"\r\ncontent-length:")
        if at < 0:
            self._fail(RuntimeError(f"no Content-Length: {head[:200]!r}"))
            return
        stop = head.find(b"\r\n", at + 2)
        length = int(head[at + 17 : stop if stop >= 0 else len(head)])
        if len(self.buffer) < end + 4 + length:
            return
        if not head.startswith(b"http/1.1 200"):
            self._fail(RuntimeError(f"answer {head[:40]!r}"))
            return
        body = bytes(self.buffer[end + 4 : end + 4 + length])
        del self.buffer[: end + 4 + length]
        waiter, self.waiter = self.waiter, None
        waiter.set_result(body)

    def _fail(self, exc: Exception) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)
        self.waiter = None

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._fail(ConnectionError(f"connection lost: {exc}"))


@dataclass
class Round:
    requests: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)  # seconds
    by_worker: Counter[str] = field(default_factory=Counter)  # pid -> requests
    connections: Counter[str] = field(default_factory=Counter)  # pid -> connections


async def front_round(port: int, clients: int, seconds: float, *, keep_alive: bool) -> Round:
    """``clients`` connections, one request at a time each, for ``seconds``."""
    loop = asyncio.get_running_loop()
    header = b"keep-alive" if keep_alive else b"close"
    request = b"GET /api/whoami HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: " + header + b"\r\n\r\n"
    result = Round()

    async def connect() -> _Client:
        _, client = await loop.create_connection(_Client, LOOPBACK, port)
        return client

    async def one(first: _Client | None, deadline: float) -> None:
        client = first
        fresh = True
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            if client is None or client.lost:
                client, fresh = await connect(), True
            body = await client.request(request)
            result.latencies.append(time.perf_counter() - started)
            pid = body.decode()
            result.by_worker[pid] += 1
            if fresh:
                result.connections[pid] += 1
                fresh = False
            if not keep_alive:
                assert client.transport is not None
                client.transport.close()
                client = None

    # Keep-alive: every connection is opened at once, then kept, as a pool opens them under load.
    firsts: list[_Client | None] = (
        list(await asyncio.gather(*(connect() for _ in range(clients)))) if (keep_alive) else [None] * clients
    )
    started = time.perf_counter()
    await asyncio.gather(*(one(first, started + seconds) for first in firsts))
    result.seconds = time.perf_counter() - started
    result.requests = len(result.latencies)
    for client in firsts:
        if client is not None and client.transport is not None:
            client.transport.close()
    return result


# ---------------------------------------------------------------------- HTTP workloads (also compare.py's)


async def _start(session: aiohttp.ClientSession, url: str, name: str, instance_id: str, body: Any) -> None:
    async with session.post(f"{url}{MGMT}/orchestrators/{name}/{instance_id}", json=body) as response:
        if response.status != 202:
            raise RuntimeError(f"start {name}/{instance_id}: {response.status} {await response.text()}")


async def _wait_counts(
    session: aiohttp.ClientSession,
    url: str,
    prefix: str,
    n: int,
    timeout: float = RUN_TIMEOUT,
    interval: float = 0.25,
) -> None:
    """Until ``n`` instances whose id starts with ``prefix`` are finished (any of them failing raises)."""
    deadline = time.monotonic() + timeout
    while True:
        async with session.get(f"{url}{MGMT}/counts", params={"instanceIdPrefix": prefix}) as response:
            counts: dict[str, int] = (await response.json())["counts"]
        bad = {k: v for k, v in counts.items() if v and k in ("Failed", "Terminated", "Canceled")}
        if bad:
            raise RuntimeError(f"instances {prefix}* ended {bad}")
        if counts.get("Completed", 0) >= n:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{prefix}*: {counts} after {timeout:.0f} s")
        await asyncio.sleep(interval)


async def _records(spec: str, hub: str, ids: Sequence[str]) -> list[InstanceRecord]:
    store = open_store(spec)
    try:
        repo = InstanceRepository(store, hub)
        found = [await repo.get_record(i) for i in ids]
    finally:
        await store.close()
    records = [r for r in found if r is not None]
    if len(records) != len(ids) or any(r.status is not RuntimeStatus.COMPLETED for r in records):
        raise RuntimeError(f"{len(records)} of {len(ids)} instance rows found, not all Completed")
    return records


def _seconds(record: InstanceRecord) -> float:
    assert record.completed_time is not None
    return (record.completed_time - record.created_time).total_seconds()


async def warm_up(group: HostGroup, name: str, body: Any, count: int) -> None:
    async with aiohttp.ClientSession() as session:
        prefix = f"warm{os.urandom(3).hex()}-"
        await asyncio.gather(*(_start(session, group.url, name, f"{prefix}{i}", body) for i in range(count)))
        await _wait_counts(session, group.url, prefix, count)


async def hello_throughput_http(
    group: HostGroup, name: str, body: Any, n: int, prefix: str = "run-"
) -> dict[str, Any]:
    """``n`` instances of ``name`` started at once over HTTP; throughput from the engine's timestamps."""
    ids = [f"{prefix}{i:04d}" for i in range(n)]
    connector = aiohttp.TCPConnector(limit=n)  # every start at once, each on its own connection
    async with aiohttp.ClientSession(connector=connector) as session:
        sent = time.perf_counter()
        await asyncio.gather(*(_start(session, group.url, name, i, body) for i in ids))
        accepted = time.perf_counter() - sent
        await _wait_counts(session, group.url, prefix, n)
        seen = time.perf_counter() - sent
    records = await _records(group.spec, group.hub, ids)
    first = min(r.created_time for r in records)
    last = max(r.completed_time for r in records if r.completed_time is not None)
    return {
        "per_second": n / (last - first).total_seconds(),
        "engine_seconds": (last - first).total_seconds(),
        "starts_accepted_seconds": accepted,
        "seen_done_seconds": seen,
        "ids": ids,
    }


async def hello_latency_http(group: HostGroup, name: str, runs: int, warm: int = 3) -> list[float]:
    """One instance at a time (start over HTTP, poll its status); ms from the engine's timestamps."""
    ids = []
    async with aiohttp.ClientSession() as session:
        for i in range(runs + warm):
            instance_id = f"lat-{i:04d}"
            await _start(session, group.url, name, instance_id, None)
            while True:
                async with session.get(f"{group.url}{MGMT}/instances/{instance_id}") as response:
                    status = (await response.json())["runtimeStatus"]
                if status == "Completed":
                    break
                if status in ("Failed", "Terminated"):
                    raise RuntimeError(f"{instance_id} ended {status}")
                await asyncio.sleep(0.005)
            if i >= warm:
                ids.append(instance_id)
    return [_seconds(r) * 1000 for r in await _records(group.spec, group.hub, ids)]


async def fan_out_http(group: HostGroup, count: int, warm: int = 20) -> float:
    """One fan-out/fan-in of ``count`` no-op activities after a small one; seconds, engine timestamps."""
    async with aiohttp.ClientSession() as session:
        await _start(session, group.url, "fan_out", "fan-warm", warm)
        await _wait_counts(session, group.url, "fan-warm", 1, interval=0.05)
        await _start(session, group.url, "fan_out", "fan-run", count)
        await _wait_counts(session, group.url, "fan-run", 1, interval=0.05)
    (record,) = await _records(group.spec, group.hub, ["fan-run"])
    return _seconds(record)


async def event_latency_http(
    group: HostGroup, marks: Path, instances: int, pings: int, settle: float = 0.05
) -> list[float]:
    """ms from the raiseEvent request being sent to the orchestrator's code after the wait running live.

    The app writes a file mark (MARK_DIR=``marks``, which the group must have in its environment) when it
    first reaches each wait and when the code after it first runs; the next ping is raised ``settle``
    seconds after the orchestrator reached its wait. A fresh connection for every raise, so that the
    kernel chooses the worker that takes it, as for any client. The first instance is a warm-up."""
    samples: list[float] = []
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def mark(name: str, timeout: float = 60.0) -> float:
            path = marks / name
            deadline = time.monotonic() + timeout
            while not path.exists():
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no mark {name}")
                await asyncio.sleep(0.002)
            return float(path.read_text())

        for n in range(instances + 1):
            instance_id = f"ping-{n}-{os.urandom(3).hex()}"
            await _start(session, group.url, "ping_loop", instance_id, pings)
            for i in range(pings):
                await mark(f"{instance_id}.waiting.{i}")
                await asyncio.sleep(settle)
                sent = time.time()
                url = f"{group.url}{MGMT}/instances/{instance_id}/raiseEvent/ping"
                async with session.post(
                    url, data=b"null", headers={"Content-Type": "application/json"}
                ) as response:
                    if response.status != 202:
                        raise RuntimeError(f"raiseEvent: {response.status} {await response.text()}")
                ran = await mark(f"{instance_id}.ping.{i}")
                if n:
                    samples.append((ran - sent) * 1000)
            await _wait_counts(session, group.url, instance_id, 1, interval=0.02)
    return samples


# ---------------------------------------------------------------------- the two parts


@dataclass
class Figure:
    runs: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    def cell(self, digits: int = 0) -> str:
        if not self.runs:
            return "—"
        if len(self.runs) == 1:
            return f"{self.runs[0]:.{digits}f}"
        return f"{self.median:.{digits}f} ({min(self.runs):.{digits}f}-{max(self.runs):.{digits}f})"


SCENARIOS = (("keep-alive", True), ("new connection per request", False))


async def bench_front(
    sizes: Sizes, repeats: int, tmp: Path, fronts: Sequence[str], *, quick: bool = False
) -> list[dict[str, Any]]:
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for repeat in range(repeats):
        for front in fronts:
            say(f"front, run {repeat + 1}/{repeats}: {front}")
            hub = f"Front{os.getpid()}x{repeat}{front[:3]}"
            group = HostGroup(2, f"sqlite:{tmp / f'{hub}.sqlite'}", hub, tmp, front=front)
            group.start()
            try:
                if not quick:  # the same conditions for every front: no partition hand-over under way
                    await group.wait_balanced()
                workers = {str(pid) for pid in group.worker_pids()}
                await front_round(group.port, sizes.clients, min(0.5, sizes.seconds), keep_alive=False)
                for scenario, keep_alive in SCENARIOS:
                    measured = await front_round(
                        group.port, sizes.clients, sizes.seconds, keep_alive=keep_alive
                    )
                    strangers = set(measured.by_worker) - workers
                    if strangers:
                        raise RuntimeError(f"answers from pids {strangers}, not the workers {workers}")
                    row = rows.setdefault(
                        (scenario, front),
                        {
                            "scenario": scenario,
                            "front": front,
                            "clients": sizes.clients,
                            "per_second": Figure(),
                            "p50_ms": Figure(),
                            "p99_ms": Figure(),
                            "busiest_share_pct": Figure(),
                            "connections_split": [],
                        },
                    )
                    row["per_second"].runs.append(measured.requests / measured.seconds)
                    row["p50_ms"].runs.append(percentile(measured.latencies, 0.5) * 1000)
                    row["p99_ms"].runs.append(percentile(measured.latencies, 0.99) * 1000)
                    row["busiest_share_pct"].runs.append(
                        100 * max(measured.by_worker[w] for w in workers) / measured.requests
                    )
                    split = sorted((measured.connections[w] for w in workers), reverse=True)
                    row["connections_split"].append("/".join(map(str, split)))
            finally:
                group.stop()
    return [_plain(row) for row in rows.values()]


async def bench_engine(store: str, sizes: Sizes, repeats: int, tmp: Path) -> list[dict[str, Any]]:
    rows: dict[int, dict[str, Any]] = {}
    azurite = Azurite() if store == "azurite" else None
    if azurite is not None:
        await azurite.start_async()
    try:
        for repeat in range(repeats):
            for workers in (1, 2):
                say(f"engine, {store}, run {repeat + 1}/{repeats}: --workers {workers}")
                hub = f"Scale{os.getpid()}x{repeat}w{workers}"
                spec = azurite.connection_string if azurite is not None else f"sqlite:{tmp / f'{hub}.sqlite'}"
                timer = tmp / f"locks-{hub}"
                group = HostGroup(
                    workers, spec, hub, tmp, env=lock_timer_env(timer) if azurite is None else None
                )
                group.start()
                try:
                    owners = await group.wait_balanced()
                    await warm_up(
                        group, "hello_sequence5_cpu", sizes.burn_ms, sizes.warmups_per_worker * workers
                    )
                    watched = group.worker_pids() + ([azurite.pid] if azurite and azurite.pid else [])
                    ours = [*group.pids(), os.getpid(), *([azurite.pid] if azurite and azurite.pid else [])]
                    cpu_before, wall_before = [cpu_seconds(p) for p in watched], time.perf_counter()
                    window_start = time.monotonic()
                    ours_before, machine_before = sum(cpu_seconds(p) for p in ours), machine_busy_seconds()
                    outcome = await hello_throughput_http(
                        group, "hello_sequence5_cpu", sizes.burn_ms, sizes.instances, prefix=f"r{repeat}-"
                    )
                    wall = time.perf_counter() - wall_before
                    busy = [
                        100 * (cpu_seconds(p) - b) / wall for p, b in zip(watched, cpu_before, strict=True)
                    ]
                    window_end = time.monotonic()
                    ours_used = sum(cpu_seconds(p) for p in ours) - ours_before
                    others = 100 * max(0.0, machine_busy_seconds() - machine_before - ours_used) / wall
                finally:
                    group.stop()  # the workers write their lock timings as they exit
                locks = (
                    lock_stats(timer, watched[:workers], window_start, window_end) if azurite is None else []
                )
                per_owner = Counter(owners[partition_of(i, PARTITIONS)] for i in outcome["ids"])
                row = rows.setdefault(
                    workers,
                    {
                        "store": store,
                        "workers": workers,
                        "instances": sizes.instances,
                        "burn_ms": sizes.burn_ms,
                        "per_second": Figure(),
                        "engine_seconds": Figure(),
                        "starts_accepted_seconds": Figure(),
                        "instances_split": [],
                        "worker_cpu_pct": [],
                        "azurite_cpu_pct": Figure(),
                        "others_cpu_pct": Figure(),
                        "sqlite_lock": [],
                    },
                )
                row["per_second"].runs.append(outcome["per_second"])
                row["engine_seconds"].runs.append(outcome["engine_seconds"])
                row["starts_accepted_seconds"].runs.append(outcome["starts_accepted_seconds"])
                row["instances_split"].append("/".join(map(str, sorted(per_owner.values(), reverse=True))))
                row["worker_cpu_pct"].append("/".join(f"{b:.0f}" for b in busy[:workers]))
                if azurite is not None:
                    row["azurite_cpu_pct"].runs.append(busy[-1])
                row["others_cpu_pct"].runs.append(others)
                row["sqlite_lock"].append(locks)
    finally:
        if azurite is not None:
            await azurite.stop_async()
    out = [_plain(row) for row in rows.values()]
    one, two = (rows[w]["per_second"].median for w in (1, 2))
    out[1]["ratio_w2_w1"] = round(two / one, 4)
    return out


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    row = {k: v for k, v in row.items() if not (isinstance(v, Figure) and not v.runs)}
    return {
        k: (
            {"runs": [round(x, 3) for x in v.runs], "median": round(v.median, 3)}
            if isinstance(v, Figure)
            else v
        )
        for k, v in row.items()
    }


def _fig(value: dict[str, Any], digits: int = 0) -> str:
    return Figure(value["runs"]).cell(digits)


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    out = [
        "# durablehost --workers: the front mechanism and engine scaling",
        "",
        f"Machine: {m['cpus']} CPUs, Python {m['python']}, {m['platform']}; load average {m['load_average']} "
        f"before, {report['load_average_after']} after; commit {m['commit']}. {report['repeats']} repeat(s), "
        f"sizes {report['sizes']}, wall time {report['wall_seconds']:.0f} s. Cells: median (min-max).",
    ]
    if report["front"]:
        out += [
            "",
            "## Front: 2 workers behind one port, GET /api/whoami",
            "",
            "| scenario | front | clients | requests/s ↑ | p50 ms ↓ | p99 ms ↓ | busiest worker's share % "
            "| connections per worker (each run) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for row in report["front"]:
            out.append(
                f"| {row['scenario']} | {row['front']} | {row['clients']} | {_fig(row['per_second'])} | "
                f"{_fig(row['p50_ms'], 2)} | {_fig(row['p99_ms'], 2)} | {_fig(row['busiest_share_pct'])} "
                f"| {', '.join(row['connections_split'])} |"
            )
    if report["engine"]:
        out += [
            "",
            "## Engine: HelloSequence5, each activity burning 2 ms of CPU, started at once",
            "",
            "| store | workers | instances | orch/s ↑ | first start -> last completion s | "
            "starts accepted s | instances per worker | CPU % per worker | Azurite CPU % | others' CPU % "
            "| w2/w1 |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for row in report["engine"]:
            ratio = f"{row['ratio_w2_w1']:.2f}" if "ratio_w2_w1" in row else ""
            azurite = _fig(row["azurite_cpu_pct"]) if "azurite_cpu_pct" in row else "—"
            out.append(
                f"| {row['store']} | {row['workers']} | {row['instances']} | {_fig(row['per_second'], 1)} "
                f"| {_fig(row['engine_seconds'], 2)} | {_fig(row['starts_accepted_seconds'], 2)} "
                f"| {', '.join(row['instances_split'])} | {', '.join(row['worker_cpu_pct'])} | {azurite} "
                f"| {_fig(row['others_cpu_pct'])} | {ratio} |"
            )
        out += [
            "",
            "CPU %: each worker's (and Azurite's) CPU time from the first start request to the completion "
            "seen, over that wall time (100 = one core; each run, or median (min-max)). Others': what the "
            "rest of the machine used meanwhile (other programs: on a shared machine they take the cores a "
            "second worker needs).",
        ]
        out += _lock_table(report["engine"])
    return "\n".join(out) + "\n"


def _lock_table(rows: list[dict[str, Any]]) -> list[str]:
    lines: list[str] = []
    for row in rows:
        runs = [run for run in row.get("sqlite_lock", []) if run]
        if not runs:
            continue
        if not lines:
            lines = [
                "",
                "SQLite's write lock during the measurement, per worker (median over the runs): the share of "
                "the time its store thread waited for the lock (BEGIN IMMEDIATE) and held it (to COMMIT), "
                "its own GIL waits included; the workers' order is arbitrary.",
                "",
                "| workers | worker | transactions | waiting % | holding % | wait p99 ms | held p50 ms "
                "| held p99 ms |",
                "|---|---|---|---|---|---|---|---|",
            ]
        for index in range(row["workers"]):
            mine = [run[index] for run in runs if len(run) > index]

            def med(key: str, values: list[dict[str, float]] = mine) -> float:
                return statistics.median(v[key] for v in values)

            lines.append(
                f"| {row['workers']} | w{index + 1} | {med('transactions'):.0f} "
                f"| {med('wait_share_pct'):.0f} | {med('held_share_pct'):.0f} | {med('wait_p99_ms'):.1f} "
                f"| {med('held_p50_ms'):.2f} | {med('held_p99_ms'):.1f} |"
            )
    return lines


async def run(args: argparse.Namespace) -> dict[str, Any]:
    sizes = QUICK if args.quick else FULL
    repeats = args.repeats or (1 if args.quick else 3)
    stores = STORES if args.store == "all" else (args.store,)
    report: dict[str, Any] = {
        "machine": machine(),
        "repeats": repeats,
        "sizes": asdict(sizes),
        "front": [],
        "engine": [],
    }
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="workers-bench-") as tmp_name:
        tmp = Path(tmp_name)
        if args.part in ("front", "all"):
            fronts = [f.strip() for f in args.fronts.split(",") if f.strip()]
            report["front"] = await bench_front(sizes, repeats, tmp, fronts, quick=args.quick)
        if args.part in ("engine", "all"):
            for store in stores:
                report["engine"] += await bench_engine(store, sizes, repeats, tmp)
    report["wall_seconds"] = round(time.perf_counter() - started, 1)
    report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--part", choices=["front", "engine", "all"], default="all")
    parser.add_argument("--store", choices=[*STORES, "all"], default="all", help="for --part engine")
    parser.add_argument(
        "--fronts", default=",".join(FRONTS), help=f"for --part front, from {', '.join(FRONTS)}"
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, one repeat: a smoke test")
    parser.add_argument("--repeats", type=int, default=None, help="runs per figure (default 3, quick 1)")
    parser.add_argument(
        "--out", type=Path, default=RESULTS, help="folder for the JSON (default bench/results)"
    )
    parser.add_argument("--child-relay", nargs=2, metavar=("FD", "PORTS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    unknown = set(args.fronts.split(",")) - set(FRONTS)
    if unknown:
        parser.error(f"unknown fronts {sorted(unknown)}; choose from {', '.join(FRONTS)}")
    if args.child_relay:
        fd, ports = args.child_relay
        asyncio.run(relay(int(fd), [int(p) for p in ports.split(",")]))
        return 0
    report = asyncio.run(run(args))
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = args.out / f"workers_bench-{stamp}.json"
    path.write_text(json.dumps({"when": stamp, **report}, indent=2))
    print(markdown(report))
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
