"""Strict parsing of the management API's query parameters.

Every parameter is read from the raw query string as UTF-8 (aiohttp would silently turn bad bytes into
U+FFFD), names case-insensitively as the extension's ASP.NET code reads them, and each value against
one expected form; anything else is a 400 naming the parameter and the form. A parameter given twice is
refused, since which one wins would be a guess. Routes that delete by filter also refuse parameters they
do not know (:meth:`Query.only`), so a misspelt filter never widens what is deleted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import unquote_plus

from durablehost.engine.records import RuntimeStatus
from durablehost.errors import InvalidRequest

# Parameters that any route accepts: the key, and the hub and connection the extension's links carry.
COMMON = frozenset({"code", "taskhub", "connection", "connectionname"})

# ISO 8601 as the SDK (``%Y-%m-%dT%H:%M:%S.%fZ``), the viewer (``toISOString()``) and people write it:
# a date, optionally a time with seconds and up to 7 fraction digits (.NET ticks), optionally Z or an
# offset; nothing before or after.
_ISO_TIME = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})"
    r"(?:T(?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:\.(?P<fraction>\d{1,7}))?)?"
    r"(?P<zone>Z|[+-]\d{2}:\d{2})?)?",
    re.ASCII,
)
TIME_FORM = (
    "an ISO 8601 time such as 2024-01-01T00:00:00Z (or 2024-01-01, or with an offset such as %2B01:00)"
)
# Azure's Edm.DateTime starts at 1601-01-01 (durablehost.store.limits).
_EARLIEST = datetime(1601, 1, 1, tzinfo=UTC)
_SECONDS = re.compile(r"\d{1,7}(?:\.\d{1,6})?", re.ASCII)
_WHOLE = re.compile(r"\d{1,9}", re.ASCII)
# Text that is stored (a reason): no control characters but tab, newline and carriage return.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class Query:
    """The parameters of one request, parsed strictly."""

    def __init__(self, raw: str) -> None:
        self.values: dict[str, str] = {}
        self.names: dict[str, str] = {}  # lower-case -> as sent, for messages
        for part in raw.split("&") if raw else []:
            if not part:
                continue
            name_text, _, value_text = part.partition("=")
            name, value = _decode(name_text, "a query parameter name"), _decode(value_text, name_text)
            key = name.lower()
            if key in self.values:
                raise InvalidRequest(f"the query parameter {name!r} is given more than once")
            self.values[key] = value
            self.names[key] = name

    def get(self, name: str) -> str | None:
        return self.values.get(name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self.values

    def only(self, allowed: Iterable[str], route: str) -> None:
        """Refuse parameters this route does not know (for deletions, where ignoring one widens them)."""
        known = {a.lower() for a in allowed} | COMMON
        unknown = sorted(self.names[k] for k in self.values if k not in known)
        if unknown:
            raise InvalidRequest(
                f"{route} does not take the query parameter(s) {', '.join(unknown)}; it takes "
                f"{', '.join(sorted(a for a in allowed))}"
            )

    def flag(self, name: str, default: bool) -> bool:
        # The SDK sends Python's "True" (protocol §5.2).
        value = self.get(name)
        if value is None:
            return default
        lowered = value.lower()
        if lowered not in ("true", "false"):
            raise InvalidRequest(f"{name} must be true or false, not {value!r}")
        return lowered == "true"

    def time(self, name: str) -> datetime | None:
        value = self.get(name)
        return None if value is None else parse_time(value, name)

    def statuses(self, name: str) -> list[RuntimeStatus] | None:
        """A comma-separated list of runtime statuses; None if the parameter is absent."""
        value = self.get(name)
        if value is None:
            return None
        by_name = {s.value.lower(): s for s in RuntimeStatus}
        names = ", ".join(s.value for s in RuntimeStatus)
        wanted: list[RuntimeStatus] = []
        for part in value.split(","):
            found = by_name.get(part.lower())
            if found is None:
                raise InvalidRequest(
                    f"{name} must be a comma-separated list of runtime statuses ({names}), not {value!r}"
                )
            wanted.append(found)
        return wanted

    def whole_number(self, name: str, low: int, high: int) -> int | None:
        value = self.get(name)
        if value is None:
            return None
        if not _WHOLE.fullmatch(value) or not low <= int(value) <= high:
            raise InvalidRequest(f"{name} must be a whole number from {low} to {high}, not {value!r}")
        return int(value)

    def seconds(self, name: str, high: float) -> float | None:
        """A positive number of seconds (digits, optionally a fraction), at most ``high``."""
        value = self.get(name)
        if value is None:
            return None
        if not _SECONDS.fullmatch(value) or not 0 < float(value) <= high:
            raise InvalidRequest(
                f"{name} must be a number of seconds greater than 0 and at most {high:g}, such as 10 or "
                f"0.5, not {value!r}"
            )
        return float(value)

    def text(self, name: str, max_length: int = 8192) -> str | None:
        """Free text that will be stored (a reason): no control characters but tab and line breaks."""
        value = self.get(name)
        if value is None:
            return None
        if len(value) > max_length:
            raise InvalidRequest(f"{name} must be at most {max_length} characters long")
        if _CONTROL.search(value):
            raise InvalidRequest(f"{name} cannot contain control characters other than tab and line breaks")
        return value


def _decode(text: str, what: str) -> str:
    try:
        return unquote_plus(text, errors="strict")
    except UnicodeDecodeError:
        raise InvalidRequest(
            f"the query parameter {what!r} is not valid UTF-8 once percent-decoded"
        ) from None


def parse_time(text: str, name: str) -> datetime:
    """A time in the form :data:`TIME_FORM`; without a zone it is UTC."""
    found = _ISO_TIME.fullmatch(text)
    if found is None:
        hint = " (a '+' in a query string means a space: write %2B)" if " " in text else ""
        raise InvalidRequest(f"{name} must be {TIME_FORM}, not {text!r}{hint}")
    try:
        moment = datetime.fromisoformat(found["date"])
        if found["hour"] is not None:
            fraction = (found["fraction"] or "").ljust(6, "0")[:6]
            moment = moment.replace(
                hour=int(found["hour"]),
                minute=int(found["minute"]),
                second=int(found["second"] or 0),
                microsecond=int(fraction),
            )
        zone = found["zone"]
        if zone and zone != "Z":
            sign = 1 if zone[0] == "+" else -1
            hours, minutes = int(zone[1:3]), int(zone[4:6])
            if hours > 23 or minutes > 59:
                raise ValueError("offset out of range")
            moment = moment.replace(tzinfo=timezone(sign * timedelta(hours=hours, minutes=minutes)))
        else:
            moment = moment.replace(tzinfo=UTC)
        moment = moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise InvalidRequest(f"{name} is not a real time: {text!r}") from None
    if moment < _EARLIEST:
        raise InvalidRequest(f"{name} must not be before 1601-01-01 (Azure Table storage's first date)")
    return moment
