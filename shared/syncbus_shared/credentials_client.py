"""Asking the credential service (the only holder of Vault access) for a credential."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from nats.aio.client import Client
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from pydantic import SecretStr

from . import topology as t
from .contracts import CredentialRequest, CredentialResponse, ErrorClass
from .tracing import request_span

Purpose = Literal["sync", "warmup", "probe"]


@dataclass(frozen=True)
class Credential:
    """What a vendor adapter may use to authenticate. `secret` stays masked in every repr."""

    scheme: str
    secret: SecretStr
    expires_at: datetime | None = None
    """When an access token stops working (OAuth); None for static tokens."""

    def expires_within(self, seconds: float) -> bool:
        if self.expires_at is None:
            return False
        return self.expires_at - datetime.now(UTC) < timedelta(seconds=seconds)


class CredentialUnavailableError(Exception):
    def __init__(self, error_class: ErrorClass, message: str) -> None:
        super().__init__(message)
        self.error_class = error_class
        self.message = message


def inbox_prefix(nc: Client) -> str:
    """The connection's inbox prefix (`_INBOX_dispatcher`), from a public call: a new inbox."""
    return nc.new_inbox().rsplit(".", 1)[0]


async def fetch_credential(
    nc: Client,
    integration_id: str,
    *,
    purpose: Purpose,
    timeout: float,
    force_refresh: bool = False,
) -> Credential:
    request = CredentialRequest(
        integration_id=integration_id, purpose=purpose, force_refresh=force_refresh
    )
    subject = t.credentials_subject(integration_id, inbox_prefix(nc))
    body = request.to_bytes()
    try:
        with request_span(subject, body) as headers:
            reply = await nc.request(subject, body, timeout=timeout, headers=headers or None)
    except (NatsTimeoutError, NoRespondersError) as exc:
        raise CredentialUnavailableError(
            ErrorClass.CREDENTIALS_UNAVAILABLE,
            f"the credential service did not answer for {integration_id} ({type(exc).__name__})",
        ) from exc
    response = CredentialResponse.from_bytes(reply.data)
    if response.error is not None:
        raise CredentialUnavailableError(response.error.error_class, response.error.message)
    if response.secret is None:
        raise CredentialUnavailableError(
            ErrorClass.CREDENTIALS_UNAVAILABLE,
            f"the credential service sent no secret for {integration_id}",
        )
    return Credential(
        scheme=response.scheme or "token", secret=response.secret, expires_at=response.expires_at
    )
