"""Helpers: run ``durablehost start`` as a subprocess, as a user would, and talk to it over HTTP."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp

APPS = Path(__file__).parent / "apps"
SIMPLE = APPS / "simple"
DURABLEHOST = str(Path(sys.executable).parent / "durablehost")
MGMT = "/runtime/webhooks/durabletask"
_LISTENING = re.compile(r"Listening on (http://\S+)")


class HostProcess:
    """One ``durablehost start`` subprocess; ``url`` once it listens (``--port 0`` picks a free port).

    ``executable`` is the ``durablehost`` script to run, or a command line ending where ``start`` goes (a
    launcher such as ``[python, script]``)."""

    def __init__(
        self,
        args: list[str],
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        executable: str | Sequence[str] = DURABLEHOST,
    ) -> None:
        self.stderr = tempfile.TemporaryFile()
        self.lines: list[str] = []
        self.url: str | None = None
        self._listening = threading.Event()
        environment = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.process = subprocess.Popen(
            [*([executable] if isinstance(executable, str) else executable), "start", *args],
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
            env=environment,
            cwd=cwd,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            found = _LISTENING.search(line)
            if found:
                self.url = found.group(1)
                self._listening.set()
        self._listening.set()  # stdout closed: the process ended

    def wait_listening(self, timeout: float = 30.0) -> str:
        if not self._listening.wait(timeout) or self.url is None:
            raise AssertionError(f"durablehost did not start (exit {self.process.poll()}):\n{self.log()}")
        return self.url

    def log(self) -> str:
        self.stderr.seek(0)
        return "".join(self.lines) + self.stderr.read().decode("utf-8", "replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"durablehost did not stop within {timeout} s:\n{self.log()}") from None

    def wait_exit(self, timeout: float = 30.0) -> int:
        return self.process.wait(timeout)


def start_host(*args: str, app: Path = SIMPLE, env: Mapping[str, str] | None = None) -> HostProcess:
    host = HostProcess(["--app-dir", str(app), "--port", "0", *args], env=env)
    host.wait_listening()
    return host


async def request(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    data: Any = None,
    json_body: Any = None,
) -> tuple[int, bytes, Mapping[str, str]]:
    async with aiohttp.ClientSession() as session:
        kwargs: dict[str, Any] = {"headers": headers, "allow_redirects": False}
        if json_body is not None:
            kwargs["json"] = json_body
        else:
            kwargs["data"] = data
        async with session.request(method, url, **kwargs) as response:
            return response.status, await response.read(), dict(response.headers)


async def wait_status(
    url: str, instance_id: str, wanted: set[str], timeout: float = 15.0, query: str = ""
) -> dict[str, Any]:
    """Poll the status route until the runtime status is one of ``wanted``."""
    import json

    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        _, body, _ = await request("GET", f"{url}{MGMT}/instances/{instance_id}{query}")
        if body:
            last = json.loads(body)
            if last.get("runtimeStatus") in wanted:
                return dict(last)
        await asyncio.sleep(0.05)
    raise AssertionError(f"{instance_id} did not reach {wanted}; last status {last}")


def run_cli(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DURABLEHOST, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )
