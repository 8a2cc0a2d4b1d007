"""Commands a scheduler replica answers over request/reply."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ._base import Instant, IntegrationIdStr, Message, PeriodId, utc_now
from .sync import ErrorInfo


class BackfillRequest(Message):
    """Fire past periods of one integration on purpose (`syncbus backfill`), oldest first."""

    type: Literal["syncbus.backfill_request.v1"] = "syncbus.backfill_request.v1"
    integration_id: IntegrationIdStr
    from_period: PeriodId
    to_period: PeriodId


class FiredPeriod(Message):
    type: Literal["syncbus.fired_period.v1"] = "syncbus.fired_period.v1"
    period_id: str
    idempotency_key: str
    scheduled_for: Instant
    published_at: Instant
    drift_ms: float
    duplicate: bool = Field(description="The broker already held a request with this key.")


class BackfillReply(Message):
    type: Literal["syncbus.backfill_reply.v1"] = "syncbus.backfill_reply.v1"
    integration_id: str
    fired: tuple[FiredPeriod, ...] = ()
    error: ErrorInfo | None = None


class TriggerRequest(Message):
    """Fire one integration's schedule now, on purpose (`syncbus trigger`).

    Without `period_id`: the fire a scheduled run at this moment would be (for a period schedule
    the period it covers, by default the previous whole one; for an incremental schedule an
    instant key). With `period_id`: that period, which must already be due.
    """

    type: Literal["syncbus.trigger_request.v1"] = "syncbus.trigger_request.v1"
    integration_id: IntegrationIdStr
    period_id: PeriodId | None = None


class TriggerReply(Message):
    type: Literal["syncbus.trigger_reply.v1"] = "syncbus.trigger_reply.v1"
    integration_id: str
    idempotency_key: str | None = None
    period_id: str | None = None
    scheduled_for: Instant | None = None
    published_at: Instant | None = None
    duplicate: bool | None = Field(
        default=None, description="The broker already held a request with this key."
    )
    error: ErrorInfo | None = None


class ScheduleRejected(Message):
    """A schedule in the `integrations` bucket that the scheduler refuses to run.

    Published on `alerts.invalid_schedule.<integration_id>` (stream ALERTS) when a config
    arrives whose schedule can never fire or cannot be evaluated; the integration is not
    scheduled until its config is fixed.
    """

    type: Literal["syncbus.schedule_rejected.v1"] = "syncbus.schedule_rejected.v1"
    integration_id: str
    message: str = Field(description="One sentence saying why, e.g. that the cron never fires.")
    cron: str | None = None
    timezone: str | None = None
    rejected_at: Instant = Field(default_factory=utc_now)


class SchedulerStatus(Message):
    """What one scheduler replica is doing; every replica answers `scheduler.status`."""

    type: Literal["syncbus.scheduler_status.v1"] = "syncbus.scheduler_status.v1"
    instance: str
    started_at: Instant
    loaded: bool = Field(description="The initial values of the `integrations` bucket are applied.")
    schedules: int = Field(ge=0, description="Schedules planned (active, valid, not paused).")
    paused: int = Field(default=0, ge=0)
    rejected: int = Field(default=0, ge=0)
    warmup_leader: bool = Field(description="This replica sends the warm-ups (it holds the lease).")
    clock_offset_ms: float = Field(
        description="Correction applied to this host's clock to match the NATS server's."
    )
    next_fire: Instant | None = None
    counters: dict[str, int] = Field(default_factory=dict)
