"""Fixtures for the health monitor's tests: real NATS, the real Xledger fake, a hand-moved clock.

xledger          the Xledger fake in this event loop on a free port (real HTTP), with its
                 control API at `xledger.control`
credentials      a stand-in for the credential service on real NATS: it answers
                 `credentials.get.<requester>.<id>` with the token a test gave it (the real service and
                 Vault are exercised by tests/e2e)
clock            a ManualClock at 2026-12-03T09:00Z
make_monitor     make_monitor(settings=..., rng=...) -> HealthMonitor on that clock
add_integration  add_integration(unique_id("x"), health=HealthConfig(...)) -> IntegrationConfig,
                 with its own token known to the fake and to `credentials`
"""

from __future__ import annotations

import random
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import httpx
import pytest
import pytest_asyncio
from health_support import Credentials, Xledger
from nats.aio.client import Client
from nats.js import JetStreamContext

from syncbus_fakes.server import serve_app
from syncbus_fakes.xledger import XledgerFakeSettings, create_app
from syncbus_health_monitor.clock import ManualClock
from syncbus_health_monitor.monitor import HealthMonitor
from syncbus_health_monitor.settings import HealthSettings
from syncbus_shared import topology as t
from syncbus_shared.contracts import HealthConfig, IntegrationConfig
from syncbus_shared.integrations import put_integration

START = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


@pytest_asyncio.fixture
async def xledger() -> AsyncIterator[Xledger]:
    async with (
        serve_app(create_app(XledgerFakeSettings())) as url,
        httpx.AsyncClient(base_url=url, timeout=10.0) as control,
    ):
        yield Xledger(url, control)


@pytest_asyncio.fixture
async def credentials(nc: Client) -> AsyncIterator[Credentials]:
    stand_in = Credentials()
    sub = await nc.subscribe(t.CREDENTIALS_FILTER, cb=stand_in.answer)
    try:
        yield stand_in
    finally:
        await sub.unsubscribe()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def make_monitor(
    nc: Client, jetstream: JetStreamContext, clock: ManualClock
) -> Callable[..., Awaitable[HealthMonitor]]:
    async def make(
        settings: HealthSettings | None = None, rng: random.Random | None = None
    ) -> HealthMonitor:
        return await HealthMonitor.open(
            nc, settings or HealthSettings(), clock=clock, rng=rng or random.Random(7)
        )

    return make


@pytest.fixture
def add_integration(
    jetstream: JetStreamContext, xledger: Xledger, credentials: Credentials
) -> Callable[..., Awaitable[IntegrationConfig]]:
    async def add(integration_id: str, health: HealthConfig | None = None) -> IntegrationConfig:
        token = secrets.token_urlsafe(18)
        await xledger.add_token(token)
        credentials.tokens[integration_id] = token
        config = IntegrationConfig(
            integration_id=integration_id,
            vendor="xledger",
            endpoint=f"{xledger.url}/graphql",
            credentials_path=f"integrations/{integration_id}",
            health=health or HealthConfig(),
            timeout_seconds=5.0,
        )
        await put_integration(jetstream, config)
        return config

    return add
