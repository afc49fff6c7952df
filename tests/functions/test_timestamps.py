"""The SDK's replay parses each distinct timestamp once per process, with identical results."""

from __future__ import annotations

import importlib

from dateutil.parser import parse

import durablehost.engine.episode  # noqa: F401 - importing the episode runner installs the memoization
from durablehost.functions.timestamps import memoize_sdk_timestamp_parsing, parse_timestamp_once


def test_history_events_parse_each_timestamp_once_with_dateutils_result() -> None:
    module = importlib.import_module("azure.durable_functions.models.history.HistoryEvent")
    assert module.dt_parse is parse_timestamp_once
    memoize_sdk_timestamp_parsing()  # idempotent
    assert module.dt_parse is parse_timestamp_once
    text = "2031-02-03T04:05:06.123456Z"
    before = parse_timestamp_once.cache_info()
    first = module.HistoryEvent(EventType=12, EventId=-1, IsPlayed=False, Timestamp=text)
    second = module.HistoryEvent(EventType=12, EventId=-1, IsPlayed=False, Timestamp=text)
    after = parse_timestamp_once.cache_info()
    assert first.timestamp == second.timestamp == parse(text)
    assert first.timestamp.utcoffset() == parse(text).utcoffset()
    assert after.misses - before.misses == 1 and after.hits - before.hits == 1
