"""Commands a scheduler replica answers over request/reply."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ._base import Instant, IntegrationIdStr, Message, PeriodId
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
