"""Rotation: a new KV version is picked up within the cache TTL from the version metadata (no
re-read of the secret while it is unchanged), deleted secrets are never served, and
`credentials.invalidate.<id>` forces a refresh in every replica (real OpenBao, real NATS)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from credentials_support import Sessions, secret_of

from syncbus_credentials.cache import SecretCache
from syncbus_credentials.errors import SecretNotFoundError
from syncbus_credentials.health import VaultState
from syncbus_credentials.settings import VaultSettings
from syncbus_credentials.vault import VaultReader
from syncbus_devstack import OpenBaoDev
from syncbus_shared import topology as t
from syncbus_shared.contracts import ErrorClass

pytestmark = pytest.mark.usefixtures("no_vault_env")

TTL = 60.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _root_settings(openbao: OpenBaoDev) -> VaultSettings:
    return VaultSettings(url=openbao.url, token=openbao.root_token)


@pytest.fixture
def cache_on(make_session: Sessions) -> Callable[[OpenBaoDev, Clock], SecretCache]:
    def make(openbao: OpenBaoDev, clock: Clock) -> SecretCache:
        session = make_session(_root_settings(openbao))
        return SecretCache(VaultReader(session), session.state, TTL, clock=clock)

    return make


async def _kv(openbao: OpenBaoDev, method: str, **kwargs: Any) -> Any:
    kv = openbao.client().secrets.kv.v2
    return await asyncio.to_thread(getattr(kv, method), mount_point="secret", **kwargs)


async def test_a_rotated_secret_is_served_within_the_ttl_from_a_version_check(
    openbao: OpenBaoDev, cache_on, unique_id
):
    clock = Clock()
    cache = cache_on(openbao, clock)
    key = unique_id("rot")
    path = f"integrations/{key}"
    await openbao.write_secret(path, {"api_token": "rot-v1"})

    first = await cache.get(key, path)
    await openbao.write_secret(path, {"api_token": "rot-v2"})
    clock.now += TTL / 2
    within = await cache.get(key, path)
    clock.now += TTL / 2
    rotated = await cache.get(key, path)

    assert (first.source, first.secret.data["api_token"]) == ("vault", "rot-v1")
    assert (within.source, within.secret.data["api_token"]) == ("cache", "rot-v1")
    assert (rotated.source, rotated.secret.data["api_token"], rotated.secret.version) == (
        "vault",
        "rot-v2",
        2,
    )
    assert (cache.stats.reads, cache.stats.version_checks) == (2, 1)


async def test_an_unchanged_secret_is_revalidated_from_its_metadata_without_reading_it_again(
    openbao: OpenBaoDev, cache_on, unique_id
):
    clock = Clock()
    cache = cache_on(openbao, clock)
    key = unique_id("same")
    path = f"integrations/{key}"
    await openbao.write_secret(path, {"api_token": "same-v1"})

    await cache.get(key, path)
    for _ in range(3):
        clock.now += TTL
        found = await cache.get(key, path)
        assert found.source == "revalidated"
        assert found.secret.data["api_token"] == "same-v1"
    clock.now += TTL / 2
    assert (await cache.get(key, path)).source == "cache", "a revalidation starts the TTL over"

    assert (cache.stats.reads, cache.stats.version_checks) == (1, 3)


async def test_a_soft_deleted_latest_version_is_never_served_from_the_cache(
    openbao: OpenBaoDev, cache_on, unique_id
):
    clock = Clock()
    cache = cache_on(openbao, clock)
    key = unique_id("del")
    path = f"integrations/{key}"
    await openbao.write_secret(path, {"api_token": "del-v1"})
    await cache.get(key, path)

    await _kv(openbao, "delete_latest_version_of_secret", path=path)
    clock.now += TTL
    with pytest.raises(SecretNotFoundError, match="deleted"):
        await cache.get(key, path)
    with pytest.raises(SecretNotFoundError):
        await cache.get(key, path, force=True)


@pytest.mark.parametrize("how", ["destroy_secret_versions", "delete_metadata_and_all_versions"])
async def test_a_destroyed_or_pruned_secret_is_never_served_from_the_cache(
    openbao: OpenBaoDev, cache_on, unique_id, how: str
):
    clock = Clock()
    cache = cache_on(openbao, clock)
    key = unique_id("gone")
    path = f"integrations/{key}"
    await openbao.write_secret(path, {"api_token": "gone-v1"})
    await cache.get(key, path)

    if how == "destroy_secret_versions":
        await _kv(openbao, how, path=path, versions=[1])
    else:
        await _kv(openbao, how, path=path)
    clock.now += TTL
    with pytest.raises(SecretNotFoundError):
        await cache.get(key, path)


async def test_a_forced_refresh_reads_the_new_version_at_once(
    openbao: OpenBaoDev, cache_on, unique_id
):
    clock = Clock()
    cache = cache_on(openbao, clock)
    key = unique_id("force")
    path = f"integrations/{key}"
    await openbao.write_secret(path, {"api_token": "force-v1"})
    await cache.get(key, path)
    await openbao.write_secret(path, {"api_token": "force-v2"})

    found = await cache.get(key, path, force=True)

    assert found.secret.data["api_token"] == "force-v2"


async def test_an_invalidation_during_a_read_keeps_that_read_out_of_the_cache(
    openbao: OpenBaoDev, make_session: Sessions, unique_id
):
    session = make_session(_root_settings(openbao))
    reader = VaultReader(session)
    key = unique_id("race")
    path = f"integrations/{key}"
    await openbao.write_secret(path, {"api_token": "race-v1"})
    cache = SecretCache(reader, VaultState(900), TTL)
    reading = asyncio.Event()
    release = asyncio.Event()
    real_read = reader.read

    async def slow_read(p: str, *, version: int | None = None) -> Any:
        found = await real_read(p, version=version)
        reading.set()
        await release.wait()
        return found

    reader.read = slow_read  # type: ignore[method-assign]
    pending = asyncio.create_task(cache.get(key, path))
    await reading.wait()
    cache.invalidate(key)
    await openbao.write_secret(path, {"api_token": "race-v2"})
    release.set()
    assert (await pending).secret.data["api_token"] == "race-v1", "asked before: gets its read"

    reader.read = real_read  # type: ignore[method-assign]
    assert (await cache.get(key, path)).secret.data["api_token"] == "race-v2"


# --- through NATS ----------------------------------------------------------------------------


async def test_credentials_invalidate_makes_the_next_request_read_the_rotated_secret(
    openbao: OpenBaoDev, start_service, unique_id
):
    running = await start_service(_root_settings(openbao), cache_ttl_seconds=300)
    key = unique_id("inv")
    path = f"integrations/{key}"
    await openbao.write_secret(path, {"api_token": "inv-v1"})
    await running.add_integration(key, path)

    assert secret_of(await running.ask(key)) == "inv-v1"
    await openbao.write_secret(path, {"api_token": "inv-v2"})
    assert secret_of(await running.ask(key)) == "inv-v1", "cached within its TTL"
    await running.invalidate(key)
    answer = await running.ask(key)

    assert secret_of(answer) == "inv-v2"
    assert answer.version == 2


async def test_an_invalidation_reaches_every_replica(
    openbao: OpenBaoDev, start_service, unique_id, nc
):
    replicas = [
        await start_service(_root_settings(openbao), cache_ttl_seconds=300) for _ in range(2)
    ]
    key = unique_id("rep")
    path = f"integrations/{key}"
    await openbao.write_secret(path, {"api_token": "rep-v1"})
    await replicas[0].add_integration(key, path)
    for replica in replicas:  # fill each replica's cache directly (requests share a queue)
        await replica.service.cache.get(key, path)

    inbox = nc.new_inbox()
    replies = await nc.subscribe(inbox, max_msgs=2)
    await nc.publish(t.credentials_invalidate_subject(key), b"", reply=inbox)
    for _ in replicas:
        await replies.next_msg(timeout=10)

    for replica in replicas:
        assert replica.service.cache.invalidate(key) is False, "already dropped"


async def test_a_deleted_secret_gets_a_configuration_error_not_the_cached_value(
    openbao: OpenBaoDev, start_service, unique_id
):
    running = await start_service(_root_settings(openbao), cache_ttl_seconds=0)
    key = unique_id("cfg")
    path = f"integrations/{key}"
    await openbao.write_secret(path, {"api_token": "cfg-v1"})
    await running.add_integration(key, path)
    assert secret_of(await running.ask(key)) == "cfg-v1"

    await _kv(openbao, "delete_latest_version_of_secret", path=path)
    answer = await running.ask(key)

    assert answer.secret is None
    assert answer.error is not None
    assert answer.error.error_class is ErrorClass.CONFIGURATION
    assert "deleted" in answer.error.message
