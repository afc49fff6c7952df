"""NCRONTAB expressions as the timer trigger reads them, and their next occurrence in wall-clock time.

Azure's timer trigger parses schedules with the NCrontab library (atifaziz/NCrontab,
``CrontabSchedule.cs``, ``CrontabFieldImpl.cs``, ``CrontabField.cs``), in six fields with seconds first,
``{second} {minute} {hour} {day} {month} {day-of-week}``, or in five (no seconds) when the expression
has exactly five fields (azure-webjobs-sdk-extensions ``CronSchedule.CreateParseOptions``). Its rules,
kept here because apps depend on them:

* fields are separated by spaces only; each is ``*``, a value, a range ``a-b``, a list ``a,b,...`` whose
  items are any of those, optionally with a step ``/n``: ``*/n``, ``a-b/n``, and ``a/n`` (= ``a``-max);
* ranges: seconds and minutes 0-59, hours 0-23, days 1-31, months 1-12, days of week 0-6 (Sunday = 0;
  7 is refused);
* month and day-of-week names are English, matched case-insensitively as any prefix of the full name,
  the first match in calendar order winning: ``Jan``, ``January``, ``Ju`` (June), ``mon``, ``T`` (Tuesday);
* a reversed range ``5-1`` is read as ``1-5``; a step below 1 counts as 1;
* a day matches only if it is in *both* the day-of-month and the day-of-week fields (NCrontab's
  ``GetNextOccurrence`` checks the weekday after finding the day), unlike Vixie cron, which ORs them;
* the next occurrence is strictly after the base time, whose fraction of a second is ignored.

Nothing else (``?``, ``L``, ``W``, ``#``, ``@daily``) is NCRONTAB; such expressions are refused with the
reason.
"""

from __future__ import annotations

import bisect
import calendar
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

MONTH_NAMES = tuple(calendar.month_name[1:])  # January … December
DAY_NAMES = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
# The Gregorian calendar repeats itself, weekdays included, every 400 years (146,097 days = 20,871 weeks),
# so a schedule that has not occurred within that span never will.
_SEARCH_YEARS = 401


class CronError(ValueError):
    """The text is not an NCRONTAB expression; the message says which field is wrong and why."""


@dataclass(frozen=True)
class _FieldKind:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()


SECOND = _FieldKind("second", 0, 59)
MINUTE = _FieldKind("minute", 0, 59)
HOUR = _FieldKind("hour", 0, 23)
DAY = _FieldKind("day", 1, 31)
MONTH = _FieldKind("month", 1, 12, MONTH_NAMES)
DAY_OF_WEEK = _FieldKind("day-of-week", 0, 6, DAY_NAMES)
_WITH_SECONDS = (SECOND, MINUTE, HOUR, DAY, MONTH, DAY_OF_WEEK)


@dataclass(frozen=True)
class CronExpression:
    """A parsed expression: the allowed values of each field, ascending."""

    text: str
    has_seconds: bool
    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: tuple[int, ...]
    months: tuple[int, ...]
    days_of_week: tuple[int, ...]  # Sunday = 0

    def next_after(self, base: datetime) -> datetime | None:
        """The first occurrence strictly after ``base`` (naive wall-clock time), or None if none is left
        before the year 10000."""
        start = base.replace(microsecond=0, tzinfo=None) + timedelta(seconds=1)
        day: date | None = start.date()
        while day is not None:
            day = self._next_day(day)
            if day is None:
                return None
            clock = self._first_time(start.time() if day == start.date() else time(0))
            if clock is not None:
                return datetime.combine(day, clock)
            # Only the start day can have no time left (every field allows at least one value).
            day = day + timedelta(days=1) if day < date.max else None
        return None

    def _next_day(self, day: date) -> date | None:
        """The first day on or after ``day`` whose month, day of month and weekday all match."""
        year, month, first = day.year, day.month, day.day
        limit = day.year + _SEARCH_YEARS
        while year < limit and year <= date.max.year:
            if month in self.months:
                last = calendar.monthrange(year, month)[1]
                for candidate in self.days[bisect.bisect_left(self.days, first) :]:
                    if candidate > last:
                        break
                    found = date(year, month, candidate)
                    if (found.weekday() + 1) % 7 in self.days_of_week:
                        return found
            month, first = month + 1, 1
            if month > 12:
                year, month = year + 1, 1
        return None

    def _first_time(self, earliest: time) -> time | None:
        """The first allowed time of day at or after ``earliest``."""
        for hour in self.hours[bisect.bisect_left(self.hours, earliest.hour) :]:
            minute_from = earliest.minute if hour == earliest.hour else 0
            for minute in self.minutes[bisect.bisect_left(self.minutes, minute_from) :]:
                second_from = earliest.second if (hour, minute) == (earliest.hour, earliest.minute) else 0
                index = bisect.bisect_left(self.seconds, second_from)
                if index < len(self.seconds):
                    return time(hour, minute, self.seconds[index])
        return None

    @property
    def is_interval(self) -> bool:
        """True when the time-of-day fields hold a run of consecutive values (``*``, ``a-b``), as
        ``CronSchedule.IsInterval`` decides from NCrontab's normalised text; it chooses how a wall time
        that occurs twice at a daylight-saving change is treated (durablehost.triggers.schedule)."""
        fields = [self.seconds] if self.has_seconds else []
        fields += [self.minutes, self.hours]
        return any(_has_run(values) for values in fields)

    @property
    def is_sub_minute(self) -> bool:
        """True when it fires more than once in every minute. ``TimerSchedule.ShouldDisableScheduleMonitor``
        turns the monitor off when every field of NCrontab's text after the first is ``*`` and more than
        one occurrence falls within the next minute: that needs six fields, all of them but the seconds
        unrestricted, and at least two seconds (a five-field expression fires at most once a minute)."""
        full = [
            len(values) == kind.high - kind.low + 1
            for values, kind in zip(
                (self.minutes, self.hours, self.days, self.months, self.days_of_week),
                _WITH_SECONDS[1:],
                strict=True,
            )
        ]
        return self.has_seconds and len(self.seconds) > 1 and all(full)


def _has_run(values: Sequence[int]) -> bool:
    return any(b - a == 1 for a, b in itertools.pairwise(values))


def parse_cron(text: str) -> CronExpression:
    """Parse an NCRONTAB expression (six fields with seconds, or five without). CronError if it is not."""
    tokens = [t for t in text.split(" ") if t]
    has_seconds = len(tokens) != 5
    if has_seconds and len(tokens) != 6:
        raise CronError(
            f"it has {len(tokens)} field(s); NCRONTAB needs six, "
            "{second} {minute} {hour} {day} {month} {day-of-week}, or five without the seconds"
        )
    kinds = _WITH_SECONDS if has_seconds else _WITH_SECONDS[1:]
    values = [_parse_field(token, kind) for token, kind in zip(tokens, kinds, strict=True)]
    if not has_seconds:
        values.insert(0, (0,))
    expression = CronExpression(text, has_seconds, *values)
    _check_some_day_exists(expression)
    return expression


def _check_some_day_exists(expression: CronExpression) -> None:
    # NCrontab accepts "30 of February" and never fires it; durablehost refuses it, since it can only be a
    # mistake. Any existing (month, day) pair falls on every weekday over the years.
    longest = {m: 29 if m == 2 else calendar.monthrange(2001, m)[1] for m in range(1, 13)}
    if not any(d <= longest[m] for m in expression.months for d in expression.days):
        months = ", ".join(MONTH_NAMES[m - 1] for m in expression.months)
        days = ", ".join(map(str, expression.days))
        raise CronError(f"it never occurs: no month among {months} has a day {days}")


def _parse_field(token: str, kind: _FieldKind) -> tuple[int, ...]:
    chosen: set[int] = set()
    # NCrontab splits on ',' only when it is not the first character; ",5" is then an invalid value.
    items = token.split(",") if token.find(",") > 0 else [token]
    for item in items:
        chosen.update(_parse_item(item, kind, token))
    return tuple(sorted(chosen))


def _parse_item(item: str, kind: _FieldKind, token: str) -> range:
    if not item:
        raise CronError(f"the {kind.name} field {token!r} has an empty value")
    step = 1
    slash = item.find("/")
    if slash > 0:
        step_text = item[slash + 1 :]
        if not step_text.isdigit():
            raise CronError(f"the {kind.name} field {token!r} has a step {step_text!r} that is not a number")
        step = max(int(step_text), 1)
        item = item[:slash]
    if item == "*":
        return range(kind.low, kind.high + 1, step)
    dash = item.find("-")
    if dash > 0:
        first = _value(item[:dash], kind, token)
        last = _value(item[dash + 1 :], kind, token)
        first, last = min(first, last), max(first, last)
        return range(first, last + 1, step)
    value = _value(item, kind, token)
    return range(value, kind.high + 1, step) if slash > 0 else range(value, value + 1)


def _value(text: str, kind: _FieldKind, token: str) -> int:
    if not text:
        raise CronError(f"the {kind.name} field {token!r} has an empty value")
    if text[0].isdigit():
        if not text.isdigit():
            raise CronError(f"the {kind.name} field {token!r} has {text!r}, which is not a number")
        value = int(text)
    elif kind.names:
        value = _named(text, kind, token)
    else:
        raise CronError(
            f"the {kind.name} field {token!r} has {text!r}; it must be a number from {kind.low} to "
            f"{kind.high}, '*', a range a-b, a list a,b or a step */n"
        )
    if not kind.low <= value <= kind.high:
        raise CronError(
            f"the {kind.name} field {token!r} has {value}, outside {kind.low}-{kind.high}"
            + (" (Sunday is 0; 7 is not accepted)" if kind is DAY_OF_WEEK and value == 7 else "")
        )
    return value


def _named(text: str, kind: _FieldKind, token: str) -> int:
    lowered = text.lower()
    for index, name in enumerate(kind.names):
        if name.lower().startswith(lowered):
            return kind.low + index
    raise CronError(
        f"the {kind.name} field {token!r} has {text!r}, which is not a {kind.name} name; "
        f"use one of {', '.join(n[:3] for n in kind.names)} (or the full English name)"
    )
