"""Checking a schedule before it runs: the one function `syncbus apply` and the scheduler call.

    from syncbus_scheduler.validation import ScheduleError, validate_integration
    try:
        validate_integration(config)
    except ScheduleError as exc:
        print(f"{config.integration_id}: {exc}")      # one sentence, e.g. "... never fires: ..."

The scheduler runs the same check on every config that arrives in the `integrations` bucket;
a schedule that fails it is not planned, and the sentence is logged and published as a
`ScheduleRejected` alert on `alerts.invalid_schedule.<integration_id>`.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import ValidationError

from syncbus_shared.contracts import IntegrationConfig, Schedule

from .cron import CronError, validate_cron

__all__ = ["ScheduleError", "describe_config_error", "validate_integration", "validate_schedule"]


class ScheduleError(ValueError):
    """A schedule that cannot run; `str()` is one sentence saying why."""


def validate_schedule(schedule: Schedule, *, now: datetime | None = None) -> None:
    """Raise `ScheduleError` when the schedule can never fire or cannot be evaluated.

    The `Schedule` model already refused a wrong field count and an unknown zone; this adds
    what needs the cron library: each field's syntax and that it fires within
    `cron.NEVER_FIRES_YEARS` years (so `0 0 30 2 *` is refused: "February has no 30th").
    """
    try:
        validate_cron(schedule.cron, schedule.timezone, now=now)
    except CronError as exc:
        raise ScheduleError(str(exc)) from exc


def validate_integration(config: IntegrationConfig, *, now: datetime | None = None) -> None:
    """`validate_schedule` on the config's schedule, naming the integration; no schedule is fine."""
    if config.schedule is None:
        return
    try:
        validate_schedule(config.schedule, now=now)
    except ScheduleError as exc:
        raise ScheduleError(f"integration {config.integration_id!r}: {exc}") from exc


def describe_config_error(exc: ValidationError) -> str:
    """One sentence for a config that does not even parse (first problem, and how many more)."""
    errors = exc.errors(include_input=False, include_url=False)
    first = errors[0] if errors else {"loc": (), "msg": "invalid"}
    where = ".".join(str(part) for part in first["loc"]) or "config"
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return f"the config is not a valid integration: {where}: {first['msg']}{more}"
