"""Credential request/reply on `credentials.get.<requester inbox prefix>.<integration_id>`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_serializer

from ._base import Instant, IntegrationIdStr, Message
from .sync import ErrorInfo


class CredentialRequest(Message):
    type: Literal["syncbus.credential_request.v1"] = "syncbus.credential_request.v1"
    integration_id: IntegrationIdStr
    purpose: Literal["sync", "warmup", "probe"] = "sync"
    force_refresh: bool = False


class CredentialResponse(Message):
    """The secret a caller needs to talk to the vendor, and nothing more.

    `secret` is a `SecretStr`: its repr and str are masked, so it cannot reach a log by
    accident. It is written in clear only on the wire, inside NATS, to the one requester.
    """

    type: Literal["syncbus.credential_response.v1"] = "syncbus.credential_response.v1"
    integration_id: str
    scheme: str | None = Field(default=None, description="How the vendor wants it, e.g. `token`.")
    secret: SecretStr | None = None
    version: int | None = None
    expires_at: Instant | None = None
    error: ErrorInfo | None = None

    @field_serializer("secret", when_used="json")
    def _reveal_on_wire(self, value: SecretStr | None) -> str | None:
        return None if value is None else value.get_secret_value()
