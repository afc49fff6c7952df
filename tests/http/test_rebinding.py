"""DNS rebinding on every key-free listener (issue #14 item 4): the local RPC listener of an exposed host
(bound to 127.0.0.2, keys enforced, see test_keys.py) refuses requests naming another host and every
browser request, while the SDK's client inside HTTP triggers, which calls it, keeps working; a
loopback-bound host refuses rebound browser requests on its public listener."""

from __future__ import annotations

import http.client
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.http.hosting import MGMT, HostProcess, start_host

MASTER = "rebinding-master-key-0123456789"
FUNCTION = "rebinding-function-key-0123456789"


def call(
    port: int, method: str, path: str, headers: dict[str, str], host: str = "127.0.0.1"
) -> tuple[int, bytes]:
    """A request with exactly these headers (Host included), as a rebound browser page would send it."""
    connection = http.client.HTTPConnection(host, port, timeout=10)
    try:
        connection.request(method, path, body=b"" if method == "POST" else None, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def loopback_listeners(pid: int) -> set[int]:
    """Ports the process listens on at 127.0.0.1 (its sockets' inodes in /proc/net/tcp)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(fd) if fd.is_symlink() else ""
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, state, inode = fields[1], fields[3], fields[9]
        if state == "0A" and inode in inodes and local.startswith("0100007F:"):
            ports.add(int(local.split(":")[1], 16))
    return ports


@pytest.fixture(scope="module")
def exposed() -> Iterator[tuple[HostProcess, int, int]]:
    host = start_host(
        "--store",
        "memory",
        "--host",
        "127.0.0.2",
        env={"DURABLEHOST_MASTER_KEY": MASTER, "DURABLEHOST_FUNCTION_KEY": FUNCTION},
    )
    assert host.url is not None
    public = int(host.url.rsplit(":", 1)[1])
    (rpc,) = loopback_listeners(host.process.pid)
    yield host, public, rpc
    assert host.stop() == 0, host.log()


def test_the_local_rpc_listener_refuses_rebound_and_browser_requests(
    exposed: tuple[HostProcess, int, int],
) -> None:
    _, _, rpc = exposed
    rebound = f"evil.example:{rpc}"
    for method, path, headers in (
        ("GET", f"{MGMT}/instances/", {"Host": rebound}),
        ("GET", f"{MGMT}/instances/rebound", {"Host": rebound}),
        ("POST", f"{MGMT}/orchestrators/hello_sequence/rebound", {"Host": rebound}),
        (
            "POST",
            f"{MGMT}/orchestrators/hello_sequence/rebound",
            {"Host": rebound, "Origin": f"http://{rebound}"},
        ),
        # A browser naming the right host (a page on another origin posting to 127.0.0.1:<rpc>).
        ("POST", f"{MGMT}/orchestrators/hello_sequence/rebound", {"Origin": "http://evil.example"}),
        ("GET", f"{MGMT}/instances/", {"Sec-Fetch-Site": "same-origin"}),
    ):
        status, body = call(rpc, method, path, headers)
        assert status == 403, (method, path, headers, body)
    # Nothing was started, and the listener still answers the SDK's kind of request (no key, no Origin).
    status, _ = call(rpc, "GET", f"{MGMT}/instances/rebound", {})
    assert status == 404


def test_the_sdk_client_inside_a_trigger_still_works_on_an_exposed_host(
    exposed: tuple[HostProcess, int, int],
) -> None:
    _, public, _ = exposed
    keyed = {"x-functions-key": FUNCTION, "Content-Type": "application/json"}
    connection = http.client.HTTPConnection("127.0.0.2", public, timeout=10)
    try:
        connection.request("POST", "/api/orchestrators/hello_sequence", body=b'["R"]', headers=keyed)
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    assert response.status == 202, body  # the SDK's start_new went through the RPC listener
    instance_id = json.loads(body)["id"]
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        status, answer = call(public, "GET", f"/api/sdk-status/{instance_id}", {}, host="127.0.0.2")
        assert status == 200, answer  # the SDK's get_status, also through the RPC listener
        if json.loads(answer)["runtimeStatus"] == "Completed":
            break
        time.sleep(0.05)
    assert json.loads(answer)["output"] == ["Hello R!"]


def test_a_loopback_host_refuses_rebound_browser_requests() -> None:
    host = start_host("--store", "memory")
    try:
        assert host.url is not None
        port = int(host.url.rsplit(":", 1)[1])
        rebound = {"Host": f"evil.example:{port}", "Sec-Fetch-Site": "same-origin"}
        assert call(port, "GET", f"{MGMT}/instances/", rebound)[0] == 403
        assert call(port, "POST", f"{MGMT}/orchestrators/hello_sequence/rebound", rebound)[0] == 403
        assert call(port, "GET", f"{MGMT}/instances/rebound", {})[0] == 404
    finally:
        assert host.stop() == 0, host.log()
