"""The ingress, run for real against the suite's real nats-server (see ingress_support)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from ingress_support import RunningIngress, running_ingress
from nats.js import JetStreamContext

from syncbus_devstack import NatsServer


@pytest_asyncio.fixture
async def ingress(
    nats_server: NatsServer, jetstream: JetStreamContext
) -> AsyncIterator[RunningIngress]:
    async with running_ingress(nats_server.url) as running:
        yield running
