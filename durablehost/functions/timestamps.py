"""Memoized timestamp parsing for the SDK's replay.

The SDK builds a ``HistoryEvent`` for every event of the history on every episode, and each one parses
its ``Timestamp`` with ``dateutil.parser.parse`` (protocol §1.4): a general-purpose parser at ~0.25 ms a
call, which profiling showed to be half of all host CPU in HelloSequence5. The same strings are parsed
again on every replay of an instance, so durablehost memoizes that one pure function, in the SDK's
history-event module only. Replay is still the SDK's own code and sees identical values (datetimes are
immutable); user code and the rest of the process keep the plain ``dateutil`` parser.
"""

from __future__ import annotations

import functools
import importlib
from datetime import datetime

from dateutil.parser import parse

_HISTORY_EVENT_MODULE = "azure.durable_functions.models.history.HistoryEvent"
CACHE_SIZE = 1 << 17  # ~130,000 distinct timestamps: the histories of many busy instances


@functools.lru_cache(maxsize=CACHE_SIZE)
def parse_timestamp_once(text: str) -> datetime:
    parsed: datetime = parse(text)
    return parsed


def memoize_sdk_timestamp_parsing() -> None:
    """Make the SDK's ``HistoryEvent`` parse each distinct timestamp string only once per process."""
    module = importlib.import_module(_HISTORY_EVENT_MODULE)
    current = getattr(module, "dt_parse", None)
    if current is parse_timestamp_once:
        return
    if current is not parse:
        # A different SDK version: leave it alone rather than guess what it expects.
        raise RuntimeError(f"{_HISTORY_EVENT_MODULE}.dt_parse is not dateutil's parse; review durablehost")
    setattr(module, "dt_parse", parse_timestamp_once)  # noqa: B010 - the SDK module is untyped
