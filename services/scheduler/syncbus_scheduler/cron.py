"""Five-field cron evaluated in an IANA time zone, with Debian cron's one DST rule.

The rule (the one cronsim implements, and the one DESIGN.md section 5 promises):

* A schedule whose minute and hour fields both start with something other than `*` (a fixed
  time such as `30 2 * * *`, or a list or range such as `0 2,14 * * *`) runs by the local wall
  clock. When that time is skipped by a spring-forward it runs once, right after the gap; when
  the time occurs twice at a fall-back it runs once, in the first pass.
* A schedule whose minute or hour field starts with `*` (`0 * * * *`, `*/15 * * * *`,
  `0 */2 * * *`) follows the clock: it fires at every real instant that matches, so an hourly
  schedule fires 23 times on a spring-forward day and 25 times on a fall-back day.

Only the first character counts, as in Debian cron: `0-59/15 2 * * *` keeps the wall-clock
rule, `*/15 2 * * *` follows the clock. Known limitation (cronsim's): in a zone whose clocks
move by half an hour (Australia/Lord_Howe), a clock-following schedule with a fixed hour such
as `* 2 * * *` misses the first half hour after the fall-back (docs/cron-library-choice.md).

Every instant that leaves this module is an aware UTC `datetime`. Local times at a fall-back
are ambiguous (two Oslo datetimes at 02:30 on 25 October 2026 compare equal in Python although
they are an hour apart), so fires are compared and stored as UTC instants only.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

__all__ = [
    "DEFAULT_FIRES_LIMIT",
    "NEVER_FIRES_YEARS",
    "CronError",
    "TooManyFiresError",
    "fires_between",
    "iter_fires",
    "next_fire",
    "validate_cron",
]

NEVER_FIRES_YEARS = 8
"""A schedule that finds no fire within this many years is refused as one that never fires.

Eight years is the longest gap between two 29 Februaries (2096 to 2104), so `0 0 29 2 *` passes.
"""

DEFAULT_FIRES_LIMIT = 20_000
"""`fires_between` refuses to list more than this; a 7-day catch-up of `* * * * *` is 10,080."""

_MAX_SKIPPED = 10_000
"""How many library results earlier than the start instant are skipped before giving up.

cronsim evaluates fixed-time schedules on the naive wall clock, so a start inside the repeated
hour of a fall-back can yield fires of the first pass, up to an hour earlier than the start: at
most 60 of them at minute granularity. The bound only guards against a library bug looping.
"""

_FIELDS: tuple[tuple[str, str], ...] = (
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day-of-month", "1-31, L (last day) or LW (last weekday)"),
    ("month", "1-12 or JAN-DEC"),
    ("day-of-week", "0-7 or SUN-SAT (0 and 7 are Sunday), 5L (last Friday) or MON#2 (2nd Monday)"),
)

_MONTH_NAMES = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
"""English month names for messages (`calendar.month_name` follows the process locale)."""

_REFERENCE = datetime(2000, 1, 1, tzinfo=UTC)
"""Start instant used when only the syntax of one field is checked."""


class CronError(ValueError):
    """A cron expression (or its time zone) that cannot be used as a schedule."""


class TooManyFiresError(ValueError):
    """`fires_between` was asked for a range holding more fires than its limit."""


def validate_cron(expr: str, tz: str, *, now: datetime | None = None) -> None:
    """Raise `CronError` with one clear sentence when `expr` in `tz` is not a usable schedule.

    Checks the time zone, the number of fields, each field's syntax (naming the bad one), and
    that the schedule fires at least once within `NEVER_FIRES_YEARS` years after `now`
    (default: the current time).
    """
    zone = _zone(tz)
    parts = _five_fields(expr)
    for index, (name, allowed) in enumerate(_FIELDS):
        probe = ["*"] * 5
        probe[index] = parts[index]
        try:
            CronSim(" ".join(probe), _REFERENCE)
        except CronSimError as exc:
            raise CronError(
                f"cron {expr!r}: the {name} field {parts[index]!r} is not valid"
                f" (allowed: {allowed}, combined with ',', '-' and '/')"
            ) from exc
    start = _utc(now) if now is not None else datetime.now(UTC)
    try:
        sim = CronSim(" ".join(parts), start.astimezone(zone))
    except CronSimError as exc:
        raise CronError(f"cron {expr!r} never fires: {_why_never(parts)}") from exc
    horizon = start + timedelta(days=366 * NEVER_FIRES_YEARS)
    first = next(sim, None)
    if first is None or first.astimezone(UTC) > horizon:
        raise CronError(
            f"cron {expr!r} never fires within {NEVER_FIRES_YEARS} years"
            f" (checked in {tz} from {start:%Y-%m-%d}), so it would export nothing"
        )


def next_fire(expr: str, tz: str, after: datetime) -> datetime:
    """The first fire of `expr` in `tz` strictly after `after`, as an aware UTC datetime.

    `after` must be aware; any zone will do, it is compared as a UTC instant.
    """
    fire = next(_fires_after(expr, tz, after), None)
    if fire is None:
        raise CronError(f"cron {expr!r} never fires after {_utc(after).isoformat()} in {tz}")
    return fire


def iter_fires(expr: str, tz: str, after: datetime) -> Iterator[datetime]:
    """Every fire strictly after `after`, as UTC instants, oldest first (lazily; most never end).

    Raises `CronError` at the first `next()` when the expression or zone is not usable.
    """
    return _fires_after(expr, tz, after)


def fires_between(
    expr: str,
    tz: str,
    start: datetime,
    end: datetime,
    *,
    limit: int = DEFAULT_FIRES_LIMIT,
) -> list[datetime]:
    """Every fire of `expr` in `tz` in the half-open range (start, end], UTC, oldest first.

    Raises `TooManyFiresError` rather than return more than `limit` fires.
    """
    end_utc = _utc(end)
    fires: list[datetime] = []
    for fire in _fires_after(expr, tz, start):
        if fire > end_utc:
            break
        if len(fires) >= limit:
            raise TooManyFiresError(
                f"cron {expr!r} fires more than {limit} times between"
                f" {_utc(start).isoformat()} and {end_utc.isoformat()}"
            )
        fires.append(fire)
    return fires


def _fires_after(expr: str, tz: str, after: datetime) -> Iterator[datetime]:
    """Fires strictly after `after`, strictly increasing, as UTC instants."""
    zone = _zone(tz)
    parts = _five_fields(expr)
    last = _utc(after)
    try:
        sim = CronSim(" ".join(parts), last.astimezone(zone))
    except CronSimError as exc:
        validate_cron(expr, tz)  # raises the precise sentence
        raise CronError(f"cron {expr!r} is not valid: {exc}") from exc  # pragma: no cover
    skipped = 0
    while True:
        try:
            local = next(sim)
        except StopIteration:  # cronsim gives up after 50 years without a match
            return
        fire = local.astimezone(UTC)
        if fire <= last:
            # Earlier than the start (a fixed time inside the repeated hour), or a second
            # skipped time that lands on the same instant right after a spring-forward gap.
            skipped += 1
            if skipped > _MAX_SKIPPED:  # pragma: no cover - a library bug, not an input
                raise CronError(f"cron {expr!r} in {tz} does not advance past {last.isoformat()}")
            continue
        skipped = 0
        last = fire
        yield fire


def _zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise CronError(f"unknown IANA time zone {tz!r}") from exc


def _five_fields(expr: str) -> list[str]:
    parts = expr.split()
    if len(parts) != 5:
        raise CronError(
            f"cron {expr!r} must have five fields (minute hour day-of-month month day-of-week),"
            f" it has {len(parts)}"
        )
    return parts


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{moment.isoformat()} has no UTC offset; pass an aware datetime")
    return moment.astimezone(UTC)


def _why_never(parts: list[str]) -> str:
    """Explain the one case cronsim refuses at parse time: days no chosen month has."""
    days = CronSim(f"* * {parts[2]} * *", _REFERENCE).days
    months = CronSim(f"* * * {parts[3]} *", _REFERENCE).months
    numbered = sorted(day for day in days if day > 0)
    if not numbered or len(numbered) != len(days):  # pragma: no cover - L/LW always exist
        return "no month it names has the days it names"
    names = [_MONTH_NAMES[month - 1] for month in sorted(months)]
    month_text = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    verb = "has" if len(names) == 1 else "have"
    day_text = " or ".join(_ordinal(day) for day in numbered)
    return f"{month_text} {verb} no {day_text}"


def _ordinal(day: int) -> str:
    suffix = "th" if 11 <= day % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"
