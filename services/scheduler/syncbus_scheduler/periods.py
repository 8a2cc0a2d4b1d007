"""Which accounting period a fire covers, in the schedule's time zone.

The period is derived from the *scheduled* instant of a fire, never from the moment the
scheduler happened to run: the fire is converted to the schedule's zone, the period holding that
local date is taken, and it is shifted by `period_offset` (default -1: the previous whole one).

Period ids: day `2026-11-30`, ISO week `2026-W48` (of the ISO week-year, so 1 January 2027 is in
`2026-W53`), month `2026-11`, quarter `2026-Q4`, year `2026`. A period runs from local midnight
of its first day up to, not including, local midnight after its last day; `start_utc` and
`end_utc` are those instants in UTC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from syncbus_shared.contracts.integration import PeriodKind, Schedule

from .cron import CronError, next_fire

__all__ = [
    "DEFAULT_RANGE_LIMIT",
    "Period",
    "fire_for_period",
    "parse_period_id",
    "period_containing",
    "period_for_fire",
    "period_range",
]

DEFAULT_RANGE_LIMIT = 10_000
"""`period_range` refuses to list more periods than this (27 years of days)."""

_ID_PATTERNS: dict[PeriodKind, re.Pattern[str]] = {
    PeriodKind.DAY: re.compile(r"^(\d{4})-(\d{2})-(\d{2})$"),
    PeriodKind.WEEK: re.compile(r"^(\d{4})-W(\d{2})$"),
    PeriodKind.MONTH: re.compile(r"^(\d{4})-(\d{2})$"),
    PeriodKind.QUARTER: re.compile(r"^(\d{4})-Q(\d)$"),
    PeriodKind.YEAR: re.compile(r"^(\d{4})$"),
}

_ID_EXAMPLES: dict[PeriodKind, str] = {
    PeriodKind.DAY: "YYYY-MM-DD, e.g. 2026-11-30",
    PeriodKind.WEEK: "YYYY-Www (ISO week), e.g. 2026-W48",
    PeriodKind.MONTH: "YYYY-MM, e.g. 2026-11",
    PeriodKind.QUARTER: "YYYY-Qn, e.g. 2026-Q4",
    PeriodKind.YEAR: "YYYY, e.g. 2026",
}


@dataclass(frozen=True)
class Period:
    """One whole day, ISO week, month, quarter or year in one time zone."""

    kind: PeriodKind
    period_id: str
    start_local: date
    """The first local day of the period."""
    end_local: date
    """The last local day of the period (inclusive)."""
    start_utc: datetime
    """Local midnight at the start of `start_local`, in UTC."""
    end_utc: datetime
    """Local midnight after `end_local`, in UTC: the exclusive end instant."""
    timezone: str

    def contains(self, moment: datetime) -> bool:
        """Whether an aware instant lies in [start_utc, end_utc)."""
        return self.start_utc <= _utc(moment) < self.end_utc


def period_containing(kind: PeriodKind | str, day: date, tz: str) -> Period:
    """The period of `kind` that holds the local date `day` in `tz`."""
    kind = _kind(kind)
    return _period(kind, _start_of(kind, day), tz)


def period_for_fire(schedule: Schedule, fire: datetime) -> Period:
    """The period a fire at the scheduled instant `fire` covers, per the schedule's zone."""
    zone = _zone(schedule.timezone)
    local_day = _utc(fire).astimezone(zone).date()
    start = _shift(schedule.period, _start_of(schedule.period, local_day), schedule.period_offset)
    return _period(schedule.period, start, schedule.timezone)


def parse_period_id(kind: PeriodKind | str, period_id: str, tz: str) -> Period:
    """The period named by `period_id`, which must be an id of `kind`; ValueError otherwise."""
    kind = _kind(kind)
    _zone(tz)
    match = _ID_PATTERNS[kind].match(period_id)
    if match is None:
        other = next((k for k, p in _ID_PATTERNS.items() if p.match(period_id)), None)
        if other is not None:
            raise ValueError(
                f"period id {period_id!r} is a {other.value} id, not a {kind.value} id"
                f" (expected {_ID_EXAMPLES[kind]})"
            )
        raise ValueError(
            f"period id {period_id!r} is not a {kind.value} id (expected {_ID_EXAMPLES[kind]})"
        )
    numbers = [int(group) for group in match.groups()]
    try:
        start = _start_from_id(kind, numbers)
    except ValueError as exc:
        raise ValueError(
            f"period id {period_id!r} names no {kind.value}: {_reason(kind, numbers, exc)}"
        ) from exc
    try:
        period = _period(kind, start, tz)
    except ValueError as exc:
        raise ValueError(f"period id {period_id!r} cannot be used: {exc}") from exc
    if period.period_id != period_id:  # pragma: no cover - the patterns pin the format
        raise ValueError(f"period id {period_id!r} is not canonical; use {period.period_id!r}")
    return period


def period_range(
    kind: PeriodKind | str,
    first_id: str,
    last_id: str,
    tz: str,
    *,
    limit: int = DEFAULT_RANGE_LIMIT,
) -> list[Period]:
    """Every period of `kind` from `first_id` to `last_id`, both included, oldest first."""
    kind = _kind(kind)
    first = parse_period_id(kind, first_id, tz)
    last = parse_period_id(kind, last_id, tz)
    if last.start_local < first.start_local:
        raise ValueError(f"period range {first_id}..{last_id} ends before it starts")
    periods = [first]
    while periods[-1].start_local < last.start_local:
        if len(periods) >= limit:
            raise ValueError(
                f"period range {first_id}..{last_id} holds more than {limit} {kind.value}s"
            )
        periods.append(_period(kind, _shift(kind, periods[-1].start_local, 1), tz))
    return periods


def fire_for_period(schedule: Schedule, period_id: str) -> datetime:
    """The first fire (UTC) of the schedule's cron whose covered period is `period_id`.

    This is the `scheduled_for` a backfill of a past period publishes. The fires that cover a
    period are those whose local date falls in the period `-period_offset` periods later, so the
    search starts at that period's first instant and ends at its exclusive end.
    """
    target = parse_period_id(schedule.period, period_id, schedule.timezone)
    covering = _period(
        schedule.period,
        _shift(schedule.period, target.start_local, -schedule.period_offset),
        schedule.timezone,
    )
    try:
        fire = next_fire(
            schedule.cron, schedule.timezone, covering.start_utc - timedelta(microseconds=1)
        )
    except CronError as exc:
        raise ValueError(f"no fire of cron {schedule.cron!r} covers {period_id}: {exc}") from exc
    if fire >= covering.end_utc or period_for_fire(schedule, fire).period_id != period_id:
        raise ValueError(
            f"no fire of cron {schedule.cron!r} in {schedule.timezone} covers"
            f" {schedule.period.value} {period_id}: a fire covering it would fall in"
            f" {covering.period_id} ({covering.start_local} to {covering.end_local}),"
            " and the cron has none there"
        )
    return fire


def _period(kind: PeriodKind, start: date, tz: str) -> Period:
    zone = _zone(tz)
    after = _shift(kind, start, 1)
    return Period(
        kind=kind,
        period_id=_id_of(kind, start),
        start_local=start,
        end_local=after - timedelta(days=1),
        start_utc=_local_midnight_utc(start, zone),
        end_utc=_local_midnight_utc(after, zone),
        timezone=tz,
    )


def _local_midnight_utc(day: date, zone: ZoneInfo) -> datetime:
    # fold=0: a midnight skipped by a DST gap maps to the instant of the transition (the first
    # real instant of that day); a repeated midnight maps to its first pass.
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def _start_of(kind: PeriodKind, day: date) -> date:
    if kind is PeriodKind.DAY:
        return day
    if kind is PeriodKind.WEEK:
        return day - timedelta(days=day.weekday())
    if kind is PeriodKind.MONTH:
        return day.replace(day=1)
    if kind is PeriodKind.QUARTER:
        return date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
    return date(day.year, 1, 1)


def _shift(kind: PeriodKind, start: date, count: int) -> date:
    """The start of the period `count` periods after the one starting at `start`."""
    try:
        if kind is PeriodKind.DAY:
            return start + timedelta(days=count)
        if kind is PeriodKind.WEEK:
            return start + timedelta(weeks=count)
        if kind is PeriodKind.YEAR:
            return date(start.year + count, 1, 1)
        months = 3 * count if kind is PeriodKind.QUARTER else count
        index = start.year * 12 + start.month - 1 + months
        return date(index // 12, index % 12 + 1, 1)
    except (ValueError, OverflowError) as exc:
        raise ValueError(
            f"the {kind.value} {count:+d} from {start} is outside the years 1-9999"
        ) from exc


def _id_of(kind: PeriodKind, start: date) -> str:
    if kind is PeriodKind.DAY:
        return start.isoformat()
    if kind is PeriodKind.WEEK:
        iso = start.isocalendar()
        return f"{iso.year:04d}-W{iso.week:02d}"
    if kind is PeriodKind.MONTH:
        return f"{start.year:04d}-{start.month:02d}"
    if kind is PeriodKind.QUARTER:
        return f"{start.year:04d}-Q{(start.month - 1) // 3 + 1}"
    return f"{start.year:04d}"


def _start_from_id(kind: PeriodKind, numbers: list[int]) -> date:
    if kind is PeriodKind.DAY:
        return date(numbers[0], numbers[1], numbers[2])
    if kind is PeriodKind.WEEK:
        return date.fromisocalendar(numbers[0], numbers[1], 1)
    if kind is PeriodKind.MONTH:
        return date(numbers[0], numbers[1], 1)
    if kind is PeriodKind.QUARTER:
        if not 1 <= numbers[1] <= 4:
            raise ValueError("quarter must be in 1..4")
        return date(numbers[0], 3 * numbers[1] - 2, 1)
    return date(numbers[0], 1, 1)


def _reason(kind: PeriodKind, numbers: list[int], exc: ValueError) -> str:
    if kind is PeriodKind.WEEK and numbers[0] >= 1:
        if 1 <= numbers[1] <= 53:
            return f"ISO year {numbers[0]} has 52 weeks"
        return "ISO weeks run from W01 to W52 or W53"
    return str(exc)


def _kind(kind: PeriodKind | str) -> PeriodKind:
    try:
        return PeriodKind(kind)
    except ValueError as exc:
        allowed = ", ".join(k.value for k in PeriodKind)
        raise ValueError(f"unknown period kind {kind!r} (one of {allowed})") from exc


def _zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown IANA time zone {tz!r}") from exc


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{moment.isoformat()} has no UTC offset; pass an aware datetime")
    return moment.astimezone(UTC)
