"""Run a DurableHost in its own process, for crash and competition tests (wall clock, real store)."""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta
from pathlib import Path

from durablehost.engine.clock import WallClock
from durablehost.engine.dispatcher import DispatcherOptions
from durablehost.engine.host import DurableHost
from durablehost.functions import load_app
from durablehost.store import open_store

HUB = "CrashHub"
LEASE = timedelta(seconds=2)


def options() -> DispatcherOptions:
    return DispatcherOptions(lease_duration=LEASE, wake_poll_interval=0.05, max_concurrent_activities=8)


async def main(app_dir: str, store_spec: str) -> None:
    store = open_store(store_spec)
    host = DurableHost(store, load_app(Path(app_dir)), WallClock(), hub=HUB, options=options())
    await host.start()
    print("started", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
