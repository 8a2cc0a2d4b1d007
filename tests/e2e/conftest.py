"""A real stack for cross-process tests: nats-server, OpenBao, the Xledger fake, real services.

One stack per test module (starting one takes a few seconds); each test gets its own
integration id, secret and token, so tests never see each other's runs.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
import pytest_asyncio
from e2e_support import DEDUP_WINDOW_SECONDS, Integration
from nats.aio.client import Client
from nats.js.api import DeliverPolicy

from syncbus_devstack import Stack
from syncbus_shared import topology as t
from syncbus_shared.contracts import (
    IntegrationConfig,
)
from syncbus_shared.integrations import put_integration
from syncbus_shared.natsclient import connect
from syncbus_shared.settings import NatsSettings, TopologySettings


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    state = tmp_path_factory.mktemp("stack")
    async with Stack(
        state,
        services=("credentials", "dispatcher"),
        topology=TopologySettings(request_dedup_window_seconds=DEDUP_WINDOW_SECONDS),
        extra_env={"SYNCBUS_DISPATCHER_BACKOFF_INITIAL_SECONDS": "0.05"},
    ) as running:
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bus(stack: Stack) -> AsyncIterator[Client]:
    nc = await connect(NatsSettings(url=stack.nats_url), "pytest-e2e")
    yield nc
    await nc.close()


@pytest_asyncio.fixture(loop_scope="module")
async def integration(
    stack: Stack, bus: Client, unique_id: Callable[..., str]
) -> AsyncIterator[Integration]:
    integration_id = unique_id("it")
    token = secrets.token_urlsafe(18)
    fake_url = stack.fake_urls["xledger"]
    await stack.vault.write_secret(f"integrations/{integration_id}", {"api_token": token})
    fake = httpx.AsyncClient(base_url=fake_url, timeout=10.0)
    await fake.post("/_fake/tokens", json={"token": token})
    config = IntegrationConfig(
        integration_id=integration_id,
        vendor="xledger",
        endpoint=f"{fake_url}/graphql",
        credentials_path=f"integrations/{integration_id}",
        timeout_seconds=5.0,
    )
    js = bus.jetstream()
    await put_integration(js, config)
    it = Integration(config=config, token=token, nc=bus, js=js, fake=fake)
    sub = await js.subscribe(
        t.result_subject(integration_id), cb=it._on_result, deliver_policy=DeliverPolicy.ALL
    )
    try:
        yield it
    finally:
        await sub.unsubscribe()
        await fake.aclose()
