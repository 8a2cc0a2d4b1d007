"""Credential service settings. Env prefix `SYNCBUS_VAULT_` (Vault) and `SYNCBUS_CREDENTIALS_`."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class VaultSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SYNCBUS_VAULT_", hide_input_in_errors=True)

    url: str = Field(default="http://127.0.0.1:8200", description="Vault or OpenBao address.")
    token: SecretStr | None = Field(default=None, description="Token auth (development).")
    mount: str = Field(default="secret", description="Mount point of the KV v2 engine.")
    timeout_seconds: float = Field(default=5.0, gt=0, description="Per Vault request.")


class CredentialSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SYNCBUS_CREDENTIALS_")

    cache_ttl_seconds: float = Field(
        default=300.0, ge=0, description="How long a secret read from Vault is served from memory."
    )
    token_refresh_margin_seconds: float = Field(
        default=300.0,
        ge=0,
        description="An OAuth2 access token is renewed this long before it expires (at most "
        "half its lifetime before).",
    )
    token_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Per request to an OAuth2 token endpoint."
    )
    max_concurrent_requests: int = Field(
        default=16,
        ge=1,
        description="Credential requests handled at once (a slow token endpoint or Vault then "
        "does not hold up every other integration).",
    )
