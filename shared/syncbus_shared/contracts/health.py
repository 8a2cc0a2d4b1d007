"""Health of one integration, on `health.status.<integration_id>` and in KV `integration-health`."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field

from ._base import Instant, IntegrationIdStr, Message, utc_now
from .integration import HealthMode
from .sync import ErrorClass


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
    error_class: ErrorClass | None = Field(
        default=None, description="The class of the failure behind this state (e.g. `auth`)."
    )
    vendor_code: str | None = Field(default=None, description="The vendor's error code, if any.")
    mode: HealthMode | None = Field(
        default=None, description="The mode in effect: passive by config or by the vendor's."
    )
    last_probe_at: Instant | None = Field(default=None, description="The last vendor probe.")
    next_probe_at: Instant | None = Field(
        default=None, description="When the monitor may probe next (none while passive)."
    )
    last_success_at: Instant | None = Field(
        default=None, description="The last probe, sync or warm-up that proved it healthy."
    )

    def fails_fast(self) -> bool:
        """Whether a sync should fail at once instead of calling the vendor: unhealthy for `auth`.

        Everything else (retryable, quota, unknown) still tries at the scheduled time.
        """
        return self.state is HealthState.UNHEALTHY and self.error_class is ErrorClass.AUTH


class VendorHealthMode(Message):
    """The health mode of every integration of one vendor (integration type).

    Kept in KV `integration-health` under `vendor.<vendor>`. Set by an operator
    (`syncbus health vendor-mode`) or by the monitor itself when the vendor rate-limits a probe.
    """

    type: Literal["syncbus.vendor_health_mode.v1"] = "syncbus.vendor_health_mode.v1"
    vendor: str
    mode: HealthMode
    reason: str = ""
    set_by: Literal["operator", "auto"] = "operator"
    since: Instant = Field(default_factory=utc_now)
    until: Instant | None = Field(
        default=None, description="When an automatic switch ends by itself (none: until changed)."
    )


class ObservedOutcome(Message):
    """What one health-relevant vendor call outside the monitor (a warm-up) found."""

    type: Literal["syncbus.observed_outcome.v1"] = "syncbus.observed_outcome.v1"
    at: Instant = Field(default_factory=utc_now)
    ok: bool
    error_class: ErrorClass | None = None
    vendor_code: str | None = None
    message: str = Field(default="", max_length=300, description="One sentence; never a secret.")


class ProbeBudgetRecord(Message):
    """Health-check calls spent for one integration, in KV `probe-budget` (key = integration id).

    Probes and warm-ups both spend here, so the counts hold across restarts and processes.
    """

    type: Literal["syncbus.probe_budget.v1"] = "syncbus.probe_budget.v1"
    integration_id: IntegrationIdStr
    month: str = Field(description="The UTC calendar month counted, e.g. 2026-12.")
    month_used: int = Field(default=0, ge=0)
    month_by_kind: dict[str, int] = Field(default_factory=dict)
    month_refused: int = Field(default=0, ge=0, description="Spends refused this month.")
    hour_start: Instant = Field(description="The start of the UTC hour counted.")
    hour_used: int = Field(default=0, ge=0)
    last_spent_at: Instant | None = None
    last_kind: str | None = None
    last_warmup: ObservedOutcome | None = None
