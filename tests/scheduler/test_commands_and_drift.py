"""Trigger and backfill fire on purpose through the same path; drift is logged, counted, alerted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
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
from syncbus_shared.contracts import (
    Alert,
    BackfillRequest,
    PeriodKind,
    RequestOrigin,
    ScheduleMode,
    SyncRequest,
    SyncScope,
    TriggerRequest,
)

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


async def test_a_trigger_fires_the_period_a_fire_now_would_cover_warm_up_first(
    nc: Client, jetstream: JetStreamContext, unique_id
):
    integration_id = unique_id("cmd")
    recorder = await Recorder().start(nc, integration_id)
    scheduler = await make_scheduler(nc, jetstream, clock=virtual_clock(NOW))

    reply = await scheduler.trigger(
        TriggerRequest(integration_id=integration_id), config(integration_id)
    )

    assert reply.error is None
    assert reply.idempotency_key == f"{integration_id}:2026-11"  # the previous whole month
    assert recorder.order() == [
        ("warmup", reply.idempotency_key),
        ("request", reply.idempotency_key),
    ]
    request = recorder.of("request")[0].body
    assert isinstance(request, SyncRequest)
    assert request.origin is RequestOrigin.CLI
    assert (request.period_start_local.isoformat(), request.period_end_local.isoformat()) == (  # type: ignore[union-attr]
        "2026-11-01",
        "2026-11-30",
    )
    assert await scheduler.firer.states.get(integration_id) is None  # no watermark moved


async def test_a_trigger_of_a_period_not_yet_due_is_refused_because_it_would_use_its_key_early(
    nc: Client, jetstream: JetStreamContext, unique_id
):
    integration_id = unique_id("cmd")
    scheduler = await make_scheduler(nc, jetstream, clock=virtual_clock(NOW))

    reply = await scheduler.trigger(
        TriggerRequest(integration_id=integration_id, period_id="2026-12"), config(integration_id)
    )

    assert reply.error is not None
    assert reply.error.message == (
        "period 2026-12 is not due yet: the schedule exports it at 2027-01-01 00:05 Europe/Oslo"
        " (2026-12-31T23:05Z), and exporting it earlier would use its key before the period is"
        " complete"
    )


async def test_a_trigger_of_an_incremental_schedule_exports_what_is_staged_under_an_instant_key(
    nc: Client, jetstream: JetStreamContext, unique_id
):
    integration_id = unique_id("cmd")
    scheduler = await make_scheduler(nc, jetstream, clock=virtual_clock(NOW))
    cfg = config(integration_id, "*/15 7-17 * * 1-5", mode=ScheduleMode.INCREMENTAL)

    reply = await scheduler.trigger(TriggerRequest(integration_id=integration_id), cfg)

    (stored,) = await stored_requests(jetstream, integration_id)
    request = SyncRequest.from_bytes(stored.data)
    assert reply.idempotency_key == stored.headers["Nats-Msg-Id"] == request.idempotency_key
    assert request.idempotency_key.startswith(f"{integration_id}:2026-12-03T12:00:")
    assert request.idempotency_key.endswith("Z")
    assert request.scope is SyncScope.STAGED
    assert request.period_id is None


async def test_an_incremental_schedule_has_no_periods_to_backfill_or_trigger_by_period(
    nc: Client, jetstream: JetStreamContext, unique_id
):
    integration_id = unique_id("cmd")
    scheduler = await make_scheduler(nc, jetstream, clock=virtual_clock(NOW))
    cfg = config(integration_id, "*/15 * * * *", mode=ScheduleMode.INCREMENTAL)

    backfill = await scheduler.backfill(
        BackfillRequest(integration_id=integration_id, from_period="2026-01", to_period="2026-02"),
        cfg,
    )
    trigger = await scheduler.trigger(
        TriggerRequest(integration_id=integration_id, period_id="2026-11"), cfg
    )

    assert backfill.error is not None
    assert "incremental schedule, which has no periods to backfill" in backfill.error.message
    assert trigger.error is not None
    assert "trigger it without --period" in trigger.error.message


async def test_a_backfill_refuses_a_range_reaching_a_period_not_yet_due(
    nc: Client, jetstream: JetStreamContext, unique_id
):
    integration_id = unique_id("cmd")
    scheduler = await make_scheduler(nc, jetstream, clock=virtual_clock(NOW))

    reply = await scheduler.backfill(
        BackfillRequest(integration_id=integration_id, from_period="2026-10", to_period="2026-12"),
        config(integration_id),
    )

    assert reply.error is not None
    assert reply.error.message.startswith("period 2026-12 is not due yet")
    assert await stored_requests(jetstream, integration_id) == []


async def test_a_backfill_leaves_the_catch_up_watermark_where_the_schedule_put_it(
    nc: Client, jetstream: JetStreamContext, unique_id
):
    integration_id = unique_id("cmd")
    mark = datetime(2026, 11, 30, 23, 5, tzinfo=UTC)
    scheduler = await make_scheduler(nc, jetstream, clock=virtual_clock(NOW))
    await scheduler.firer.states.put(
        ScheduleState(integration_id=integration_id, last_fired_for=mark)
    )

    reply = await scheduler.backfill(
        BackfillRequest(integration_id=integration_id, from_period="2017-01", to_period="2017-02"),
        config(integration_id),
    )

    assert [f.period_id for f in reply.fired] == ["2017-01", "2017-02"]
    state = await scheduler.firer.states.get(integration_id)
    assert state is not None
    assert state.last_fired_for == mark


async def test_a_late_fire_is_logged_counted_and_alerted_once_however_many_replicas_send_it(
    nc: Client, jetstream: JetStreamContext, unique_id
):
    integration_id = unique_id("drift")
    replicas = [await make_scheduler(nc, jetstream, drift_alert_seconds=60) for _ in range(2)]
    late = datetime.now(UTC) - timedelta(minutes=10)

    reports = [
        await replica.firer.fire(
            config(integration_id),
            late,
            due_at=late,
            origin=RequestOrigin.SCHEDULER,
            warm_up_first=False,
        )
        for replica in replicas
    ]

    assert [r.duplicate for r in reports] == [False, True]
    assert reports[0].drift_ms > 590_000
    assert [r.metrics.get("drift_over_threshold_total") for r in replicas] == [1, 0]
    (alert,) = await stored_alerts(jetstream, t.alert_subject("drift", integration_id))
    assert Alert.from_bytes(alert.data).details["key"] == reports[0].idempotency_key


async def test_a_catch_up_alerts_its_lateness_once_and_counts_each_late_fire(
    nc: Client, jetstream: JetStreamContext, unique_id
):
    integration_id = unique_id("drift")
    cfg = config(integration_id, "0 6 * * *", tz="UTC", period=PeriodKind.DAY)
    kv = await jetstream.key_value(t.KV_SCHEDULE_STATE)
    watermark = datetime(2026, 11, 30, 6, tzinfo=UTC)
    await kv.put(
        integration_id,
        ScheduleState(integration_id=integration_id, last_fired_for=watermark).to_bytes(),
    )
    scheduler = await make_scheduler(nc, jetstream, clock=virtual_clock(NOW))

    async with Running(scheduler):
        await scheduler.apply(cfg, integration_id)
        await scheduler.wait_settled(3)

    (alert,) = await stored_alerts(jetstream, t.alert_subject("drift", integration_id))
    details = Alert.from_bytes(alert.data).details
    assert details["catch_up"] is True
    assert details["count"] == 3
    assert scheduler.metrics.get("drift_over_threshold_total") == 3
    assert scheduler.metrics.get("catchup_fires_total") == 3


@pytest.mark.parametrize("lead", [0.0, 0.3])
async def test_a_scheduled_fire_sends_its_warm_up_lead_seconds_before_its_request(
    nc: Client, jetstream: JetStreamContext, unique_id, lead: float
):
    integration_id = unique_id("lead")
    cfg = config(integration_id, "0 6 * * *", lead=lead)
    assert cfg.schedule is not None
    recorder = await Recorder().start(nc, integration_id)
    scheduler = await make_scheduler(nc, jetstream)
    fire = datetime.now(UTC) + timedelta(seconds=1)
    scheduler.plan_at(integration_id, cfg.schedule, fire)

    async with Running(scheduler):
        await scheduler.wait_settled(1)

    warmup, request = recorder.seen
    assert (warmup.kind, request.kind) == ("warmup", "request")
    assert warmup.body.published_at >= fire - timedelta(seconds=lead) - timedelta(milliseconds=5)
    assert request.body.published_at >= fire
    assert request.at - warmup.at >= lead - 0.05
