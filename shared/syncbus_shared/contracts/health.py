"""Health of one integration, on `health.status.<integration_id>` and in KV `integration-health`."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field

from ._base import Instant, Message, utc_now


class HealthState(StrEnum):
    UNKNOWN = "unknown"
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"


class HealthStatus(Message):
    type: Literal["syncbus.health_status.v1"] = "syncbus.health_status.v1"
    integration_id: str
    state: HealthState
    reason: str = ""
    source: Literal["probe", "sync", "warmup"] = "probe"
    consecutive_failures: int = 0
    checked_at: Instant = Field(default_factory=utc_now)
    latency_ms: float | None = None
