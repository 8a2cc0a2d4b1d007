"""Adding, changing, pausing, resuming and removing a schedule in `integrations` takes effect live.

Each test runs the scheduler's real watch on the bucket and its clock loop, on a virtual clock
that stands just before a whole minute, so a `* * * * *` fire is due within two seconds.
"""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from nats.aio.client import Client
from nats.js import JetStreamContext
from scheduler_support import (
    Recorder,
    Running,
    config,
    just_before_a_minute,
    make_scheduler,
    stored_alerts,
    virtual_clock,
)

from syncbus_shared import topology as t
from syncbus_shared.contracts import ScheduleMode, ScheduleRejected

EVERY_MINUTE = "* * * * *"
OSLO = ZoneInfo("Europe/Oslo")


async def _put(js: JetStreamContext, integration_id: str, body: bytes) -> int:
    kv = await js.key_value(t.KV_INTEGRATIONS)
    return await kv.put(integration_id, body)


async def test_a_schedule_added_to_the_bucket_fires_without_a_restart(
    nc: Client, jetstream: JetStreamContext, unique_id
):
    integration_id = unique_id("live")
    at = just_before_a_minute()
    recorder = await Recorder().start(nc, integration_id)
    scheduler = await make_scheduler(nc, jetstream, clock=virtual_clock(at))

    async with Running(scheduler, jetstream):
        cfg = config(integration_id, EVERY_MINUTE, lead=0.5, mode=ScheduleMode.INCREMENTAL)
        await scheduler.wait_applied(
            integration_id, await _put(jetstream, integration_id, cfg.to_bytes())
        )
        await scheduler.wait_settled(1)

    minute = at + timedelta(seconds=1.5)
    key = f"{integration_id}:{minute:%Y-%m-%dT%H:%M:%S}Z"
    assert recorder.order() == [("warmup", key), ("request", key)]


async def test_a_changed_schedule_is_planned_afresh_at_once(
    nc: Client, jetstream: JetStreamContext, unique_id
):
    integration_id = unique_id("live")
    at = just_before_a_minute()
    recorder = await Recorder().start(nc, integration_id)
    scheduler = await make_scheduler(nc, jetstream, clock=virtual_clock(at))

    async with Running(scheduler, jetstream):
        yearly = config(integration_id, "0 0 1 1 *", lead=0.5, mode=ScheduleMode.INCREMENTAL)
        await scheduler.wait_applied(
            integration_id, await _put(jetstream, integration_id, yearly.to_bytes())
        )
        next_fire = scheduler.plans[integration_id].scheduled_for().astimezone(OSLO)
        assert (next_fire.month, next_fire.day, next_fire.hour) == (1, 1, 0)
        minutely = config(integration_id, EVERY_MINUTE, lead=0.5, mode=ScheduleMode.INCREMENTAL)
        await scheduler.wait_applied(
            integration_id, await _put(jetstream, integration_id, minutely.to_bytes())
        )
        await scheduler.wait_settled(1)

    assert [kind for kind, _ in recorder.order()] == ["warmup", "request"]
    assert recorder.of("request")[0].body.scheduled_for == at + timedelta(seconds=1.5)


async def test_a_paused_schedule_sends_nothing_and_resuming_it_catches_up_what_it_held(
    nc: Client, jetstream: JetStreamContext, unique_id
):
    integration_id = unique_id("live")
    at = just_before_a_minute()
    clock = virtual_clock(at)
    recorder = await Recorder().start(nc, integration_id)
    scheduler = await make_scheduler(nc, jetstream, clock=clock)
    active = config(integration_id, EVERY_MINUTE, lead=0.5, mode=ScheduleMode.INCREMENTAL)
    paused = config(
        integration_id, EVERY_MINUTE, lead=0.5, mode=ScheduleMode.INCREMENTAL, paused=True
    )

    async with Running(scheduler, jetstream):
        await scheduler.wait_applied(
            integration_id, await _put(jetstream, integration_id, active.to_bytes())
        )
        await scheduler.wait_settled(1)
        await scheduler.firer.writer.flush()
        await scheduler.wait_applied(
            integration_id, await _put(jetstream, integration_id, paused.to_bytes())
        )
        assert integration_id not in scheduler.plans
        assert scheduler.status().paused == 1
        clock.simulated_skew_s += 120  # two more minutes pass while it is paused
        await scheduler.tick()
        assert len(recorder.of("request")) == 1  # nothing was sent while paused
        await scheduler.wait_applied(
            integration_id, await _put(jetstream, integration_id, active.to_bytes())
        )
        await scheduler.wait_settled(3)

    first = at + timedelta(seconds=1.5)
    held = [first + timedelta(minutes=1), first + timedelta(minutes=2)]
    requests = recorder.of("request")
    assert [r.body.scheduled_for for r in requests] == [first, *held]
    assert [kind for kind, _ in recorder.order()] == ["warmup", "request"] * 3


async def test_a_removed_integration_is_unscheduled_at_once(
    nc: Client, jetstream: JetStreamContext, unique_id
):
    integration_id = unique_id("live")
    clock = virtual_clock(just_before_a_minute(seconds=20))
    recorder = await Recorder().start(nc, integration_id)
    scheduler = await make_scheduler(nc, jetstream, clock=clock)
    kv = await jetstream.key_value(t.KV_INTEGRATIONS)
    cfg = config(integration_id, EVERY_MINUTE, lead=0.5, mode=ScheduleMode.INCREMENTAL)

    async with Running(scheduler, jetstream):
        await scheduler.wait_applied(integration_id, await kv.put(integration_id, cfg.to_bytes()))
        assert integration_id in scheduler.plans
        await kv.delete(integration_id)
        # nats-py's delete returns True, not the revision: the delete marker is the bucket
        # stream's last message now, and its sequence is the revision to wait for.
        deleted = (await jetstream.stream_info(f"KV_{t.KV_INTEGRATIONS}")).state.last_seq
        await scheduler.wait_applied(integration_id, deleted)
        assert integration_id not in scheduler.plans
        clock.simulated_skew_s += 120
        await scheduler.tick()

    assert recorder.seen == []


async def test_a_config_whose_cron_never_fires_is_refused_with_an_alert_that_says_so(
    nc: Client, jetstream: JetStreamContext, unique_id
):
    integration_id = unique_id("live")
    scheduler = await make_scheduler(nc, jetstream)
    never = config(integration_id, "0 0 30 2 *")

    async with Running(scheduler, jetstream):
        await scheduler.wait_applied(
            integration_id, await _put(jetstream, integration_id, never.to_bytes())
        )

    assert integration_id not in scheduler.plans
    assert scheduler.status().rejected == 1
    assert scheduler.metrics.get("schedules_rejected_total") == 1
    alerts = await stored_alerts(jetstream, t.schedule_rejected_subject(integration_id))
    assert len(alerts) == 1
    rejected = ScheduleRejected.from_bytes(alerts[0].data)
    assert rejected.message == (
        f"{integration_id} is not scheduled: cron '0 0 30 2 *' never fires: February has no 30th"
    )
    assert rejected.cron == "0 0 30 2 *"


async def test_a_config_that_does_not_parse_is_refused_and_a_fixed_one_is_planned(
    nc: Client, jetstream: JetStreamContext, unique_id
):
    integration_id = unique_id("live")
    scheduler = await make_scheduler(nc, jetstream)

    async with Running(scheduler, jetstream):
        bad = b'{"integration_id": "x", "vendor": "xledger"}'
        await scheduler.wait_applied(integration_id, await _put(jetstream, integration_id, bad))
        assert scheduler.rejected[integration_id].startswith(
            "the config is not a valid integration"
        )
        good = config(integration_id)
        await scheduler.wait_applied(
            integration_id, await _put(jetstream, integration_id, good.to_bytes())
        )

    assert integration_id in scheduler.plans
    assert integration_id not in scheduler.rejected


async def test_configs_already_in_the_bucket_are_planned_before_the_scheduler_says_loaded(
    nc: Client, jetstream: JetStreamContext, unique_id
):
    ids = [unique_id("live") for _ in range(600)]  # more than one page of the initial load
    kv = await jetstream.key_value(t.KV_INTEGRATIONS)
    for integration_id in ids:
        await kv.put(integration_id, config(integration_id).to_bytes())
    paused = ids[0]
    await kv.put(paused, config(paused, paused=True).to_bytes())
    scheduler = await make_scheduler(nc, jetstream)

    async with Running(scheduler, jetstream):
        status = scheduler.status()

    assert status.loaded
    assert status.schedules == 599
    assert status.paused == 1


async def test_a_schedule_changed_with_syncbus_apply_is_planned_afresh_without_a_restart(
    nats_server, nc: Client, jetstream: JetStreamContext, unique_id, tmp_path
):
    import asyncio  # noqa: PLC0415

    from typer.testing import CliRunner  # noqa: PLC0415

    from syncbus_cli.main import app  # noqa: PLC0415

    integration_id = unique_id("live")
    scheduler = await make_scheduler(nc, jetstream)
    kv = await jetstream.key_value(t.KV_INTEGRATIONS)

    def declare(cron: str) -> str:
        path = tmp_path / "integrations.yaml"
        path.write_text(
            "integrations:\n"
            f"  - integration_id: {integration_id}\n"
            "    vendor: xledger\n"
            "    endpoint: https://demo.xledger.net/graphql\n"
            f"    credentials_path: integrations/{integration_id}\n"
            f'    schedule: {{cron: "{cron}", timezone: Europe/Oslo}}\n',
            encoding="utf-8",
        )
        return str(path)

    async def apply(cron: str) -> None:
        done = await asyncio.to_thread(
            CliRunner().invoke, app, ["apply", "-f", declare(cron), "--nats-url", nats_server.url]
        )
        assert done.exit_code == 0, done.output
        await scheduler.wait_applied(integration_id, (await kv.get(integration_id)).revision)

    async with Running(scheduler, jetstream):
        await apply("0 0 1 1 *")
        yearly = scheduler.plans[integration_id].scheduled_for().astimezone(OSLO)
        await apply("5 2 1 * *")
        monthly = scheduler.plans[integration_id].scheduled_for().astimezone(OSLO)

    assert (yearly.month, yearly.day, yearly.hour, yearly.minute) == (1, 1, 0, 0)
    assert (monthly.day, monthly.hour, monthly.minute) == (1, 2, 5)
