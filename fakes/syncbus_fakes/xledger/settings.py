"""Start-up settings of the Xledger fake. Env prefix `SYNCBUS_FAKE_XLEDGER_`; CLI flags win."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from .auth import is_well_formed


def _split(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class XledgerFakeSettings(BaseSettings):
    """Every limit is configurable so that a test can make it small."""

    model_config = SettingsConfigDict(
        env_prefix="SYNCBUS_FAKE_XLEDGER_", hide_input_in_errors=True, extra="forbid"
    )

    tokens: Annotated[tuple[SecretStr, ...], NoDecode] = Field(
        default=(), description="API tokens the fake accepts (env: comma-separated)."
    )
    burst_requests: int = Field(
        default=20, ge=1, description="Requests per token allowed in one burst window."
    )
    burst_window_seconds: float = Field(
        default=5.0, gt=0, description="Length of the sliding burst window."
    )
    max_concurrent: int = Field(
        default=10, ge=1, description="Requests of one token that may be in flight at once."
    )
    monthly_credits: int = Field(
        default=5000, ge=0, description="Requests per calendar month (Europe/Oslo) for everyone."
    )
    max_nodes_per_call: int = Field(
        default=500, ge=1, description="Most inputs one addGLImportItems call may carry."
    )
    max_page_size: int = Field(
        default=10_000, ge=1, description="Most records one glImportItems page may return."
    )
    accounts: Annotated[tuple[str, ...] | None, NoDecode] = Field(
        default=None,
        description="Chart of accounts (env: comma-separated); unset means any code is accepted.",
    )
    first_db_id: int = Field(default=1001, ge=1, description="dbId of the first posted item.")

    @field_validator("tokens", "accounts", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        return _split(value)

    @field_validator("tokens")
    @classmethod
    def _well_formed(cls, tokens: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        for number, token in enumerate(tokens, start=1):
            if not is_well_formed(token.get_secret_value()):
                raise ValueError(
                    f"token number {number} is not one run of visible ASCII characters"
                )
        return tokens
