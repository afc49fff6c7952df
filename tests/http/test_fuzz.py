"""Fuzz the management API of a running host: generated methods, paths, queries, headers and bodies.

Properties: never a 500 (the routes that can legitimately answer 500 are not generated), the process
survives, and a rejected request (4xx/5xx) leaves the visible state — every instance's status, input,
output, last update and the fixed instances' history lengths — exactly as it was. The generated values
include the edge rules' cases (deep and lone-surrogate bodies, times with something trailing, rebound
``Host`` headers). Bounded to ~20 s; bench/fuzz_campaign.py runs 2,000 malformed requests per store
against the stored rows themselves.
"""

from __future__ import annotations

import asyncio
import json
import string
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yarl import URL

from tests.http.hosting import MGMT, HostProcess, start_host

FIXED = ["fz-a", "fz-b", "fz-c"]
BUDGET_SECONDS = 18.0

_VOCABULARY = [
    "orchestrators", "instances", "raiseEvent", "RAISEEVENT", "terminate", "suspend", "resume", "rewind",
    "restart", "entities", "wait_event", "no_such_function", *FIXED, "fz-done", "unknown-id", "approval",
    "", "..", "@x", "x" * 300, "%ZZ", "%ff", "%00", "%2F", "a%20b",
]  # fmt: skip
_PRINTABLE = string.ascii_letters + string.digits + " -_.,:;=+!*'()~/@"

segments = st.one_of(
    st.sampled_from(_VOCABULARY),
    st.text(max_size=24).map(lambda s: quote(s, safe="")),
)
paths = st.builds(
    lambda prefix, parts, slash: prefix + "".join("/" + p for p in parts) + ("/" if slash else ""),
    # No "/api": the app's own triggers may legitimately fail with 500 (test_management_api covers them).
    st.sampled_from([MGMT, MGMT.upper(), "/runtime/webhooks/DurableTask", ""]),
    st.lists(segments, max_size=5),
    st.booleans(),
)
query_keys = st.sampled_from(
    ["showHistory", "showHistoryOutput", "showInput", "top", "runtimeStatus", "createdTimeFrom",
     "createdTimeTo", "instanceIdPrefix", "reason", "taskHub", "code", "pollingInterval", "timeout",
     "connection", "connectionName", "op", "recursive", "restartWithNewInstanceId",
     "returnInternalServerErrorOnFailure", "RUNTIMESTATUS", "runtimeStatuss"]
)  # fmt: skip
# Values near the edge rules (query.py): times with something trailing, statuses, flags, numbers.
query_values = st.one_of(
    st.text(max_size=16),
    st.sampled_from(
        ["2024-01-01T00:00:00Z", "2024-01-01T00:00:00Z\x00", "2024-01-01T00:00:00.1234567+01:00",
         "2024-01-01T00:00:00 01:00", "2024-02-30", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59-01:00",
         "2024-01-01", "Completed", "Completed,", "completed,Failed", "", "true", "True", "yes", "1",
         "1e3", "0.5", "3600", "3601", "-1", "nan", "inf", "Storage", "Other", "HttpTestHub", "\x01"]
    ),
)  # fmt: skip
queries = st.dictionaries(query_keys, query_values, max_size=4)
header_text = st.text(alphabet=_PRINTABLE, min_size=0, max_size=40)
headers = st.fixed_dictionaries(
    {},
    optional={
        "Content-Type": st.sampled_from(
            ["application/json", "text/plain", "application/json; charset=utf-8", ""]
        ),
        "Idempotency-Key": header_text,
        "x-ms-continuation-token": header_text,
        # DNS rebinding and cross-site requests (browser.py).
        "Host": st.sampled_from(["evil.example", "127.0.0.1", "localhost", "[::1]"]),
        "Origin": st.sampled_from(["http://evil.example", "null"]),
        "Sec-Fetch-Site": st.sampled_from(["cross-site", "same-origin", "none"]),
    },
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)

def _nest(depth: int) -> str:
    return "[" * depth + "]" * depth


# Bodies at and past the edge rules (payloads.py): nesting, lone surrogates, numbers Python cannot read.
edge_bodies = st.sampled_from(
    [_nest(64).encode(), _nest(65).encode(), _nest(5000).encode(), json.dumps(_nest(900)).encode(),
     json.dumps(_nest(901)).encode(), b'"\\ud800"', b'{"k": "\\udc00x"}', b'"\\ud83d\\ude00"',
     b'"\xed\xa0\x80"', json.dumps(json.dumps("\ud800")).encode(), b"1" * 5000, b"\xef\xbb\xbf{}"]
)  # fmt: skip
bodies = st.one_of(
    st.none(),
    st.binary(max_size=64),
    json_values.map(lambda v: json.dumps(v).encode()),
    json_values.map(lambda v: json.dumps(json.dumps(v)).encode()),
    edge_bodies,
)
methods = st.sampled_from(["GET", "POST", "DELETE", "PUT", "PATCH", "HEAD"])


class Fuzzer:
    def __init__(self, url: str) -> None:
        self.url = url
        self.loop = asyncio.new_event_loop()
        self.session = self.loop.run_until_complete(self._session())
        self.baseline: Any = None
        self.started = time.monotonic()

    async def _session(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))

    def close(self) -> None:
        self.loop.run_until_complete(self.session.close())
        self.loop.close()

    async def call(
        self,
        method: str,
        path: str,
        query: dict[str, str] | None = None,
        hdrs: Any = None,
        body: bytes | None = None,
    ) -> tuple[int, bytes]:
        target = URL(self.url + path, encoded=True)
        if query:
            target = target.update_query(query)
        async with self.session.request(
            method, target, headers=hdrs, data=body, allow_redirects=False
        ) as answer:
            return answer.status, await answer.read()

    async def snapshot(self) -> Any:
        status, body = await self.call("GET", f"{MGMT}/instances/", {"showInput": "true"})
        assert status == 200, body
        listing = sorted(
            (s["instanceId"], s["runtimeStatus"], s["lastUpdatedTime"], s["input"], json.dumps(s["output"]))
            for s in json.loads(body)
        )
        histories = []
        for instance_id in FIXED:
            status, body = await self.call("GET", f"{MGMT}/instances/{instance_id}", {"showHistory": "true"})
            histories.append(len(json.loads(body)["historyEvents"]) if body else None)
        return listing, histories

    async def settled(self) -> Any:
        """The state once asynchronous work set off by an accepted request is done."""
        previous = await self.snapshot()
        same = 0
        while same < 2:
            await asyncio.sleep(0.1)
            current = await self.snapshot()
            same = same + 1 if current == previous else 0
            previous = current
        return previous

    def run(self, method: str, path: str, query: dict[str, str], hdrs: Any, body: bytes | None) -> None:
        self.loop.run_until_complete(self._run(method, path, query, hdrs, body))

    async def _run(
        self, method: str, path: str, query: dict[str, str], hdrs: Any, body: bytes | None
    ) -> None:
        if self.baseline is None:
            self.baseline = await self.settled()
        if time.monotonic() - self.started > BUDGET_SECONDS:
            return  # the time budget is spent: the remaining examples are no-ops
        status, answer = await self.call(method, path, query, hdrs, body)
        assert status != 500, (method, path, query, hdrs, body, answer)
        assert status < 500 or status == 501, (status, method, path, answer)
        if status >= 400:
            assert await self.snapshot() == self.baseline, ("a rejected request changed state", method, path)
        else:
            self.baseline = await self.settled()


@pytest.fixture(scope="module")
def fuzz_host() -> Iterator[HostProcess]:
    host = start_host("--store", "memory")
    yield host
    assert host.stop() == 0, host.log()


@pytest.fixture(scope="module")
def fuzzer(fuzz_host: HostProcess) -> Iterator[Fuzzer]:
    assert fuzz_host.url is not None
    fuzzer = Fuzzer(fuzz_host.url)

    async def setup() -> None:
        for instance_id in FIXED:
            status, _ = await fuzzer.call("POST", f"{MGMT}/orchestrators/wait_event/{instance_id}", body=b"")
            assert status == 202
        status, _ = await fuzzer.call("POST", f"{MGMT}/orchestrators/wait_event/fz-done", body=b"")
        assert status == 202
        await fuzzer.settled()
        status, _ = await fuzzer.call("POST", f"{MGMT}/instances/fz-done/terminate")
        assert status == 202

    fuzzer.loop.run_until_complete(setup())
    yield fuzzer
    fuzzer.close()


@pytest.mark.slow
@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(method=methods, path=paths, query=queries, hdrs=headers, body=bodies)
def test_fuzz_management_api(
    fuzzer: Fuzzer, method: str, path: str, query: dict[str, str], hdrs: Any, body: bytes | None
) -> None:
    fuzzer.run(method, path, query, hdrs, body)


def test_host_survived_the_fuzz(fuzz_host: HostProcess, fuzzer: Fuzzer) -> None:
    assert fuzz_host.process.poll() is None
    status, _ = fuzzer.loop.run_until_complete(fuzzer.call("GET", f"{MGMT}/instances/"))
    assert status == 200
    assert "unhandled error" not in fuzz_host.log()
