"""Credential service settings. Env prefix `SYNCBUS_VAULT_` (Vault) and `SYNCBUS_CREDENTIALS_`.

Vault auth (`SYNCBUS_VAULT_AUTH_METHOD`):

    token        SYNCBUS_VAULT_TOKEN (development; renewed if renewable, never logged in again)
    approle      SYNCBUS_VAULT_ROLE_ID and SYNCBUS_VAULT_SECRET_ID or SYNCBUS_VAULT_SECRET_ID_FILE
    kubernetes   SYNCBUS_VAULT_KUBERNETES_ROLE; the service-account JWT is read from
                 SYNCBUS_VAULT_KUBERNETES_JWT_PATH (default: the standard mount) at each login

TLS: SYNCBUS_VAULT_CA_CERT (a PEM bundle the server's certificate must chain to), and
optionally SYNCBUS_VAULT_CLIENT_CERT with SYNCBUS_VAULT_CLIENT_KEY (mutual TLS).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import Field, FilePath, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

KUBERNETES_JWT_PATH = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
DEFAULT_AUTH_MOUNTS = {"token": "token", "approle": "approle", "kubernetes": "kubernetes"}


class VaultSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SYNCBUS_VAULT_", hide_input_in_errors=True)

    url: str = Field(default="http://127.0.0.1:8200", description="Vault or OpenBao address.")
    mount: str = Field(default="secret", description="Mount point of the KV v2 engine.")
    timeout_seconds: float = Field(default=5.0, gt=0, description="Per Vault request.")

    auth_method: Literal["token", "approle", "kubernetes"] = Field(
        default="token", description="How the service logs in to Vault."
    )
    auth_mount: str | None = Field(
        default=None,
        description="Mount path of the auth method (default: `approle` or `kubernetes`).",
    )
    token: SecretStr | None = Field(default=None, description="Token auth (development).")
    role_id: str | None = Field(default=None, description="AppRole: the role id.")
    secret_id: SecretStr | None = Field(default=None, description="AppRole: the secret id.")
    secret_id_file: FilePath | None = Field(
        default=None,
        description="AppRole: a file holding the secret id (read at each login, so it may be "
        "replaced while the service runs).",
    )
    kubernetes_role: str | None = Field(
        default=None, description="Kubernetes auth: the Vault role to log in as."
    )
    kubernetes_jwt_path: Path = Field(
        default=KUBERNETES_JWT_PATH,
        description="Kubernetes auth: the service-account token (read at each login: the "
        "kubelet rotates projected tokens).",
    )
    kubernetes_audience: str | None = Field(
        default=None,
        description="Kubernetes auth: the audience the Vault role expects; the service checks "
        "the token's `aud` claim against it before logging in, so a wrongly projected token "
        "gets a clear error instead of Vault's `permission denied`.",
    )
    renew_at_fraction: float = Field(
        default=2 / 3,
        gt=0,
        lt=1,
        description="The service renews its token when this fraction of its TTL has passed.",
    )
    health_check_interval_seconds: float = Field(
        default=10.0,
        gt=0,
        description="How often the service checks that Vault answers and is unsealed (its "
        "readiness follows), also when no credential is asked for.",
    )

    ca_cert: FilePath | None = Field(
        default=None,
        description="PEM CA bundle that Vault's TLS certificate must chain to (default: the "
        "system's trust store).",
    )
    client_cert: FilePath | None = Field(
        default=None, description="Client certificate (PEM) for mutual TLS to Vault."
    )
    client_key: FilePath | None = Field(
        default=None, description="The client certificate's private key (PEM)."
    )

    @model_validator(mode="after")
    def _complete_for_the_method(self) -> Self:
        if self.auth_method == "approle":
            missing = []
            if not self.role_id:
                missing.append("SYNCBUS_VAULT_ROLE_ID")
            if self.secret_id is None and self.secret_id_file is None:
                missing.append("SYNCBUS_VAULT_SECRET_ID (or SYNCBUS_VAULT_SECRET_ID_FILE)")
            if missing:
                raise ValueError(f"AppRole auth needs {' and '.join(missing)}")
        if self.auth_method == "kubernetes" and not self.kubernetes_role:
            raise ValueError("Kubernetes auth needs SYNCBUS_VAULT_KUBERNETES_ROLE")
        if self.client_key is not None and self.client_cert is None:
            raise ValueError("SYNCBUS_VAULT_CLIENT_KEY is set without SYNCBUS_VAULT_CLIENT_CERT")
        return self

    @property
    def auth_mount_point(self) -> str:
        return self.auth_mount or DEFAULT_AUTH_MOUNTS[self.auth_method]


class CredentialSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SYNCBUS_CREDENTIALS_", hide_input_in_errors=True)

    cache_ttl_seconds: float = Field(
        default=300.0,
        ge=0,
        description="How long a secret read from Vault is served from memory before its version "
        "is checked again (a rotation is picked up within this time).",
    )
    outage_grace_seconds: float = Field(
        default=900.0,
        ge=0,
        description="While Vault is unreachable or sealed, cached secrets are served this long "
        "after the outage began; then requests get `credentials_unavailable`.",
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
