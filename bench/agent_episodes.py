"""What running the OpenAI Agents integration's episodes one at a time costs: one command.

    python bench/agent_episodes.py [--agents 16] [--runs 5]

durablehost runs the episodes of ``durable_openai_agent_orchestrator`` orchestrators one at a time, since
they share a process-wide runner (durablehost/functions/agent_runner.py); ``--fidelity azure`` runs them
concurrently on the orchestrator pool, as Azure does. This measures both on the same app
(bench/apps/agents: a fan-out of weather agents, each two model calls around an activity tool, on a
runner of its own episode, so it is right either way) in the in-process harness with an in-memory store
and the scripted model server on loopback: the seconds from the start of the fan-out to its completion,
and the episodes run, median (min-max) over ``--runs`` runs, the two modes taking turns.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from durablehost.testing import DurableTestHost, ModelServer, text, tool_call

APP = Path(__file__).resolve().parent / "apps" / "agents"
MODES = {"one at a time (durablehost)": "durablehost", "concurrent (--fidelity azure)": "azure"}


def reply(request: Any) -> Any:
    found = re.search(r"weather in (\S+)\?", request.input_text)
    city = found.group(1) if found else "?"
    if request.tool_outputs:
        return text(f"{city}: {json.loads(request.tool_outputs[-1].output)['forecast']}")
    return tool_call("get_weather", {"city": city})


async def one_run(fidelity: str, agents: int) -> tuple[float, int]:
    cities = [f"City{n}" for n in range(agents)]
    async with DurableTestHost.start(APP, fidelity=fidelity) as host:
        started = time.perf_counter()
        instance_id = await host.client.start_new("fan_out", client_input=cities)
        status = await host.wait_for_completion(instance_id, timeout=300)
        seconds = time.perf_counter() - started
        if status.output != [f"{c}: sunny" for c in cities]:
            raise RuntimeError(f"{fidelity}: the fan-out answered {status.output!r}")
        client = sys.modules["function_app"].CLIENT
        await host.host.user_code.on_user_loop(client.close)  # the run_model activities' loop
        return seconds, host.host.dispatcher.episodes


async def run(agents: int, runs: int) -> None:
    with ModelServer() as server:
        os.environ["OPENAI_BASE_URL"] = server.base_url
        os.environ.setdefault("OPENAI_API_KEY", "bench")
        server.when(api="responses").always(reply)
        results: dict[str, list[tuple[float, int]]] = {label: [] for label in MODES}
        await one_run("durablehost", 2)  # warm-up: imports, first calls
        for _ in range(runs):
            for label, fidelity in MODES.items():
                results[label].append(await one_run(fidelity, agents))
    print(f"agent episodes: a fan-out of {agents} weather agents (2 model calls and 1 tool each), "
          f"{runs} runs, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")  # fmt: skip
    for label, found in results.items():
        seconds = [s for s, _ in found]
        episodes = statistics.median(e for _, e in found)
        print(
            f"  {label:<30} {statistics.median(seconds):6.3f} s ({min(seconds):.3f}-{max(seconds):.3f}), "
            f"{episodes:g} episodes"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--agents", type=int, default=16)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(run(args.agents, args.runs))


if __name__ == "__main__":
    main()
