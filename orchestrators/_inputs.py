"""Validation of orchestration inputs (pure functions: safe to run on every replay).

A bad input raises :class:`InputError`, which fails the orchestration with a message naming the field;
the HTTP starters validate the same way before starting anything, so this only fires for direct starts.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import azure.durable_functions as df


class InputError(ValueError):
    """The orchestration input is missing a field or has a bad value."""


def as_mapping(raw: Any, what: str) -> Mapping[str, Any]:
    """``raw`` as a mapping; JSON objects only."""
    if not isinstance(raw, Mapping):
        raise InputError(f"{what} must be a JSON object, got {type(raw).__name__}")
    return raw


def text(raw: Mapping[str, Any], name: str, *, max_length: int = 10_000) -> str:
    """A required non-empty string field."""
    value = raw.get(name)
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{name} must be a non-empty string")
    if len(value) > max_length:
        raise InputError(f"{name} must be at most {max_length} characters")
    return value.strip()


def number(raw: Mapping[str, Any], name: str, default: float, *, minimum: float, maximum: float) -> float:
    """An optional number field within [minimum, maximum]."""
    value = raw.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(f"{name} must be a number")
    if not minimum <= value <= maximum:
        raise InputError(f"{name} must be between {minimum:g} and {maximum:g}, got {value}")
    return float(value)


def integer(raw: Mapping[str, Any], name: str, default: int, *, minimum: int, maximum: int) -> int:
    """An optional integer field within [minimum, maximum]."""
    value = raw.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{name} must be an integer")
    if not minimum <= value <= maximum:
        raise InputError(f"{name} must be between {minimum} and {maximum}, got {value}")
    return value


def choice(raw: Mapping[str, Any], name: str, default: str, allowed: tuple[str, ...]) -> str:
    """An optional string field with a fixed set of values."""
    value = raw.get(name, default)
    if value not in allowed:
        raise InputError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return str(value)


def retry_options(
    raw: Mapping[str, Any], *, first_retry_ms: int = 5000, max_attempts: int = 3
) -> df.RetryOptions:
    """RetryOptions from an optional ``{"first_retry_ms", "max_attempts"}`` object under ``retry``."""
    retry = as_mapping(raw.get("retry", {}), "retry")
    return df.RetryOptions(
        first_retry_interval_in_milliseconds=integer(
            retry, "first_retry_ms", first_retry_ms, minimum=1, maximum=3_600_000
        ),
        max_number_of_attempts=integer(retry, "max_attempts", max_attempts, minimum=1, maximum=20),
    )


def iso(moment: datetime) -> str:
    """ISO 8601 in UTC for custom status and outputs (the SDK's datetimes may carry tzlocal)."""
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return aware.isoformat()
