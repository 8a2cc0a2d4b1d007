"""The health monitor against the real stack: credential service, OpenBao, the Xledger fake."""

from __future__ import annotations

from datetime import timedelta

import pytest
from e2e_support import Integration
from nats.aio.client import Client

from syncbus_health_monitor.monitor import HealthMonitor
from syncbus_health_monitor.settings import PROBE_INTERVAL_FLOOR_SECONDS, HealthSettings
from syncbus_health_monitor.status import current_health
from syncbus_shared import topology as t
from syncbus_shared.contracts import ErrorClass, HealthState, HealthStatus
from syncbus_shared.probe_budget import ProbeBudget

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def _monitor(bus: Client, settings: HealthSettings | None = None) -> HealthMonitor:
    return await HealthMonitor.open(bus, settings or HealthSettings())


async def test_a_probe_uses_typename_publishes_healthy_once_and_a_fresh_monitor_waits_at_least_the_floor(
    integration: Integration, bus: Client
):
    changes = await bus.subscribe(t.health_subject(integration.id))
    monitor = await _monitor(bus)
    before = (await integration.fake.get("/_fake/stats")).json()
    status = await monitor.probe(integration.config)
    assert status.state is HealthState.HEALTHY
    event = HealthStatus.from_bytes((await changes.next_msg(timeout=5)).data)
    assert event.state is HealthState.HEALTHY
    after = (await integration.fake.get("/_fake/stats")).json()
    assert after["requests_total"] - before["requests_total"] == 1  # one cheap call, it counts
    assert (
        after["by_operation"].get("__typename", 0) - before["by_operation"].get("__typename", 0)
        == 1
    )
    # The next probe is at least 15 minutes later (the default Xledger budget paces it to
    # hours), also for a fresh monitor: the state is in KV.
    fresh = await _monitor(bus)
    due = fresh.due_at(integration.config, await fresh.current(integration.id))
    assert due - status.checked_at >= timedelta(seconds=PROBE_INTERVAL_FLOOR_SECONDS)
    assert await fresh.check(integration.config) == due
    after_check = (await integration.fake.get("/_fake/stats")).json()
    assert after_check["requests_total"] == after["requests_total"]
    usage = await (await ProbeBudget.open(bus.jetstream())).usage(integration.id)
    assert (usage.month_used, usage.limits.per_month) == (1, 100)
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
    assert status.error_class is ErrorClass.AUTH
    assert integration.token not in status.reason
    assert status.consecutive_failures == 1
    stored = await current_health(bus.jetstream(), integration.id)
    assert stored is not None
    assert stored.fails_fast()  # what the dispatcher asks before it calls the vendor
