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
        description="Warm-up lead for fires that are already due (catch-up, backfill, trigger, "
        "a schedule planned inside its own lead): the schedule's lead is compressed to this "
        "so late fires are not delayed further.",
    )
    tick_seconds: float = Field(
        default=1.0,
        gt=0,
        description="Longest sleep between checks (the loop wakes at the next fire anyway).",
    )
    max_backfill_periods: int = Field(
        default=400, ge=1, description="Periods in one backfill at most."
    )
    missed_list_limit: int = Field(
        default=100, ge=1, description="Missed fires listed by name in one missed-periods alert."
    )
    clock_follow_server: bool = Field(
        default=True,
        description="Correct this host's clock to the NATS server's, so that replicas on "
        "skewed hosts fire at the same instant (see clock.py).",
    )
    clock_sync_seconds: float = Field(
        default=60.0, gt=0, description="How often the clock correction is measured again."
    )
    simulated_clock_skew_seconds: float = Field(
        default=0.0,
        description="Tests and drills only: pretend this host's clock is off by this much.",
    )
    warmup_lease_seconds: float = Field(
        default=15.0,
        gt=0,
        description="The warm-up lease: one replica sends the warm-ups; another takes over "
        "this long after it stops renewing.",
    )
    state_write_concurrency: int = Field(
        default=256,
        ge=1,
        description="Catch-up watermark writes in flight at once after a burst of fires.",
    )
