"""The health-monitor service as it runs: its own process, real NATS, OpenBao and Xledger fake.

This module runs its own stack (credential service and health monitor, no dispatcher), with a
short rescan and the loudly logged development override of the probe floor, so that a probe
every second can be watched in seconds.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
import pytest_asyncio
from e2e_support import DEDUP_WINDOW_SECONDS, Integration
from nats.aio.client import Client
from nats.js.api import DeliverPolicy

from syncbus_devstack import Stack
from syncbus_health_monitor.status import read_vendor_mode, set_vendor_mode
from syncbus_shared import topology as t
from syncbus_shared.contracts import (
    Alert,
    AlertKind,
    HealthConfig,
    HealthMode,
    HealthState,
    HealthStatus,
    ProbeBudgetConfig,
    SyncResult,
    SyncStatus,
)
from syncbus_shared.integrations import put_integration
from syncbus_shared.settings import TopologySettings

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    async with Stack(
        tmp_path_factory.mktemp("health-stack"),
        services=("credentials", "health-monitor"),
        topology=TopologySettings(request_dedup_window_seconds=DEDUP_WINDOW_SECONDS),
        extra_env={
            "SYNCBUS_HEALTH_RESCAN_SECONDS": "0.5",
            "SYNCBUS_HEALTH_DEV_MIN_INTERVAL_SECONDS": "1",
            "SYNCBUS_HEALTH_AUTO_PASSIVE_SECONDS": "3600",
        },
    ) as running:
        yield running


async def _status_where(
    bus: Client, integration_id: str, check, timeout: float = 30.0
) -> HealthStatus:
    """The first stored status of this integration for which `check` holds (KV watch)."""
    kv = await bus.jetstream().key_value(t.KV_HEALTH)
    watcher = await kv.watch(integration_id)
    try:
        async with asyncio.timeout(timeout):
            while True:
                entry = await watcher.updates(timeout=timeout)
                if entry is None or entry.value is None:
                    continue
                status = HealthStatus.from_bytes(entry.value)
                if check(status):
                    return status
    finally:
        await watcher.stop()


async def _syncbus(stack: Stack, *args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCBUS_")}
    env.update(SYNCBUS_NATS_URL=stack.nats_url, COLUMNS="250")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "syncbus_cli",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, errors = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), errors.decode()


async def test_the_service_probes_a_new_integration_and_syncbus_health_shows_state_probes_and_budget(
    stack: Stack, integration: Integration, bus: Client
):
    status = await _status_where(bus, integration.id, lambda s: s.last_probe_at is not None)
    assert status.state is HealthState.HEALTHY
    assert status.next_probe_at is not None
    # The integration asks for 15 minutes; the default Xledger budget paces it to hours.
    assert status.next_probe_at - status.checked_at >= timedelta(minutes=15)
    code, out, errors = await _syncbus(stack, "health", "--json")
    assert code == 0, errors
    row = next(r for r in json.loads(out)["integrations"] if r["integration_id"] == integration.id)
    assert row["state"] == "healthy"
    assert row["last_probe_at"] == status.last_probe_at.isoformat()
    assert row["next_probe_at"] == status.next_probe_at.isoformat()
    assert (row["budget"]["month_used"], row["budget"]["per_month"]) == (1, 100)
    stats = (await integration.fake.get("/_fake/stats")).json()
    assert stats["by_operation"].get("__typename", 0) >= 1


async def test_syncbus_health_recheck_asks_the_running_service_and_the_floor_still_holds(
    stack: Stack, integration: Integration, bus: Client
):
    first = await _status_where(bus, integration.id, lambda s: s.last_probe_at is not None)
    code, out, errors = await _syncbus(stack, "health", "recheck", integration.id, "--json")
    assert code == 0, errors
    answer = json.loads(out)
    assert answer["probed"] is False  # probed a moment ago: the 15-minute floor holds
    assert answer["status"]["last_probe_at"] == first.model_dump(mode="json")["last_probe_at"]
    code, out, errors = await _syncbus(stack, "health", "recheck", "nobody-here")
    assert code == 1, errors
    assert "integration 'nobody-here' is not configured" in errors


async def test_the_development_override_is_logged_loudly_by_the_running_service(stack: Stack):
    log = (stack.log_dir / "health-monitor.log").read_text(encoding="utf-8")
    line = next(line for line in log.splitlines() if "health.dev_interval_override" in line)
    assert "DEVELOPMENT OVERRIDE" in line
    assert '"level": "warning"' in line or '"log_level": "warning"' in line


async def test_a_passive_integration_gets_its_health_from_a_sync_result_on_the_bus(
    integration: Integration, bus: Client
):
    passive = integration.config.model_copy(
        update={"health": HealthConfig(mode=HealthMode.PASSIVE)}
    )
    await put_integration(integration.js, passive)
    result = SyncResult(
        request_id=f"r-{integration.id}",
        integration_id=integration.id,
        idempotency_key=f"{integration.id}:2026-11",
        status=SyncStatus.SUCCEEDED,
        vouchers=1,  # a sync that exported nothing called no vendor: no evidence
    )
    await integration.js.publish(t.result_subject(integration.id), result.to_bytes())
    status = await _status_where(bus, integration.id, lambda s: s.source == "sync")
    assert status.state is HealthState.HEALTHY
    assert status.reason == f"sync {integration.id}:2026-11 succeeded"


@pytest_asyncio.fixture(loop_scope="module")
async def burst_limited(integration: Integration, bus: Client) -> AsyncIterator[Integration]:
    """This integration probed every second; afterwards the fake's limit and Xledger's mode
    go back to what they were, for the rest of the module."""
    fast = integration.config.model_copy(
        update={
            "health": HealthConfig(
                interval_seconds=1,
                budget=ProbeBudgetConfig(per_hour=100_000, per_month=10_000_000),
            )
        }
    )
    await put_integration(integration.js, fast)
    try:
        yield integration
    finally:
        await integration.fake.post("/_fake/faults", json={"burst_limit": None})
        await set_vendor_mode(bus.jetstream(), "xledger", HealthMode.ACTIVE, "end of test")


async def test_a_rate_limited_probe_makes_the_running_service_switch_xledger_to_passive_and_alert(
    stack: Stack, burst_limited: Integration, bus: Client
):
    it = burst_limited
    await _status_where(bus, it.id, lambda s: s.last_probe_at is not None)
    alerts = await bus.jetstream().subscribe(
        t.alert_subject(AlertKind.QUOTA.value, it.id), deliver_policy=DeliverPolicy.ALL
    )
    await it.fake.post("/_fake/faults", json={"burst_limit": {"requests": 1, "window_seconds": 60}})
    alert = Alert.from_bytes((await alerts.next_msg(timeout=60)).data)
    await alerts.unsubscribe()
    assert alert.kind is AlertKind.QUOTA
    assert alert.details["vendor_code"] == "BAD_REQUEST.BURST_RATE_LIMIT_REACHED"
    assert "every xledger integration is passive now" in alert.message
    mode = await read_vendor_mode(bus.jetstream(), "xledger")
    assert mode is not None
    assert (mode.mode, mode.set_by) == (HealthMode.PASSIVE, "auto")
    status = await _status_where(bus, it.id, lambda s: s.mode is HealthMode.PASSIVE)
    assert status.vendor_code == "BAD_REQUEST.BURST_RATE_LIMIT_REACHED"
    code, out, errors = await _syncbus(stack, "health", "--json")
    assert code == 0, errors
    report = json.loads(out)
    row = next(r for r in report["integrations"] if r["integration_id"] == it.id)
    assert row["mode"] == "passive"
    assert row["next_probe_at"] is None
    assert report["vendors"]["xledger"]["set_by"] == "auto"
    # Once the vendor stops limiting, an operator switches it back with the CLI (while it
    # still limits, the next rate-limited probe would switch it to passive again).
    await it.fake.post("/_fake/faults", json={"burst_limit": None})
    code, _, errors = await _syncbus(stack, "health", "vendor-mode", "xledger", "active")
    assert code == 0, errors
    back = await read_vendor_mode(bus.jetstream(), "xledger")
    assert back is not None
    assert (back.mode, back.set_by) == (HealthMode.ACTIVE, "operator")
