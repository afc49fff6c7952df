"""durablehost.azurite: locating, starting and stopping Azurite, and its error messages."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from durablehost.azurite import (
    DEV_ACCOUNT_KEY,
    STANDARD_PORTS,
    Azurite,
    AzuritePorts,
    connection_string,
    find_project_dir,
    free_ports,
    is_listening,
    standard_ports_in_use,
)
from durablehost.errors import AzuriteError

REPO = Path(__file__).resolve().parents[2]

# A stand-in for azurite.js: listens on the three ports and spawns a child; with FAKE_IGNORE_TERM set
# it ignores SIGTERM, so that stop() has to escalate to SIGKILL of the whole process group.
FAKE_AZURITE = """
const net = require('net');
const { spawn } = require('child_process');
const arg = (name) => Number(process.argv[process.argv.indexOf(name) + 1]);
const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
require('fs').writeFileSync(process.env.FAKE_CHILD_PID_FILE, String(child.pid));
if (process.env.FAKE_IGNORE_TERM) process.on('SIGTERM', () => {});
for (const name of ['--blobPort', '--queuePort', '--tablePort']) {
  net.createServer().listen(arg(name), '127.0.0.1');
}
"""

FAILING_AZURITE = """
console.error('Exit due to unhandled error: listen EADDRINUSE: address already in use');
process.exit(3);
"""


def fake_project(root: Path, script: str) -> Path:
    target = root / "node_modules" / "azurite" / "dist" / "src" / "azurite.js"
    target.parent.mkdir(parents=True)
    target.write_text(script)
    (root / "package.json").write_text("{}")
    return root


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it has exited though.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


@pytest.fixture
def listener() -> Iterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock.getsockname()[1]
    sock.close()


def test_finds_the_repository_azurite() -> None:
    assert find_project_dir() == REPO
    assert find_project_dir(REPO / "durablehost" / "store") == REPO


def test_real_azurite_starts_answers_and_stops() -> None:
    server = Azurite(REPO)
    server.start()
    pid = server.pid
    ports = server.ports
    try:
        assert pid is not None and alive(pid)
        assert all(is_listening(p) for p in ports.as_tuple())
        assert f"TableEndpoint=http://127.0.0.1:{ports.table}/devstoreaccount1;" in server.connection_string
    finally:
        server.stop()
    assert not alive(pid)
    assert not any(is_listening(p) for p in ports.as_tuple())
    with pytest.raises(AzuriteError, match="not running"):
        _ = server.connection_string


def test_stop_kills_the_whole_process_group(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = fake_project(tmp_path, FAKE_AZURITE)
    pid_file = tmp_path / "child.pid"
    monkeypatch.setenv("FAKE_CHILD_PID_FILE", str(pid_file))
    monkeypatch.setenv("FAKE_IGNORE_TERM", "1")
    server = Azurite(project)
    server.start()
    node_pid = server.pid
    assert node_pid is not None
    deadline = time.monotonic() + 5
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    child_pid = int(pid_file.read_text())
    assert alive(child_pid)
    server.stop(timeout=0.5)  # SIGTERM is ignored: SIGKILL must follow
    deadline = time.monotonic() + 5
    while alive(child_pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not alive(node_pid)
    assert not alive(child_pid)


async def test_async_context_manager(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = fake_project(tmp_path, FAKE_AZURITE)
    monkeypatch.setenv("FAKE_CHILD_PID_FILE", str(tmp_path / "child.pid"))
    async with Azurite(project) as server:
        table_port = server.ports.table
        assert is_listening(table_port)
        server_pid = server.pid
    assert server_pid is not None and not alive(server_pid)


def test_missing_node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(AzuriteError, match=r"install Node\.js 20\+"):
        Azurite(REPO).start()


def test_missing_azurite(tmp_path: Path) -> None:
    (tmp_path / "package.json").write_text("{}")
    with pytest.raises(AzuriteError, match=rf"run `npm ci` in {tmp_path}"):
        Azurite(tmp_path).start()


def test_early_exit_reports_output(tmp_path: Path) -> None:
    project = fake_project(tmp_path, FAILING_AZURITE)
    with pytest.raises(AzuriteError, match=r"exited early with code 3(.|\n)*EADDRINUSE"):
        Azurite(project).start()


def test_fixed_ports_already_in_use(listener: int) -> None:
    ports = AzuritePorts(blob=listener, queue=listener + 1, table=listener + 2)
    with pytest.raises(AzuriteError, match=rf"\[{listener}\].*already in use"):
        Azurite(REPO, ports=ports).start()


def test_is_listening(listener: int) -> None:
    assert is_listening(listener)
    closed = free_ports().blob
    assert not is_listening(closed)


def test_standard_ports_helper_reports_only_listening_ports() -> None:
    busy = standard_ports_in_use()
    assert set(busy) <= set(STANDARD_PORTS.as_tuple())
    assert busy == [p for p in STANDARD_PORTS.as_tuple() if is_listening(p)]


def test_connection_string_names_every_endpoint() -> None:
    text = connection_string(AzuritePorts(1, 2, 3))
    assert "AccountName=devstoreaccount1;" in text and f"AccountKey={DEV_ACCOUNT_KEY};" in text
    for name, port in (("Blob", 1), ("Queue", 2), ("Table", 3)):
        assert f"{name}Endpoint=http://127.0.0.1:{port}/devstoreaccount1;" in text


def test_free_ports_are_distinct() -> None:
    assert len(set(free_ports().as_tuple())) == 3
