"""Keys off the default loopback address: unit rules, and a host bound to 127.0.0.2 (loopback range, so
no outside traffic can reach it, but not 127.0.0.1, so keys are enforced — see durablehost/http/keys.py)."""

from __future__ import annotations

import json
import subprocess

import pytest

from durablehost.http.keys import KeyConfigError, Keys, is_exposed, presented_key
from tests.http.hosting import DURABLEHOST, MGMT, SIMPLE, request, start_host, wait_status

MASTER = "master-key-0123456789"
FUNCTION = "function-key-0123456789"
SYSTEM = "system-key-0123456789"
KEYS_ENV = {
    "DURABLEHOST_MASTER_KEY": MASTER,
    "DURABLEHOST_FUNCTION_KEY": FUNCTION,
    "DURABLEHOST_SYSTEM_KEY": SYSTEM,
}


def test_what_counts_as_exposed() -> None:
    assert not is_exposed("127.0.0.1") and not is_exposed("::1") and not is_exposed("[::1]")
    assert not is_exposed("LOCALHOST")
    assert is_exposed("127.0.0.2") and is_exposed("0.0.0.0") and is_exposed("192.168.1.10")


def test_key_rules() -> None:
    local = Keys.from_settings({}, "127.0.0.1")
    assert local.allows_management(None) and local.allows_trigger("ADMIN", None)
    with pytest.raises(KeyConfigError, match="DURABLEHOST_MASTER_KEY"):
        Keys.from_settings({}, "0.0.0.0")
    with pytest.raises(KeyConfigError, match="too short"):
        Keys.from_settings({"DURABLEHOST_MASTER_KEY": "short"}, "0.0.0.0")
    keys = Keys.from_settings(KEYS_ENV, "0.0.0.0")
    assert MASTER not in repr(keys) and FUNCTION not in repr(keys)
    assert keys.allows_trigger("ANONYMOUS", None)
    assert keys.allows_trigger("FUNCTION", FUNCTION) and keys.allows_trigger("FUNCTION", MASTER)
    assert not keys.allows_trigger("FUNCTION", None) and not keys.allows_trigger("FUNCTION", SYSTEM)
    assert keys.allows_trigger("ADMIN", MASTER) and not keys.allows_trigger("ADMIN", FUNCTION)
    assert keys.allows_management(MASTER) and keys.allows_management(SYSTEM)
    assert not keys.allows_management(FUNCTION) and not keys.allows_management("")
    assert presented_key({"code": "a"}, {"x-functions-key": "b"}) == "b"
    assert presented_key({"code": "a"}, {}) == "a"


def test_refuses_to_start_off_loopback_without_keys() -> None:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("DURABLEHOST_")}
    result = subprocess.run(
        [
            DURABLEHOST,
            "start",
            "--app-dir",
            str(SIMPLE),
            "--host",
            "127.0.0.2",
            "--port",
            "0",
            "--store",
            "memory",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "refusing to listen on 127.0.0.2" in result.stderr


async def test_keys_are_enforced_when_exposed() -> None:
    host = start_host("--store", "memory", "--host", "127.0.0.2", env=KEYS_ENV)
    try:
        url = host.url
        assert url is not None and url.startswith("http://127.0.0.2:")
        # Management API: the master or system key, as header or code= parameter.
        status, _, _ = await request("GET", f"{url}{MGMT}/instances/")
        assert status == 401
        status, _, _ = await request("GET", f"{url}{MGMT}/instances/", headers={"x-functions-key": FUNCTION})
        assert status == 401
        status, _, _ = await request("GET", f"{url}{MGMT}/instances/?code={SYSTEM}")
        assert status == 200
        # Triggers by auth level.
        status, _, _ = await request("GET", f"{url}/api/hello/Ann")
        assert status == 200
        status, _, _ = await request("GET", f"{url}/api/admin/ping", headers={"x-functions-key": FUNCTION})
        assert status == 401
        status, _, _ = await request("GET", f"{url}/api/admin/ping?code={MASTER}")
        assert status == 200
        status, _, _ = await request("POST", f"{url}/api/orchestrators/hello_sequence", json_body=["K"])
        assert status == 401
        # With the function key the starter runs; its SDK client reaches the engine over the key-free
        # local RPC listener, and the links it returns carry the system key, so they work when followed.
        status, body, _ = await request(
            "POST",
            f"{url}/api/orchestrators/hello_sequence",
            json_body=["K"],
            headers={"x-functions-key": FUNCTION},
        )
        assert status == 202, body
        links = json.loads(body)
        assert f"code={SYSTEM}" in links["statusQueryGetUri"]
        for _ in range(300):
            status, body, _ = await request("GET", links["statusQueryGetUri"])
            if status == 200:
                break
            assert status == 202
        assert json.loads(body)["output"] == ["Hello K!"]
        await wait_status(f"{url}", links["id"], {"Completed"}, query=f"?code={MASTER}")
    finally:
        assert host.stop() == 0
    log = host.log()
    assert MASTER not in log and FUNCTION not in log and SYSTEM not in log
