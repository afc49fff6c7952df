"""Timer schedules: an NCRONTAB expression in a time zone, or a constant interval (a TimeSpan).

``TimerSchedule.Create`` (azure-webjobs-sdk-extensions, ``Timers/Scheduling/TimerSchedule.cs``) resolves
``%Setting%`` references, tries the text as NCRONTAB, then as a TimeSpan, and refuses anything else.

Time zone. Azure evaluates cron schedules in the host's local time zone, which is UTC unless the app sets
``WEBSITE_TIME_ZONE`` (or ``TZ`` on Linux) (``includes/functions-timezone.md``). durablehost does the same
with IANA names: ``WEBSITE_TIME_ZONE``, else ``TZ``, else UTC — never the machine's own zone, so a schedule
fires at the same moments here as in Azure. Windows zone names (``W. Europe Standard Time``) are refused.

Daylight saving (``CronSchedule.TryAdjustAmbiguousTime``, azure-webjobs-sdk-extensions #908): a wall time
that does not exist (clocks jump forward) fires at the moment it names in the offset before the change,
i.e. an hour later on the clock; a wall time that occurs twice fires once, at its first occurrence, for a
fixed-time schedule, and at both for an interval schedule (``*``, or a range in the second, minute or hour
field), which keeps its pace through the repeated hour.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from durablehost.triggers.cron import CronError, CronExpression, parse_cron
from durablehost.triggers.timespan import TimeSpanError, format_timespan, parse_timespan

TIME_ZONE_SETTINGS = ("WEBSITE_TIME_ZONE", "TZ")
_REFERENCE = re.compile(r"%([^%]+)%")


class ScheduleError(ValueError):
    """A schedule or time zone that cannot be used; the message says what to write instead."""


@dataclass(frozen=True)
class CronSchedule:
    expression: CronExpression
    zone: tzinfo

    def next_after(self, moment: datetime) -> datetime | None:
        """The first occurrence strictly after the aware ``moment``, as an aware UTC time."""
        if self.zone is UTC:
            found = self.expression.next_after(moment.astimezone(UTC))
            return found.replace(tzinfo=UTC) if found is not None else None
        return self._next_in_zone(moment)

    def _next_in_zone(self, moment: datetime) -> datetime | None:
        local = moment.astimezone(self.zone)
        wall = local.replace(tzinfo=None)
        interval = self.expression.is_interval
        candidate = self.expression.next_after(wall)
        if interval and local.fold == 0 and self._repeated(wall):
            # In the first pass through a repeated hour, the second pass comes before anything later.
            if candidate is not None and not self._repeated(candidate):
                again = self.expression.next_after(self._repeated_start(wall) - timedelta(seconds=1))
                if again is not None and self._repeated(again):
                    return self._instant(again, fold=1)
        while candidate is not None:
            # A fixed-time schedule fires a repeated wall time at its first occurrence only.
            for fold in (0, 1) if interval else (0,):
                instant = self._instant(candidate, fold)
                if instant > moment:
                    return instant
            candidate = self.expression.next_after(candidate)
        return None

    def _instant(self, wall: datetime, fold: int) -> datetime:
        # fold=0 gives a wall time in a gap the offset before the change, as .NET does for a local time
        # that does not exist.
        return wall.replace(tzinfo=self.zone, fold=fold).astimezone(UTC)

    def _repeated(self, wall: datetime) -> bool:
        """The wall time occurs twice (clocks went back); a time in a gap also has two offsets, but its
        second reading does not give the same wall time back."""
        first, second = self._instant(wall, 0), self._instant(wall, 1)
        return first != second and _wall(second, self.zone) == wall

    def _repeated_start(self, wall: datetime) -> datetime:
        """The first wall time of the repeated stretch that ``wall`` is in (whole seconds)."""
        low = wall.replace(microsecond=0) - (self._instant(wall, 1) - self._instant(wall, 0))
        high = wall.replace(microsecond=0)
        while high - low > timedelta(seconds=1):
            middle = low + (high - low) // 2
            middle = middle.replace(microsecond=0)
            if self._repeated(middle):
                high = middle
            else:
                low = middle
        return high if not self._repeated(low) else low

    @property
    def monitor_allowed(self) -> bool:
        """False for schedules that fire more than once a minute (``ShouldDisableScheduleMonitor``)."""
        return not self.expression.is_sub_minute

    @property
    def adjust_for_dst(self) -> bool:
        return True  # CronSchedule.AdjustForDST; sent to the function as Schedule.AdjustForDST

    def describe(self) -> str:
        zone = "" if self.zone is UTC else f" in {self.zone}"
        return f"cron '{self.expression.text}'{zone}"


@dataclass(frozen=True)
class ConstantSchedule:
    interval: timedelta

    def next_after(self, moment: datetime) -> datetime | None:
        return moment.astimezone(UTC) + self.interval

    @property
    def monitor_allowed(self) -> bool:
        return self.interval >= timedelta(minutes=1)

    @property
    def adjust_for_dst(self) -> bool:
        return False  # ConstantSchedule.AdjustForDST

    def describe(self) -> str:
        return f"every {format_timespan(self.interval)}"


Schedule = CronSchedule | ConstantSchedule


def _wall(instant: datetime, zone: tzinfo) -> datetime:
    return instant.astimezone(zone).replace(tzinfo=None)


def resolve_settings(text: str, environ: Mapping[str, str], what: str) -> str:
    """Replace every ``%Name%`` with the setting's value (``INameResolver.ResolveWholeString``)."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        found = environ.get(name)
        if found is None:
            raise ScheduleError(
                f"{what} refers to the setting {name!r} ({match.group(0)}), which is not set; set it in "
                "local.settings.json Values or the environment"
            )
        return found

    return _REFERENCE.sub(value, text)


def parse_schedule(text: str, zone: tzinfo) -> Schedule:
    """The schedule of ``text``: NCRONTAB first, then TimeSpan, as ``TimerSchedule.Create`` tries them."""
    try:
        return CronSchedule(parse_cron(text), zone)
    except CronError as cron_error:
        try:
            interval = parse_timespan(text)
        except TimeSpanError:
            raise ScheduleError(
                f"the schedule {text!r} is neither an NCRONTAB expression ({cron_error}) nor a TimeSpan; "
                "write six fields '{second} {minute} {hour} {day} {month} {day-of-week}' (e.g. "
                "'0 */5 * * * *', every five minutes), five without the seconds, or a TimeSpan such as "
                "'00:05:00'"
            ) from cron_error
    if interval <= timedelta(0):
        # Azure would fire such a timer in a tight loop; refuse it instead.
        raise ScheduleError(f"the schedule {text!r} is a TimeSpan of {interval}; it must be positive")
    return ConstantSchedule(interval)


def schedule_zone(environ: Mapping[str, str] | None = None) -> tzinfo:
    """The zone cron schedules are evaluated in (module docstring). ScheduleError for an unknown name."""
    env = os.environ if environ is None else environ
    for setting in TIME_ZONE_SETTINGS:
        name = (env.get(setting) or "").strip().removeprefix(":")
        if not name:
            continue
        if name.upper() in ("UTC", "ETC/UTC", "GMT", "UNIVERSAL", "ZULU"):
            return UTC
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ScheduleError(
                f"the setting {setting}={name!r} is not an IANA time zone name; durablehost reads the tz "
                "database names of Azure on Linux (e.g. 'Europe/Berlin', 'America/New_York'), not "
                "Windows names"
            ) from exc
    return UTC
