"""Fixtures for the client library's tests: a real nats-server, provisioned, and a client on it.

Results are published here the way the dispatcher publishes them (on `sync.result.<id>` in
SYNC_RESULTS), so that awaiting, scanning and durable feeds are tested against the real stream
without running the services; `test_client_e2e.py` runs the real dispatcher behind them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from nats.js import JetStreamContext

from syncbus_client import SyncbusClient
from syncbus_devstack import NatsServer


@pytest_asyncio.fixture
async def client(
    nats_server: NatsServer, jetstream: JetStreamContext
) -> AsyncIterator[SyncbusClient]:
    async with SyncbusClient.connect(nats_server.url, name="pytest-client") as connected:
        yield connected
