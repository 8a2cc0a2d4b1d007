"""One configured connection to one vendor account, as stored in the `integrations` KV bucket."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field, field_validator

from ._base import IntegrationIdStr, Message


class PeriodKind(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"


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


class HealthConfig(Message):
    type: Literal["syncbus.health_config.v1"] = "syncbus.health_config.v1"
    mode: HealthMode = HealthMode.ACTIVE
    interval_seconds: float = Field(
        default=900.0, gt=0, description="Probe interval; the monitor enforces a 15 min floor."
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
