"""`CredentialService.health()`: a frozen snapshot of what the service last saw of Vault, cheap
enough for every liveness/readiness probe (the HTTP endpoints call it)."""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime, timedelta

import pytest

from syncbus_credentials.health import CredentialHealth, VaultState
from syncbus_credentials.service import build
from syncbus_credentials.settings import CredentialSettings, VaultSettings
from syncbus_shared.settings import NatsSettings

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


class Wall:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def test_credential_health_has_the_agreed_fields_and_is_frozen():
    fields = {f.name: f.type for f in dataclasses.fields(CredentialHealth)}
    assert fields == {
        "vault_reachable": "bool",
        "degraded_since": "datetime | None",
        "grace_ends_at": "datetime | None",
        "ready": "bool",
        "detail": "str",
    }
    health = CredentialHealth(
        vault_reachable=True, degraded_since=None, grace_ends_at=None, ready=True, detail="ok"
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        health.ready = False  # type: ignore[misc]


def test_before_vault_has_answered_the_service_is_not_ready():
    health = VaultState(900).health()
    assert (health.vault_reachable, health.ready) == (False, False)
    assert health.degraded_since is None


def test_an_outage_starts_once_and_its_grace_ends_after_the_configured_time():
    wall = Wall()
    state = VaultState(900, wall_clock=wall)
    state.logged_in()
    assert state.health().ready is True

    state.unavailable("Vault at https://vault:8200 is sealed")
    wall.now += timedelta(minutes=5)
    state.unavailable("Vault at https://vault:8200 is sealed")
    during = state.health()

    assert during.degraded_since == T0, "the outage began at the first failure"
    assert during.grace_ends_at == T0 + timedelta(minutes=15)
    assert (during.vault_reachable, during.ready) == (False, False)
    assert "sealed" in during.detail
    assert "served until" in during.detail
    assert state.within_grace() is True

    wall.now = T0 + timedelta(minutes=15)
    assert state.within_grace() is False
    assert "grace period ended" in state.health().detail

    state.reachable()
    after = state.health()
    assert (after.vault_reachable, after.ready, after.degraded_since) == (True, True, None)


def test_a_refused_login_leaves_vault_reachable_but_the_service_not_ready():
    state = VaultState(900)
    state.logged_in()
    state.login_refused("AppRole login at auth/approle was refused: invalid role or secret ID")
    health = state.health()
    assert (health.vault_reachable, health.ready) == (True, False)
    assert "AppRole" in health.detail


def test_health_answers_without_io_even_when_vault_is_nowhere(unused_tcp_port: int):
    built = build(
        NatsSettings(url=f"nats://127.0.0.1:{unused_tcp_port}", user=None, password=None),
        VaultSettings(url=f"http://127.0.0.1:{unused_tcp_port}"),
        CredentialSettings(),
    )
    started = time.monotonic()
    for _ in range(1000):
        health = built.service.health()
    assert time.monotonic() - started < 0.5
    assert health.ready is False
