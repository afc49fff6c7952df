"""Helpers of the trigger tests: decorator (v2) apps written into a temporary folder, and what they recorded.

Every app has the orchestrator ``record``, which returns its input: a starter passes what its trigger
received, and the test reads it back from the instance (its creation time is the virtual time of the
invocation that started it).
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from durablehost.testing import DurableTestHost

APP_HEADER = """\
import asyncio
import threading

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.orchestration_trigger(context_name="context")
def record(context):
    return context.get_input()

"""

# Settings that change what the trigger tests see; each test starts without them.
_SETTINGS = ("WEBSITE_TIME_ZONE", "TZ", "AzureWebJobsStorage", "QUEUE_CONNECTION", "TICK_SCHEDULE")


@pytest.fixture(autouse=True)
def clean_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    for name in _SETTINGS:
        monkeypatch.delenv(name, raising=False)
    yield monkeypatch


def write_app(folder: Path, functions: str, host_json: dict[str, Any] | None = None) -> Path:
    """An app folder with ``function_app.py`` = the header above + ``functions``, and a host.json."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "function_app.py").write_text(APP_HEADER + textwrap.dedent(functions), encoding="utf-8")
    (folder / "host.json").write_text(json.dumps(host_json or {"version": "2.0"}), encoding="utf-8")
    return folder


async def recorded(host: DurableTestHost) -> list[tuple[datetime, Any]]:
    """(creation time, output) of every ``record`` instance, oldest first; run until idle first."""
    await host.run_until_idle()
    records, _ = await host.host.list_instances(name="record", page_size=1000)
    done = []
    for record in sorted(records, key=lambda r: r.created_time):
        assert record.status.value == "Completed", record
        done.append((record.created_time, json.loads(record.output) if record.output else None))
    return done
