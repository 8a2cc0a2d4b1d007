"""Dispatcher settings. Env prefix `SYNCBUS_DISPATCHER_`."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class DispatcherSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SYNCBUS_DISPATCHER_")

    lease_seconds: float = Field(
        default=30.0, gt=0, description="A claim lapses after this long without renewal."
    )
    credential_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Per credential request."
    )
    max_request_bytes: int = Field(
        default=4 * 1024 * 1024, gt=0, description="Larger requests are rejected."
    )
    cold_start_threshold_ms: float = Field(
        default=1000.0, gt=0, description="A first vendor call slower than this is a cold start."
    )
    warmup_wait_seconds: float = Field(
        default=30.0, ge=0, description="A sync waits this long for a warm-up still in flight."
    )
    warm_ttl_seconds: float = Field(
        default=600.0, gt=0, description="How long a warm-up keeps an integration warm."
    )
    batch_attempts: int = Field(
        default=5, ge=1, description="Tries per batch for retryable failures."
    )
    backoff_initial_seconds: float = Field(default=0.5, gt=0, description="First retry delay.")
    backoff_max_seconds: float = Field(default=30.0, gt=0, description="Cap of one retry delay.")
    shutdown_grace_seconds: float = Field(
        default=20.0,
        ge=0,
        description="On SIGTERM, in-flight runs get this long to finish; what is left is not acked "
        "and resumes from the run ledger on the next delivery.",
    )
    fetch_timeout_seconds: float = Field(default=1.0, gt=0, description="Pull fetch wait.")
