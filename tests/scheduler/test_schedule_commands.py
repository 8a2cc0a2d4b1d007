"""`syncbus schedules`, `pause`, `resume` and `trigger` as a script runs them: output and exit codes.

Each command runs as its own process (`python -m syncbus_cli`) against a real nats-server.
Exit codes: 0 done, 1 refused, 2 usage, 3 unavailable (cli/syncbus_cli/schedule_commands.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from nats.js import JetStreamContext
from scheduler_support import config

from syncbus_scheduler.service import build_app
from syncbus_scheduler.settings import SchedulerSettings
from syncbus_scheduler.state import ScheduleState
from syncbus_shared import topology as t
from syncbus_shared.contracts import IntegrationConfig, ScheduleMode
from syncbus_shared.integrations import get_integration, put_integration
from syncbus_shared.settings import NatsSettings


@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def json(self) -> Any:
        return json.loads(self.out)


async def syncbus(url: str, *args: str) -> Run:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCBUS_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "syncbus_cli",
        *args,
        "--nats-url",
        url,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return Run(process.returncode, out.decode(), err.decode())


async def test_schedules_shows_the_next_fires_local_and_utc_with_their_period_ids(
    nats_server, jetstream: JetStreamContext, unique_id
):
    integration_id = unique_id("cli")
    await put_integration(jetstream, config(integration_id))
    states = await jetstream.key_value(t.KV_SCHEDULE_STATE)
    last = datetime(2026, 11, 30, 23, 5, tzinfo=UTC)
    await states.put(
        integration_id,
        ScheduleState(
            integration_id=integration_id, last_fired_for=last, last_key=f"{integration_id}:2026-11"
        ).to_bytes(),
    )

    run = await syncbus(nats_server.url, "schedules", integration_id, "--count", "2", "--json")

    assert run.code == 0, run.err
    (row,) = run.json["schedules"]
    assert row["status"] == "active"
    assert row["last_key"] == f"{integration_id}:2026-11"
    first = row["next"][0]
    assert first["period_id"] == "2026-12"
    assert first["idempotency_key"] == f"{integration_id}:2026-12"
    assert first["local"] == "2027-01-01T00:05:00+01:00"
    assert first["utc"] == "2026-12-31T23:05:00Z"
    assert first["warmup_at"] == "2026-12-31T23:04:30Z"
    assert (first["period_start_local"], first["period_end_local"]) == ("2026-12-01", "2026-12-31")
    assert [n["period_id"] for n in row["next"]] == ["2026-12", "2027-01"]

    text = await syncbus(nats_server.url, "schedules", integration_id)
    assert text.code == 0
    assert "2027-01-01T00:05:00+01:00  = 2026-12-31T23:05:00Z" in text.out
    assert f"{integration_id}:2026-12" in text.out


async def test_pause_and_resume_change_the_config_and_say_when_there_was_nothing_to_change(
    nats_server, jetstream: JetStreamContext, unique_id
):
    integration_id = unique_id("cli")
    await put_integration(jetstream, config(integration_id))

    paused = await syncbus(nats_server.url, "pause", integration_id, "--json")
    again = await syncbus(nats_server.url, "pause", integration_id)
    stored = await get_integration(jetstream, integration_id)
    resumed = await syncbus(nats_server.url, "resume", integration_id, "--json")
    after = await get_integration(jetstream, integration_id)

    assert (paused.code, paused.json) == (
        0,
        {"integration_id": integration_id, "paused": True, "changed": True},
    )
    assert (again.code, again.out.strip()) == (0, f"{integration_id} was already paused")
    assert stored is not None
    assert stored.schedule is not None
    assert stored.schedule.paused
    assert resumed.code == 0
    assert resumed.json["changed"] is True
    assert resumed.json["next"]["period_id"] == "2026-12"
    assert after is not None
    assert after.schedule is not None
    assert not after.schedule.paused


async def test_resume_with_skip_missed_moves_the_watermark_so_nothing_is_caught_up(
    nats_server, jetstream: JetStreamContext, unique_id
):
    integration_id = unique_id("cli")
    await put_integration(jetstream, config(integration_id, "0 6 * * *", paused=True))
    states = await jetstream.key_value(t.KV_SCHEDULE_STATE)
    last = datetime(2026, 11, 1, 6, tzinfo=UTC)
    await states.put(
        integration_id, ScheduleState(integration_id=integration_id, last_fired_for=last).to_bytes()
    )

    run = await syncbus(nats_server.url, "resume", integration_id, "--skip-missed", "--json")

    assert run.code == 0, run.err
    assert run.json["missed"] == 0
    state = ScheduleState.from_bytes((await states.get(integration_id)).value or b"")
    assert state.last_fired_for is not None
    assert state.last_fired_for > last


async def test_errors_are_one_sentence_with_an_exit_code_scripts_can_rely_on(
    nats_server, jetstream: JetStreamContext, unique_id
):
    unscheduled = unique_id("cli")
    await put_integration(
        jetstream,
        IntegrationConfig(
            integration_id=unscheduled, vendor="xledger", endpoint="http://x", credentials_path="p"
        ),
    )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]  # nothing listens here once the socket is closed

    missing = await syncbus(nats_server.url, "pause", "no-such-integration", "--json")
    no_schedule = await syncbus(nats_server.url, "pause", unscheduled)
    bad_id = await syncbus(nats_server.url, "trigger", "toyen.xledger")
    bad_period = await syncbus(nats_server.url, "trigger", unscheduled, "--period", "Nov-2026")
    no_scheduler = await syncbus(nats_server.url, "trigger", unscheduled, "--json")
    unreachable = await syncbus(f"nats://127.0.0.1:{closed_port}", "schedules")

    assert (missing.code, missing.json["exit_code"]) == (1, 1)
    assert (
        missing.err.strip() == "syncbus pause: integration 'no-such-integration' is not configured"
    )
    assert no_schedule.code == 1
    assert (
        no_schedule.err.strip()
        == f"syncbus pause: integration '{unscheduled}' has no schedule to pause"
    )
    assert bad_id.code == 2
    assert "is not an integration id" in bad_id.err or "subject token" in bad_id.err
    assert bad_period.code == 2
    assert bad_period.err.startswith("syncbus trigger: a period id ")
    assert no_scheduler.code == 3
    assert no_scheduler.json == {"error": "no scheduler replica is running", "exit_code": 3}
    assert unreachable.code == 3
    assert unreachable.err.startswith("syncbus schedules: cannot reach NATS")
    for run in (missing, no_schedule, bad_id, bad_period, no_scheduler, unreachable):
        assert "Traceback" not in run.err
        assert len(run.err.strip().splitlines()) == 1


async def test_trigger_asks_a_running_scheduler_to_fire_now_and_prints_the_key(
    nats_server, jetstream: JetStreamContext, unique_id
):
    integration_id = unique_id("cli")
    await put_integration(
        jetstream, config(integration_id, "*/15 * * * *", mode=ScheduleMode.INCREMENTAL)
    )
    monthly = unique_id("cli")
    await put_integration(jetstream, config(monthly))
    app = build_app(NatsSettings(url=nats_server.url), SchedulerSettings(catchup_lead_seconds=0.05))
    async with app.broker:  # type: ignore[union-attr]
        await app.start()
        try:
            fired = await syncbus(nats_server.url, "trigger", integration_id, "--json")
            period = await syncbus(nats_server.url, "trigger", monthly, "--period", "2026-10")
            early = await syncbus(nats_server.url, "trigger", monthly, "--period", "2026-12")
            status = await syncbus(nats_server.url, "schedules", "--json")
        finally:
            await app.stop()

    assert fired.code == 0, fired.err
    assert fired.json["idempotency_key"].startswith(f"{integration_id}:")
    assert "period_id" not in fired.json
    assert period.code == 0, period.err
    assert period.out.startswith(f"triggered {monthly}:2026-10  scheduled_for=2026-10-31T23:05:00")
    assert early.code == 1
    assert early.err.startswith("syncbus trigger: period 2026-12 is not due yet")
    assert len(status.json["replicas"]) == 1
    assert status.json["replicas"][0]["loaded"] is True
