"""Fixtures for the whole suite: real servers from PyPI, fresh state for every test.

    nats_server          a nats-server with JetStream on a random port, store in tmp_path
    nc                   a nats-py client connected to it (reconnects like a service does)
    topology_settings    the TopologySettings `jetstream` provisions; override it to change them
    jetstream            a JetStreamContext on which `provision()` has run
    openbao              one OpenBao dev server for the session (use unique secret paths)
    unique_id            unique_id("toyen") -> "toyen-1f3a9c0b7d2e": safe as an integration id,
                         a subject token and a KV key, so tests sharing a server never collide

Everything waits on a real signal (a log line, a health answer), never on a sleep.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
import structlog
from nats.aio.client import Client
from nats.js import JetStreamContext

from syncbus_devstack import NatsServer, OpenBaoDev
from syncbus_shared.natsclient import connect
from syncbus_shared.provision import provision
from syncbus_shared.settings import NatsSettings, TopologySettings


@pytest.fixture(autouse=True)
def _fresh_structlog() -> Iterator[None]:
    """In-process CLI calls configure logging (level ERROR); later tests must not inherit it."""
    yield
    structlog.reset_defaults()


@pytest_asyncio.fixture
async def nats_server(tmp_path: Path) -> AsyncIterator[NatsServer]:
    server = NatsServer(tmp_path / "nats", log_path=tmp_path / "nats-server.log")
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest_asyncio.fixture
async def nc(nats_server: NatsServer) -> AsyncIterator[Client]:
    client = await connect(NatsSettings(url=nats_server.url, user=None, password=None), "pytest")
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
def topology_settings() -> TopologySettings:
    return TopologySettings()


@pytest_asyncio.fixture
async def jetstream(nc: Client, topology_settings: TopologySettings) -> JetStreamContext:
    js = nc.jetstream()
    await provision(js, topology_settings)
    return js


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def openbao(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[OpenBaoDev]:
    server = OpenBaoDev(log_path=tmp_path_factory.mktemp("openbao") / "openbao.log")
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def unique_id() -> Callable[..., str]:
    def make(prefix: str = "test") -> str:
        return f"{prefix}-{uuid.uuid4().hex[:12]}"

    return make
