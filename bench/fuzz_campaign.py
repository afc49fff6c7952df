"""Edge fault campaign: malformed requests against a real ``durablehost start``, on SQLite and Azurite.

    python bench/fuzz_campaign.py [--store sqlite|azurite|all] [--requests 2000] [--seed 14]

For each store, ``durablehost start`` serves the HTTP tests' app (tests/http/apps/simple) on that store
(a SQLite file, or an in-memory Azurite started from node_modules on free ports). The campaign creates a
few instances (one waiting for an event, completed, failed, terminated, an entity), reads every stored
row (tests/http/snapshot.py), then sends the requests, eight at a time. Each request is a valid
management call made malformed by at least one mutation that the edge must refuse: bodies nested too
deep, holding lone surrogates, not UTF-8, not JSON or with numbers Python cannot read; query values with
something trailing or out of range, given twice, or not UTF-8; unknown parameters on a purge by filter;
ids and names the store cannot hold; a foreign ``Host`` (DNS rebinding) or ``Origin``; a wrong content
type or Idempotency-Key. Afterwards the stored rows are read again.

Reported per store: the answers by status code, how many were 5xx, how many were accepted (2xx; none
should be, every request is malformed), the host log's unhandled errors, and whether the stored rows are
unchanged. A request not answered within 20 s counts as a 5xx (status 0). Exit status 1 if any 5xx,
any accepted request or a changed snapshot. Writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from yarl import URL

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from durablehost.azurite import Azurite  # noqa: E402
from durablehost.store import SqliteTableStore, open_store  # noqa: E402
from durablehost.store.base import TableStore  # noqa: E402
from tests.http.hosting import MGMT, HostProcess, wait_status  # noqa: E402
from tests.http.snapshot import snapshot  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
APP = REPO / "tests" / "http" / "apps" / "simple"
HUB = "HttpTestHub"
CONCURRENCY = 8
ANSWER_SECONDS = 20.0
NO_ANSWER = 0  # counted with the 5xx: a request the host did not answer in time (or dropped)
JSON = "application/json"


@dataclass
class Call:
    method: str
    path: str  # after the management prefix, already percent-encoded
    query: list[tuple[str, str]] = field(default_factory=list)  # raw (encoded) name and value
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    mutation: str = ""


# --- what makes a request malformed -------------------------------------------------------------------------


def _nest(depth: int) -> str:
    return "[" * depth + "]" * depth


BAD_BODIES: list[tuple[str, Callable[[random.Random], bytes]]] = [
    ("body nested past 64", lambda r: _nest(r.randint(65, 400)).encode()),
    ("body nested 100,000 deep", lambda r: _nest(100_000).encode()),
    ("SDK-encoded text nested past 900", lambda r: json.dumps(_nest(r.randint(901, 3000))).encode()),
    ("escaped lone surrogate", lambda r: b'{"k": "\\u%04x"}' % r.randint(0xD800, 0xDFFF)),
    ("raw surrogate bytes", lambda r: b'"\xed' + bytes([r.randint(0xA0, 0xBF), 0x80]) + b'"'),
    ("lone surrogate in SDK text", lambda r: json.dumps(json.dumps(chr(r.randint(0xD800, 0xDFFF)))).encode()),
    ("not UTF-8", lambda r: b'{"a": "' + bytes([r.randint(0x80, 0xFF)]) + b'"}'),
    ("not JSON", lambda r: r.choice([b"{", b"[1,", b"{'a': 1}", b"tru", b'"unterminated', b"{}}"])),
    ("a number of 5,000 digits", lambda r: b"9" * 5000),
]  # fmt: skip
BAD_TIMES = [
    "2024-01-01T00:00:00Z%00", "2024-01-01T00:00:00Z%00junk", "2024-01-01T00:00:00Zjunk",
    "2024-01-01T00:00:00+01:00",
    "2024-13-01T00:00:00Z", "2024-02-30", "0001-01-01T00:00:00Z", "yesterday", "", "%FF", "20240101T000000",
    "2024-01-01T25:00:00Z", "2024-01-01T00:00:00.12345678Z", "2024-W01-1",
]  # fmt: skip
BAD_STATUSES = ["", "Sleeping", "Completed,", ",Completed", "Completed%00", "Completed,,Failed", "%FF"]
BAD_FLAGS = ["yes", "1", "", "TRUE%00", "no", "%FF", "truee"]
BAD_TOPS = ["0", "x", "%2B5", "-1", "1001", "1e3", "5%00", ""]
BAD_SECONDS = ["0", "-1", "1e3", "nan", "inf", "3601", "abc", "", "1%00"]
BAD_TEXT = ["a%00b", "%01", "%7F", "%FF", "x%1Bz"]
BAD_IDS = ["%00", "a%2Fb", "%40entity", "x" * 300, "%ED%A0%80", "a%23b", "a%3Fb", "%5C"]
BAD_KEYS = ["has space", "caf\u00e9", "", "x" * 300]


@dataclass
class World:
    waiting: str
    completed: str
    failed: str
    terminated: str
    entity_key: str


def _pick(rng: random.Random, items: list[str]) -> str:
    return rng.choice(items)


def _bad_body(rng: random.Random, call: Call) -> Call:
    name, make = rng.choice(BAD_BODIES)
    call.body = make(rng)
    call.mutation = name
    return call


def _start(rng: random.Random, world: World) -> Call:
    call = Call("POST", f"orchestrators/wait_event/fz-new-{uuid.uuid4().hex[:8]}", body=b'{"n": 1}')
    choice = rng.randrange(3)
    if choice == 0:
        return _bad_body(rng, call)
    if choice == 1:
        call.query = [("timeout", _pick(rng, BAD_SECONDS))]
        call.mutation = "timeout"
        return call
    call.path = f"orchestrators/wait_event/{_pick(rng, BAD_IDS)}"
    call.mutation = "instance id"
    return call


def _raise(rng: random.Random, world: World) -> Call:
    call = Call(
        "POST",
        f"instances/{world.waiting}/raiseEvent/approval",
        headers={"Content-Type": JSON},
        body=b'{"ok": 1}',
    )
    choice = rng.randrange(5)
    if choice <= 1:
        return _bad_body(rng, call)
    if choice == 2:
        call.headers["Content-Type"] = rng.choice(["text/plain", "application/xml", "application/jsonx"])
        call.mutation = "content type"
    elif choice == 3:
        call.headers["Idempotency-Key"] = _pick(rng, BAD_KEYS)
        call.mutation = "Idempotency-Key"
    else:
        call.path = f"instances/{world.waiting}/raiseEvent/{rng.choice(['e' * 200, 'a%00b', '%FF'])}"
        call.mutation = "event name"
    return call


def _signal(rng: random.Random, world: World) -> Call:
    call = Call("POST", f"entities/Counter/{world.entity_key}", [("op", "add")], {"Content-Type": JSON}, b"1")
    choice = rng.randrange(3)
    if choice <= 1:
        return _bad_body(rng, call)
    call.query = [("op", rng.choice(["", "a%00", "x" * 200]))]
    call.mutation = "operation name"
    return call


def _change(rng: random.Random, world: World) -> Call:
    operation = rng.choice(["terminate", "suspend", "resume"])
    call = Call("POST", f"instances/{world.waiting}/{operation}", [("reason", "fuzz")])
    choice = rng.randrange(5)
    if choice == 0:
        call.query = [("reason", _pick(rng, BAD_TEXT))]
        call.mutation = "reason"
    elif choice == 1:
        call.query = [("reason", "a"), ("REASON", "b")]
        call.mutation = "reason given twice"
    elif choice == 2:
        call.query.append(
            rng.choice([("taskHub", "OtherHub"), ("connection", "Other"), ("connectionName", "X")])
        )
        call.mutation = "task hub or connection"
    elif choice == 3 and operation == "terminate":
        call.query.append(("recursive", _pick(rng, BAD_FLAGS)))
        call.mutation = "recursive"
    else:
        call.path = f"instances/{_pick(rng, BAD_IDS)}/{operation}"
        call.mutation = "instance id"
    return call


def _purge_by_filter(rng: random.Random, world: World) -> Call:
    query = [("createdTimeFrom", "2000-01-01T00:00:00Z"), ("runtimeStatus", "Completed,Failed,Terminated")]
    call = Call("DELETE", "instances/", query)
    choice = rng.randrange(6)
    if choice == 0:
        call.query[0] = ("createdTimeFrom", _pick(rng, BAD_TIMES))
        call.mutation = "createdTimeFrom"
    elif choice == 1:
        call.query.append(("createdTimeTo", _pick(rng, BAD_TIMES)))
        call.mutation = "createdTimeTo"
    elif choice == 2:
        call.query[1] = ("runtimeStatus", _pick(rng, BAD_STATUSES))
        call.mutation = "runtimeStatus"
    elif choice == 3:
        call.query.append((rng.choice(["runtimeStatuss", "createdTimeFrm", "showInput", "top", "x"]), "1"))
        call.mutation = "unknown parameter"
    elif choice == 4:
        call.query.append(("createdTimeFrom", "2001-01-01"))
        call.mutation = "createdTimeFrom twice"
    else:
        call.query = [("runtimeStatus", "Completed")]
        call.mutation = "no createdTimeFrom"
    return call


def _purge_one(rng: random.Random, world: World) -> Call:
    target = rng.choice([world.completed, world.failed])
    call = Call("DELETE", f"instances/{target}")
    if rng.random() < 0.5:
        call.query = [("taskHub", "OtherHub")]
        call.mutation = "task hub"
    else:
        call.path = f"instances/{_pick(rng, BAD_IDS)}"
        call.mutation = "instance id"
    return call


def _restart_or_rewind(rng: random.Random, world: World) -> Call:
    if rng.random() < 0.5:
        call = Call(
            "POST",
            f"instances/{world.completed}/restart",
            [("restartWithNewInstanceId", _pick(rng, BAD_FLAGS))],
        )
        call.mutation = "restartWithNewInstanceId"
        return call
    call = Call("POST", f"instances/{world.failed}/rewind", [("reason", _pick(rng, BAD_TEXT))])
    call.mutation = "rewind reason"
    return call


def _read(rng: random.Random, world: World) -> Call:
    choice = rng.randrange(6)
    if choice == 0:
        return Call(
            "GET", f"instances/{world.waiting}", [("showHistory", _pick(rng, BAD_FLAGS))], mutation="flag"
        )
    if choice == 1:
        return Call("GET", "instances/", [("top", _pick(rng, BAD_TOPS))], mutation="top")
    if choice == 2:
        return Call("GET", "instances/", [("createdTimeTo", _pick(rng, BAD_TIMES))], mutation="time")
    if choice == 3:
        return Call(
            "GET",
            "instances/",
            [("instanceIdPrefix", rng.choice(["a%2Fb", "%00", "x" * 300]))],
            mutation="prefix",
        )
    if choice == 4:
        token = rng.choice(["garbage", "eyJ4IjoxfQ", "WyJhIl0=", "%%%"])
        return Call("GET", "instances/", [("top", "1")], {"x-ms-continuation-token": token}, mutation="token")
    return Call("GET", "counts", [("createdTimeFrom", _pick(rng, BAD_TIMES))], mutation="counts time")


def _browser(rng: random.Random, world: World, port: int) -> Call:
    call = rng.choice([_change, _purge_one, _signal])(rng, world)
    # The same request as a valid one would be, from a browser that must not get in.
    if call.path.startswith("entities/"):
        call.query, call.body = [("op", "add")], b"1"
    elif call.method == "DELETE":
        call.path, call.query = f"instances/{world.completed}", []
    else:
        call.path, call.query = f"instances/{world.waiting}/suspend", [("reason", "x")]
    if rng.random() < 0.5:
        call.headers["Host"] = f"evil.example:{port}"
        call.headers["Sec-Fetch-Site"] = "same-origin"
        call.mutation = "DNS-rebound Host"
    else:
        call.headers["Origin"] = rng.choice(["http://evil.example", "null", f"http://localhost:{port + 1}"])
        call.mutation = "cross-site Origin"
    return call


TEMPLATES = [_start, _raise, _raise, _signal, _change, _purge_by_filter, _purge_by_filter, _purge_one,
             _restart_or_rewind, _read]  # fmt: skip


def generate(rng: random.Random, world: World, port: int) -> Call:
    if rng.random() < 0.08:
        return _browser(rng, world, port)
    return rng.choice(TEMPLATES)(rng, world)


# --- running it ---------------------------------------------------------------------------------------------


async def _send(session: aiohttp.ClientSession, base: str, call: Call) -> tuple[int, bytes]:
    query = "&".join(f"{name}={value}" for name, value in call.query)
    url = f"{base}{MGMT}/{call.path}" + (f"?{query}" if query else "")
    async with session.request(
        call.method, URL(url, encoded=True), headers=call.headers, data=call.body
    ) as answer:
        return answer.status, await answer.read()


async def _setup(base: str, session: aiohttp.ClientSession) -> World:
    suffix = uuid.uuid4().hex[:6]
    world = World(
        f"fz-wait-{suffix}", f"fz-done-{suffix}", f"fz-fail-{suffix}", f"fz-term-{suffix}", f"k{suffix}"
    )

    async def post(path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        async with session.post(f"{base}{MGMT}/{path}", data=body, headers=headers) as answer:
            if answer.status != 202:
                raise RuntimeError(f"setup: POST {path} answered {answer.status}: {await answer.text()}")

    await post(f"orchestrators/wait_event/{world.waiting}")
    await post(f"orchestrators/hello_sequence/{world.completed}", b'["F"]')
    await post(f"orchestrators/fails/{world.failed}")
    await post(f"orchestrators/wait_event/{world.terminated}")
    await post(f"entities/Counter/{world.entity_key}?op=add", b"2", {"Content-Type": JSON})
    await wait_status(base, world.waiting, {"Running"}, timeout=60)
    await wait_status(base, world.terminated, {"Running"}, timeout=60)
    await post(f"instances/{world.terminated}/terminate?reason=setup")
    for instance_id, wanted in (
        (world.completed, "Completed"),
        (world.failed, "Failed"),
        (world.terminated, "Terminated"),
    ):
        await wait_status(base, instance_id, {wanted}, timeout=60)
    await asyncio.sleep(1.0)  # the entity's batch and the index writes settle
    return world


async def _stored(open_snapshot_store: Callable[[], TableStore]) -> list[tuple[str, str, str, str]]:
    store = open_snapshot_store()
    try:
        return await snapshot(store, HUB)
    finally:
        await store.close()


async def campaign(
    name: str, store_spec: str, snapshot_store: Callable[[], TableStore], requests: int, seed: int
) -> dict[str, Any]:
    host = HostProcess(["--app-dir", str(APP), "--port", "0", "--store", store_spec])
    try:
        base = host.wait_listening(60)
        port = int(base.rsplit(":", 1)[1])
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
            world = await _setup(base, session)
            before = await _stored(snapshot_store)
            rng = random.Random(seed)
            calls = [generate(rng, world, port) for _ in range(requests)]
            statuses: Counter[int] = Counter()
            examples: dict[str, list[str]] = {"5xx": [], "accepted": []}
            gate = asyncio.Semaphore(CONCURRENCY)
            started = time.perf_counter()

            async def one(call: Call) -> None:
                async with gate:
                    try:
                        status, body = await asyncio.wait_for(_send(session, base, call), ANSWER_SECONDS)
                    except (TimeoutError, aiohttp.ClientError) as exc:
                        status, body = NO_ANSWER, repr(exc).encode()
                statuses[status] += 1
                kind = "5xx" if status >= 500 or status == NO_ANSWER else "accepted" if status < 300 else None
                if kind and len(examples[kind]) < 5:
                    examples[kind].append(
                        f"{call.method} {call.path} {call.query} ({call.mutation}) -> {status} {body[:200]!r}"
                    )

            await asyncio.gather(*(one(call) for call in calls))
            elapsed = time.perf_counter() - started
            await asyncio.sleep(1.0)  # anything an accepted request set off would show by now
            after = await _stored(snapshot_store)
    finally:
        code = host.stop()
    log = host.log()
    changed = sorted(set(before) ^ set(after))
    return {
        "store": name,
        "requests": requests,
        "seed": seed,
        "seconds": round(elapsed, 2),
        "statuses": dict(sorted(statuses.items())),
        "host_5xx": sum(n for s, n in statuses.items() if s >= 500 or s == NO_ANSWER),
        "accepted": sum(n for s, n in statuses.items() if s < 300),
        "unhandled_errors_in_log": log.count("unhandled error"),
        "rows": len(after),
        "snapshot_unchanged": not changed,
        "changed_rows": [row[:3] for row in changed[:10]],
        "examples": examples,
        "host_exit": code,
        "mutations": dict(Counter(c.mutation for c in calls).most_common()),
    }


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--store", choices=("sqlite", "azurite", "all"), default="all")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as folder:
        if args.store in ("sqlite", "all"):
            path = Path(folder) / "state.sqlite"
            results.append(
                await campaign(
                    "sqlite", f"sqlite:{path}", lambda: SqliteTableStore(str(path)), args.requests, args.seed
                )
            )
        if args.store in ("azurite", "all"):
            with Azurite() as azurite:
                connection = azurite.connection_string
                results.append(
                    await campaign(
                        "azurite", connection, lambda: open_store(connection), args.requests, args.seed
                    )
                )
    columns = ("store", "requests", "5xx", "2xx", "unhandled", "snapshot", "rows", "seconds")
    print("  ".join(f"{c:>9}" for c in columns), " statuses")
    for r in results:
        snapshot_text = "unchanged" if r["snapshot_unchanged"] else "CHANGED"
        cells = (r["store"], r["requests"], r["host_5xx"], r["accepted"], r["unhandled_errors_in_log"],
                 snapshot_text, r["rows"], r["seconds"])  # fmt: skip
        print("  ".join(f"{c:>9}" for c in cells), "", r["statuses"])
        for kind, lines in r["examples"].items():
            for line in lines:
                print(f"  {kind}: {line}")
        for row in r["changed_rows"]:
            print(f"  changed row: {row}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"fuzz_campaign-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out.relative_to(REPO)}")
    failed = any(r["host_5xx"] or r["accepted"] or not r["snapshot_unchanged"] for r in results)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
