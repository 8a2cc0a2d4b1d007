"""Outages: while Vault is sealed or gone, cached secrets are served for a bounded grace period
and health says so; then `credentials_unavailable`. A denial or a deleted secret is never
answered from the cache. Each test has an OpenBao of its own (it seals or stops it)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from credentials_support import RunningService, secret_of

from syncbus_credentials.health import CredentialHealth
from syncbus_credentials.settings import VaultSettings
from syncbus_devstack import OpenBaoDev
from syncbus_shared.contracts import CredentialResponse, ErrorClass

pytestmark = pytest.mark.usefixtures("no_vault_env")

GRACE = 2.0
PROBE = 0.2


@pytest.fixture
async def bao(tmp_path: Path) -> AsyncIterator[OpenBaoDev]:
    server = OpenBaoDev(log_path=tmp_path / "openbao.log")
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def _start(start_service, bao: OpenBaoDev, token: Any = None) -> RunningService:
    vault = VaultSettings(
        url=bao.url,
        token=token or bao.root_token,
        health_check_interval_seconds=PROBE,
        timeout_seconds=2,
    )
    # TTL 0: every request asks Vault, so an outage shows at once.
    running: RunningService = await start_service(
        vault, cache_ttl_seconds=0, outage_grace_seconds=GRACE
    )
    return running


async def _health_until(
    running: RunningService, predicate: Callable[[CredentialHealth], bool], timeout: float = 10
) -> CredentialHealth:
    """The service's health once `predicate` holds (it is checked as the probe loop updates it)."""
    deadline = time.monotonic() + timeout
    while True:
        health = running.service.health()
        if predicate(health):
            return health
        if time.monotonic() > deadline:
            raise AssertionError(f"health never got there: {health}")
        await asyncio.sleep(PROBE / 4)


async def _until_grace_ends(health: CredentialHealth) -> None:
    assert health.grace_ends_at is not None
    await asyncio.sleep(max((health.grace_ends_at - datetime.now(UTC)).total_seconds(), 0) + 0.05)


def _unavailable(answer: CredentialResponse) -> str:
    assert answer.secret is None
    assert answer.error is not None
    assert answer.error.error_class is ErrorClass.CREDENTIALS_UNAVAILABLE
    return answer.error.message


async def _integration(running: RunningService, bao: OpenBaoDev, unique_id, value: str) -> str:
    key = unique_id("out")
    path = f"integrations/{key}"
    await bao.write_secret(path, {"api_token": value})
    await running.add_integration(key, path)
    return key


async def test_a_sealed_vault_is_served_from_cache_for_the_grace_period_then_unavailable(
    bao: OpenBaoDev, start_service, unique_id
):
    running = await _start(start_service, bao)
    key = await _integration(running, bao, unique_id, "sealed-v1")
    assert secret_of(await running.ask(key)) == "sealed-v1"
    assert running.service.health().ready is True

    await bao.seal()
    served = await running.ask(key)
    health = running.service.health()

    assert secret_of(served) == "sealed-v1", "served from the cache within the grace period"
    assert (health.vault_reachable, health.ready) == (False, False)
    assert health.degraded_since is not None
    assert health.grace_ends_at is not None
    assert (health.grace_ends_at - health.degraded_since).total_seconds() == GRACE
    assert "sealed" in health.detail

    await _until_grace_ends(health)
    message = _unavailable(await running.ask(key))
    assert "sealed" in message
    assert "grace period" in message
    assert "grace period ended" in running.service.health().detail

    await bao.unseal()
    recovered = await _health_until(running, lambda h: h.ready)
    assert (recovered.degraded_since, recovered.grace_ends_at) == (None, None)
    assert secret_of(await running.ask(key)) == "sealed-v1"


async def test_an_unreachable_vault_is_served_from_cache_then_unavailable(
    bao: OpenBaoDev, start_service, unique_id
):
    running = await _start(start_service, bao)
    key = await _integration(running, bao, unique_id, "gone-v1")
    assert secret_of(await running.ask(key)) == "gone-v1"

    await bao.kill()
    assert secret_of(await running.ask(key)) == "gone-v1"
    health = running.service.health()
    assert (health.vault_reachable, health.ready) == (False, False)
    assert "unreachable" in health.detail

    await _until_grace_ends(health)
    message = _unavailable(await running.ask(key))
    assert "unreachable" in message


async def test_readiness_follows_vault_without_any_credential_request(
    bao: OpenBaoDev, start_service
):
    running = await _start(start_service, bao)
    await _health_until(running, lambda h: h.ready)

    await bao.seal()
    down = await _health_until(running, lambda h: not h.ready)
    assert down.vault_reachable is False
    assert down.degraded_since is not None

    await bao.unseal()
    await _health_until(running, lambda h: h.ready)


async def test_with_nothing_cached_an_outage_answers_credentials_unavailable_at_once(
    bao: OpenBaoDev, start_service, unique_id
):
    running = await _start(start_service, bao)
    key = await _integration(running, bao, unique_id, "never-read")

    await bao.seal()
    message = _unavailable(await running.ask(key))

    assert "nothing is cached" in message
    assert "never-read" not in message


async def _narrow_token(bao: OpenBaoDev, path: str) -> tuple[str, str]:
    """A token whose own policy reads only `path` (returns the token and the policy name)."""
    policy = f"narrow-{path.rsplit('/', 1)[-1]}"
    rules = f"""
path "secret/data/{path}" {{ capabilities = ["read"] }}
path "secret/metadata/{path}" {{ capabilities = ["read"] }}
path "auth/token/lookup-self" {{ capabilities = ["read"] }}
"""

    def setup() -> str:
        root = bao.client()
        root.sys.create_or_update_policy(name=policy, policy=rules)
        return str(root.auth.token.create(policies=[policy], ttl="1h")["auth"]["client_token"])

    return await asyncio.to_thread(setup), policy


async def test_after_a_policy_denial_the_cached_secret_is_not_served_even_during_an_outage(
    bao: OpenBaoDev, start_service, unique_id
):
    key = unique_id("deny")
    path = f"integrations/{key}"
    await bao.write_secret(path, {"api_token": "deny-v1"})
    token, policy = await _narrow_token(bao, path)
    running = await _start(start_service, bao, token=token)
    await running.add_integration(key, path)
    assert secret_of(await running.ask(key)) == "deny-v1"

    await asyncio.to_thread(
        bao.client().sys.create_or_update_policy,
        name=policy,
        policy='path "auth/token/lookup-self" { capabilities = ["read"] }',
    )
    denied = await running.ask(key)
    assert denied.error is not None
    assert denied.error.error_class is ErrorClass.CONFIGURATION
    assert "permission denied" in denied.error.message

    await bao.seal()
    message = _unavailable(await running.ask(key))
    assert "nothing is cached" in message


async def test_after_a_deletion_the_cached_secret_is_not_served_even_during_an_outage(
    bao: OpenBaoDev, start_service, unique_id
):
    running = await _start(start_service, bao)
    key = await _integration(running, bao, unique_id, "deleted-v1")
    assert secret_of(await running.ask(key)) == "deleted-v1"

    await asyncio.to_thread(
        bao.client().secrets.kv.v2.delete_latest_version_of_secret,
        path=f"integrations/{key}",
        mount_point="secret",
    )
    assert (await running.ask(key)).error is not None
    await bao.seal()

    assert "nothing is cached" in _unavailable(await running.ask(key))
