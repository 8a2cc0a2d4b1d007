"""Which fires export something new, and which were missed: the catch-up arithmetic, pure.

A period schedule's key is its period, so several fires can share one: `0 6 * * *` with a
monthly period fires every day, and every December fire covers November. Only the first fire
of each period exports; the others would publish a key already used. `following_fire` jumps
straight to the first fire of the next period (the end of the period the current fire's local
date lies in), without walking the fires in between; an incremental schedule's fires are all
distinct.

`missed_fires` then splits the fires missed since the watermark into those within the
catch-up window (to send, oldest first, one per key) and the older ones (to list in one
alert). A period whose fires straddle the window's start counts as within it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from syncbus_shared.contracts import Schedule, ScheduleMode

from .cron import DEFAULT_FIRES_LIMIT, CronError, next_fire
from .firing import fire_target
from .periods import period_containing

_JUST_BEFORE = timedelta(microseconds=1)


def following_fire(schedule: Schedule, fire: datetime) -> datetime:
    """The first fire after `fire` that exports something `fire` did not (CronError if none)."""
    if schedule.mode is ScheduleMode.INCREMENTAL:
        return next_fire(schedule.cron, schedule.timezone, fire)
    local_day = fire.astimezone(ZoneInfo(schedule.timezone)).date()
    covering = period_containing(schedule.period, local_day, schedule.timezone)
    return next_fire(schedule.cron, schedule.timezone, max(fire, covering.end_utc - _JUST_BEFORE))


def first_new_fire(schedule: Schedule, after: datetime, watermark: datetime | None) -> datetime:
    """The first fire after `after` whose key is not the watermark fire's."""
    fire = next_fire(schedule.cron, schedule.timezone, after)
    if watermark is not None and _same_key(schedule, fire, watermark):
        fire = following_fire(schedule, fire)
    return fire


@dataclass(frozen=True)
class Missed:
    in_window: list[datetime]
    """Fires to send now, oldest first, one per key."""
    too_old: list[datetime]
    """Fires beyond the window, oldest first, at most `list_limit` of them."""
    too_old_count: int
    truncated: bool
    """Counting stopped at `count_limit`."""


def missed_fires(
    schedule: Schedule,
    watermark: datetime,
    now: datetime,
    *,
    window_start: datetime,
    reported_through: datetime | None = None,
    list_limit: int = 100,
    count_limit: int = 20_000,
) -> Missed:
    """The fires due in (watermark, now], split at `window_start`; see the module docstring.

    `reported_through`: misses up to this instant were alerted before and are not listed again.
    """
    in_window: list[datetime] = []
    recent = _fires_from(schedule, _first(schedule, max(watermark, window_start), watermark))
    for fire in recent:
        if fire > now or len(in_window) >= DEFAULT_FIRES_LIMIT:
            break
        in_window.append(fire)
    too_old: list[datetime] = []
    count = 0
    truncated = False
    old_from = max(watermark, reported_through) if reported_through else watermark
    if old_from < window_start:
        for fire in _fires_from(schedule, _following(schedule, old_from)):
            if fire > window_start:
                break
            if in_window and _same_key(schedule, fire, in_window[0]):
                continue  # its period is caught up by a fire within the window
            count += 1
            if len(too_old) < list_limit:
                too_old.append(fire)
            if count >= count_limit:
                truncated = True
                break
    return Missed(in_window, too_old, count, truncated)


def _fires_from(schedule: Schedule, first: datetime | None) -> Iterator[datetime]:
    """`first`, then each following fire that exports something new, until the cron ends."""
    fire = first
    while fire is not None:
        yield fire
        fire = _following(schedule, fire)


def _first(schedule: Schedule, after: datetime, watermark: datetime | None) -> datetime | None:
    try:
        return first_new_fire(schedule, after, watermark)
    except CronError:
        return None


def _following(schedule: Schedule, fire: datetime) -> datetime | None:
    try:
        return following_fire(schedule, fire)
    except CronError:
        return None


def _same_key(schedule: Schedule, a: datetime, b: datetime) -> bool:
    if schedule.mode is ScheduleMode.INCREMENTAL:
        return a == b
    return fire_target("x", schedule, a).period_id == fire_target("x", schedule, b).period_id
