"""NCRONTAB parsing and next occurrences, as NCrontab (the timer trigger's parser) computes them.

The expected values follow NCrontab's rules (atifaziz/NCrontab ``CrontabSchedule.cs``,
``CrontabFieldImpl.cs``, ``CrontabField.cs``) and the examples of the timer trigger docs
(functions-bindings-timer.md, "NCRONTAB expressions")."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from durablehost.triggers.cron import CronError, parse_cron

BASE = datetime(2024, 1, 1, 0, 0, 0)  # a Monday


def upcoming(expression: str, count: int = 3, base: datetime = BASE) -> list[str]:
    parsed = parse_cron(expression)
    out: list[str] = []
    moment: datetime | None = base
    for _ in range(count):
        assert moment is not None
        moment = parsed.next_after(moment)
        assert moment is not None, f"{expression} ran out of occurrences"
        out.append(moment.isoformat(sep=" "))
    return out


# The docs' table of examples: expression -> what it means.
@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("0 */5 * * * *", ["2024-01-01 00:05:00", "2024-01-01 00:10:00", "2024-01-01 00:15:00"]),
        ("0 0 * * * *", ["2024-01-01 01:00:00", "2024-01-01 02:00:00", "2024-01-01 03:00:00"]),
        ("0 0 */2 * * *", ["2024-01-01 02:00:00", "2024-01-01 04:00:00", "2024-01-01 06:00:00"]),
        ("0 0 9-17 * * *", ["2024-01-01 09:00:00", "2024-01-01 10:00:00", "2024-01-01 11:00:00"]),
        ("0 30 9 * * *", ["2024-01-01 09:30:00", "2024-01-02 09:30:00", "2024-01-03 09:30:00"]),
        ("0 30 9 * * 1-5", ["2024-01-01 09:30:00", "2024-01-02 09:30:00", "2024-01-03 09:30:00"]),
        ("0 30 9 * Jan Mon", ["2024-01-01 09:30:00", "2024-01-08 09:30:00", "2024-01-15 09:30:00"]),
        ("0 0 0 1 * *", ["2024-02-01 00:00:00", "2024-03-01 00:00:00", "2024-04-01 00:00:00"]),
        ("5 * * * * *", ["2024-01-01 00:00:05", "2024-01-01 00:01:05", "2024-01-01 00:02:05"]),
        ("5,8,10 * * * * *", ["2024-01-01 00:00:05", "2024-01-01 00:00:08", "2024-01-01 00:00:10"]),
    ],
)
def test_documented_examples(expression: str, expected: list[str]) -> None:
    assert upcoming(expression) == expected


def test_six_fields_put_seconds_first() -> None:
    assert upcoming("30 1 * * * *", 2) == ["2024-01-01 00:01:30", "2024-01-01 01:01:30"]


def test_five_fields_are_standard_cron_without_seconds() -> None:
    parsed = parse_cron("*/15 * * * *")
    assert not parsed.has_seconds
    assert parsed.seconds == (0,)
    assert upcoming("*/15 * * * *") == ["2024-01-01 00:15:00", "2024-01-01 00:30:00", "2024-01-01 00:45:00"]


def test_every_second() -> None:
    assert upcoming("* * * * * *") == ["2024-01-01 00:00:01", "2024-01-01 00:00:02", "2024-01-01 00:00:03"]


def test_next_is_strictly_after_the_base_and_ignores_its_fraction() -> None:
    parsed = parse_cron("*/10 * * * * *")
    assert parsed.next_after(datetime(2024, 1, 1, 0, 0, 10)) == datetime(2024, 1, 1, 0, 0, 20)
    assert parsed.next_after(datetime(2024, 1, 1, 0, 0, 9, 999_999)) == datetime(2024, 1, 1, 0, 0, 10)


def test_step_on_a_single_value_runs_to_the_end_of_the_range() -> None:
    assert parse_cron("10/20 * * * * *").seconds == (10, 30, 50)


def test_step_on_a_range() -> None:
    assert parse_cron("0 0 1-10/3 * * *").hours == (1, 4, 7, 10)


def test_lists_mix_values_ranges_and_steps() -> None:
    assert parse_cron("0 1,5-7,40/10 * * * *").minutes == (1, 5, 6, 7, 40, 50)


def test_reversed_range_is_read_forwards_as_ncrontab_does() -> None:
    assert parse_cron("0 0 5-1 * * *").hours == (1, 2, 3, 4, 5)


def test_step_zero_counts_as_one() -> None:
    assert parse_cron("*/0 * * * * *").seconds == tuple(range(60))


@pytest.mark.parametrize(
    ("text", "month"),
    [("Jan", 1), ("january", 1), ("JANUARY", 1), ("F", 2), ("Mar", 3), ("Ma", 3), ("May", 5), ("Ju", 6),
     ("Jul", 7), ("A", 4), ("Au", 8), ("dec", 12)],
)  # fmt: skip
def test_month_names_are_any_prefix_first_match_wins(text: str, month: int) -> None:
    assert parse_cron(f"0 0 0 1 {text} *").months == (month,)


@pytest.mark.parametrize(
    ("text", "day"),
    [("Sun", 0), ("sunday", 0), ("Mon", 1), ("T", 2), ("Tu", 2), ("Th", 4), ("W", 3), ("Fri", 5), ("sat", 6)],
)
def test_day_names_are_any_prefix_sunday_is_zero(text: str, day: int) -> None:
    assert parse_cron(f"0 0 0 * * {text}").days_of_week == (day,)


def test_named_ranges_and_steps() -> None:
    assert parse_cron("0 0 0 * * Mon-Fri").days_of_week == (1, 2, 3, 4, 5)
    assert parse_cron("0 0 0 1 Jan-Dec/3 *").months == (1, 4, 7, 10)


def test_day_of_month_and_day_of_week_must_both_match() -> None:
    # Vixie cron would fire on every 13th and every Friday; NCrontab only on Friday the 13th.
    assert upcoming("0 0 0 13 * Fri") == ["2024-09-13 00:00:00", "2024-12-13 00:00:00", "2025-06-13 00:00:00"]


def test_day_31_skips_short_months() -> None:
    assert upcoming("0 0 0 31 * *") == ["2024-01-31 00:00:00", "2024-03-31 00:00:00", "2024-05-31 00:00:00"]


def test_february_29_waits_for_leap_years() -> None:
    assert upcoming("0 0 0 29 Feb *", base=datetime(2024, 3, 1)) == [
        "2028-02-29 00:00:00",
        "2032-02-29 00:00:00",
        "2036-02-29 00:00:00",
    ]


def test_rolls_over_minutes_hours_days_months_and_years() -> None:
    assert upcoming("59 59 23 31 12 *", 2, base=datetime(2024, 6, 1)) == [
        "2024-12-31 23:59:59",
        "2025-12-31 23:59:59",
    ]


def test_later_fields_reset_when_an_earlier_one_moves() -> None:
    # From 10:45:30, "0 30 9,11 * * *": the next hour with minute 30 is 11, at second 0.
    parsed = parse_cron("0 30 9,11 * * *")
    assert parsed.next_after(datetime(2024, 1, 1, 10, 45, 30)) == datetime(2024, 1, 1, 11, 30, 0)
    assert parsed.next_after(datetime(2024, 1, 1, 11, 30, 0)) == datetime(2024, 1, 2, 9, 30, 0)


def test_extra_spaces_between_fields_are_ignored() -> None:
    assert parse_cron("  0   */5 * * *  * ").minutes == tuple(range(0, 60, 5))


def test_a_year_of_weekend_noons() -> None:
    parsed = parse_cron("0 0 12 * * Sat,Sun")
    moment = datetime(2024, 1, 1)
    weekend_noons = 0
    while True:
        found = parsed.next_after(moment)
        assert found is not None
        if found.year > 2024:
            break
        assert found.weekday() in (5, 6) and found.hour == 12
        weekend_noons += 1
        moment = found
    assert weekend_noons == 104  # 2024 has 52 Saturdays and 52 Sundays


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("", "0 field(s)"),
        ("* * * *", "4 field(s)"),
        ("* * * * * * *", "7 field(s)"),
        ("60 * * * * *", "the second field '60' has 60, outside 0-59"),
        ("0 60 * * * *", "minute field '60'"),
        ("0 0 24 * * *", "the hour field '24' has 24, outside 0-23"),
        ("0 0 0 0 * *", "the day field '0' has 0, outside 1-31"),
        ("0 0 0 32 * *", "outside 1-31"),
        ("0 0 0 * 13 *", "the month field '13'"),
        ("0 0 0 * * 7", "Sunday is 0; 7 is not accepted"),
        ("0 0 0 * * Funday", "not a day-of-week name"),
        ("0 0 0 1 Smarch *", "not a month name"),
        ("0 0 Mon * * *", "must be a number from 0 to 23"),
        ("0 0 ? * * *", "must be a number from 0 to 23"),
        ("0 0 0 L * *", "must be a number from 1 to 31"),
        ("0 0 0 * * 5#3", "not a number"),
        ("*/x * * * * *", "a step 'x' that is not a number"),
        ("*/ * * * * *", "a step '' that is not a number"),
        ("1,,2 * * * * *", "has an empty value"),
        (",1 * * * * *", "must be a number"),
        ("1- * * * * *", "has an empty value"),
        ("5x * * * * *", "'5x', which is not a number"),
        ("@daily", "1 field(s)"),
        ("0 0 0 30 Feb *", "it never occurs"),
        ("0 0 0 31 4,6,9,11 *", "it never occurs"),
    ],
)
def test_refused_with_the_reason(expression: str, fragment: str) -> None:
    with pytest.raises(CronError) as raised:
        parse_cron(expression)
    assert fragment in str(raised.value)


def test_sub_minute_detection_follows_should_disable_schedule_monitor() -> None:
    assert parse_cron("*/30 * * * * *").is_sub_minute
    assert parse_cron("* * * * * *").is_sub_minute
    assert parse_cron("0,30 * * * * *").is_sub_minute
    assert not parse_cron("0 * * * * *").is_sub_minute  # once a minute
    assert not parse_cron("* * * * *").is_sub_minute  # five fields: at most once a minute
    assert not parse_cron("*/30 * 9 * * *").is_sub_minute  # the hour is restricted
    assert not parse_cron("*/30 * * * Jan *").is_sub_minute


def test_interval_detection_follows_cron_schedule_is_interval() -> None:
    assert parse_cron("0 */1 * * * *").is_interval  # every minute: a run of minutes
    assert parse_cron("0 0 9-17 * * *").is_interval  # a range of hours
    assert parse_cron("0 0 * * * *").is_interval  # every hour
    assert not parse_cron("0 30 9 * * *").is_interval
    assert not parse_cron("0 0,30 2 * * *").is_interval
    assert not parse_cron("0 */15 2 * * *").is_interval  # 0,15,30,45: no two consecutive values


def test_a_rare_occurrence_is_found_decades_ahead() -> None:
    parsed = parse_cron("59 59 23 29 Feb Mon")
    found = parsed.next_after(datetime(2024, 3, 1))
    assert found == datetime(2044, 2, 29, 23, 59, 59)
    assert found - datetime(2024, 3, 1) > timedelta(days=365 * 19)
