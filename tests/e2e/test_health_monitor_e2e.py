"""The health monitor probes with the vendor's cheapest call, at most once per 15 minutes."""

from __future__ import annotations

import pytest
from e2e_support import Integration
from nats.aio.client import Client

from syncbus_health_monitor.monitor import HealthMonitor
from syncbus_health_monitor.settings import PROBE_INTERVAL_FLOOR_SECONDS, HealthSettings
from syncbus_shared import topology as t
from syncbus_shared.contracts import HealthState, HealthStatus

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def _monitor(bus: Client, settings: HealthSettings | None = None) -> HealthMonitor:
    js = bus.jetstream()
    return HealthMonitor(bus, js, await js.key_value(t.KV_HEALTH), settings or HealthSettings())


async def test_a_probe_uses_typename_and_publishes_healthy_once_then_waits_for_the_interval(
    integration: Integration, bus: Client
):
    changes = await bus.subscribe(t.health_subject(integration.id))
    monitor = await _monitor(bus)
    before = (await integration.fake.get("/_fake/stats")).json()["requests_total"]
    status = await monitor.probe(integration.config)
    assert status.state is HealthState.HEALTHY
    event = HealthStatus.from_bytes((await changes.next_msg(timeout=5)).data)
    assert event.state is HealthState.HEALTHY
    after_probe = (await integration.fake.get("/_fake/stats")).json()["requests_total"]
    assert after_probe - before == 1  # one cheap call, and it counts
    # The next probe is due 15 minutes later, also for a fresh monitor (state is in KV).
    fresh = await _monitor(bus)
    due = fresh.next_probe_at(integration.config, await fresh.current(integration.id))
    assert (due - status.checked_at).total_seconds() == PROBE_INTERVAL_FLOOR_SECONDS
    await changes.unsubscribe()


async def test_a_probe_with_a_revoked_token_marks_the_integration_unhealthy_for_an_auth_reason(
    integration: Integration, bus: Client
):
    monitor = await _monitor(bus)
    assert (await monitor.probe(integration.config)).state is HealthState.HEALTHY
    await integration.fake.post("/_fake/tokens/revoke", json={"token": integration.token})
    status = await monitor.probe(integration.config)
    assert status.state is HealthState.UNHEALTHY
    assert status.reason.startswith("auth")
    assert integration.token not in status.reason
    assert status.consecutive_failures == 1
