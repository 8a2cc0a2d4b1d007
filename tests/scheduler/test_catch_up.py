"""Catch-up after downtime: missed fires within the window oldest first, older ones alerted once."""

from __future__ import annotations

from datetime import UTC, datetime

from nats.aio.client import Client
from nats.js import JetStreamContext
from scheduler_support import (
    Recorder,
    Running,
    config,
    make_scheduler,
    stored_alerts,
    stored_requests,
    virtual_clock,
)

from syncbus_scheduler.state import ScheduleState
from syncbus_shared import topology as t
from syncbus_shared.contracts import Alert, PeriodKind, RequestOrigin, SyncRequest
from syncbus_shared.integrations import put_integration

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
DAILY_6 = "0 6 * * *"  # 06:00 UTC; a day period: each fire exports the day before


def utc(month: int, day: int, hour: int = 6) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


async def _downtime_since(js: JetStreamContext, integration_id: str, last: datetime) -> None:
    states = await js.key_value(t.KV_SCHEDULE_STATE)
    await states.put(
        integration_id,
        ScheduleState(integration_id=integration_id, last_fired_for=last).to_bytes(),
    )


async def test_after_downtime_each_missed_period_is_fired_oldest_first_warm_up_before_request(
    nc: Client, jetstream: JetStreamContext, unique_id
):
    integration_id = unique_id("catch")
    cfg = config(integration_id, DAILY_6, tz="UTC", period=PeriodKind.DAY)
    await _downtime_since(jetstream, integration_id, utc(11, 30))
    recorder = await Recorder().start(nc, integration_id)
    scheduler = await make_scheduler(nc, jetstream, clock=virtual_clock(NOW))

    async with Running(scheduler):
        await scheduler.apply(cfg, integration_id)
        await scheduler.wait_settled(3)

    keys = [
        f"{integration_id}:2026-11-30",
        f"{integration_id}:2026-12-01",
        f"{integration_id}:2026-12-02",
    ]
    assert recorder.order() == [(kind, key) for key in keys for kind in ("warmup", "request")]
    requests = [s.body for s in recorder.of("request")]
    assert [r.scheduled_for for r in requests] == [utc(12, 1), utc(12, 2), utc(12, 3)]
    assert all(r.origin is RequestOrigin.SCHEDULER for r in requests)
    state = await scheduler.firer.states.get(integration_id)
    assert state is not None
    assert state.last_fired_for == utc(12, 3)
    assert state.last_key == keys[-1]
    # The next fire after catching up is tomorrow's, on time.
    assert scheduler.plans[integration_id].scheduled_for() == utc(12, 4)


async def test_misses_older_than_the_window_are_not_sent_and_raise_one_alert_listing_them(
    nc: Client, jetstream: JetStreamContext, unique_id
):
    integration_id = unique_id("catch")
    cfg = config(integration_id, DAILY_6, tz="UTC", period=PeriodKind.DAY)
    await _downtime_since(jetstream, integration_id, utc(11, 23))  # ten days
    recorder = await Recorder().start(nc, integration_id)
    replicas = [
        await make_scheduler(nc, jetstream, clock=virtual_clock(NOW), catchup_window_days=7)
        for _ in range(2)
    ]

    async with Running(replicas[0]), Running(replicas[1]):
        for replica in replicas:
            await replica.apply(cfg, integration_id)
        for replica in replicas:
            await replica.wait_settled(7)

    alerts = await stored_alerts(jetstream, t.alert_subject("missed_periods", integration_id))
    assert len(alerts) == 1  # two replicas, one stored alert
    alert = Alert.from_bytes(alerts[0].data)
    old = ["2026-11-23", "2026-11-24", "2026-11-25"]  # fired 24, 25, 26 Nov: before 26 Nov 12:00
    assert [m["period_id"] for m in alert.details["missed"]] == old
    assert alert.details["command"] == f"syncbus backfill {integration_id} 2026-11-23 2026-11-25"
    assert alert.message == (
        f"3 fire(s) of {integration_id} were missed longer ago than the 7-day catch-up window "
        "and were not sent (2026-11-23, 2026-11-24, 2026-11-25); export them with "
        f"`syncbus backfill {integration_id} 2026-11-23 2026-11-25`"
    )
    stored = [
        SyncRequest.from_bytes(m.data) for m in await stored_requests(jetstream, integration_id)
    ]
    in_window = [f"2026-11-{day}" for day in (26, 27, 28, 29, 30)] + ["2026-12-01", "2026-12-02"]
    assert [r.period_id for r in stored] == in_window  # once each, oldest first
    assert len(recorder.of("warmup")) >= 7


async def test_misses_already_alerted_are_not_listed_again_by_a_later_start(
    nc: Client, jetstream: JetStreamContext, unique_id
):
    integration_id = unique_id("catch")
    cfg = config(integration_id, DAILY_6, tz="UTC", period=PeriodKind.DAY)
    await _downtime_since(jetstream, integration_id, utc(11, 23))
    # A zero-day window: every miss is too old, so nothing is sent and the watermark stays.
    first = await make_scheduler(nc, jetstream, clock=virtual_clock(NOW), catchup_window_days=0)
    await first.apply(cfg, integration_id)
    later = await make_scheduler(nc, jetstream, clock=virtual_clock(NOW), catchup_window_days=0)
    await later.apply(cfg, integration_id)

    assert first.metrics.get("missed_beyond_window_total") == 10
    assert later.metrics.get("missed_beyond_window_total") == 0
    state = await first.firer.states.get(integration_id)
    assert state is not None
    assert state.missed_reported_through == utc(12, 3)
    assert state.last_fired_for == utc(11, 23)


async def test_a_request_stored_by_a_replica_that_died_before_its_watermark_is_not_sent_again(
    nc: Client, jetstream: JetStreamContext, unique_id
):
    integration_id = unique_id("catch")
    cfg = config(integration_id, DAILY_6, tz="UTC", period=PeriodKind.DAY)
    await _downtime_since(jetstream, integration_id, utc(12, 2))
    # The 3 December fire was stored, but its replica stopped before writing the watermark.
    stored = SyncRequest(
        integration_id=integration_id,
        period_id="2026-12-02",
        origin=RequestOrigin.SCHEDULER,
        scheduled_for=utc(12, 3),
    )
    await jetstream.publish(
        t.request_subject(integration_id),
        stored.to_bytes(),
        headers={"Nats-Msg-Id": stored.idempotency_key},
    )
    scheduler = await make_scheduler(nc, jetstream, clock=virtual_clock(NOW))

    await scheduler.apply(cfg, integration_id)

    plan = scheduler.plans[integration_id]
    assert plan.scheduled_for() == utc(12, 4)
    assert not plan.catch_up


async def test_a_daily_fire_of_a_monthly_period_catches_each_missed_period_up_once(
    nc: Client, jetstream: JetStreamContext, unique_id
):
    integration_id = unique_id("catch")
    cfg = config(integration_id, "0 6 * * *", tz="UTC", period=PeriodKind.MONTH)
    await _downtime_since(jetstream, integration_id, utc(11, 28))  # that fire exported October
    recorder = await Recorder().start(nc, integration_id)
    scheduler = await make_scheduler(nc, jetstream, clock=virtual_clock(NOW))

    async with Running(scheduler):
        await scheduler.apply(cfg, integration_id)
        await scheduler.wait_settled(1)

    # 29 and 30 November would export October again; 1 to 3 December all cover November.
    assert recorder.order() == [
        ("warmup", f"{integration_id}:2026-11"),
        ("request", f"{integration_id}:2026-11"),
    ]
    assert recorder.of("request")[0].body.scheduled_for == utc(12, 1)
    assert scheduler.plans[integration_id].scheduled_for() == datetime(2027, 1, 1, 6, tzinfo=UTC)


async def test_a_new_integration_has_nothing_to_catch_up(
    nc: Client, jetstream: JetStreamContext, unique_id
):
    integration_id = unique_id("catch")
    await put_integration(jetstream, config(integration_id))
    scheduler = await make_scheduler(nc, jetstream, clock=virtual_clock(NOW))

    await scheduler.apply(config(integration_id), integration_id)

    plan = scheduler.plans[integration_id]
    assert plan.scheduled_for() == datetime(2026, 12, 31, 23, 5, tzinfo=UTC)  # 1 Jan 00:05 Oslo
    assert plan.pending is None
