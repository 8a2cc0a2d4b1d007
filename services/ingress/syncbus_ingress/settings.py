"""The ingress's settings, read from the environment (`SYNCBUS_INGRESS_`) when it starts."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class IngressSettings(BaseSettings):
    """How the ingress listens, whom it lets in and how much it keeps. Env prefix
    `SYNCBUS_INGRESS_`."""

    model_config = SettingsConfigDict(env_prefix="SYNCBUS_INGRESS_", hide_input_in_errors=True)

    host: str = Field(
        default="127.0.0.1", description="Address to listen on (0.0.0.0 in a container)."
    )
    port: int = Field(default=0, ge=0, le=65535, description="TCP port; 0 picks a free one.")
    api_key_hashes: str = Field(
        default="",
        description="Accepted API keys as SHA-256 hex digests, separated by commas; each may be "
        "written `label=<digest>` to name the caller in logs. Never the keys themselves.",
    )
    api_key_hashes_file: Path | None = Field(
        default=None,
        description="A file of more digests, one a line (`label=<digest>` or `<digest>`; "
        "`#` starts a comment), e.g. a mounted Kubernetes secret.",
    )
    max_body_bytes: int = Field(
        default=1024 * 1024, gt=0, description="Larger request bodies get 413."
    )
    publish_timeout_seconds: float = Field(
        default=10.0, gt=0, description="How long to wait for NATS to confirm a request."
    )
    result_lookback_hours: float = Field(
        default=14 * 24.0,
        gt=0,
        description="Results younger than this are served by GET /v1/sync-results/{id} "
        "(default 14 days, how long requests are kept).",
    )
    result_index_size: int = Field(
        default=100_000, gt=0, description="At most this many results are kept in memory."
    )
    nats_connect_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Per attempt; the ingress keeps trying until it is up."
    )
