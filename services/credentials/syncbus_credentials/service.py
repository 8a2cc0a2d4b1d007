"""The credential service: answers `credentials.get.<integration_id>` from Vault, via a cache.

It is the only part of syncbus that talks to Vault. It looks the secret's path up in the
integration's config itself (a caller cannot choose a path), and answers with what the vendor
needs and nothing more. Secret values never reach a log line: they travel as `SecretStr`.
"""

from __future__ import annotations

from dataclasses import dataclass

from faststream import FastStream
from faststream.nats import NatsBroker, NatsMessage
from pydantic import SecretStr, ValidationError

from syncbus_shared import topology as t
from syncbus_shared.contracts import (
    CredentialRequest,
    CredentialResponse,
    ErrorClass,
    ErrorInfo,
)
from syncbus_shared.integrations import get_integration
from syncbus_shared.logs import get_logger
from syncbus_shared.settings import NatsSettings

from .cache import TtlCache
from .settings import CredentialSettings, VaultSettings
from .vault import (
    SecretNotFoundError,
    SecretVersion,
    VaultDeniedError,
    VaultReader,
    VaultUnavailableError,
)

log = get_logger()

STATIC_TOKEN_FIELD = "api_token"  # noqa: S105 - the name of a field, not a secret
"""Vendors with static API tokens (Xledger) keep the token under this key of the KV v2 secret."""

SCHEMES = {"xledger": "token"}


@dataclass
class CredentialService:
    vault: VaultReader
    cache: TtlCache[SecretVersion]
    broker: NatsBroker

    async def answer(self, subject: str, body: bytes) -> CredentialResponse:
        integration_id = subject.rsplit(".", 1)[-1]
        try:
            request = CredentialRequest.from_bytes(body)
        except ValidationError as exc:
            return _error(
                integration_id,
                ErrorClass.INVALID_REQUEST,
                f"not a credential request: {exc.error_count()} problem(s)",
            )
        if request.integration_id != integration_id:
            return _error(
                integration_id,
                ErrorClass.INVALID_REQUEST,
                "the subject names another integration than the body",
            )
        js = self.broker.connection.jetstream()
        config = await get_integration(js, integration_id)
        if config is None:
            return _error(
                integration_id,
                ErrorClass.CONFIGURATION,
                f"integration {integration_id!r} is not configured",
            )
        path = config.credentials_path
        try:
            secret = await self.cache.get(
                integration_id, lambda: self.vault.read(path), force=request.force_refresh
            )
        except VaultUnavailableError as exc:
            log.warning(
                "credentials.vault_unavailable", integration_id=integration_id, error=str(exc)
            )
            return _error(integration_id, ErrorClass.CREDENTIALS_UNAVAILABLE, str(exc))
        except (SecretNotFoundError, VaultDeniedError) as exc:
            self.cache.invalidate(integration_id)
            log.warning("credentials.unreadable", integration_id=integration_id, error=str(exc))
            return _error(integration_id, ErrorClass.CONFIGURATION, str(exc))
        value = secret.data.get(STATIC_TOKEN_FIELD)
        if not value:
            return _error(
                integration_id,
                ErrorClass.CONFIGURATION,
                f"the secret at {path} has no {STATIC_TOKEN_FIELD!r} field",
            )
        log.info(
            "credentials.served",
            integration_id=integration_id,
            purpose=request.purpose,
            version=secret.version,
        )
        return CredentialResponse(
            integration_id=integration_id,
            scheme=SCHEMES.get(config.vendor, "token"),
            secret=SecretStr(value),
            version=secret.version,
        )


def _error(integration_id: str, error_class: ErrorClass, message: str) -> CredentialResponse:
    return CredentialResponse(
        integration_id=integration_id, error=ErrorInfo(error_class=error_class, message=message)
    )


def build_app(
    nats: NatsSettings | None = None,
    vault: VaultSettings | None = None,
    settings: CredentialSettings | None = None,
) -> FastStream:
    nats = nats or NatsSettings()
    settings = settings or CredentialSettings()
    broker = NatsBroker(nats.servers, max_reconnect_attempts=-1, logger=None)
    service = CredentialService(
        vault=VaultReader(vault or VaultSettings()),
        cache=TtlCache(settings.cache_ttl_seconds),
        broker=broker,
    )

    @broker.subscriber(
        t.CREDENTIALS_FILTER,
        queue=t.QUEUE_CREDENTIALS,
        title="credentials.get.*",
        description="Request/reply: the credential an integration's vendor needs.",
    )
    async def get_credentials(msg: NatsMessage) -> bytes:
        try:
            response = await service.answer(msg.raw_message.subject, msg.body)
        except Exception as exc:  # one bad request never kills the service
            log.exception("credentials.failed", error=type(exc).__name__)
            response = _error(
                msg.raw_message.subject.rsplit(".", 1)[-1],
                ErrorClass.CREDENTIALS_UNAVAILABLE,
                "internal error",
            )
        return response.to_bytes()

    app = FastStream(broker)

    @app.after_startup
    async def ready() -> None:
        log.info("credentials.ready", vault_url=(vault or VaultSettings()).url)

    return app
