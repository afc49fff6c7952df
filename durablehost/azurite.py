"""Start and stop Azurite (the Azure Storage emulator) from the project's own ``node_modules``.

Used by the test suite (free loopback ports, in-memory), the store benchmark, and
``durablehost start --store azurite`` (the standard ports 10000-10002).

Azurite is a Node.js program: we run ``node <repo>/node_modules/azurite/dist/src/azurite.js`` in its own
process group so that stopping it also stops anything it spawned.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

from durablehost.errors import AzuriteError

DEV_ACCOUNT_NAME = "devstoreaccount1"
# The emulator's well-known, public development key (documented by Microsoft; not a secret).
DEV_ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
LOOPBACK = "127.0.0.1"

_AZURITE_JS = Path("node_modules") / "azurite" / "dist" / "src" / "azurite.js"
_FLAGS = ("--disableTelemetry", "--skipApiVersionCheck", "--loose", "--silent")


@dataclass(frozen=True)
class AzuritePorts:
    """The three service ports of one Azurite process."""

    blob: int
    queue: int
    table: int

    def as_tuple(self) -> tuple[int, int, int]:
        return (self.blob, self.queue, self.table)


STANDARD_PORTS = AzuritePorts(blob=10000, queue=10001, table=10002)


def connection_string(ports: AzuritePorts = STANDARD_PORTS, host: str = LOOPBACK) -> str:
    """The devstoreaccount1 connection string with explicit endpoints for ``ports``."""
    base = f"http://{host}"
    return (
        "DefaultEndpointsProtocol=http;"
        f"AccountName={DEV_ACCOUNT_NAME};AccountKey={DEV_ACCOUNT_KEY};"
        f"BlobEndpoint={base}:{ports.blob}/{DEV_ACCOUNT_NAME};"
        f"QueueEndpoint={base}:{ports.queue}/{DEV_ACCOUNT_NAME};"
        f"TableEndpoint={base}:{ports.table}/{DEV_ACCOUNT_NAME};"
    )


def is_listening(port: int, host: str = LOOPBACK, timeout: float = 0.2) -> bool:
    """True if something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def standard_ports_in_use(host: str = LOOPBACK) -> list[int]:
    """The standard Azurite ports (10000-10002) on which something already listens."""
    return [p for p in STANDARD_PORTS.as_tuple() if is_listening(p, host)]


def find_project_dir(start: Path | None = None) -> Path:
    """The nearest directory at or above ``start`` (default: this package's repository) that has
    ``node_modules/azurite``; falls back to the directory holding ``package.json``."""
    origin = (start or Path(__file__).resolve().parent).resolve()
    candidates = [origin, *origin.parents]
    for directory in candidates:
        if (directory / _AZURITE_JS).is_file():
            return directory
    for directory in candidates:
        if (directory / "package.json").is_file():
            return directory
    raise AzuriteError(
        f"cannot find the project directory (with package.json or node_modules/azurite) at or above {origin}"
    )


def _free_ports(host: str, count: int) -> list[int]:
    # Bind all sockets before closing any, so the kernel hands out distinct ports.
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for s in sockets:
            s.bind((host, 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def free_ports(host: str = LOOPBACK) -> AzuritePorts:
    """Three currently free TCP ports on ``host``."""
    blob, queue, table = _free_ports(host, 3)
    return AzuritePorts(blob, queue, table)


class Azurite:
    """One Azurite process. Use as a (sync or async) context manager, or call start/stop.

    ``ports=None`` picks free loopback ports (and retries with new ones if another process grabbed
    them first); pass ``STANDARD_PORTS`` for the usual 10000-10002. ``location=None`` keeps all data
    in memory (``--inMemoryPersistence``); otherwise Azurite persists under that directory.
    """

    def __init__(
        self,
        project_dir: Path | str | None = None,
        *,
        ports: AzuritePorts | None = None,
        host: str = LOOPBACK,
        location: Path | str | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        self._project_dir = Path(project_dir) if project_dir is not None else None
        self._fixed_ports = ports
        self.host = host
        self._location = Path(location) if location is not None else None
        self._startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._ports: AzuritePorts | None = None

    @property
    def ports(self) -> AzuritePorts:
        if self._ports is None:
            raise AzuriteError("Azurite is not running; call start() first")
        return self._ports

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def connection_string(self) -> str:
        """Connection string for the running process (explicit endpoints on its ports)."""
        return connection_string(self.ports, self.host)

    def _command(self, ports: AzuritePorts) -> list[str]:
        node = shutil.which("node")
        if node is None:
            raise AzuriteError("Node.js is not on PATH: install Node.js 20+ to run Azurite")
        project = find_project_dir(self._project_dir)
        script = project / _AZURITE_JS
        if not script.is_file():
            raise AzuriteError(f"Azurite is not installed in {project}: run `npm ci` in {project}")
        persistence = (
            ["--location", str(self._location)] if self._location is not None else ["--inMemoryPersistence"]
        )
        return [
            node,
            str(script),
            *persistence,
            *_FLAGS,
            "--blobHost", self.host, "--blobPort", str(ports.blob),
            "--queueHost", self.host, "--queuePort", str(ports.queue),
            "--tableHost", self.host, "--tablePort", str(ports.table),
        ]  # fmt: skip

    def start(self) -> None:
        """Start Azurite and block until all three services accept connections (or raise AzuriteError)."""
        if self._process is not None:
            raise AzuriteError(f"Azurite is already running (pid {self._process.pid})")
        if self._fixed_ports is not None:
            busy = [p for p in self._fixed_ports.as_tuple() if is_listening(p, self.host)]
            if busy:
                raise AzuriteError(
                    f"ports {busy} on {self.host} are already in use (another Azurite?); stop it or "
                    "use free ports"
                )
            self._start_once(self._fixed_ports)
            return
        # Free ports can be taken by someone else between our probe and Azurite's bind: retry.
        attempts = 3
        for attempt in range(attempts):
            try:
                self._start_once(free_ports(self.host))
                return
            except AzuriteError:
                if attempt == attempts - 1:
                    raise

    def _start_once(self, ports: AzuritePorts) -> None:
        command = self._command(ports)
        log = tempfile.TemporaryFile()
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: stop() can signal node and any children
        )
        self._process, self._log, self._ports = process, log, ports
        deadline = time.monotonic() + self._startup_timeout
        pending = list(ports.as_tuple())
        while pending:
            if process.poll() is not None:
                tail = self._log_tail()
                self._cleanup()
                raise AzuriteError(
                    f"Azurite exited early with code {process.returncode} (ports {ports.as_tuple()}):\n{tail}"
                )
            if time.monotonic() > deadline:
                tail = self._log_tail()
                self.stop()
                raise AzuriteError(
                    f"Azurite did not open ports {pending} within {self._startup_timeout:.0f} s:\n{tail}"
                )
            pending = [p for p in pending if not is_listening(p, self.host)]
            if pending:
                time.sleep(0.05)

    def _log_tail(self, limit: int = 4000) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        text = self._log.read().decode("utf-8", errors="replace")
        return text[-limit:].strip() or "(no output)"

    def _cleanup(self) -> None:
        if self._log is not None:
            self._log.close()
        self._process, self._log, self._ports = None, None, None

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the process group: SIGTERM, then SIGKILL after ``timeout`` seconds. Idempotent."""
        process = self._process
        if process is None:
            return
        try:
            if process.poll() is None:
                _signal_group(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout)
                except subprocess.TimeoutExpired:
                    _signal_group(process.pid, signal.SIGKILL)
                    process.wait(timeout)
            # Children that outlived node (none expected) die with the group.
            _signal_group(process.pid, signal.SIGKILL)
        finally:
            self._cleanup()

    async def start_async(self) -> None:
        """``start`` on a worker thread, so the event loop keeps running while Azurite boots."""
        await asyncio.to_thread(self.start)

    async def stop_async(self) -> None:
        """``stop`` on a worker thread."""
        await asyncio.to_thread(self.stop)

    def __enter__(self) -> Azurite:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Azurite:
        await self.start_async()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop_async()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass  # the whole group has already exited: nothing left to stop
