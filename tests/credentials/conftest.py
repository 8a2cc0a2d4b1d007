"""Fixtures for the credential service's Vault tests (real OpenBao, nothing mocked).

vault_admin          the session OpenBao's root client, with the deployed policy written
approle              a fresh AppRole mount + role (token TTL 1 h) on the session OpenBao
make_session         make_session(settings) -> a VaultSession (`credentials_support.Sessions`)
service_account_jwt  mint(namespace, name, audiences) -> an RS256 JWT shaped like a
                     projected service-account token (Vault parses it; the TokenReview
                     stand-in vouches for it)
no_vault_env         no SYNCBUS_VAULT_* variable of the developer's leaks into settings
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from credentials_support import (
    AppRole,
    RunningService,
    Sessions,
    make_approle,
    mint_service_account_jwt,
    write_policy,
)
from cryptography.hazmat.primitives.asymmetric import rsa
from nats.aio.client import Client
from nats.js import JetStreamContext

from syncbus_credentials.service import build
from syncbus_credentials.settings import CredentialSettings, VaultSettings
from syncbus_devstack import NatsServer, OpenBaoDev
from syncbus_shared.settings import NatsSettings


@pytest.fixture
async def vault_admin(openbao: OpenBaoDev) -> Any:
    root = openbao.client()
    await write_policy(root)
    return root


@pytest.fixture
async def approle(vault_admin: Any) -> AppRole:
    return await make_approle(vault_admin, token_ttl="1h", token_max_ttl="4h")


@pytest.fixture
async def make_session() -> AsyncIterator[Sessions]:
    sessions = Sessions()
    yield sessions
    for task in sessions.tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture(scope="session")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def service_account_jwt(signing_key: rsa.RSAPrivateKey) -> Callable[..., str]:
    def mint(namespace: str, name: str, audiences: list[str]) -> str:
        return mint_service_account_jwt(signing_key, namespace, name, audiences)

    return mint


@pytest.fixture
def no_vault_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings read in a test must not pick up the developer's SYNCBUS_VAULT_* variables."""
    for name in [n for n in os.environ if n.startswith("SYNCBUS_VAULT_")]:
        monkeypatch.delenv(name)


@pytest.fixture
async def start_service(
    nats_server: NatsServer, nc: Client, jetstream: JetStreamContext
) -> AsyncIterator[Callable[..., Awaitable[RunningService]]]:
    """start_service(vault_settings, cache_ttl_seconds=..., ...) -> a running credential
    service (FastStream app in this event loop) on the test's NATS; stopped at teardown."""
    started: list[RunningService] = []

    async def start(vault: VaultSettings, **settings: Any) -> RunningService:
        nats = NatsSettings(url=nats_server.url, user=None, password=None)
        built = build(nats, vault, CredentialSettings(**settings))
        await built.app.start()
        running = RunningService(built, nc, jetstream)
        started.append(running)
        return running

    yield start
    for running in started:
        await running.built.app.stop()
