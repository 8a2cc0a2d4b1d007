"""What `syncbus schedules` shows: each schedule's state and its next fires, local and UTC.

Computed from the `integrations` bucket and the `schedule-state` watermarks alone, with the
same cron, period and key rules the scheduler fires by, so it answers also while no scheduler
runs (and then says how many fires are waiting to be caught up).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from itertools import islice, takewhile
from typing import Any, Literal
from zoneinfo import ZoneInfo

from syncbus_shared.contracts import IntegrationConfig, Schedule

from .cron import iter_fires
from .firing import fire_target
from .state import ScheduleState
from .validation import ScheduleError, validate_schedule

Status = Literal["active", "paused", "invalid", "unscheduled"]

_MISSED_LIMIT = 1000


@dataclass(frozen=True)
class UpcomingFire:
    scheduled_for: datetime
    """UTC."""
    local: datetime
    """The same instant in the schedule's zone."""
    warmup_at: datetime
    idempotency_key: str
    period_id: str | None
    period_start_local: date | None
    period_end_local: date | None

    def to_json(self) -> dict[str, Any]:
        return {
            "idempotency_key": self.idempotency_key,
            "period_id": self.period_id,
            "utc": _z(self.scheduled_for),
            "local": self.local.isoformat(),
            "warmup_at": _z(self.warmup_at),
            "period_start_local": _day(self.period_start_local),
            "period_end_local": _day(self.period_end_local),
        }


@dataclass(frozen=True)
class ScheduleView:
    integration_id: str
    status: Status
    schedule: Schedule | None
    problem: str | None
    last_fired_for: datetime | None
    last_key: str | None
    missed: int
    """Fires due since the watermark that no scheduler has sent yet (catch-up pending)."""
    next: tuple[UpcomingFire, ...]

    def to_json(self) -> dict[str, Any]:
        schedule = self.schedule
        return {
            "integration_id": self.integration_id,
            "status": self.status,
            "problem": self.problem,
            "cron": schedule.cron if schedule else None,
            "timezone": schedule.timezone if schedule else None,
            "mode": schedule.mode.value if schedule else None,
            "period": schedule.period.value if schedule else None,
            "period_offset": schedule.period_offset if schedule else None,
            "lead_seconds": schedule.lead_seconds if schedule else None,
            "last_fired_for": _z(self.last_fired_for),
            "last_key": self.last_key,
            "missed": self.missed,
            "next": [fire.to_json() for fire in self.next],
        }


def view(
    config: IntegrationConfig, state: ScheduleState | None, now: datetime, count: int = 3
) -> ScheduleView:
    schedule = config.schedule
    last = state.last_fired_for if state else None
    last_key = state.last_key if state else None
    if schedule is None:
        return ScheduleView(config.integration_id, "unscheduled", None, None, last, last_key, 0, ())
    try:
        validate_schedule(schedule, now=now)
    except ScheduleError as exc:
        return ScheduleView(
            config.integration_id, "invalid", schedule, str(exc), last, last_key, 0, ()
        )
    status: Status = "paused" if schedule.paused else "active"
    missed = 0
    if last is not None and last < now:
        missed = sum(
            1
            for _ in islice(
                takewhile(lambda f: f <= now, iter_fires(schedule.cron, schedule.timezone, last)),
                _MISSED_LIMIT,
            )
        )
    start = max(now, last) if last else now
    upcoming = tuple(
        upcoming_fire(config.integration_id, schedule, fire)
        for fire in islice(iter_fires(schedule.cron, schedule.timezone, start), count)
    )
    return ScheduleView(
        config.integration_id, status, schedule, None, last, last_key, missed, upcoming
    )


def upcoming_fire(integration_id: str, schedule: Schedule, fire: datetime) -> UpcomingFire:
    target = fire_target(integration_id, schedule, fire)
    period = target.period
    return UpcomingFire(
        scheduled_for=fire,
        local=fire.astimezone(ZoneInfo(schedule.timezone)),
        warmup_at=fire - timedelta(seconds=schedule.lead_seconds),
        idempotency_key=target.idempotency_key,
        period_id=target.period_id,
        period_start_local=period.start_local if period else None,
        period_end_local=period.end_local if period else None,
    )


def _z(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def _day(day: date | None) -> str | None:
    return None if day is None else day.isoformat()
