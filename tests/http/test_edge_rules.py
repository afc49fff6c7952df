"""Refusals at the edge (issue #14 items 2, 3, 8) against a running host on a SQLite file: nested and
lone-surrogate JSON on every JSON route and in the CLI's data, strictly parsed query parameters, and
errors that name the right party. Every refusal leaves the stored rows exactly as they were."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from durablehost.store import SqliteTableStore
from tests.http.hosting import MGMT, HostProcess, request, run_cli, start_host, wait_status
from tests.http.snapshot import settled_snapshot

HUB = "HttpTestHub"
JSON = {"Content-Type": "application/json"}


def nest(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.fixture(scope="module")
def edge_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, HostProcess]]:
    path = tmp_path_factory.mktemp("edge") / "state.sqlite"
    host = start_host("--store", f"sqlite:{path}")
    assert host.url is not None
    yield host.url, path, host
    assert host.stop() == 0, host.log()


async def stored(path: Path) -> list[tuple[str, str, str, str]]:
    store = SqliteTableStore(str(path))
    try:
        return await settled_snapshot(store, HUB)  # index copies linger: wait for them
    finally:
        await store.close()


async def waiting_instance(url: str) -> str:
    instance_id = f"edge-{uuid.uuid4().hex[:8]}"
    status, body, _ = await request("POST", f"{url}{MGMT}/orchestrators/wait_event/{instance_id}", data=b"")
    assert status == 202, body
    await wait_status(url, instance_id, {"Running"})
    return instance_id


def message(body: bytes) -> str:
    return str(json.loads(body)["Message"])


# --- item 2: nesting and lone surrogates on every JSON route ------------------------------------------------

DEEP_BODIES = {
    "65 levels": (nest(65).encode(), "the limit is 64"),
    "100,000 levels": (nest(100_000).encode(), "the limit is 64"),
    "SDK-encoded text of 901 levels": (json.dumps(nest(901)).encode(), "the limit is 900"),
}
SURROGATE_BODIES = {
    "escaped lone high surrogate": b'"\\ud800"',
    "escaped lone low surrogate in an object": b'{"a": "x\\udc00"}',
    "escaped lone surrogate as a key": b'{"\\udbff": 1}',
    "raw surrogate bytes": b'"\xed\xa0\x80"',
    "lone surrogate inside SDK-encoded text": json.dumps(json.dumps("\ud800")).encode(),
}


def json_routes(url: str, instance_id: str, entity_key: str) -> dict[str, str]:
    return {
        "start": f"{url}{MGMT}/orchestrators/wait_event/{instance_id}-new",
        "raiseEvent": f"{url}{MGMT}/instances/{instance_id}/raiseEvent/approval",
        "entity signal": f"{url}{MGMT}/entities/Counter/{entity_key}?op=add",
    }


async def test_nested_and_surrogate_bodies_are_refused_on_every_json_route(
    edge_host: tuple[str, Path, HostProcess],
) -> None:
    url, path, _ = edge_host
    instance_id = await waiting_instance(url)
    before = await stored(path)
    routes = json_routes(url, instance_id, f"k{uuid.uuid4().hex[:6]}")
    for route, target in routes.items():
        for name, (body, expected) in DEEP_BODIES.items():
            status, answer, _ = await request("POST", target, data=body, headers=JSON)
            assert status == 400, (route, name, answer[:300])
            assert expected in message(answer), (route, name, message(answer))
        for name, body in SURROGATE_BODIES.items():
            status, answer, _ = await request("POST", target, data=body, headers=JSON)
            assert status == 400, (route, name, answer[:300])
            assert re.search("surrogate|UTF-8", message(answer)), (route, name, message(answer))
    assert await stored(path) == before


async def test_payloads_within_the_limits_reach_the_orchestrator(
    edge_host: tuple[str, Path, HostProcess],
) -> None:
    url, _, _ = edge_host
    # A raw body of exactly 64 levels (Azure's limit), and a paired surrogate (one character, U+1F600).
    instance_id = await waiting_instance(url)
    status, body, _ = await request(
        "POST",
        f"{url}{MGMT}/instances/{instance_id}/raiseEvent/approval",
        data=nest(64).encode(),
        headers=JSON,
    )
    assert status == 202, body
    done = await wait_status(url, instance_id, {"Completed"})
    assert json.dumps(done["output"]["approval"], separators=(",", ":")) == nest(64)
    instance_id = await waiting_instance(url)
    status, body, _ = await request(
        "POST",
        f"{url}{MGMT}/instances/{instance_id}/raiseEvent/approval",
        data=b'"\\ud83d\\ude00"',
        headers=JSON,
    )
    assert status == 202, body
    assert (await wait_status(url, instance_id, {"Completed"}))["output"]["approval"] == "\U0001f600"
    # 900 levels through the SDK client in a trigger (it double-encodes), and back out of get_input().
    deep: Any = []
    for _ in range(899):
        deep = [deep]
    status, body, _ = await request(
        "POST", f"{url}/api/orchestrators/wait_event", data=json.dumps(deep).encode()
    )
    assert status == 202, body
    started = json.loads(body)["id"]
    await wait_status(url, started, {"Running"})
    status, body, _ = await request(
        "POST", f"{url}/api/events/{started}/approval", data=json.dumps(deep).encode()
    )
    assert status == 202, body
    done = await wait_status(url, started, {"Completed"})
    assert done["output"]["input"] == deep
    assert done["output"]["approval"] == json.dumps(deep)  # the SDK's raise_event double-encodes (#295)


async def test_the_cli_refuses_data_that_cannot_be_sent(edge_host: tuple[str, Path, HostProcess]) -> None:
    url, path, _ = edge_host
    instance_id = await waiting_instance(url)
    before = await stored(path)
    for data, expected in (
        (nest(65), "the limit is 64"),
        (json.dumps(nest(901)), "the limit is 900"),
        ('"\\ud800"', "surrogate"),
        ("\udced\udca0\udc80", "surrogate"),  # the bytes ED A0 80 on the command line (surrogateescape)
    ):
        result = run_cli("raise", instance_id, "approval", data, "--url", url)
        assert result.returncode == 2, (data[:20], result.stderr)
        assert expected in result.stderr, result.stderr
    assert await stored(path) == before


# --- item 3: query parameters ------------------------------------------------------------------------


async def test_a_purge_with_an_unreadable_filter_deletes_nothing(
    edge_host: tuple[str, Path, HostProcess],
) -> None:
    url, path, _ = edge_host
    finished = f"done-{uuid.uuid4().hex[:8]}"
    status, _, _ = await request(
        "POST", f"{url}{MGMT}/orchestrators/hello_sequence/{finished}", json_body=["P"]
    )
    assert status == 202
    await wait_status(url, finished, {"Completed"})
    before = await stored(path)
    purge = f"{url}{MGMT}/instances/?"
    for bad, names in (
        ("createdTimeFrom=2024-01-01T00:00:00Z%00", "createdTimeFrom"),
        ("createdTimeFrom=2024-01-01T00:00:00Zjunk", "createdTimeFrom"),
        ("createdTimeFrom=2024-01-01T00:00:00+01:00", "%2B"),
        ("createdTimeFrom=0001-01-01T00:00:00Z", "1601"),
        ("createdTimeFrom=2024-01-01&createdTimeTo=soon", "createdTimeTo"),
        ("createdTimeFrom=2024-01-01&runtimeStatus=", "runtimeStatus"),
        ("createdTimeFrom=2024-01-01&runtimeStatus=Completed,", "runtimeStatus"),
        ("createdTimeFrom=2024-01-01&runtimeStatus=Completed%00", "runtimeStatus"),
        ("createdTimeFrom=2024-01-01&runtimestatuss=Completed", "runtimestatuss"),
        ("createdTimeFrom=2024-01-01&createdTimeFrom=2025-01-01", "more than once"),
        ("createdTimeFrom=2024-01-01&createdTimeTo=2030-01-01%FF", "UTF-8"),
        ("createdTimeFrom=2024-01-01&taskHub=OtherHub", "OtherHub"),
        ("createdTimeFrom=2024-01-01&connection=OtherStorage", "OtherStorage"),
    ):
        status, body, _ = await request("DELETE", purge + bad)
        assert status == 400, (bad, body)
        assert names in message(body), (bad, message(body))
    assert await stored(path) == before
    status, _, _ = await request("GET", f"{url}{MGMT}/instances/{finished}")
    assert status == 200


async def test_query_parameters_are_parsed_strictly(edge_host: tuple[str, Path, HostProcess]) -> None:
    url, path, _ = edge_host
    instance_id = await waiting_instance(url)
    before = await stored(path)
    for method, target, names in (
        ("GET", f"instances/{instance_id}?showHistory=yes", "showHistory"),
        ("GET", f"instances/{instance_id}?showInput=%FF", "UTF-8"),
        ("GET", f"instances/{instance_id}?returnInternalServerErrorOnFailure=1", "returnInternalServerError"),
        ("GET", "instances/?top=5x", "top"),
        ("GET", "instances/?top=%2B5", "top"),
        ("GET", "instances/?top=1001", "top"),
        ("GET", "instances/?instanceIdPrefix=a%2Fb", "instanceIdPrefix"),
        ("GET", "instances/?createdTimeTo=2024-02-30T00:00:00Z", "createdTimeTo"),
        ("GET", "counts?createdTimeFrom=2024-01-01T25:00:00Z", "createdTimeFrom"),
        ("POST", "orchestrators/hello_sequence/q-new?timeout=1e3", "timeout"),
        ("POST", "orchestrators/hello_sequence/q-new?timeout=10&pollingInterval=-1", "pollingInterval"),
        ("POST", f"instances/{instance_id}/terminate?reason=a%00b", "reason"),
        ("POST", f"instances/{instance_id}/terminate?recursive=maybe", "recursive"),
        ("POST", f"instances/{instance_id}/suspend?reason=x&reason=y", "more than once"),
        ("POST", f"instances/{instance_id}/restart?restartWithNewInstanceId=no", "restartWithNewInstanceId"),
        ("POST", "entities/Counter/q?op=", "op"),
    ):
        status, body, _ = await request(method, f"{url}{MGMT}/{target}", data=b"")
        assert status == 400, (target, body)
        assert names in message(body), (target, message(body))
    assert await stored(path) == before
    # The forms the SDK, the viewer and people send are read.
    for good in (
        "createdTimeFrom=2024-01-01T00:00:00.000000Z",  # the SDK
        "createdTimeFrom=2024-01-01T00:00:00.000Z",  # the viewer (toISOString)
        "createdTimeFrom=2024-01-01T01:00:00%2B01:00&createdTimeTo=2999-12-31",
        "runtimeStatus=running,Pending&showInput=True&top=5",
    ):
        status, body, _ = await request("GET", f"{url}{MGMT}/instances/?{good}")
        assert status == 200, (good, body)


# --- item 8: errors that name the right party --------------------------------------------------------


async def test_purging_a_running_instance_says_why(edge_host: tuple[str, Path, HostProcess]) -> None:
    url, _, _ = edge_host
    instance_id = await waiting_instance(url)
    status, body, _ = await request("DELETE", f"{url}{MGMT}/instances/{instance_id}")
    answer = json.loads(body)
    assert status == 409
    for text in (answer["Message"], answer["ExceptionMessage"]):  # the SDK raises with ExceptionMessage
        assert "purge" in text and "Running" in text and "terminate" in text, text
        assert "use another id" not in text


async def test_a_corrupt_stored_row_is_a_500_with_an_error_id_in_the_log(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    host = start_host("--store", f"sqlite:{path}")
    try:
        url = host.url
        assert url is not None
        status, _, _ = await request(
            "POST", f"{url}{MGMT}/orchestrators/hello_sequence/corrupt", json_body=["C"]
        )
        assert status == 202
        await wait_status(url, "corrupt", {"Completed"})
        store = SqliteTableStore(str(path))
        try:
            await store.upsert(f"{HUB}Instances", "corrupt", "I", {"RuntimeStatus": "NoSuchStatus"})
        finally:
            await store.close()
        status, body, _ = await request("GET", f"{url}{MGMT}/instances/corrupt")
        assert status == 500, body  # the stored row is wrong, not the request
        found = re.search(r"error id ([0-9a-f]{12})", message(body))
        assert found is not None, message(body)
    finally:
        assert host.stop() == 0, host.log()
    log = host.log()
    assert f"error id {found.group(1)}" in log and "NoSuchStatus" in log
