"""Schedules as ``TimerSchedule.Create`` reads them: %Setting% resolution, NCRONTAB then TimeSpan, time
zones (WEBSITE_TIME_ZONE / TZ, UTC by default) and daylight-saving changes, the monitor's sub-minute rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from durablehost.triggers.schedule import (
    ConstantSchedule,
    CronSchedule,
    ScheduleError,
    parse_schedule,
    resolve_settings,
    schedule_zone,
)
from durablehost.triggers.timespan import TimeSpanError, format_timespan, parse_timespan

BERLIN = ZoneInfo("Europe/Berlin")


def occurrences(schedule_text: str, start: datetime, count: int, zone: object = UTC) -> list[str]:
    schedule = parse_schedule(schedule_text, zone)  # type: ignore[arg-type]
    moment = start
    out = []
    for _ in range(count):
        found = schedule.next_after(moment)
        assert found is not None
        out.append(found.astimezone(zone).isoformat())  # type: ignore[arg-type]
        moment = found
    return out


# --- TimeSpan ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("00:00:10", timedelta(seconds=10)),
        ("00:05:00", timedelta(minutes=5)),
        ("01:30", timedelta(hours=1, minutes=30)),
        ("1.02:03:04", timedelta(days=1, hours=2, minutes=3, seconds=4)),
        ("1:02:03:04", timedelta(days=1, hours=2, minutes=3, seconds=4)),
        ("00:00:00.5", timedelta(milliseconds=500)),
        ("00:00:01.1234567", timedelta(seconds=1, microseconds=123456)),
        ("5", timedelta(days=5)),  # a bare number is days
        ("24:00:00", timedelta(days=24)),  # dd:hh:mm once the first number is 24 or more
        ("25:01:02", timedelta(days=25, hours=1, minutes=2)),
        ("-00:01:00", timedelta(minutes=-1)),
        (" 00:01:00 ", timedelta(minutes=1)),
    ],
)
def test_timespan_forms(text: str, expected: timedelta) -> None:
    assert parse_timespan(text) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("00:60:00", "minutes (60) are over 59"),
        ("00:00:61", "seconds (61) are over 59"),
        ("1.24:00:00", "hours (24) are over 23"),
        ("1h", "is not a TimeSpan"),
        ("", "is not a TimeSpan"),
        ("00:00:00.12345678", "is not a TimeSpan"),
    ],
)
def test_timespan_refusals(text: str, fragment: str) -> None:
    with pytest.raises(TimeSpanError) as raised:
        parse_timespan(text)
    assert fragment in str(raised.value)


def test_timespan_format_round_trips() -> None:
    for value in (timedelta(seconds=90), timedelta(days=2, hours=3), timedelta(milliseconds=250)):
        assert parse_timespan(format_timespan(value)) == value


# --- parse_schedule ------------------------------------------------------------------------------------


def test_cron_is_tried_first_then_timespan() -> None:
    assert isinstance(parse_schedule("0 */5 * * * *", UTC), CronSchedule)
    constant = parse_schedule("00:05:00", UTC)
    assert isinstance(constant, ConstantSchedule) and constant.interval == timedelta(minutes=5)


def test_constant_schedule_counts_from_the_base() -> None:
    start = datetime(2024, 1, 1, 0, 0, 7, tzinfo=UTC)
    assert occurrences("00:00:30", start, 2) == ["2024-01-01T00:00:37+00:00", "2024-01-01T00:01:07+00:00"]


def test_neither_cron_nor_timespan_is_refused_with_both_explained() -> None:
    with pytest.raises(ScheduleError) as raised:
        parse_schedule("every 5 minutes", UTC)
    message = str(raised.value)
    assert "'every 5 minutes' is neither an NCRONTAB expression" in message
    assert "3 field(s)" in message and "TimeSpan" in message and "'0 */5 * * * *'" in message


def test_a_timespan_that_is_not_positive_is_refused() -> None:
    with pytest.raises(ScheduleError, match="must be positive"):
        parse_schedule("00:00:00", UTC)


def test_monitor_rule_for_timespans_and_cron() -> None:
    assert not parse_schedule("00:00:30", UTC).monitor_allowed
    assert parse_schedule("00:01:00", UTC).monitor_allowed
    assert not parse_schedule("*/10 * * * * *", UTC).monitor_allowed
    assert parse_schedule("0 * * * * *", UTC).monitor_allowed


def test_setting_references_are_resolved_anywhere_in_the_text() -> None:
    environ = {"MINUTES": "*/5", "SCHEDULE": "0 0 * * * *"}
    assert resolve_settings("%SCHEDULE%", environ, "the schedule") == "0 0 * * * *"
    assert resolve_settings("0 %MINUTES% * * * *", environ, "the schedule") == "0 */5 * * * *"


def test_a_missing_setting_is_named() -> None:
    with pytest.raises(ScheduleError) as raised:
        resolve_settings("%NIGHTLY%", {}, "the schedule '%NIGHTLY%'")
    assert "refers to the setting 'NIGHTLY' (%NIGHTLY%), which is not set" in str(raised.value)


# --- time zones -----------------------------------------------------------------------------------------


def test_utc_by_default_whatever_the_machine_uses() -> None:
    assert schedule_zone({}) is UTC


def test_website_time_zone_wins_over_tz() -> None:
    assert schedule_zone({"WEBSITE_TIME_ZONE": "Europe/Berlin", "TZ": "Asia/Tokyo"}) == BERLIN
    assert schedule_zone({"TZ": ":Asia/Tokyo"}) == ZoneInfo("Asia/Tokyo")
    assert schedule_zone({"TZ": "UTC"}) is UTC


def test_windows_zone_names_are_refused() -> None:
    with pytest.raises(ScheduleError) as raised:
        schedule_zone({"WEBSITE_TIME_ZONE": "W. Europe Standard Time"})
    assert "WEBSITE_TIME_ZONE='W. Europe Standard Time' is not an IANA time zone name" in str(raised.value)


def test_cron_is_evaluated_in_the_zone() -> None:
    # 09:00 in Berlin is 08:00 UTC in winter and 07:00 UTC in summer.
    schedule = parse_schedule("0 0 9 * * *", BERLIN)
    winter = schedule.next_after(datetime(2024, 1, 10, tzinfo=UTC))
    summer = schedule.next_after(datetime(2024, 7, 10, tzinfo=UTC))
    assert winter == datetime(2024, 1, 10, 8, 0, tzinfo=UTC)
    assert summer == datetime(2024, 7, 10, 7, 0, tzinfo=UTC)


def test_a_fixed_time_in_the_repeated_hour_fires_once_at_its_first_occurrence() -> None:
    # 2024-10-27 03:00 CEST -> 02:00 CET: 02:30 happens twice.
    start = datetime(2024, 10, 26, 12, 0, tzinfo=BERLIN)
    assert occurrences("0 30 2 * * *", start, 2, BERLIN) == [
        "2024-10-27T02:30:00+02:00",
        "2024-10-28T02:30:00+01:00",
    ]


def test_an_interval_keeps_its_pace_through_the_repeated_hour() -> None:
    start = datetime(2024, 10, 27, 1, 45, tzinfo=BERLIN)
    assert occurrences("0 */30 * * * *", start, 6, BERLIN) == [
        "2024-10-27T02:00:00+02:00",
        "2024-10-27T02:30:00+02:00",
        "2024-10-27T02:00:00+01:00",
        "2024-10-27T02:30:00+01:00",
        "2024-10-27T03:00:00+01:00",
        "2024-10-27T03:30:00+01:00",
    ]


def test_an_interval_started_in_the_second_pass_continues_there() -> None:
    start = datetime(2024, 10, 27, 2, 10, tzinfo=BERLIN, fold=1)
    assert occurrences("0 */30 * * * *", start, 2, BERLIN) == [
        "2024-10-27T02:30:00+01:00",
        "2024-10-27T03:00:00+01:00",
    ]


def test_a_fixed_time_in_the_skipped_hour_fires_an_hour_later_on_the_clock() -> None:
    # 2024-03-31 02:00 CET -> 03:00 CEST: 02:30 does not exist; it is read in the offset before the change.
    start = datetime(2024, 3, 30, 12, 0, tzinfo=BERLIN)
    assert occurrences("0 30 2 * * *", start, 2, BERLIN) == [
        "2024-03-31T03:30:00+02:00",
        "2024-04-01T02:30:00+02:00",
    ]


def test_an_interval_through_the_skipped_hour_has_no_duplicates() -> None:
    start = datetime(2024, 3, 31, 1, 15, tzinfo=BERLIN)
    assert occurrences("0 */30 * * * *", start, 4, BERLIN) == [
        "2024-03-31T01:30:00+01:00",
        "2024-03-31T03:00:00+02:00",
        "2024-03-31T03:30:00+02:00",
        "2024-03-31T04:00:00+02:00",
    ]


def test_every_second_across_the_repeated_hour_counts_every_real_second() -> None:
    schedule = parse_schedule("* * * * * *", BERLIN)
    start = datetime(2024, 10, 27, 0, 0, tzinfo=UTC)  # 02:00 CEST, the start of the repeated hour
    moment = start
    seen = 0
    while moment < start + timedelta(hours=2):
        found = schedule.next_after(moment)
        assert found is not None and found - moment == timedelta(seconds=1)
        moment = found
        seen += 1
    assert seen == 7200
