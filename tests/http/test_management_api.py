"""The management API and the app's HTTP triggers of a running ``durablehost start`` (protocol §5.3, §6)."""

from __future__ import annotations

import asyncio
import json
import uuid

from tests.http.hosting import MGMT, request, wait_status

LINKS = {
    "id",
    "statusQueryGetUri",
    "sendEventPostUri",
    "terminatePostUri",
    "rewindPostUri",
    "purgeHistoryDeleteUri",
    "restartPostUri",
    "suspendPostUri",
    "resumePostUri",
}
JSON = {"Content-Type": "application/json"}


def new_id(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


async def start_waiting(url: str, instance_id: str, orchestrator: str = "wait_event") -> None:
    status, body, _ = await request(
        "POST", f"{url}{MGMT}/orchestrators/{orchestrator}/{instance_id}", data=b""
    )
    assert status == 202, body
    await wait_status(url, instance_id, {"Running"})


# --- the app's HTTP starter with the real durable client binding -----------------------------------------


async def test_http_starter_links_work_when_followed(url: str) -> None:
    status, body, headers = await request(
        "POST", f"{url}/api/orchestrators/hello_sequence", json_body=["A", "B"]
    )
    assert status == 202, body
    links = json.loads(body)
    assert set(links) == LINKS
    assert headers["Location"] == links["statusQueryGetUri"]
    # The SDK rewrote the links to the origin we called, so they lead back to this host.
    assert links["statusQueryGetUri"].startswith(f"{url}{MGMT}/instances/{links['id']}?")
    for _ in range(300):
        status, body, _ = await request("GET", links["statusQueryGetUri"])
        if status == 200:
            break
        assert status == 202
    result = json.loads(body)
    assert result["runtimeStatus"] == "Completed"
    assert result["output"] == ["Hello A!", "Hello B!"]
    # Python clients double-encode the input, so the status shows it as a string (§5.3).
    assert json.loads(result["input"]) == ["A", "B"]
    status, body, _ = await request("DELETE", links["purgeHistoryDeleteUri"])
    assert (status, json.loads(body)) == (200, {"instancesDeleted": 1})


async def test_sdk_client_inside_a_trigger_reads_status_and_raises_events(url: str) -> None:
    instance_id = new_id("sdk")
    await start_waiting(url, instance_id)
    status, body, _ = await request("GET", f"{url}/api/sdk-status/{instance_id}")
    assert status == 200 and json.loads(body)["runtimeStatus"] == "Running"
    status, body, _ = await request(
        "POST", f"{url}/api/events/{instance_id}/approval", json_body={"ok": True}
    )
    assert status == 202, body
    done = await wait_status(url, instance_id, {"Completed"})
    # The SDK posts json.dumps(json.dumps(data)) and the raw body is the event input (§5.4, #295).
    assert done["output"]["approval"] == json.dumps({"ok": True})
    status, body, _ = await request("GET", f"{url}/api/sdk-status/{new_id()}")
    assert status == 404


# --- starting ---------------------------------------------------------------------------------------------


async def test_start_with_double_encoded_input_and_id(url: str) -> None:
    instance_id = new_id("start")
    status, body, headers = await request(
        "POST", f"{url}{MGMT}/orchestrators/hello_sequence/{instance_id}", data=json.dumps(json.dumps(["X"]))
    )
    assert status == 202, body
    links = json.loads(body)
    assert set(links) == LINKS and links["id"] == instance_id
    assert headers["Location"] == links["statusQueryGetUri"]
    done = await wait_status(url, instance_id, {"Completed"})
    assert done["output"] == ["Hello X!"]
    # A finished instance may be replaced by a new start with the same id.
    status, _, _ = await request(
        "POST", f"{url}{MGMT}/orchestrators/hello_sequence/{instance_id}", json_body=["Y"]
    )
    assert status == 202
    assert (await wait_status(url, instance_id, {"Completed"}))["output"] == ["Hello Y!"]


async def test_start_refusals(url: str) -> None:
    running = new_id("run")
    await start_waiting(url, running)
    status, body, _ = await request("POST", f"{url}{MGMT}/orchestrators/wait_event/{running}")
    assert status == 409 and running in json.loads(body)["ExceptionMessage"]
    status, body, _ = await request("POST", f"{url}{MGMT}/orchestrators/no_such_thing")
    assert status == 400
    assert "The function 'no_such_thing' doesn't exist" in json.loads(body)["ExceptionMessage"]
    status, body, _ = await request("POST", f"{url}{MGMT}/orchestrators/hello_sequence", data=b"{not json")
    assert status == 400 and "not valid JSON" in json.loads(body)["Message"]
    status, _, _ = await request("POST", f"{url}{MGMT}/orchestrators/hello_sequence/%40entity")
    assert status == 400
    status, _, _ = await request("POST", f"{url}{MGMT}/orchestrators/hello_sequence/{'x' * 300}")
    assert status == 400
    status, body, _ = await request(
        "POST", f"{url}{MGMT}/orchestrators/hello_sequence", data=b"1" * (1024 * 1024 + 1)
    )
    assert status == 413 and "1048576" in json.loads(body)["Message"]
    status, body, headers = await request("GET", f"{url}{MGMT}/orchestrators/hello_sequence")
    assert status == 405 and headers["Allow"] == "POST"


async def test_start_and_wait_for_completion(url: str) -> None:
    status, body, _ = await request(
        "POST", f"{url}{MGMT}/orchestrators/hello_sequence?timeout=10&pollingInterval=0.1", json_body=["W"]
    )
    assert (status, json.loads(body)) == (200, ["Hello W!"])
    status, _, _ = await request("POST", f"{url}{MGMT}/orchestrators/hello_sequence?timeout=abc")
    assert status == 400


# --- status and listing -----------------------------------------------------------------------------------


async def test_status_codes_and_flags(url: str) -> None:
    status, body, _ = await request("GET", f"{url}{MGMT}/instances/{new_id()}")
    assert (status, body) == (404, b"")
    instance_id = new_id("st")
    await start_waiting(url, instance_id)
    status_url = f"{url}{MGMT}/instances/{instance_id}"
    status, body, headers = await request("GET", status_url)
    assert status == 202 and headers["Retry-After"] == "5" and headers["Location"] == status_url
    # The SDK sends Python's True: flags are case-insensitive (§5.2).
    status, body, _ = await request(
        "GET", f"{status_url}?showHistory=True&showHistoryOutput=True&showInput=False"
    )
    shown = json.loads(body)
    assert shown["input"] is None
    assert shown["historyEvents"][0]["EventType"] == "ExecutionStarted"
    # Case-insensitive routes, with or without a trailing slash.
    for variant in (f"{url}/Runtime/WebHooks/DurableTask/Instances/{instance_id}/", f"{status_url}/"):
        status, _, _ = await request("GET", variant)
        assert status == 202
    failed = new_id("fail")
    await request("POST", f"{url}{MGMT}/orchestrators/fails/{failed}")
    done = await wait_status(url, failed, {"Failed"})
    assert "orchestrator gave up" in json.dumps(done["output"])
    status, _, _ = await request("GET", f"{url}{MGMT}/instances/{failed}")
    assert status == 200
    status, _, _ = await request(
        "GET", f"{url}{MGMT}/instances/{failed}?returnInternalServerErrorOnFailure=true"
    )
    assert status == 500


async def test_list_with_filters_and_paging(url: str) -> None:
    prefix = new_id("list")
    ids = [f"{prefix}-{i}" for i in range(3)]
    for instance_id in ids:
        await start_waiting(url, instance_id)
    status, body, _ = await request("GET", f"{url}{MGMT}/instances/?instanceIdPrefix={prefix}")
    assert status == 200 and sorted(s["instanceId"] for s in json.loads(body)) == ids
    seen: list[str] = []
    token = None
    for _ in range(10):
        headers = {"x-ms-continuation-token": token} if token else None
        status, body, answer = await request(
            "GET", f"{url}{MGMT}/instances?instanceIdPrefix={prefix}&top=1", headers=headers
        )
        assert status == 200
        seen += [s["instanceId"] for s in json.loads(body)]
        token = answer.get("x-ms-continuation-token")
        if not token:
            break
    assert sorted(seen) == ids
    status, body, _ = await request(
        "GET", f"{url}{MGMT}/instances/?instanceIdPrefix={prefix}&runtimeStatus=completed,Failed"
    )
    assert (status, json.loads(body)) == (200, [])
    status, body, _ = await request(
        "GET", f"{url}{MGMT}/instances/?instanceIdPrefix={prefix}&runtimeStatus=Running"
    )
    assert len(json.loads(body)) == 3
    for bad in ("runtimeStatus=Sleeping", "top=0", "top=x", "createdTimeFrom=yesterday"):
        status, _, _ = await request("GET", f"{url}{MGMT}/instances/?{bad}")
        assert status == 400, bad
    status, _, _ = await request(
        "GET", f"{url}{MGMT}/instances/", headers={"x-ms-continuation-token": "garbage"}
    )
    assert status == 400


# --- events -----------------------------------------------------------------------------------------------


async def test_raise_event_with_json_body(url: str) -> None:
    instance_id = new_id("ev")
    await start_waiting(url, instance_id)
    event_url = f"{url}{MGMT}/instances/{instance_id}/raiseEvent/approval"
    # Without a JSON content type: 400, and nothing was delivered.
    status, _, _ = await request(
        "POST", event_url, data=b'{"ok": true}', headers={"Content-Type": "text/plain"}
    )
    assert status == 400
    status, _, _ = await request("POST", event_url, data=b"{oops", headers=JSON)
    assert status == 400
    status, _, _ = await request(
        "POST", f"{url}{MGMT}/instances/{instance_id}/raiseEvent/{'e' * 200}", data=b"1", headers=JSON
    )
    assert status == 400
    running = await wait_status(url, instance_id, {"Running"}, query="?showHistory=true")
    assert "EventRaised" not in [e["EventType"] for e in running["historyEvents"]]
    status, body, _ = await request("POST", event_url, data=b'{"ok": true}', headers=JSON)
    assert (status, body) == (202, b"")
    done = await wait_status(url, instance_id, {"Completed"})
    assert done["output"]["approval"] == {"ok": True}  # the raw body is the event input (§5.4)
    status, _, _ = await request("POST", event_url, data=b"1", headers=JSON)
    assert status == 410
    status, _, _ = await request(
        "POST", f"{url}{MGMT}/instances/{new_id()}/raiseEvent/approval", data=b"1", headers=JSON
    )
    assert status == 404


async def test_idempotency_key_delivers_once(url: str) -> None:
    instance_id = new_id("idem")
    await start_waiting(url, instance_id, "two_waits")
    event_url = f"{url}{MGMT}/instances/{instance_id}/raiseEvent/step"
    for _ in range(2):
        status, _, _ = await request(
            "POST", event_url, data=b'"first"', headers={**JSON, "Idempotency-Key": "k1"}
        )
        assert status == 202
    status, _, _ = await request(
        "POST", event_url, data=b'"x"', headers={**JSON, "Idempotency-Key": "bad key"}
    )
    assert status == 400
    state = await wait_status(url, instance_id, {"Running"}, query="?showHistory=true")
    assert [e["EventType"] for e in state["historyEvents"]].count("EventRaised") <= 1
    status, _, _ = await request(
        "POST", event_url, data=b'"second"', headers={**JSON, "Idempotency-Key": "k2"}
    )
    assert status == 202
    done = await wait_status(url, instance_id, {"Completed"})
    assert done["output"] == ["first", "second"]


# --- terminate, suspend, resume, purge, not implemented ---------------------------------------------------


async def test_suspend_resume_terminate(url: str) -> None:
    instance_id = new_id("life")
    await start_waiting(url, instance_id)
    base = f"{url}{MGMT}/instances/{instance_id}"
    status, _, _ = await request("POST", f"{base}/suspend?reason=pause")
    assert status == 202
    await wait_status(url, instance_id, {"Suspended"})
    status, _, _ = await request("POST", f"{base}/resume?reason=go")
    assert status == 202
    await wait_status(url, instance_id, {"Running"})
    status, _, _ = await request("DELETE", base)
    assert status == 409  # not finished: not purged
    status, _, _ = await request("POST", f"{base}/terminate?reason=enough")
    assert status == 202
    done = await wait_status(url, instance_id, {"Terminated"})
    assert done["output"] == "enough"
    for operation in ("terminate", "suspend", "resume"):
        status, _, _ = await request("POST", f"{base}/{operation}")
        assert status == 410
        status, _, _ = await request("POST", f"{url}{MGMT}/instances/{new_id()}/{operation}")
        assert status == 404
    status, body, _ = await request("DELETE", base)
    assert (status, json.loads(body)) == (200, {"instancesDeleted": 1})
    status, _, _ = await request("DELETE", base)
    assert status == 404


async def test_rewind_restart_and_purge_by_filter(url: str) -> None:
    failed = new_id("rw")
    await request("POST", f"{url}{MGMT}/orchestrators/fails/{failed}", data=b"")
    await wait_status(url, failed, {"Failed"})
    status, _, _ = await request("POST", f"{url}{MGMT}/instances/{failed}/rewind?reason=try again")
    assert status == 202
    again = await wait_status(url, failed, {"Failed"})  # the orchestrator fails the same way again
    assert "orchestrator gave up" in again["output"]
    waiting = new_id("rw")
    await start_waiting(url, waiting)
    status, body, _ = await request("POST", f"{url}{MGMT}/instances/{waiting}/rewind")
    assert status == 410 and "not Failed" in json.loads(body)["Message"]
    status, _, _ = await request("POST", f"{url}{MGMT}/instances/{new_id()}/rewind")
    assert status == 404

    status, body, _ = await request("POST", f"{url}{MGMT}/instances/{failed}/restart")
    assert status == 202
    restarted = json.loads(body)["id"]
    assert restarted != failed
    await wait_status(url, restarted, {"Failed"})
    status, _, _ = await request(
        "POST", f"{url}{MGMT}/instances/{waiting}/restart?restartWithNewInstanceId=false"
    )
    assert status == 409  # still running under that id

    status, _, _ = await request("DELETE", f"{url}{MGMT}/instances/?runtimeStatus=Failed")
    assert status == 400  # createdTimeFrom is required
    status, body, _ = await request(
        "DELETE", f"{url}{MGMT}/instances/?createdTimeFrom=2000-01-01T00:00:00Z&runtimeStatus=Failed"
    )
    assert status == 200 and json.loads(body)["instancesDeleted"] >= 2
    status, _, _ = await request("GET", f"{url}{MGMT}/instances/{failed}")
    assert status == 404
    status, _, _ = await request("GET", f"{url}{MGMT}/instances/{waiting}")
    assert status == 202  # running instances are never purged
    status, _, _ = await request(
        "DELETE", f"{url}{MGMT}/instances/?createdTimeFrom=2000-01-01T00:00:00Z&runtimeStatus=Failed"
    )
    assert status == 404  # nothing left to purge


async def test_listing_entities_pages_filters_and_fetches_state(url: str) -> None:
    keys = [new_id("list") for _ in range(3)]
    for n, key in enumerate(keys):
        status, _, _ = await request(
            "POST",
            f"{url}{MGMT}/entities/Counter/{key}?op=add",
            data=str(n + 1).encode(),
            headers={"Content-Type": "application/json"},
        )
        assert status == 202
    for key in keys:
        for _ in range(100):
            status, _, _ = await request("GET", f"{url}{MGMT}/entities/Counter/{key}")
            if status == 200:
                break
            await asyncio.sleep(0.02)
    listed: dict[str, dict[str, object]] = {}
    token: str | None = None
    pages = 0
    while True:
        headers = {"x-ms-continuation-token": token} if token else {}
        status, body, answer_headers = await request(
            "GET", f"{url}{MGMT}/entities/Counter?fetchState=true&top=2", headers=headers
        )
        assert status == 200
        page = json.loads(body)
        assert len(page) <= 2
        listed.update({e["entityId"]["key"]: e for e in page})
        pages += 1
        token = answer_headers.get("x-ms-continuation-token")
        if not token:
            break
    assert pages >= 2
    for n, key in enumerate(keys):
        found = listed[key]
        assert found["entityId"] == {"name": "counter", "key": key}
        assert found["state"] == n + 1
        assert str(found["lastOperationTime"]).endswith("Z")
    status, body, _ = await request(
        "GET", f"{url}{MGMT}/entities/Counter?lastOperationTimeFrom=2999-01-01T00:00:00Z"
    )
    assert (status, json.loads(body)) == (200, [])
    status, body, _ = await request("GET", f"{url}{MGMT}/entities/Counter")
    assert all("state" not in e for e in json.loads(body))  # fetchState defaults to false
    status, _, _ = await request("GET", f"{url}{MGMT}/entities/Counter?top=0")
    assert status == 400
    # Entities are not orchestration instances: the instance listing leaves them out.
    status, body, _ = await request("GET", f"{url}{MGMT}/instances/?instanceIdPrefix=@")
    assert (status, json.loads(body)) == (200, [])


async def test_entities_over_the_management_api_and_the_sdk_client(url: str) -> None:
    key = new_id("e")
    entity = f"{url}{MGMT}/entities/Counter/{key}"
    status, _, _ = await request("GET", entity)
    assert status == 404
    for amount in (b"2", b"3"):
        status, _, _ = await request(
            "POST", f"{entity}?op=add", data=amount, headers={"Content-Type": "application/json"}
        )
        assert status == 202
    # The SDK client's signal_entity and read_entity_state, through an HTTP trigger.
    status, _, _ = await request("POST", f"{url}/api/counter/{key}?amount=5")
    assert status == 202
    state: dict[str, object] = {}
    for _ in range(100):
        status, body, _ = await request("GET", f"{url}/api/counter/{key}")
        state = json.loads(body)
        if state["state"] == 10:
            break
    assert state == {"exists": True, "state": 10}
    status, body, _ = await request("GET", entity)
    assert (status, json.loads(body)) == (200, 10)
    status, _, _ = await request("DELETE", entity)
    assert status == 202
    for _ in range(100):
        status, _, _ = await request("GET", entity)
        if status == 404:
            break
    assert status == 404
    status, _, _ = await request("POST", f"{url}{MGMT}/entities/NoSuchEntity/k?op=add", data=b"")
    assert status == 400
    status, _, _ = await request(
        "POST", f"{entity}?op=add", data=b"{bad", headers={"Content-Type": "application/json"}
    )
    assert status == 400
    status, body, _ = await request("GET", f"{url}{MGMT}/entities/Counter")
    assert status == 200
    assert key not in [e["entityId"]["key"] for e in json.loads(body)]  # deleted entities are not listed
    status, _, _ = await request("GET", f"{url}{MGMT}/nothing/here")
    assert status == 404
    status, _, _ = await request("POST", f"{url}{MGMT}/orchestrators/wait_event?taskHub=OtherHub")
    assert status == 400


# --- plain HTTP triggers ----------------------------------------------------------------------------------


async def test_http_triggers(url: str) -> None:
    status, body, headers = await request(
        "GET", f"{url}/api/hello/Ann?greeting=Hi", headers={"X-Test": "yes"}
    )
    assert (status, body) == (200, b"Hi Ann (yes)")
    assert headers["Content-Type"].startswith("text/plain")
    status, body, _ = await request("GET", f"{url}/API/Hello/Bob/")
    assert (status, body) == (200, b"Hello Bob (-)")
    status, _, _ = await request("GET", f"{url}/api/hello/123")  # {who:alpha}
    assert status == 404
    status, _, headers = await request("POST", f"{url}/api/hello/Ann")
    assert status == 405 and headers["Allow"] == "GET"
    status, body, _ = await request("GET", f"{url}/api/files/a/b/c.txt")
    assert (status, body) == (200, b"path=a/b/c.txt")
    status, body, _ = await request("GET", f"{url}/api/files")
    assert (status, body) == (200, b"path=")
    status, body, _ = await request("GET", f"{url}/api/boom")
    assert status == 500 and b"secret detail" not in body and b"boom" in body
    status, body, _ = await request("GET", f"{url}/api/bad-status")
    assert status == 500 and b"invalid response" in body
    status, _, _ = await request("GET", f"{url}/api/nothing")
    assert status == 404
    # On loopback keys are not checked (as under func start).
    status, body, _ = await request("GET", f"{url}/api/admin/ping")
    assert (status, body) == (200, b"pong")
