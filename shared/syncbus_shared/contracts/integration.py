"""One configured connection to one vendor account, as stored in the `integrations` KV bucket."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field, field_validator, model_validator

from ._base import IntegrationIdStr, Message


class PeriodKind(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"


class ScheduleMode(StrEnum):
    """What one fire of a schedule exports, and what key guards it."""

    PERIOD = "period"
    """The whole period the fire covers; key `<integration_id>:<period_id>`."""
    INCREMENTAL = "incremental"
    """Everything staged and not yet exported; key `<integration_id>:<fire instant, UTC ISO>`."""


class Schedule(Message):
    type: Literal["syncbus.schedule.v1"] = "syncbus.schedule.v1"
    cron: str = Field(description="Five-field cron, evaluated in `timezone`.")
    timezone: str = Field(default="UTC", description="IANA time zone, e.g. Europe/Oslo.")
    period: PeriodKind = PeriodKind.MONTH
    period_offset: int = Field(
        default=-1, le=0, description="Which period a fire covers: -1 is the previous whole one."
    )
    lead_seconds: float = Field(default=30.0, ge=0, description="Warm-up lead before each fire.")
    paused: bool = False
    mode: ScheduleMode = Field(
        default=ScheduleMode.PERIOD,
        description="`period`: each fire exports the period it covers, keyed by the period id. "
        "`incremental` (e.g. `*/15 7-17 * * 1-5`): each fire exports whatever is staged and not "
        "yet exported, keyed by its scheduled instant; `period` and `period_offset` are unused.",
    )

    @field_validator("cron")
    @classmethod
    def _five_fields(cls, value: str) -> str:
        if len(value.split()) != 5:
            raise ValueError(f"cron {value!r} must have five fields: minute hour day month weekday")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError  # noqa: PLC0415

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r}") from exc
        return value


class HealthMode(StrEnum):
    ACTIVE = "active"
    PASSIVE = "passive"


class HealthThresholds(Message):
    """How many consecutive failures make an integration degraded, then unhealthy.

    An `auth` or `configuration` failure makes it unhealthy at once, whatever the counts.
    """

    type: Literal["syncbus.health_thresholds.v1"] = "syncbus.health_thresholds.v1"
    degraded_after: int = Field(default=1, ge=1, description="Consecutive failures to degraded.")
    unhealthy_after: int = Field(
        default=3, ge=1, description="Consecutive failures to unhealthy (>= degraded_after)."
    )

    @model_validator(mode="after")
    def _ordered(self) -> HealthThresholds:
        if self.unhealthy_after < self.degraded_after:
            raise ValueError("unhealthy_after must be at least degraded_after")
        return self


class ProbeBudgetConfig(Message):
    """Vendor calls the health checks of one integration may spend (probes and warm-ups together).

    Unset fields take the vendor's default (`syncbus_shared.probe_budget.DEFAULT_LIMITS`; for
    Xledger 100 a month, 2% of its 5,000-request quota).
    """

    type: Literal["syncbus.probe_budget_config.v1"] = "syncbus.probe_budget_config.v1"
    per_hour: int | None = Field(default=None, ge=0, description="Calls per clock hour (UTC).")
    per_month: int | None = Field(default=None, ge=0, description="Calls per calendar month (UTC).")


class HealthConfig(Message):
    type: Literal["syncbus.health_config.v1"] = "syncbus.health_config.v1"
    mode: HealthMode = HealthMode.ACTIVE
    interval_seconds: float = Field(
        default=900.0, gt=0, description="Probe interval; the monitor enforces a 15 min floor."
    )
    thresholds: HealthThresholds | None = Field(
        default=None, description="Failure counts for degraded/unhealthy (default 1 and 3)."
    )
    budget: ProbeBudgetConfig | None = Field(
        default=None, description="Health-check call budget (default: the vendor's)."
    )


class IntegrationConfig(Message):
    type: Literal["syncbus.integration.v1"] = "syncbus.integration.v1"
    integration_id: IntegrationIdStr
    vendor: str = Field(
        description="Adapter name, e.g. `xledger` (entry point group syncbus.adapters)."
    )
    endpoint: str = Field(description="The vendor's base URL (for Xledger the GraphQL endpoint).")
    credentials_path: str = Field(
        description="KV v2 path of the secret in Vault, relative to the mount "
        "(e.g. integrations/toyen-xledger)."
    )
    schedule: Schedule | None = None
    health: HealthConfig = Field(default_factory=HealthConfig)
    timeout_seconds: float = Field(default=60.0, gt=0)
    options: dict[str, str] = Field(
        default_factory=dict,
        description="Adapter options, never secrets (e.g. Business Central `company_id`, "
        "`tenant`, `environment`; Xledger `dimensions`); each adapter's docstring lists its own.",
    )
