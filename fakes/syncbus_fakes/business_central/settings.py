"""Start-up settings of the Business Central fake. Env prefix `SYNCBUS_FAKE_BUSINESS_CENTRAL_`.

CLI flags of `python -m syncbus_fakes.business_central` win over the environment.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_TENANT = "7c1f5a0e-3b2d-4e8f-9a61-0b5c2d4e6f80"
BC_AUDIENCE = "https://api.businesscentral.dynamics.com"
GRAPH_AUDIENCE = "https://graph.microsoft.com"
FULL_ACCESS_ROLE = "API.ReadWrite.All"


def _split(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class BusinessCentralFakeSettings(BaseSettings):
    """Every limit is configurable so that a test can make it small."""

    model_config = SettingsConfigDict(
        env_prefix="SYNCBUS_FAKE_BUSINESS_CENTRAL_", hide_input_in_errors=True, extra="forbid"
    )

    tenant_id: str = Field(
        default=DEFAULT_TENANT,
        min_length=1,
        description="The one Entra tenant the fake stands for (in token and API URLs).",
    )
    environments: Annotated[tuple[str, ...], NoDecode] = Field(
        default=("production", "sandbox"),
        min_length=1,
        description="Business Central environments of the tenant (env: comma-separated).",
    )
    companies: Annotated[tuple[str, ...], NoDecode] = Field(
        default=("CRONUS NO",),
        min_length=1,
        description="Company names; every environment has each of them (env: comma-separated).",
    )
    clients: Annotated[tuple[SecretStr, ...], NoDecode] = Field(
        default=(),
        description="App registrations as `client_id:client_secret` (env: comma-separated).",
    )
    audience: str = Field(default=BC_AUDIENCE, description="The audience Business Central takes.")
    other_audiences: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(GRAPH_AUDIENCE,),
        description="Other resources Entra issues tokens for; Business Central refuses them "
        "with a 401 whose body is XML.",
    )
    token_lifetime_seconds: int = Field(
        default=3599, ge=1, description="`expires_in` of each access token."
    )
    rate_limit_requests: int = Field(
        default=6000, ge=1, description="Requests per principal in one sliding window."
    )
    rate_limit_window_seconds: float = Field(
        default=300.0, gt=0, description="Length of the sliding rate-limit window."
    )
    max_concurrent: int = Field(
        default=5, ge=1, description="Requests of one principal processed at once."
    )
    max_queued: int = Field(
        default=95, ge=0, description="Requests of one principal that may wait for a slot."
    )
    queue_timeout_seconds: float = Field(
        default=480.0, gt=0, description="A queued request gets 503 after waiting this long."
    )
    retry_after_every: int = Field(
        default=2,
        ge=0,
        description="Every Nth 429 carries Retry-After (0 = never, 1 = always): "
        "Business Central does not always send it.",
    )
    max_batch_operations: int = Field(
        default=100, ge=1, description="Most operations in one $batch request."
    )
    max_page_size: int = Field(default=20_000, ge=1, description="Most entities in one page.")
    description_max_length: int = Field(
        default=100, ge=1, description="Longest journal line description (older API: 50)."
    )
    accounts: Annotated[tuple[str, ...] | None, NoDecode] = Field(
        default=None,
        description="G/L account numbers (env: comma-separated); unset means any is accepted.",
    )
    first_entry_number: int = Field(default=1, ge=1, description="entryNumber of the first entry.")

    @field_validator("environments", "companies", "accounts", "other_audiences", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        return _split(value)

    @field_validator("clients", mode="before")
    @classmethod
    def _client_list(cls, value: Any) -> Any:
        return _split(value)

    @field_validator("clients")
    @classmethod
    def _id_and_secret(cls, clients: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        for number, client in enumerate(clients, start=1):
            client_id, sep, secret = client.get_secret_value().partition(":")
            if not sep or not client_id or not secret:
                raise ValueError(f"client number {number} is not `client_id:client_secret`")
        return clients

    def client_pairs(self) -> list[tuple[str, str]]:
        pairs = []
        for client in self.clients:
            client_id, _, secret = client.get_secret_value().partition(":")
            pairs.append((client_id, secret))
        return pairs
