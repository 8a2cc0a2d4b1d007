"""Which period a fire covers: from the scheduled instant, in the schedule's zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from syncbus_scheduler.periods import (
    Period,
    fire_for_period,
    parse_period_id,
    period_containing,
    period_for_fire,
    period_range,
)
from syncbus_shared.contracts.integration import PeriodKind, Schedule

OSLO = ZoneInfo("Europe/Oslo")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def schedule(
    cron: str = "5 0 1 * *",
    period: PeriodKind = PeriodKind.MONTH,
    offset: int = -1,
    tz: str = "Europe/Oslo",
) -> Schedule:
    return Schedule(cron=cron, timezone=tz, period=period, period_offset=offset)


# --- period_for_fire -----------------------------------------------------------------------------


def test_march_2026_in_oslo_ends_at_22z_on_31_march():
    march = parse_period_id(PeriodKind.MONTH, "2026-03", "Europe/Oslo")

    assert march == Period(
        kind=PeriodKind.MONTH,
        period_id="2026-03",
        start_local=date(2026, 3, 1),
        end_local=date(2026, 3, 31),
        start_utc=utc(2026, 2, 28, 23),
        end_utc=utc(2026, 3, 31, 22),
        timezone="Europe/Oslo",
    )


def test_a_monthly_fire_covers_the_previous_whole_month_by_default():
    fire = datetime(2017, 2, 1, 0, 5, tzinfo=OSLO)

    period = period_for_fire(schedule(), fire)

    assert period.period_id == "2017-01"
    assert (period.start_local, period.end_local) == (date(2017, 1, 1), date(2017, 1, 31))
    assert (period.start_utc, period.end_utc) == (utc(2016, 12, 31, 23), utc(2017, 1, 31, 23))


def test_the_period_follows_the_local_date_of_the_fire_not_its_utc_date():
    # 23:05Z on 31 January is already 1 February in Oslo.
    fire = utc(2017, 1, 31, 23, 5)

    assert period_for_fire(schedule(), fire).period_id == "2017-01"
    assert period_for_fire(schedule(tz="UTC"), fire).period_id == "2016-12"


def test_the_period_comes_from_the_scheduled_instant_whatever_zone_it_is_given_in():
    fire = datetime(2017, 1, 31, 18, 5, tzinfo=ZoneInfo("America/New_York"))  # = 00:05 in Oslo

    assert period_for_fire(schedule(), fire).period_id == "2017-01"


def test_a_weekly_fire_on_a_monday_covers_the_previous_iso_week():
    fire = datetime(2026, 11, 30, 6, 0, tzinfo=OSLO)  # Monday of 2026-W49

    week = period_for_fire(schedule("0 6 * * MON", PeriodKind.WEEK), fire)

    assert week.period_id == "2026-W48"
    assert (week.start_local, week.end_local) == (date(2026, 11, 23), date(2026, 11, 29))
    assert (week.start_utc, week.end_utc) == (utc(2026, 11, 22, 23), utc(2026, 11, 29, 23))


def test_1_january_2027_is_in_iso_week_53_of_2026():
    week = period_containing(PeriodKind.WEEK, date(2027, 1, 1), "Europe/Oslo")

    assert week.period_id == "2026-W53"
    assert (week.start_local, week.end_local) == (date(2026, 12, 28), date(2027, 1, 3))


def test_a_fire_on_new_years_day_covers_the_previous_quarter():
    fire = datetime(2027, 1, 1, 0, 5, tzinfo=OSLO)

    quarter = period_for_fire(schedule("5 0 1 1,4,7,10 *", PeriodKind.QUARTER), fire)

    assert quarter.period_id == "2026-Q4"
    assert (quarter.start_local, quarter.end_local) == (date(2026, 10, 1), date(2026, 12, 31))
    # Oslo is on summer time on 1 October and winter time on 1 January.
    assert (quarter.start_utc, quarter.end_utc) == (utc(2026, 9, 30, 22), utc(2026, 12, 31, 23))


def test_a_fire_on_new_years_day_covers_the_previous_year():
    fire = datetime(2027, 1, 1, 0, 5, tzinfo=OSLO)

    year = period_for_fire(schedule("5 0 1 1 *", PeriodKind.YEAR), fire)

    assert year.period_id == "2026"
    assert (year.start_local, year.end_local) == (date(2026, 1, 1), date(2026, 12, 31))
    assert (year.start_utc, year.end_utc) == (utc(2025, 12, 31, 23), utc(2026, 12, 31, 23))


def test_a_daily_fire_after_midnight_covers_yesterday():
    fire = datetime(2026, 12, 1, 0, 5, tzinfo=OSLO)

    assert period_for_fire(schedule("5 0 * * *", PeriodKind.DAY), fire).period_id == "2026-11-30"


@pytest.mark.parametrize(("offset", "expected"), [(0, "2026-11"), (-1, "2026-10"), (-3, "2026-08")])
def test_the_period_offset_picks_the_current_or_an_earlier_period(offset, expected):
    fire = datetime(2026, 11, 15, 12, 0, tzinfo=OSLO)

    assert period_for_fire(schedule(offset=offset), fire).period_id == expected


@pytest.mark.parametrize(("day", "hours"), [("2026-03-29", 23), ("2026-10-25", 25)])
def test_a_day_period_on_a_dst_transition_is_as_long_as_the_local_day(day, hours):
    period = parse_period_id(PeriodKind.DAY, day, "Europe/Oslo")

    assert period.end_utc - period.start_utc == timedelta(hours=hours)


def test_a_day_whose_midnight_is_skipped_starts_at_its_first_real_instant():
    # Sao Paulo moved its clocks from 00:00 to 01:00 on 4 November 2018.
    day = parse_period_id(PeriodKind.DAY, "2018-11-04", "America/Sao_Paulo")

    assert day.start_utc == utc(2018, 11, 4, 3)
    assert day.end_utc - day.start_utc == timedelta(hours=23)


def test_a_period_contains_instants_from_its_start_up_to_but_not_including_its_end():
    march = parse_period_id(PeriodKind.MONTH, "2026-03", "Europe/Oslo")

    assert march.contains(utc(2026, 2, 28, 23))
    assert march.contains(utc(2026, 3, 31, 21, 59))
    assert not march.contains(utc(2026, 3, 31, 22))
    assert not march.contains(utc(2026, 2, 28, 22, 59))


def test_period_for_fire_refuses_a_naive_fire():
    with pytest.raises(ValueError, match="no UTC offset"):
        period_for_fire(schedule(), datetime(2026, 1, 1))  # noqa: DTZ001


# --- parse_period_id and period_range ------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "period_id", "start", "end"),
    [
        (PeriodKind.DAY, "2026-11-30", date(2026, 11, 30), date(2026, 11, 30)),
        (PeriodKind.WEEK, "2026-W48", date(2026, 11, 23), date(2026, 11, 29)),
        (PeriodKind.WEEK, "2026-W01", date(2025, 12, 29), date(2026, 1, 4)),
        (PeriodKind.MONTH, "2028-02", date(2028, 2, 1), date(2028, 2, 29)),
        (PeriodKind.QUARTER, "2026-Q1", date(2026, 1, 1), date(2026, 3, 31)),
        (PeriodKind.YEAR, "2026", date(2026, 1, 1), date(2026, 12, 31)),
    ],
)
def test_each_kind_of_period_id_parses_to_its_days(kind, period_id, start, end):
    period = parse_period_id(kind, period_id, "UTC")

    assert (period.kind, period.period_id) == (kind, period_id)
    assert (period.start_local, period.end_local) == (start, end)
    assert period.start_utc == datetime.combine(start, datetime.min.time(), tzinfo=UTC)


def test_a_period_kind_may_be_given_as_its_name():
    assert parse_period_id("quarter", "2026-Q4", "UTC").kind is PeriodKind.QUARTER


@pytest.mark.parametrize(
    ("kind", "period_id", "message"),
    [
        (PeriodKind.MONTH, "2026-13", "names no month"),
        (PeriodKind.MONTH, "2026-1", "not a month id"),
        (PeriodKind.MONTH, "26-11", "not a month id"),
        (PeriodKind.DAY, "2026-02-30", "names no day"),
        (PeriodKind.WEEK, "2027-W53", "ISO year 2027 has 52 weeks"),
        (PeriodKind.WEEK, "2026-W00", "names no week: ISO weeks run from W01"),
        (PeriodKind.YEAR, "9999", "cannot be used: .* outside the years 1-9999"),
        (PeriodKind.QUARTER, "2026-Q5", "names no quarter"),
        (PeriodKind.YEAR, "0000", "names no year"),
        (PeriodKind.YEAR, " 2026", "not a year id"),
    ],
)
def test_a_malformed_period_id_is_refused_with_a_reason(kind, period_id, message):
    with pytest.raises(ValueError, match=message):
        parse_period_id(kind, period_id, "UTC")


@pytest.mark.parametrize(
    ("kind", "period_id", "named"),
    [
        (PeriodKind.MONTH, "2026-W48", "is a week id, not a month id"),
        (PeriodKind.WEEK, "2026-11", "is a month id, not a week id"),
        (PeriodKind.DAY, "2026", "is a year id, not a day id"),
        (PeriodKind.YEAR, "2026-Q4", "is a quarter id, not a year id"),
    ],
)
def test_a_period_id_of_the_wrong_kind_is_refused_naming_both_kinds(kind, period_id, named):
    with pytest.raises(ValueError, match=named):
        parse_period_id(kind, period_id, "UTC")


def test_an_unknown_kind_or_zone_is_refused():
    with pytest.raises(ValueError, match="unknown period kind 'fortnight'"):
        parse_period_id("fortnight", "2026-11", "UTC")
    with pytest.raises(ValueError, match="unknown IANA time zone"):
        parse_period_id(PeriodKind.MONTH, "2026-11", "Mars/Olympus")


def test_a_range_of_months_lists_each_month_oldest_first():
    months = period_range(PeriodKind.MONTH, "2026-11", "2027-02", "Europe/Oslo")

    assert [m.period_id for m in months] == ["2026-11", "2026-12", "2027-01", "2027-02"]
    assert all(a.end_utc == b.start_utc for a, b in pairwise(months))


def test_a_range_of_weeks_crosses_the_iso_year_boundary():
    weeks = period_range(PeriodKind.WEEK, "2026-W52", "2027-W01", "UTC")

    assert [w.period_id for w in weeks] == ["2026-W52", "2026-W53", "2027-W01"]


def test_a_range_of_one_period_holds_that_period():
    assert [q.period_id for q in period_range("quarter", "2026-Q4", "2026-Q4", "UTC")] == [
        "2026-Q4"
    ]


def test_a_range_that_ends_before_it_starts_is_refused():
    with pytest.raises(ValueError, match="ends before it starts"):
        period_range(PeriodKind.MONTH, "2027-01", "2026-12", "UTC")


def test_a_range_longer_than_its_limit_is_refused():
    with pytest.raises(ValueError, match="more than 10 days"):
        period_range(PeriodKind.DAY, "2026-01-01", "2026-12-31", "UTC", limit=10)


def test_a_range_with_an_id_of_the_wrong_kind_is_refused():
    with pytest.raises(ValueError, match="is a month id, not a day id"):
        period_range(PeriodKind.DAY, "2026-01-01", "2026-02", "UTC")


# --- fire_for_period -----------------------------------------------------------------------------


def test_the_fire_for_january_2017_is_five_past_midnight_on_1_february_in_oslo():
    fire = fire_for_period(schedule("5 0 1 * *"), "2017-01")

    assert fire == utc(2017, 1, 31, 23, 5)
    assert fire.astimezone(OSLO).isoformat() == "2017-02-01T00:05:00+01:00"


def test_the_fire_for_a_period_covers_that_period_for_every_month_of_a_decade():
    monthly = schedule("5 0 1 * *")

    for month in period_range(PeriodKind.MONTH, "2017-01", "2026-12", "Europe/Oslo"):
        fire = fire_for_period(monthly, month.period_id)
        assert period_for_fire(monthly, fire) == month
        assert fire >= month.end_utc


def test_the_fire_for_a_week_is_the_monday_after_it():
    fire = fire_for_period(schedule("0 6 * * MON", PeriodKind.WEEK), "2026-W48")

    assert fire == utc(2026, 11, 30, 5, 0)


def test_the_fire_for_a_quarter_and_a_year_is_on_new_years_day_after_them():
    quarter = fire_for_period(schedule("5 0 1 1,4,7,10 *", PeriodKind.QUARTER), "2026-Q4")
    year = fire_for_period(schedule("5 0 1 1 *", PeriodKind.YEAR), "2026")

    assert quarter == year == utc(2026, 12, 31, 23, 5)


def test_the_fire_for_a_period_is_the_first_of_several_that_cover_it():
    # An hourly schedule covering the previous day: the first fire of the next local day.
    fire = fire_for_period(schedule("0 * * * *", PeriodKind.DAY), "2026-10-24")

    assert fire == utc(2026, 10, 24, 22, 0)
    assert fire.astimezone(OSLO).isoformat() == "2026-10-25T00:00:00+02:00"


def test_the_fire_for_a_current_period_schedule_is_inside_that_period():
    # Offset 0: a run at 18:00 on the last day of the month covers that same month.
    fire = fire_for_period(schedule("0 18 L * *", offset=0), "2026-02")

    assert fire == utc(2026, 2, 28, 17, 0)


def test_the_fire_for_a_period_is_after_a_dst_gap_when_its_time_is_skipped():
    fire = fire_for_period(schedule("30 2 * * *", PeriodKind.DAY), "2026-03-28")

    assert fire.astimezone(OSLO).isoformat() == "2026-03-29T03:00:00+02:00"


def test_a_period_no_fire_of_the_cron_covers_is_refused():
    # A run on the 30th covering the previous month never covers January (February has no 30th).
    with pytest.raises(ValueError, match=r"no fire of cron '0 0 30 \* \*'.*covers month 2026-01"):
        fire_for_period(schedule("0 0 30 * *"), "2026-01")
    # A quarterly cron does not cover months between its fires.
    with pytest.raises(ValueError, match="covers month 2026-02"):
        fire_for_period(schedule("5 0 1 1,4,7,10 *"), "2026-02")


def test_fire_for_period_refuses_an_id_of_another_kind_than_the_schedule():
    with pytest.raises(ValueError, match="is a week id, not a month id"):
        fire_for_period(schedule(), "2026-W48")
