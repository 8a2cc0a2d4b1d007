"""`syncbus health` as a user runs it: a real process reading real NATS state."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from syncbus_devstack import NatsServer
from syncbus_health_monitor.monitor import HealthMonitor
from syncbus_health_monitor.status import read_vendor_mode
from syncbus_shared.contracts import HealthConfig, HealthMode, IntegrationConfig
from syncbus_shared.probe_budget import ProbeBudget

MakeMonitor = Callable[..., Awaitable[HealthMonitor]]
AddIntegration = Callable[..., Awaitable[IntegrationConfig]]


async def _syncbus(nats_url: str, *args: str, columns: int = 250) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCBUS_")}
    env.update(SYNCBUS_NATS_URL=nats_url, COLUMNS=str(columns))
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


def _row(report: dict[str, Any], integration_id: str) -> dict[str, Any]:
    return next(r for r in report["integrations"] if r["integration_id"] == integration_id)


async def test_health_json_shows_state_reason_last_and_next_probe_and_budget_use(
    nats_server: NatsServer,
    make_monitor: MakeMonitor,
    add_integration: AddIntegration,
    jetstream,
    unique_id,
):
    probed = await add_integration(unique_id("probed"))
    passive = await add_integration(unique_id("quiet"), HealthConfig(mode=HealthMode.PASSIVE))
    monitor = await make_monitor()
    status = await monitor.probe(probed)
    await (await ProbeBudget.open(jetstream, clock=monitor.clock.now)).try_spend(
        probed.integration_id, kind="warmup"
    )
    code, out, errors = await _syncbus(nats_server.url, "health", "--json")
    assert code == 0, errors
    report = json.loads(out)
    row = _row(report, probed.integration_id)
    assert row["state"] == "healthy"
    assert row["reason"] == "probe succeeded"
    assert row["mode"] == "active"
    assert row["last_probe_at"] == status.checked_at.isoformat()
    assert status.next_probe_at is not None
    assert row["next_probe_at"] == status.next_probe_at.isoformat()
    assert row["budget"]["month_used"] == 2
    assert row["budget"]["per_month"] == 100
    assert row["budget"]["month_by_kind"] == {"probe": 1, "warmup": 1}
    quiet = _row(report, passive.integration_id)
    assert (quiet["state"], quiet["mode"], quiet["next_probe_at"]) == ("unknown", "passive", None)


async def test_health_prints_one_table_row_per_integration(
    nats_server: NatsServer, make_monitor: MakeMonitor, add_integration: AddIntegration, unique_id
):
    config = await add_integration(unique_id("table"))
    await (await make_monitor()).probe(config)
    code, out, errors = await _syncbus(nats_server.url, "health")
    assert code == 0, errors
    line = next(line for line in out.splitlines() if config.integration_id in line)
    assert "healthy" in line
    assert "probe succeeded" in line
    assert "1/100" in line  # budget use this month
    assert "(in " in line  # the next probe


async def test_vendor_mode_switches_a_vendor_to_passive_and_health_shows_it(
    nats_server: NatsServer, add_integration: AddIntegration, jetstream, unique_id
):
    config = await add_integration(unique_id("vendor"))
    code, _, errors = await _syncbus(
        nats_server.url, "health", "vendor-mode", "xledger", "passive", "--reason", "maintenance"
    )
    assert code == 0, errors
    entry = await read_vendor_mode(jetstream, "xledger")
    assert entry is not None
    assert (entry.mode, entry.set_by, entry.reason) == (
        HealthMode.PASSIVE,
        "operator",
        "maintenance",
    )
    code, out, _ = await _syncbus(nats_server.url, "health", "--json")
    report = json.loads(out)
    assert _row(report, config.integration_id)["mode"] == "passive"
    assert report["vendors"]["xledger"]["mode"] == "passive"


async def test_recheck_of_a_configured_integration_asks_the_monitor_and_says_it_probed(
    nats_server: NatsServer,
    make_monitor: MakeMonitor,
    add_integration: AddIntegration,
    unique_id: Callable[..., str],
) -> None:
    config = await add_integration(unique_id("recheck"))
    monitor = await make_monitor()
    subscription = await monitor.serve_rechecks()
    try:
        code, out, errors = await _syncbus(
            nats_server.url, "health", "recheck", config.integration_id
        )
    finally:
        await subscription.unsubscribe()
    assert code == 0, errors
    assert out.strip() == f"{config.integration_id}: probed now: healthy (probe succeeded)"
    assert errors == ""


async def test_health_without_a_reachable_nats_says_so_in_one_line_and_exits_1():
    code, out, errors = await _syncbus("nats://127.0.0.1:9", "health")
    assert code == 1
    assert "cannot reach NATS" in errors
    assert "Traceback" not in errors
    assert out == ""
