"""The credential service: answers `credentials.get.<requester>.<integration_id>` from Vault.

It is the only part of syncbus that talks to Vault. It looks the secret's path up in the
integration's config itself (a caller cannot choose a path), and answers with what the vendor
needs and nothing more. Secret values never reach a log line: they travel as `SecretStr`.

Two kinds of secret (KV v2 data at the integration's `credentials_path`):

    {"api_token": "..."}                          a static token (Xledger): served as it is,
                                                  scheme `token`
    {"client_id", "client_secret", "token_url"    OAuth2 client credentials (Business Central):
     | "tenant_id", "scope"?}                     the service obtains an access token
                                                  (`oauth.py`) and serves only that, scheme
                                                  `Bearer`, with `expires_at`; the client secret
                                                  never leaves the service

`force_refresh` (the vendor refused what the caller had) re-reads Vault and, for OAuth2, gets a
new access token. When the token endpoint refuses the client (`invalid_client`) with a secret
read from the cache, Vault is read again once: the secret may have been rotated meanwhile.

Vault: the service logs in (token, AppRole or Kubernetes, `auth.py`) and keeps its token
renewed (`session.py`); secrets are cached and a rotation is noticed from the version metadata
(`cache.py`); `credentials.invalidate.<integration_id>` drops one integration's cached secret
and access tokens in every replica (no queue group); a request on it gets an empty reply once
this replica has. While Vault is unreachable or sealed, cached secrets are served for
`outage_grace_seconds` (default 15 min), then requests get `credentials_unavailable`.
`health()` reports what the service last saw (`health.py`), without any I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

import httpx
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
from syncbus_shared.natsclient import broker_options
from syncbus_shared.settings import NatsSettings
from syncbus_shared.tracing import NatsTracingMiddleware, traced_http_client

from .cache import SecretCache
from .health import CredentialHealth, VaultState
from .oauth import AccessToken, GrantConfigError, TokenEndpointError, TokenMinter, client_grant
from .settings import CredentialSettings, VaultSettings
from .vault import (
    SecretNotFoundError,
    SecretVersion,
    VaultDeniedError,
    VaultError,
    VaultLoginError,
    VaultReader,
    VaultUnavailableError,
)

log = get_logger()

STATIC_TOKEN_FIELD = "api_token"  # noqa: S105 - the name of a field, not a secret
"""Vendors with static API tokens (Xledger) keep the token under this key of the KV v2 secret."""

SCHEMES = {"xledger": "token"}
BEARER = "Bearer"


@dataclass
class CredentialService:
    vault: VaultReader
    cache: SecretCache
    broker: NatsBroker
    minter: TokenMinter | None = None
    vault_state: VaultState = field(default_factory=lambda: VaultState(900.0))
    _tasks: list[asyncio.Task[None]] = field(default_factory=list, repr=False)
    answered: Counter[str] = field(default_factory=Counter)
    """Credential requests by outcome: `served`, an error class, or `reply_refused`."""

    def health(self) -> CredentialHealth:
        """What the service last saw of Vault (no I/O: cheap enough for every probe)."""
        return self.vault_state.health()

    def invalidate(self, integration_id: str) -> None:
        """Forget the integration's cached secret and access tokens: the next request reads
        Vault (and mints a new token)."""
        had = self.cache.invalidate(integration_id)
        if self.minter is not None:
            self.minter.forget(integration_id)
        log.info("credentials.invalidated", integration_id=integration_id, was_cached=had)

    def start(self, health_check_interval_seconds: float) -> None:
        """Start the token's upkeep and the Vault health check (in the running loop)."""
        session = self.vault.session
        self._tasks = [
            asyncio.create_task(session.keep_alive(), name="vault-session"),
            asyncio.create_task(
                self._watch_vault(health_check_interval_seconds), name="vault-health"
            ),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _watch_vault(self, interval: float) -> None:
        """Ask Vault whether it answers every `interval` (more often during an outage), so
        readiness follows Vault also while nobody asks for a credential."""
        session = self.vault.session
        while True:
            try:
                await session.probe()
            except VaultError:
                pass
            except Exception as exc:  # the health check must outlive any surprise
                log.warning("credentials.vault_probe_failed", error=type(exc).__name__)
            else:
                if not session.logged_in:
                    session.wake()
            degraded = not self.vault_state.health().vault_reachable
            await asyncio.sleep(min(interval, 2.0) if degraded else interval)

    def _unavailable(self, integration_id: str, exc: VaultUnavailableError) -> CredentialResponse:
        since = self.vault_state.degraded_since
        if since is None:
            message = str(exc)
        else:
            grace = self.vault_state.grace_seconds
            if self.vault_state.within_grace():
                message = f"{exc}, and nothing is cached for this integration"
            else:
                message = (
                    f"{exc} since {since.isoformat()}, longer than the {grace:g} s "
                    "grace period for cached credentials"
                )
        log.warning("credentials.vault_unavailable", integration_id=integration_id, error=message)
        return _error(integration_id, ErrorClass.CREDENTIALS_UNAVAILABLE, message)

    async def answer(self, subject: str, body: bytes) -> CredentialResponse:
        asked = time.monotonic()
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
            found = await self.cache.get(
                integration_id, path, force=request.force_refresh, fresher_than=asked
            )
        except VaultUnavailableError as exc:
            return self._unavailable(integration_id, exc)
        except VaultLoginError as exc:
            log.warning("credentials.vault_login", integration_id=integration_id, error=str(exc))
            return _error(
                integration_id,
                ErrorClass.CREDENTIALS_UNAVAILABLE,
                f"the credential service cannot log in to Vault: {exc}",
            )
        except (SecretNotFoundError, VaultDeniedError) as exc:
            log.warning("credentials.unreadable", integration_id=integration_id, error=str(exc))
            return _error(integration_id, ErrorClass.CONFIGURATION, str(exc))
        secret = found.secret
        if found.source == "stale":
            log.warning(
                "credentials.served_stale",
                integration_id=integration_id,
                version=secret.version,
                degraded_since=_iso(self.vault_state.degraded_since),
            )
        try:
            grant = client_grant(secret.data, path)
        except GrantConfigError as exc:
            return _error(integration_id, ErrorClass.CONFIGURATION, str(exc))
        if grant is not None:
            return await self._oauth(request, path, secret, asked)
        value = secret.data.get(STATIC_TOKEN_FIELD)
        if not value:
            return _error(
                integration_id,
                ErrorClass.CONFIGURATION,
                f"the secret at {path} has no {STATIC_TOKEN_FIELD!r} field "
                "(nor client_id and client_secret for OAuth2)",
            )
        log.info(
            "credentials.served",
            integration_id=integration_id,
            purpose=request.purpose,
            version=secret.version,
            source=found.source,
        )
        return CredentialResponse(
            integration_id=integration_id,
            scheme=SCHEMES.get(config.vendor, "token"),
            secret=SecretStr(value),
            version=secret.version,
        )

    async def _oauth(
        self, request: CredentialRequest, path: str, secret: SecretVersion, asked: float
    ) -> CredentialResponse:
        """An access token for the client credentials in `secret` (never the secret itself)."""
        integration_id = request.integration_id
        if self.minter is None:
            return _error(
                integration_id,
                ErrorClass.CONFIGURATION,
                "this credential service cannot mint OAuth2 tokens (no token client)",
            )
        try:
            token = await self._mint(
                integration_id, path, secret, force=request.force_refresh, asked=asked
            )
        except GrantConfigError as exc:
            return _error(integration_id, ErrorClass.CONFIGURATION, str(exc))
        except TokenEndpointError as exc:
            log.warning(
                "credentials.token_refused",
                integration_id=integration_id,
                error_class=exc.error_class.value,
                vendor_code=exc.vendor_code,
                detail=exc.message,
            )
            return _error(integration_id, exc.error_class, exc.message)
        log.info(
            "credentials.served",
            integration_id=integration_id,
            purpose=request.purpose,
            version=secret.version,
            scheme=BEARER,
            expires_at=token.expires_at.isoformat(),
            forced=request.force_refresh,
        )
        return CredentialResponse(
            integration_id=integration_id,
            scheme=BEARER,
            secret=token.value,
            version=secret.version,
            expires_at=token.expires_at,
        )

    async def _mint(
        self, integration_id: str, path: str, secret: SecretVersion, *, force: bool, asked: float
    ) -> AccessToken:
        assert self.minter is not None
        grant = client_grant(secret.data, path)
        assert grant is not None
        requests_before = self.minter.stats.requests
        try:
            token = await self.minter.token(integration_id, grant, force=force, asked_at=asked)
        except TokenEndpointError as exc:
            if exc.vendor_code not in {"invalid_client", "unauthorized_client"} or force:
                raise
            # The secret may have been rotated in Vault since it was cached: read it again.
            try:
                fresh = (await self.cache.get(integration_id, path, force=True)).secret
            except VaultError:
                raise exc from None
            if fresh.version == secret.version:
                raise
            grant = client_grant(fresh.data, path)
            if grant is None:
                raise
            token = await self.minter.token(integration_id, grant, force=True)
        if self.minter.stats.requests != requests_before:
            log.info(
                "credentials.token_obtained",
                integration_id=integration_id,
                lifetime_s=token.lifetime_seconds,
                expires_at=token.expires_at.isoformat(),
                forced=force,
            )
        return token


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def reply_is_the_requesters(subject: str, reply: str | None) -> bool:
    """Is `reply` an inbox under the prefix the request's subject names?"""
    parsed = t.parse_credentials_subject(subject)
    if parsed is None or not reply:
        return False
    requester, _ = parsed
    return requester.startswith(t.DEFAULT_INBOX_PREFIX) and reply.startswith(requester + ".")


def _error(integration_id: str, error_class: ErrorClass, message: str) -> CredentialResponse:
    return CredentialResponse(
        integration_id=integration_id, error=ErrorInfo(error_class=error_class, message=message)
    )


@dataclass(frozen=True)
class Built:
    app: FastStream
    service: CredentialService
    """For the health endpoints: `service.health()`."""


def build_app(
    nats: NatsSettings | None = None,
    vault: VaultSettings | None = None,
    settings: CredentialSettings | None = None,
) -> FastStream:
    return build(nats, vault, settings).app


def build(
    nats: NatsSettings | None = None,
    vault: VaultSettings | None = None,
    settings: CredentialSettings | None = None,
) -> Built:
    """The app and its service, built (nothing runs, nothing connects until the app starts)."""
    nats = nats or NatsSettings()
    vault = vault or VaultSettings()
    settings = settings or CredentialSettings()
    broker = NatsBroker(**broker_options(nats), logger=None, middlewares=(NatsTracingMiddleware,))
    token_http = traced_http_client(
        timeout=httpx.Timeout(settings.token_timeout_seconds),
        limits=httpx.Limits(max_keepalive_connections=8, keepalive_expiry=120.0),
    )
    state = VaultState(settings.outage_grace_seconds)
    reader = VaultReader.from_settings(vault, state)
    service = CredentialService(
        vault=reader,
        cache=SecretCache(reader, state, settings.cache_ttl_seconds),
        broker=broker,
        minter=TokenMinter(
            token_http,
            refresh_margin_seconds=settings.token_refresh_margin_seconds,
            timeout_seconds=settings.token_timeout_seconds,
        ),
        vault_state=state,
    )

    @broker.subscriber(
        t.CREDENTIALS_FILTER,
        queue=t.QUEUE_CREDENTIALS,
        max_workers=settings.max_concurrent_requests,
        no_reply=True,  # answered below, and only into the requester's own inbox
        title="credentials.get.*.*",
        description="Request/reply on credentials.get.<requester inbox prefix>.<integration_id>: "
        "the credential an integration's vendor needs, answered only to a reply subject under "
        "that prefix.",
    )
    async def get_credentials(msg: NatsMessage) -> None:
        raw = msg.raw_message
        if not reply_is_the_requesters(raw.subject, raw.reply):
            # NATS lets a requester publish only under its own prefix; answering into any other
            # subject (another requester's inbox, a stream) would hand the secret to its reader.
            service.answered["reply_refused"] += 1
            log.warning(
                "credentials.reply_refused",
                subject=raw.subject,
                reply_prefix=raw.reply.rsplit(".", 1)[0] if raw.reply else None,
            )
            return
        try:
            response = await service.answer(raw.subject, msg.body)
        except Exception as exc:  # one bad request never kills the service
            log.exception("credentials.failed", error=type(exc).__name__)
            response = _error(
                raw.subject.rsplit(".", 1)[-1], ErrorClass.CREDENTIALS_UNAVAILABLE, "internal error"
            )
        service.answered[response.error.error_class.value if response.error else "served"] += 1
        await raw.respond(response.to_bytes())

    @broker.subscriber(
        t.CREDENTIALS_INVALIDATE_FILTER,
        title="credentials.invalidate.*",
        description="Drop one integration's cached secret and access tokens (every replica: "
        "no queue group); a request gets an empty reply once this replica has.",
    )
    async def invalidate(msg: NatsMessage) -> bytes:
        service.invalidate(msg.raw_message.subject.rsplit(".", 1)[-1])
        return b""

    app = FastStream(broker)

    @app.after_startup
    async def ready() -> None:
        service.start(vault.health_check_interval_seconds)
        log.info(
            "credentials.ready",
            vault_url=vault.url,
            auth_method=vault.auth_method,
            tls=vault.ca_cert is not None or vault.url.startswith("https://"),
        )

    @app.after_shutdown
    async def close_token_client() -> None:
        await service.stop()
        await token_http.aclose()

    return Built(app, service)
