"""``durablehost start --workers 2``: two worker processes behind one port, both doing the work; a worker
that dies is restarted; Ctrl-C stops the group cleanly."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import time
from collections import Counter
from pathlib import Path

from tests.http.hosting import MGMT, HostProcess, request, run_cli, wait_status

CLUSTER = Path(__file__).resolve().parents[1] / "engine" / "apps" / "cluster"
_SERVING = re.compile(r"worker (w\d) \(pid (\d+)\) serves")


def _workers(host: HostProcess) -> dict[str, int]:
    """The pid each worker label last served under, from the log."""
    return {label: int(pid) for label, pid in _SERVING.findall(host.log())}


def _owners(host: HostProcess) -> Counter[str]:
    """How many partitions each worker owns, from the ownership log lines so far."""
    owner: dict[str, str] = {}
    for label, verb, partition in re.findall(r"process (w\d) (owns|handed) partition (\d+)", host.log()):
        if verb == "owns":
            owner[partition] = label
        elif owner.get(partition) == label:
            del owner[partition]
    return Counter(owner.values())


def _pids(ledger: Path) -> Counter[int]:
    return Counter(int(line.rsplit("pid=", 1)[1]) for line in ledger.read_text().splitlines() if line)


async def _until(what: str, check: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def _start_chains(url: str, count: int) -> list[str]:
    ids = []
    for _ in range(count):
        status, body, _ = await request("POST", f"{url}{MGMT}/orchestrators/chain", json_body=3)
        assert status == 202, body
        ids.append(json.loads(body)["id"])
    return ids


async def test_two_workers_share_one_port_and_the_work_restart_a_dead_one_and_stop_cleanly(
    tmp_path: Path,
) -> None:
    ledger = tmp_path / "ledger.txt"
    ledger.touch()
    host = HostProcess(
        [
            "--app-dir",
            str(CLUSTER),
            "--port",
            "0",
            "--store",
            f"sqlite:{tmp_path / 'hub.sqlite'}",
            "--workers",
            "2",
        ],
        env={"CLUSTER_LEDGER": str(ledger)},
    )
    try:
        url = host.wait_listening(60)
        await _until("both workers to serve", lambda: len(_workers(host)) == 2)
        await _until("the partitions to be shared", lambda: sorted(_owners(host).values()) == [2, 2])
        assert "Workers:   2 processes serve this port" in host.log()
        first = _workers(host)
        ids = await _start_chains(url, 40)
        for instance_id in ids:
            done = await wait_status(url, instance_id, {"Completed", "Failed"}, timeout=60)
            assert (done["runtimeStatus"], done["output"]) == ("Completed", 6)
        # Both processes ran activities: the partitions were shared between them.
        assert set(_pids(ledger)) == set(first.values())

        os.kill(first["w2"], signal.SIGKILL)
        await _until("w2 to be restarted", lambda: _workers(host).get("w2") not in (None, first["w2"]))
        assert re.search(r"worker w2 \(pid \d+\) exited with code -9; starting a new one", host.log())
        # The group still serves and works, the new worker among the others.
        ids = await _start_chains(url, 20)
        for instance_id in ids:
            done = await wait_status(url, instance_id, {"Completed", "Failed"}, timeout=60)
            assert done["runtimeStatus"] == "Completed"
    finally:
        code = host.stop(signal.SIGINT, timeout=60)
    log = host.log()
    assert code == 0, log
    assert "Traceback" not in log
    assert "stopping 2 workers" in log
    for pid in _workers(host).values():
        assert not _alive(pid), f"worker {pid} still runs after the group stopped"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_workers_cannot_share_a_memory_store() -> None:
    done = run_cli("start", "--app-dir", str(CLUSTER), "--port", "0", "--store", "memory", "--workers", "2")
    assert done.returncode == 2
    assert "--store memory cannot be shared by several workers" in done.stderr


def test_a_group_whose_workers_cannot_start_stops_with_their_exit_code(tmp_path: Path) -> None:
    (tmp_path / "function_app.py").write_text("raise RuntimeError('broken app')\n")
    done = run_cli(
        "start", "--app-dir", str(tmp_path), "--port", "0", "--store", f"sqlite:{tmp_path / 'h.sqlite'}",
        "--workers", "2", timeout=60,
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert "broken app" in done.stderr
    assert "failed to start (exit code 3); stopping" in done.stderr
