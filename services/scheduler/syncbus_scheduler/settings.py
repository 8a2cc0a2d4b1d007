"""Scheduler settings. Env prefix `SYNCBUS_SCHEDULER_`."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class SchedulerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SYNCBUS_SCHEDULER_")

    drift_alert_seconds: float = Field(
        default=300.0, gt=0, description="Publish a drift alert when a fire is later than this."
    )
    catchup_window_days: float = Field(
        default=7.0, ge=0, description="Missed fires younger than this are fired after downtime."
    )
    catchup_lead_seconds: float = Field(
        default=5.0,
        ge=0,
        description="Warm-up lead for fires that are already due (catch-up, backfill): the "
        "schedule's own lead is compressed to this so late fires are not delayed further.",
    )
    tick_seconds: float = Field(default=1.0, gt=0, description="Longest sleep between checks.")
    max_backfill_periods: int = Field(
        default=400, ge=1, description="Periods in one backfill at most."
    )
