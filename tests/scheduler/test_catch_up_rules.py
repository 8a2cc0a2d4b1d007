"""Which missed fires are sent and which are listed: one per key, split at the window's start."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from syncbus_scheduler.catchup import first_new_fire, following_fire, missed_fires
from syncbus_shared.contracts import PeriodKind, Schedule, ScheduleMode

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
WEEK_AGO = NOW - timedelta(days=7)


def utc(month: int, day: int, hour: int = 6, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def schedule(cron: str, period: PeriodKind = PeriodKind.DAY, **extra: object) -> Schedule:
    return Schedule.model_validate({"cron": cron, "timezone": "UTC", "period": period, **extra})


def test_the_fire_after_a_monthly_export_is_the_first_of_the_next_month_not_tomorrows():
    daily_month = schedule("0 6 * * *", PeriodKind.MONTH)

    assert following_fire(daily_month, utc(12, 1)) == datetime(2027, 1, 1, 6, tzinfo=UTC)
    assert first_new_fire(daily_month, utc(12, 2), watermark=utc(12, 1)) == datetime(
        2027, 1, 1, 6, tzinfo=UTC
    )


def test_an_incremental_schedules_fires_are_all_new():
    every_15 = schedule("*/15 * * * *", mode=ScheduleMode.INCREMENTAL)

    assert following_fire(every_15, utc(12, 3, 10, 0)) == utc(12, 3, 10, 15)


def test_fires_in_the_window_are_sent_oldest_first_and_older_ones_counted():
    missed = missed_fires(schedule("0 6 * * *"), utc(11, 20), NOW, window_start=WEEK_AGO)

    assert missed.in_window == [utc(11, day) for day in range(27, 31)] + [
        utc(12, day) for day in (1, 2, 3)
    ]
    assert missed.too_old == [utc(11, day) for day in (21, 22, 23, 24, 25, 26)]
    assert missed.too_old_count == 6
    assert not missed.truncated


def test_a_period_whose_fires_straddle_the_windows_start_is_caught_up_not_listed():
    # A weekly period fired daily: ISO week 47 (16-22 November) is covered by the fires of 23
    # to 29 November. Its first fire (23rd) is older than a window starting on the 26th, but
    # the fire of the 27th is inside it: week 47 is sent then, not listed. Week 48 follows on
    # the 30th. (The fires of 17-22 November repeat the watermark's week 46.)
    weekly_daily = schedule("0 6 * * *", PeriodKind.WEEK)

    missed = missed_fires(weekly_daily, utc(11, 16), NOW, window_start=utc(11, 26, 12))

    assert missed.in_window == [utc(11, 27), utc(11, 30)]
    assert (missed.too_old, missed.too_old_count) == ([], 0)


def test_misses_already_reported_are_not_listed_again_and_counting_stops_at_its_limit():
    minutely = schedule("* * * * *", mode=ScheduleMode.INCREMENTAL)
    watermark = NOW - timedelta(days=30)

    again = missed_fires(
        schedule("0 6 * * *"),
        utc(11, 20),
        NOW,
        window_start=WEEK_AGO,
        reported_through=utc(11, 24),
    )
    huge = missed_fires(
        minutely, watermark, NOW, window_start=WEEK_AGO, list_limit=5, count_limit=1000
    )

    assert again.too_old == [utc(11, 25), utc(11, 26)]
    assert len(huge.too_old) == 5
    assert huge.too_old_count == 1000
    assert huge.truncated
    assert len(huge.in_window) == 7 * 24 * 60


def test_nothing_is_missed_when_the_next_fire_is_still_ahead():
    missed = missed_fires(
        schedule("5 0 1 * *", PeriodKind.MONTH), utc(12, 1, 0, 5), NOW, window_start=WEEK_AGO
    )

    assert (missed.in_window, missed.too_old, missed.too_old_count) == ([], [], 0)
