""".NET ``TimeSpan`` text, as timer schedules and host.json settings are written.

The forms of ``TimeSpan.Parse`` (invariant culture) that configuration uses:

* ``d`` — a whole number of **days** (``"5"`` is five days, not five seconds);
* ``[d.]hh:mm[:ss[.fffffff]]`` and ``d:hh:mm:ss[.fffffff]`` — hours 0-23, minutes and seconds 0-59, up
  to seven fractional digits;
* ``hh:mm:ss`` with a first number of 24 or more is read as ``dd:hh:mm``, as the timer trigger's
  documentation warns (``articles/azure-functions/functions-bindings-timer.md``, "TimeSpan": "When the
  first two digits are 24 or greater, the format is dd:hh:mm"), so ``"24:00:00"`` is 24 days;
* a leading ``-`` negates.
"""

from __future__ import annotations

import re
from datetime import timedelta

_NUMBER = r"\d{1,8}"
_FRACTION = r"(?:\.(\d{1,7}))?"
_DAYS_ONLY = re.compile(rf"^({_NUMBER})$")
_DOTTED = re.compile(rf"^(?:({_NUMBER})\.)?({_NUMBER}):({_NUMBER})(?::({_NUMBER}){_FRACTION})?$")
_COLON_DAYS = re.compile(rf"^({_NUMBER}):({_NUMBER}):({_NUMBER}):({_NUMBER}){_FRACTION}$")


class TimeSpanError(ValueError):
    """The text is not a TimeSpan; the message says why."""


def parse_timespan(text: str) -> timedelta:
    """Parse .NET TimeSpan text; TimeSpanError names the problem."""
    stripped = text.strip()
    negative = stripped.startswith("-")
    body = stripped[1:] if negative else stripped
    value = _parse_unsigned(body, text)
    return -value if negative else value


def _parse_unsigned(body: str, text: str) -> timedelta:
    if match := _DAYS_ONLY.match(body):
        return timedelta(days=int(match.group(1)))
    if match := _COLON_DAYS.match(body):
        days, hours, minutes, seconds, fraction = match.groups()
        return _build(text, int(days), int(hours), int(minutes), int(seconds), fraction)
    if match := _DOTTED.match(body):
        days_text, first, second, third, fraction = match.groups()
        days = int(days_text) if days_text is not None else 0
        if third is None:
            return _build(text, days, int(first), int(second), 0, None)
        if days_text is None and fraction is None and int(first) >= 24:
            return _build(text, int(first), int(second), int(third), 0, None)
        return _build(text, days, int(first), int(second), int(third), fraction)
    raise TimeSpanError(
        f"{text!r} is not a TimeSpan; write hh:mm:ss (e.g. '00:05:00'), d.hh:mm:ss, or a number of days"
    )


def _build(text: str, days: int, hours: int, minutes: int, seconds: int, fraction: str | None) -> timedelta:
    for name, value, limit in (("hours", hours, 23), ("minutes", minutes, 59), ("seconds", seconds, 59)):
        if value > limit:
            raise TimeSpanError(f"{text!r} is not a TimeSpan: its {name} ({value}) are over {limit}")
    ticks = int((fraction or "0").ljust(7, "0"))  # 100-nanosecond ticks
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds, microseconds=ticks // 10)


def format_timespan(value: timedelta) -> str:
    """``[-][d.]hh:mm:ss[.ffffff]``, the TimeSpan "c" format (microseconds, Python's resolution)."""
    sign = "-" if value < timedelta(0) else ""
    value = abs(value)
    hours, rest = divmod(value.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    days = f"{value.days}." if value.days else ""
    fraction = f".{value.microseconds:06d}" if value.microseconds else ""
    return f"{sign}{days}{hours:02d}:{minutes:02d}:{seconds:02d}{fraction}"
