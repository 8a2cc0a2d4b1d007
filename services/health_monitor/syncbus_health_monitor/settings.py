"""Health-monitor settings. Env prefix `SYNCBUS_HEALTH_`."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROBE_INTERVAL_FLOOR_SECONDS = 900.0
"""No integration is probed more often than every 15 minutes (vendor quotas count every call)."""


class HealthSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SYNCBUS_HEALTH_")

    dev_min_interval_seconds: float | None = Field(
        default=None,
        gt=0,
        description="DEVELOPMENT ONLY: lowers the 15-minute probe floor to this (logged loudly).",
    )
    rescan_seconds: float = Field(
        default=30.0, gt=0, description="How often the config is re-read."
    )
    probe_timeout_seconds: float = Field(default=15.0, gt=0, description="Per probe.")
    credential_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Per credential request."
    )
    backoff_cap_seconds: float = Field(
        default=86_400.0,
        gt=0,
        description="Longest wait between probes after consecutive failures (never below the "
        "interval).",
    )
    backoff_jitter: float = Field(
        default=0.2,
        ge=0,
        le=0.5,
        description="Each backoff wait is shortened by a random share up to this (never below "
        "the interval), so that integrations failing together do not probe together.",
    )
    auto_passive_seconds: float = Field(
        default=86_400.0,
        ge=0,
        description="How long a vendor stays passive after it rate-limited a probe "
        "(0: until an operator switches it back with `syncbus health vendor-mode`).",
    )

    def effective_interval(self, configured: float) -> float:
        floor = self.dev_min_interval_seconds or PROBE_INTERVAL_FLOOR_SECONDS
        return max(configured, floor)
