"""Live vendor sessions: one HTTP client, credential and adapter per integration.

A warm-up builds the session ahead of a scheduled sync (credential fetched, connection open,
one cheap vendor call made), so that the sync which follows does not pay the cold start.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
from nats.aio.client import Client

from syncbus_adapters import AdapterContext, VendorAdapter, adapter_class
from syncbus_adapters.observed import observe_requests
from syncbus_shared.contracts import IntegrationConfig
from syncbus_shared.credentials_client import Purpose, fetch_credential
from syncbus_shared.logs import get_logger
from syncbus_shared.tracing import traced_http_client

from .metrics import DispatcherMetrics
from .settings import DispatcherSettings

log = get_logger()

TOKEN_SLACK_SECONDS = 60.0
"""A session whose access token expires sooner than this is rebuilt with a fresh one."""


@dataclass
class VendorSession:
    config: IntegrationConfig
    adapter: VendorAdapter
    http: httpx.AsyncClient
    created_at: float = field(default_factory=time.monotonic)
    warmed_at: float | None = None
    last_call_at: float | None = None

    def is_warm(self, ttl: float) -> bool:
        if self.warmed_at is None:
            return False
        last = max(self.warmed_at, self.last_call_at or 0.0)
        return time.monotonic() - last < ttl

    async def aclose(self) -> None:
        await self.http.aclose()


class SessionPool:
    def __init__(
        self, nc: Client, settings: DispatcherSettings, *, metrics: DispatcherMetrics | None = None
    ) -> None:
        self._nc = nc
        self._settings = settings
        self.metrics = metrics or DispatcherMetrics()
        self._sessions: dict[str, VendorSession] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._warming: dict[str, asyncio.Event] = {}

    @contextlib.asynccontextmanager
    async def warming(self, integration_id: str) -> AsyncIterator[None]:
        """Mark a warm-up in flight, so a sync that arrives meanwhile waits for it."""
        done = asyncio.Event()
        self._warming[integration_id] = done
        try:
            yield
        finally:
            done.set()
            if self._warming.get(integration_id) is done:
                del self._warming[integration_id]

    async def wait_for_warmup(self, integration_id: str, timeout: float) -> None:
        done = self._warming.get(integration_id)
        if done is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), timeout)

    def peek(self, integration_id: str) -> VendorSession | None:
        return self._sessions.get(integration_id)

    async def session(
        self, config: IntegrationConfig, *, purpose: Purpose, refresh: bool = False
    ) -> VendorSession:
        """The integration's live session, built (credential fetched) when missing or stale."""
        lock = self._locks.setdefault(config.integration_id, asyncio.Lock())
        async with lock:
            current = self._sessions.get(config.integration_id)
            if purpose == "sync" and not refresh:  # a sync starting: did a warm-up prepare it?
                warm = current is not None and current.is_warm(self._settings.warm_ttl_seconds)
                self.metrics.sync_session(config.vendor, warm=warm)
            if (
                current is not None
                and not refresh
                and current.config == config
                and not current.adapter.context.credential.expires_within(TOKEN_SLACK_SECONDS)
            ):
                return current
            if current is not None:
                await current.aclose()
                del self._sessions[config.integration_id]
            credential = await fetch_credential(
                self._nc,
                config.integration_id,
                purpose=purpose,
                timeout=self._settings.credential_timeout_seconds,
                force_refresh=refresh,
            )
            http = traced_http_client(
                timeout=httpx.Timeout(
                    config.timeout_seconds, connect=min(10.0, config.timeout_seconds)
                ),
                limits=httpx.Limits(max_keepalive_connections=4, keepalive_expiry=300.0),
            )
            observe_requests(http, config.vendor, self.metrics.vendor_request)
            adapter = adapter_class(config.vendor)(
                AdapterContext(
                    integration_id=config.integration_id,
                    endpoint=config.endpoint,
                    credential=credential,
                    http=http,
                    timeout_seconds=config.timeout_seconds,
                    options=dict(config.options),
                )
            )
            session = VendorSession(config=config, adapter=adapter, http=http)
            self._sessions[config.integration_id] = session
            return session

    async def drop(self, integration_id: str) -> None:
        session = self._sessions.pop(integration_id, None)
        if session is not None:
            await session.aclose()

    async def aclose(self) -> None:
        for session in list(self._sessions.values()):
            await session.aclose()
        self._sessions.clear()
