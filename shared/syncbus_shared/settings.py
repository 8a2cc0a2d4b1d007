"""Settings every service shares, read from the environment (never at import time)."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class NatsSettings(BaseSettings):
    """How to reach NATS. Env prefix `SYNCBUS_NATS_`."""

    model_config = SettingsConfigDict(env_prefix="SYNCBUS_NATS_", hide_input_in_errors=True)

    url: str = Field(default="nats://127.0.0.1:4222", description="Comma-separated server URLs.")
    user: str | None = Field(default=None, description="NATS user of this service.")
    password: SecretStr | None = Field(default=None, description="Password of that user.")
    connect_timeout_seconds: float = Field(default=5.0, gt=0, description="Per attempt.")

    @property
    def servers(self) -> list[str]:
        return [part.strip() for part in self.url.split(",") if part.strip()]


class TopologySettings(BaseSettings):
    """Stream, consumer and bucket settings applied by provisioning (`SYNCBUS_TOPOLOGY_`)."""

    model_config = SettingsConfigDict(env_prefix="SYNCBUS_TOPOLOGY_")

    replicas: int = Field(
        default=1, ge=1, le=5, description="Stream and bucket replicas (R3 in production)."
    )
    request_dedup_window_seconds: float = Field(
        default=7200.0, gt=0, description="Nats-Msg-Id dedup window of SYNC_REQUESTS (>= 2 h)."
    )
    request_max_age_days: float = Field(
        default=14.0, gt=0, description="How long requests are kept."
    )
    result_max_age_days: float = Field(
        default=400.0, gt=0, description="How long results are kept."
    )
    dlq_max_age_days: float = Field(
        default=90.0, gt=0, description="How long dead letters are kept."
    )
    alert_max_age_days: float = Field(default=30.0, gt=0, description="How long alerts are kept.")
    dispatcher_ack_wait_seconds: float = Field(
        default=60.0, gt=0, description="Redelivery after this long without an ack or progress ack."
    )
    dispatcher_max_deliver: int = Field(
        default=50, ge=1, description="Deliveries before a message is given up."
    )
    sync_always: bool = Field(
        default=False, description="fsync every write of SYNC_REQUESTS (set in production)."
    )


class ServiceSettings(BaseSettings):
    """Common to every service process. Env prefix `SYNCBUS_`."""

    model_config = SettingsConfigDict(env_prefix="SYNCBUS_")

    instance_id: str | None = Field(default=None, description="Defaults to host name and pid.")
    log_level: str = Field(default="INFO", description="DEBUG, INFO, WARNING or ERROR.")
