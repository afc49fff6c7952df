"""``durablehost start`` on Azure Table storage (the session's Azurite, via its connection string)."""

from __future__ import annotations

import json

import pytest

from tests.http.hosting import MGMT, request, start_host, wait_status

JSON = {"Content-Type": "application/json"}


@pytest.mark.azurite
async def test_starter_events_and_purge_on_azurite(azurite_connection_string: str) -> None:
    host = start_host("--store", azurite_connection_string, "--task-hub", "HttpAzuriteHub")
    try:
        url = host.url
        assert url is not None
        banner = host.log()
        assert "azure:devstoreaccount1@" in banner and "AccountKey" not in banner
        status, body, _ = await request("POST", f"{url}/api/orchestrators/hello_sequence", json_body=["Az"])
        assert status == 202, body
        links = json.loads(body)
        assert (await wait_status(url, links["id"], {"Completed"}))["output"] == ["Hello Az!"]
        await request("POST", f"{url}{MGMT}/orchestrators/wait_event/az-wait", data=b"")
        await wait_status(url, "az-wait", {"Running"})
        status, _, _ = await request(
            "POST", f"{url}{MGMT}/instances/az-wait/raiseEvent/approval", data=b"[1, 2]", headers=JSON
        )
        assert status == 202
        assert (await wait_status(url, "az-wait", {"Completed"}))["output"]["approval"] == [1, 2]
        status, body, _ = await request("DELETE", links["purgeHistoryDeleteUri"])
        assert (status, json.loads(body)) == (200, {"instancesDeleted": 1})
    finally:
        assert host.stop() == 0, host.log()
