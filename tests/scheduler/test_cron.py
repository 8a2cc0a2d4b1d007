"""Cron evaluation in an IANA zone, with Debian cron's DST rule (DESIGN.md section 5).

Fire times are always asserted as UTC instants (or with their offset): two Oslo datetimes at
02:30 on the fall-back day compare equal in Python although they are an hour apart.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from syncbus_scheduler.cron import (
    CronError,
    TooManyFiresError,
    fires_between,
    next_fire,
    validate_cron,
)

OSLO = ZoneInfo("Europe/Oslo")
NEW_YORK = ZoneInfo("America/New_York")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def in_oslo(fires: list[datetime]) -> list[str]:
    return [fire.astimezone(OSLO).isoformat() for fire in fires]


def fires_on_local_day(expr: str, tz: str, day: date) -> list[datetime]:
    zone = ZoneInfo(tz)
    start = datetime.combine(day, datetime.min.time(), tzinfo=zone).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=zone)
    return fires_between(expr, tz, start - timedelta(microseconds=1), end - timedelta(seconds=1))


# --- the DST rule -------------------------------------------------------------------------------


def test_a_fixed_time_skipped_by_spring_forward_runs_once_right_after_the_gap():
    fires = fires_between("30 2 * * *", "Europe/Oslo", utc(2026, 3, 28, 12), utc(2026, 3, 30, 12))

    assert fires == [utc(2026, 3, 29, 1, 0), utc(2026, 3, 30, 0, 30)]
    assert in_oslo(fires) == ["2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"]


def test_two_fixed_times_inside_the_gap_run_once_between_them_right_after_it():
    fires = fires_on_local_day("15,45 2 * * *", "Europe/Oslo", date(2026, 3, 29))

    assert in_oslo(fires) == ["2026-03-29T03:00:00+02:00"]


def test_a_fixed_time_repeated_by_fall_back_runs_once_in_the_first_pass():
    fires = fires_between("30 2 * * *", "Europe/Oslo", utc(2026, 10, 24, 12), utc(2026, 10, 26, 12))

    assert fires == [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]
    assert in_oslo(fires) == ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]


def test_a_fixed_time_does_not_run_again_in_the_second_pass_of_the_repeated_hour():
    first_pass = next_fire("30 2 * * *", "Europe/Oslo", utc(2026, 10, 24, 12))

    assert first_pass == utc(2026, 10, 25, 0, 30)
    assert first_pass.utcoffset() == timedelta(0)
    assert next_fire("30 2 * * *", "Europe/Oslo", first_pass) == utc(2026, 10, 26, 1, 30)


def test_a_start_inside_the_repeated_hour_never_yields_a_fire_before_it():
    # 02:15 in the second pass is 01:15Z. cronsim on its own answers 02:30 of the first pass
    # (00:30Z), an hour earlier than the start; next_fire must not.
    start = datetime(2026, 10, 25, 2, 15, fold=1, tzinfo=OSLO)
    assert start.utcoffset() == timedelta(hours=1)

    assert next_fire("30 2 * * *", "Europe/Oslo", start) == utc(2026, 10, 26, 1, 30)
    assert next_fire("0 3 * * *", "Europe/Oslo", start) == utc(2026, 10, 25, 2, 0)


def test_an_hourly_schedule_follows_the_clock_through_fall_back():
    start = datetime(2026, 10, 25, 1, 30, tzinfo=OSLO)
    fires = fires_between("0 * * * *", "Europe/Oslo", start, utc(2026, 10, 25, 2, 0))

    assert fires == [utc(2026, 10, 25, 0), utc(2026, 10, 25, 1), utc(2026, 10, 25, 2)]
    assert in_oslo(fires) == [
        "2026-10-25T02:00:00+02:00",
        "2026-10-25T02:00:00+01:00",
        "2026-10-25T03:00:00+01:00",
    ]


def test_a_quarter_hour_step_follows_the_clock_through_spring_forward():
    start = datetime(2026, 3, 29, 1, 40, tzinfo=OSLO)
    fires = fires_between("*/15 * * * *", "Europe/Oslo", start, utc(2026, 3, 29, 1, 15))

    assert in_oslo(fires) == [
        "2026-03-29T01:45:00+01:00",
        "2026-03-29T03:00:00+02:00",
        "2026-03-29T03:15:00+02:00",
    ]
    assert fires == [utc(2026, 3, 29, 0, 45), utc(2026, 3, 29, 1, 0), utc(2026, 3, 29, 1, 15)]


def test_a_step_over_a_range_keeps_the_wall_clock_rule_like_debian_cron():
    # Debian cron (and cronsim) decide by the first character: only a field starting with `*`
    # follows the clock. `0-59/30 2` is a wall-clock schedule, so 02:00 and 02:30 run once, in
    # the first pass; `*/30 2` follows the clock and runs in both passes.
    day = date(2026, 10, 25)

    assert in_oslo(fires_on_local_day("0-59/30 2 * * *", "Europe/Oslo", day)) == [
        "2026-10-25T02:00:00+02:00",
        "2026-10-25T02:30:00+02:00",
    ]
    assert in_oslo(fires_on_local_day("*/30 2 * * *", "Europe/Oslo", day)) == [
        "2026-10-25T02:00:00+02:00",
        "2026-10-25T02:30:00+02:00",
        "2026-10-25T02:00:00+01:00",
        "2026-10-25T02:30:00+01:00",
    ]


@pytest.mark.parametrize(
    ("day", "expected"),
    [(date(2026, 3, 29), 23), (date(2026, 10, 25), 25), (date(2026, 6, 1), 24)],
)
def test_an_hourly_schedule_fires_once_per_real_hour_of_the_local_day(day, expected):
    fires = fires_on_local_day("0 * * * *", "Europe/Oslo", day)

    assert len(fires) == expected
    assert len(set(fires)) == expected
    assert all(later - earlier == timedelta(hours=1) for earlier, later in pairwise(fires))


def test_a_fixed_time_runs_exactly_once_on_each_transition_day_in_oslo():
    for day in (date(2026, 3, 29), date(2026, 10, 25)):
        assert len(fires_on_local_day("30 2 * * *", "Europe/Oslo", day)) == 1


def test_two_in_the_night_in_new_york_runs_once_on_both_transition_days_of_2026():
    spring = fires_on_local_day("0 2 * * *", "America/New_York", date(2026, 3, 8))
    fall = fires_on_local_day("0 2 * * *", "America/New_York", date(2026, 11, 1))

    # 8 March: 02:00 does not exist (02:00 EST -> 03:00 EDT), it runs right after the gap.
    assert spring == [utc(2026, 3, 8, 7, 0)]
    assert spring[0].astimezone(NEW_YORK).isoformat() == "2026-03-08T03:00:00-04:00"
    # 1 November: 02:00 EDT becomes 01:00 EST, so 02:00 happens once, in EST.
    assert fall == [utc(2026, 11, 1, 7, 0)]
    assert fall[0].astimezone(NEW_YORK).isoformat() == "2026-11-01T02:00:00-05:00"


def test_one_in_the_night_in_new_york_runs_once_in_the_first_pass_on_fall_back():
    fires = fires_on_local_day("0 1 * * *", "America/New_York", date(2026, 11, 1))

    assert fires == [utc(2026, 11, 1, 5, 0)]
    assert fires[0].astimezone(NEW_YORK).isoformat() == "2026-11-01T01:00:00-04:00"


@pytest.mark.parametrize("tz", ["Europe/Oslo", "Pacific/Auckland", "UTC"])
def test_a_monthly_schedule_fires_on_each_of_twelve_months_without_skipping_one(tz):
    zone = ZoneInfo(tz)
    start = datetime(2026, 1, 1, tzinfo=zone) - timedelta(seconds=1)
    end = datetime(2026, 12, 31, 23, 59, tzinfo=zone)

    fires = fires_between("0 0 1 * *", tz, start, end)

    local = [fire.astimezone(zone) for fire in fires]
    assert [(f.year, f.month, f.day, f.hour, f.minute) for f in local] == [
        (2026, month, 1, 0, 0) for month in range(1, 13)
    ]


# --- classic cron syntax -------------------------------------------------------------------------


def test_day_of_month_and_day_of_week_together_fire_when_either_matches():
    april = (utc(2026, 4, 1) - timedelta(seconds=1), utc(2026, 4, 30, 23, 59))

    either = fires_between("0 0 13 * FRI", "UTC", *april)
    only_dom = fires_between("0 0 13 * *", "UTC", *april)
    only_dow = fires_between("0 0 * * FRI", "UTC", *april)

    # April 2026: the 13th is a Monday; the Fridays are the 3rd, 10th, 17th and 24th.
    assert [f.day for f in either] == [3, 10, 13, 17, 24]
    assert [f.day for f in only_dom] == [13]
    assert [f.day for f in only_dow] == [3, 10, 17, 24]


@pytest.mark.parametrize(
    ("expr", "expected_days"),
    [
        ("0 0 L * *", [(1, 31), (2, 28), (3, 31), (4, 30)]),
        ("0 0 LW * *", [(1, 30), (2, 27), (3, 31), (4, 30)]),
        ("0 0 * * 5L", [(1, 30), (2, 27), (3, 27), (4, 24)]),
        ("0 0 * * MON#2", [(1, 12), (2, 9), (3, 9), (4, 13)]),
        ("0 0 1 JAN-MAR *", [(1, 1), (2, 1), (3, 1)]),
        ("0 0 1 */2 *", [(1, 1), (3, 1)]),
    ],
)
def test_last_day_nth_weekday_ranges_steps_and_names_work_as_cronsim_documents(expr, expected_days):
    fires = fires_between(expr, "UTC", utc(2025, 12, 31, 23, 59), utc(2026, 4, 30, 23, 59))

    assert [(f.month, f.day) for f in fires] == expected_days


def test_weekday_names_ranges_and_hour_steps_combine():
    fires = fires_between("0 8-12/2 * * mon-fri", "UTC", utc(2026, 4, 3, 9), utc(2026, 4, 6, 23))

    # Friday 3 April from 09:00, then Monday 6 April; nothing on the weekend.
    assert fires == [utc(2026, 4, 3, 10), utc(2026, 4, 3, 12)] + [
        utc(2026, 4, 6, hour) for hour in (8, 10, 12)
    ]


def test_a_leap_day_schedule_finds_the_next_29_february():
    assert next_fire("0 0 29 2 *", "UTC", utc(2026, 1, 1)) == utc(2028, 2, 29)


# --- next_fire and fires_between contracts -------------------------------------------------------


def test_next_fire_is_strictly_after_the_start_and_in_utc():
    fire = next_fire("0 0 1 * *", "Europe/Oslo", datetime(2026, 2, 1, tzinfo=OSLO))

    assert fire == utc(2026, 2, 28, 23, 0)
    assert fire.tzinfo is UTC


def test_next_fire_accepts_a_start_in_any_zone_and_compares_it_as_an_instant():
    start_in_new_york = datetime(2026, 1, 31, 17, 59, tzinfo=NEW_YORK)  # 22:59Z, 23:59 in Oslo

    assert next_fire("0 0 1 * *", "Europe/Oslo", start_in_new_york) == utc(2026, 1, 31, 23, 0)


def test_next_fire_counts_a_start_a_fraction_of_a_second_before_a_fire_as_before_it():
    just_before = utc(2026, 1, 31, 23, 0) - timedelta(microseconds=1)

    assert next_fire("0 0 1 * *", "Europe/Oslo", just_before) == utc(2026, 1, 31, 23, 0)


def test_next_fire_refuses_a_naive_start():
    with pytest.raises(ValueError, match="no UTC offset"):
        next_fire("0 0 1 * *", "UTC", datetime(2026, 1, 1))  # noqa: DTZ001


def test_next_fire_refuses_a_malformed_expression_naming_the_field():
    with pytest.raises(CronError, match="hour field '24'"):
        next_fire("0 24 * * *", "UTC", utc(2026, 1, 1))


def test_fires_between_excludes_the_start_and_includes_the_end():
    fires = fires_between("0 * * * *", "UTC", utc(2026, 1, 1, 1), utc(2026, 1, 1, 3))

    assert fires == [utc(2026, 1, 1, 2), utc(2026, 1, 1, 3)]


def test_fires_between_is_empty_when_the_end_is_not_after_the_start():
    assert fires_between("* * * * *", "UTC", utc(2026, 1, 2), utc(2026, 1, 1)) == []


def test_fires_between_refuses_to_list_more_fires_than_its_limit():
    with pytest.raises(TooManyFiresError, match="more than 100"):
        fires_between("* * * * *", "UTC", utc(2026, 1, 1), utc(2026, 1, 2), limit=100)
    assert len(fires_between("* * * * *", "UTC", utc(2026, 1, 1), utc(2026, 1, 8))) == 7 * 1440


def test_two_oslo_datetimes_on_the_fall_back_day_compare_equal_although_an_hour_apart():
    # Why every assertion here is made on UTC values: Python compares same-zone datetimes on
    # their wall clock and ignores fold.
    first = datetime(2026, 10, 25, 2, 30, fold=0, tzinfo=OSLO)
    second = datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=OSLO)

    assert first == second
    assert second.astimezone(UTC) - first.astimezone(UTC) == timedelta(hours=1)


# --- validate_cron -------------------------------------------------------------------------------

NOW = utc(2026, 1, 1)


@pytest.mark.parametrize(
    "expr",
    [
        "0 0 1 * *",
        "5 0 1 * *",
        "*/15 * * * *",
        "0 9 * * MON-FRI",
        "0 0 29 2 *",
        "0 0 L * *",
        "0 0 30 2 MON",
        "30 2 * * 0,7",
    ],
)
def test_a_usable_expression_passes_validation(expr):
    validate_cron(expr, "Europe/Oslo", now=NOW)


@pytest.mark.parametrize(
    ("expr", "field"),
    [
        ("60 0 * * *", "minute field '60'"),
        ("0 24 * * *", "hour field '24'"),
        ("0 0 0 * *", "day-of-month field '0'"),
        ("0 0 32 * *", "day-of-month field '32'"),
        ("0 0 1 13 *", "month field '13'"),
        ("0 0 1 FOO *", "month field 'FOO'"),
        ("0 0 * * 8", "day-of-week field '8'"),
        ("*/0 * * * *", r"minute field '\*/0'"),
        ("0 5-2 * * *", "hour field '5-2'"),
        ("0 0 ? * *", r"day-of-month field '\?'"),
    ],
)
def test_a_malformed_expression_is_refused_naming_the_bad_field(expr, field):
    with pytest.raises(CronError, match=field):
        validate_cron(expr, "UTC", now=NOW)


@pytest.mark.parametrize("expr", ["0 0 * *", "0 0 * * * *", "@daily", ""])
def test_an_expression_without_five_fields_is_refused(expr):
    with pytest.raises(CronError, match="must have five fields"):
        validate_cron(expr, "UTC", now=NOW)


@pytest.mark.parametrize(
    ("expr", "reason"),
    [
        ("0 0 30 2 *", "never fires: February has no 30th"),
        ("0 0 31 4,6 *", "never fires: April and June have no 31st"),
        ("0 0 30,31 2 *", "never fires: February has no 30th or 31st"),
    ],
)
def test_an_expression_naming_a_day_its_months_lack_never_fires(expr, reason):
    with pytest.raises(CronError, match=reason):
        validate_cron(expr, "Europe/Oslo", now=NOW)


def test_an_expression_with_no_fire_within_eight_years_is_refused_as_never_firing():
    # February has a fifth Monday only when a leap year's 1 February is a Monday: 2044 next.
    with pytest.raises(CronError, match="never fires within 8 years"):
        validate_cron("0 0 * 2 MON#5", "UTC", now=NOW)


def test_an_unknown_time_zone_is_refused():
    with pytest.raises(CronError, match="unknown IANA time zone 'Europe/Olso'"):
        validate_cron("0 0 1 * *", "Europe/Olso", now=NOW)


# --- an independent oracle for the DST rule ------------------------------------------------------


def _field(text: str, low: int, high: int) -> set[int]:
    """Minute/hour field of the oracle: `*`, lists, ranges and steps (enough for these cases)."""
    values: set[int] = set()
    for term in text.split(","):
        base, _, step = term.partition("/")
        if base == "*":
            first, last = low, high
        elif "-" in base:
            first, last = (int(v) for v in base.split("-"))
        else:
            first = last = int(base)
            if step:
                last = high
        values.update(range(first, last + 1, int(step or 1)))
    return values


def _oracle(expr: str, tz: str, start: datetime, end: datetime) -> list[datetime]:
    """Fires of `M H * * *` in (start, end], by brute force over every minute, per the rule."""
    zone = ZoneInfo(tz)
    minute_text, hour_text = expr.split()[:2]
    minutes, hours = _field(minute_text, 0, 59), _field(hour_text, 0, 23)
    fires: set[datetime] = set()
    if minute_text.startswith("*") or hour_text.startswith("*"):
        # Follows the clock: every real instant whose local wall time matches.
        moment = start.replace(second=0, microsecond=0) + timedelta(minutes=1)
        while moment <= end:
            local = moment.astimezone(zone)
            if local.minute in minutes and local.hour in hours:
                fires.add(moment)
            moment += timedelta(minutes=1)
    else:
        # Wall clock: each matching local time once; a skipped one right after the gap.
        wall = start.astimezone(zone).replace(tzinfo=None, second=0, microsecond=0)
        wall -= timedelta(hours=3)
        last_wall = end.astimezone(zone).replace(tzinfo=None) + timedelta(hours=3)
        while wall <= last_wall:
            if wall.minute in minutes and wall.hour in hours:
                real = wall
                while (
                    real.replace(tzinfo=zone).astimezone(UTC).astimezone(zone).replace(tzinfo=None)
                    != real
                ):
                    real += timedelta(minutes=1)
                fire = real.replace(tzinfo=zone, fold=0).astimezone(UTC)
                if start < fire <= end:
                    fires.add(fire)
            wall += timedelta(minutes=1)
    return sorted(fires)


@pytest.mark.parametrize(
    ("tz", "day"),
    [
        ("Europe/Oslo", date(2026, 3, 29)),
        ("Europe/Oslo", date(2026, 10, 25)),
        ("America/New_York", date(2026, 3, 8)),
        ("America/New_York", date(2026, 11, 1)),
    ],
)
@pytest.mark.parametrize(
    "expr",
    [
        "30 2 * * *",
        "15,45 2 * * *",
        "0-59/20 2 * * *",
        "0 1,2,3 * * *",
        "59 1 * * *",
        "0 * * * *",
        "*/15 * * * *",
        "* 2 * * *",
        "5 */2 * * *",
    ],
)
def test_fires_around_a_transition_match_a_brute_force_reading_of_the_rule(tz, day, expr):
    midnight = datetime.combine(day, datetime.min.time(), tzinfo=ZoneInfo(tz)).astimezone(UTC)
    first_start, end = midnight - timedelta(hours=2), midnight + timedelta(hours=26)
    expected = _oracle(expr, tz, first_start, end)
    # Starts before, inside and after the transition hours, on and off the minute.
    starts = [first_start] + [midnight + timedelta(minutes=m, seconds=1) for m in range(0, 300, 7)]
    for start in starts:
        assert fires_between(expr, tz, start, end) == [f for f in expected if f > start], start
