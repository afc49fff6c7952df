"""Restate (npm ``@restatedev/restate-server`` + PyPI ``restate-sdk``): the compare.py workloads, one per run.

    bench/.peers/venv/bin/python bench/peers/restate_bench.py {throughput,latency,fanout,event} --n N \
        --ingress http://127.0.0.1:P --admin http://127.0.0.1:Q

compare.py starts ``restate-server`` on loopback (free ports, fresh base dir) and stops it by pid. This
script serves the Python services with hypercorn (HTTP/2 cleartext) on a free loopback port in its own
event loop, registers that deployment through the admin API, then drives the workload through the HTTP
ingress (httpx, HTTP/2):

* HelloSequence5 is a service handler with 5 sequential ``ctx.run_typed`` no-op steps (Restate's
  durable step, journaled by the server), called with a blocking ingress call;
* fan-out calls a ``Noop`` service handler 1,000 times (``ctx.service_call``, each a durable invocation)
  and awaits them with ``restate.gather``;
* events: a workflow waits on a durable promise ``ping-i``; the driver calls the workflow's shared
  handler ``ping``, which resolves it.
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from typing import Any

import httpx
import restate
from _common import FAN_OUT_WARM_UP, LATENCY_WARM_UP, MARKS, READY, emit, parser
from hypercorn.asyncio import serve
from hypercorn.config import Config

noop_service = restate.Service("Noop")
hello_service = restate.Service("HelloSequence5")
fan_out_service = restate.Service("FanOut")
ping_workflow = restate.Workflow("PingLoop")


def noop_step(value: int) -> int:
    return value


@noop_service.handler("run")
async def noop(ctx: restate.Context, value: int) -> int:
    return value


@hello_service.handler("run")
async def hello_sequence5(ctx: restate.Context) -> list[int]:
    return [await ctx.run_typed("noop", noop_step, restate.RunOptions(), i) for i in range(5)]


@fan_out_service.handler("run")
async def fan_out(ctx: restate.Context, count: int) -> int:
    calls = [ctx.service_call(noop, arg=i) for i in range(count)]
    await restate.gather(*calls)
    return len([await c for c in calls])


@ping_workflow.main("run")
async def ping_loop(ctx: restate.WorkflowContext, count: int) -> int:
    for i in range(count):
        READY.setdefault((ctx.key(), i), time.perf_counter())
        await ctx.promise(f"ping-{i}", type_hint=int).value()
        MARKS.setdefault((ctx.key(), i), time.perf_counter())
        await ctx.run_typed("noop", noop_step, restate.RunOptions(), i)
    return count


@ping_workflow.handler("ping")
async def ping(ctx: restate.WorkflowSharedContext, i: int) -> None:
    await ctx.promise(f"ping-{i}", type_hint=int).resolve(i)


APP = restate.app(services=[noop_service, hello_service, fan_out_service, ping_workflow])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _wait_for(table: dict[tuple[str, int], float], key: tuple[str, int], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while key not in table:
        if time.monotonic() > deadline:
            raise TimeoutError(f"no mark {key}")
        await asyncio.sleep(0.0005)


async def _call(http: httpx.AsyncClient, path: str, body: Any = None) -> Any:
    response = await http.post(path, json=body)
    response.raise_for_status()
    return response.json() if response.content else None


async def run(args: Any) -> dict[str, Any]:
    result: dict[str, Any] = {"system": "restate", "workload": args.workload}
    port = _free_port()
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.loglevel = "WARNING"
    config.accesslog = None
    shutdown = asyncio.Event()
    server = asyncio.create_task(serve(APP, config, shutdown_trigger=shutdown.wait))  # type: ignore[arg-type]
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    try:
        async with httpx.AsyncClient(base_url=args.admin, timeout=60) as admin:
            for _ in range(100):  # hypercorn binds asynchronously
                try:
                    response = await admin.post("/deployments", json={"uri": f"http://127.0.0.1:{port}",
                                                                      "force": True})
                    if response.status_code < 300:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError(f"could not register the deployment: {response.status_code} "
                                   f"{response.text}")
        async with httpx.AsyncClient(base_url=args.ingress, http2=True, timeout=600, limits=limits) as http:
            if args.workload == "throughput":
                await _call(http, "/HelloSequence5/run")
                started = time.perf_counter()
                await asyncio.gather(*(_call(http, "/HelloSequence5/run") for _ in range(args.n)))
                result["seconds"] = time.perf_counter() - started
                result["per_second"] = args.n / result["seconds"]
            elif args.workload == "latency":
                samples = []
                for i in range(args.n + LATENCY_WARM_UP):
                    started = time.perf_counter()
                    await _call(http, "/HelloSequence5/run")
                    if i >= LATENCY_WARM_UP:
                        samples.append((time.perf_counter() - started) * 1000)
                result["samples_ms"] = samples
            elif args.workload == "fanout":
                await _call(http, "/FanOut/run", FAN_OUT_WARM_UP)
                started = time.perf_counter()
                assert await _call(http, "/FanOut/run", args.n) == args.n
                result["seconds"] = time.perf_counter() - started
            else:
                samples = []
                for n in range(args.instances + 1):  # the first instance is the warm-up
                    key = f"bench-{uuid.uuid4()}"
                    await _call(http, f"/PingLoop/{key}/run/send", args.n)
                    for i in range(args.n):
                        await _wait_for(READY, (key, i))
                        called = time.perf_counter()
                        await _call(http, f"/PingLoop/{key}/ping", i)
                        await _wait_for(MARKS, (key, i))
                        if n:
                            samples.append((MARKS[(key, i)] - called) * 1000)
                    response = await http.get(f"/restate/workflow/PingLoop/{key}/attach")
                    response.raise_for_status()
                result["samples_ms"] = samples
    finally:
        shutdown.set()
        await asyncio.wait_for(server, 10)
    return result


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("--ingress", required=True)
    p.add_argument("--admin", required=True)
    emit(asyncio.run(run(p.parse_args())))


if __name__ == "__main__":
    main()
