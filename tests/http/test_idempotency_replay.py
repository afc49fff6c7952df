"""Idempotency-Key over HTTP (issue #14 item 5), on SQLite and on Azurite: the first raise answers 202, a
repeat answers the same 202 marked ``Idempotent-Replayed: true`` — also after its event finished the
instance (formerly 410) —, the key with another payload answers 422, and a new key on a finished
instance still answers 410."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.http.hosting import MGMT, HostProcess, request, start_host, wait_status

JSON = {"Content-Type": "application/json"}


@pytest.fixture(params=["sqlite", pytest.param("azurite", marks=pytest.mark.azurite)])
def host_url(request: pytest.FixtureRequest) -> Iterator[str]:
    store = "memory"
    args: list[str] = []
    if request.param == "azurite":
        store = request.getfixturevalue("azurite_connection_string")
        args = ["--task-hub", f"Idem{uuid.uuid4().hex[:10]}"]
    host: HostProcess = start_host("--store", store, *args)
    assert host.url is not None
    yield host.url
    assert host.stop() == 0, host.log()


async def test_repeated_keys_are_answered_as_replays_before_and_after_completion(host_url: str) -> None:
    url = host_url
    instance_id = f"idem-{uuid.uuid4().hex[:8]}"
    status, body, _ = await request("POST", f"{url}{MGMT}/orchestrators/wait_event/{instance_id}", data=b"")
    assert status == 202, body
    await wait_status(url, instance_id, {"Running"})
    event_url = f"{url}{MGMT}/instances/{instance_id}/raiseEvent/approval"
    keyed = {**JSON, "Idempotency-Key": "order-17"}

    status, body, headers = await request("POST", event_url, data=b'{"ok": true}', headers=keyed)
    assert (status, body) == (202, b"") and "Idempotent-Replayed" not in headers
    await wait_status(url, instance_id, {"Completed"})
    for _ in range(3):  # the event finished the instance; its key still gets the original answer
        status, body, headers = await request("POST", event_url, data=b'{"ok": true}', headers=keyed)
        assert (status, body, headers.get("Idempotent-Replayed")) == (202, b"", "true")

    status, body, _ = await request("POST", event_url, data=b'{"ok": false}', headers=keyed)
    assert status == 422 and b"order-17" in body
    status, _, _ = await request(
        "POST", event_url, data=b'{"ok": true}', headers={**JSON, "Idempotency-Key": "new"}
    )
    assert status == 410
    done = await wait_status(url, instance_id, {"Completed"}, query="?showHistory=true")
    assert [e["EventType"] for e in done["historyEvents"]].count("EventRaised") == 1
    assert done["output"]["approval"] == {"ok": True}


async def test_a_repeat_before_the_event_is_consumed_is_a_replay(host_url: str) -> None:
    url = host_url
    instance_id = f"idem-{uuid.uuid4().hex[:8]}"
    status, _, _ = await request("POST", f"{url}{MGMT}/orchestrators/two_waits/{instance_id}", data=b"")
    assert status == 202
    await wait_status(url, instance_id, {"Running"})
    event_url = f"{url}{MGMT}/instances/{instance_id}/raiseEvent/step"
    answers = []
    for _ in range(5):
        status, _, headers = await request(
            "POST", event_url, data=b'"one"', headers={**JSON, "Idempotency-Key": "a"}
        )
        answers.append((status, headers.get("Idempotent-Replayed")))
    assert answers == [(202, None)] + [(202, "true")] * 4
    status, _, headers = await request(
        "POST", event_url, data=b'"two"', headers={**JSON, "Idempotency-Key": "b"}
    )
    assert (status, headers.get("Idempotent-Replayed")) == (202, None)
    assert (await wait_status(url, instance_id, {"Completed"}))["output"] == ["one", "two"]
