"""The scheduler over real NATS: warm-up before request, period keys, drift, backfill."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext

from syncbus_scheduler.firing import Firer
from syncbus_scheduler.service import Scheduler, build_app
from syncbus_scheduler.settings import SchedulerSettings
from syncbus_scheduler.state import ScheduleStateStore
from syncbus_shared import topology as t
from syncbus_shared.contracts import (
    Alert,
    BackfillReply,
    BackfillRequest,
    IntegrationConfig,
    PeriodKind,
    RequestOrigin,
    Schedule,
    SyncRequest,
    WarmUp,
)
from syncbus_shared.integrations import put_integration
from syncbus_shared.settings import NatsSettings


def _config(integration_id: str, cron: str = "5 0 1 * *", lead: float = 30.0) -> IntegrationConfig:
    return IntegrationConfig(
        integration_id=integration_id,
        vendor="xledger",
        endpoint="http://127.0.0.1:9/graphql",
        credentials_path=f"integrations/{integration_id}",
        schedule=Schedule(
            cron=cron, timezone="Europe/Oslo", period=PeriodKind.MONTH, lead_seconds=lead
        ),
    )


async def _firer(nc: Client, js: JetStreamContext, **settings: float) -> Firer:
    states = ScheduleStateStore(await js.key_value(t.KV_SCHEDULE_STATE))
    return Firer(nc, js, states, SchedulerSettings(catchup_lead_seconds=0.05, **settings))


class Recorder:
    """Every warm-up and request of one integration, in the order NATS delivered them."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        self.changed = asyncio.Event()

    async def start(self, nc: Client, integration_id: str) -> None:
        async def on(msg: object) -> None:
            subject = msg.subject  # type: ignore[attr-defined]
            data = msg.data  # type: ignore[attr-defined]
            if subject.startswith("sync.warmup."):
                self.seen.append(("warmup", WarmUp.from_bytes(data).idempotency_key))
            else:
                self.seen.append(("request", SyncRequest.from_bytes(data).idempotency_key))
            self.changed.set()

        await nc.subscribe(t.warmup_subject(integration_id), cb=on)
        await nc.subscribe(t.request_subject(integration_id), cb=on)
        await nc.flush()

    async def wait_for(self, count: int, timeout: float = 20.0) -> list[tuple[str, str]]:
        async def enough() -> None:
            while len(self.seen) < count:
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(enough(), timeout)
        return self.seen


async def test_a_backfill_sends_each_periods_warm_up_before_its_request_oldest_first(
    nc: Client, jetstream: JetStreamContext, unique_id
):
    integration_id = unique_id("sched")
    config = _config(integration_id)
    await put_integration(jetstream, config)
    recorder = Recorder()
    await recorder.start(nc, integration_id)
    scheduler = Scheduler(await _firer(nc, jetstream), SchedulerSettings(catchup_lead_seconds=0.05))
    reply = await scheduler.backfill(
        BackfillRequest(integration_id=integration_id, from_period="2017-01", to_period="2017-04"),
        config,
    )
    assert reply.error is None
    assert [f.period_id for f in reply.fired] == ["2017-01", "2017-02", "2017-03", "2017-04"]
    # 2017-01 is exported by the fire of 1 February 2017 00:05 in Oslo (23:05 UTC the day before).
    assert reply.fired[0].scheduled_for == datetime(2017, 1, 31, 23, 5, tzinfo=UTC)
    seen = await recorder.wait_for(8)
    keys = [f"{integration_id}:2017-0{m}" for m in range(1, 5)]
    assert seen == [(kind, key) for key in keys for kind in ("warmup", "request")]


async def test_a_scheduled_request_carries_its_period_key_as_nats_msg_id(
    nc: Client, jetstream: JetStreamContext, unique_id
):
    integration_id = unique_id("sched")
    config = _config(integration_id)
    firer = await _firer(nc, jetstream)
    fire = datetime(2026, 11, 30, 23, 5, tzinfo=UTC)  # 1 December 00:05 Oslo: November
    first = await firer.fire(
        config, fire, due_at=fire, origin=RequestOrigin.SCHEDULER, warm_up_first=False
    )
    again = await firer.fire(
        config, fire, due_at=fire, origin=RequestOrigin.SCHEDULER, warm_up_first=False
    )
    assert first.idempotency_key == f"{integration_id}:2026-11"
    assert not first.duplicate
    assert again.duplicate  # a second replica's copy is dropped by the broker
    msg = await jetstream.get_last_msg(t.STREAM_REQUESTS, t.request_subject(integration_id))
    assert msg.headers is not None
    assert msg.headers["Nats-Msg-Id"] == f"{integration_id}:2026-11"
    state = await firer.states.get(integration_id)
    assert state is not None
    assert state.last_period_id == "2026-11"


async def test_a_fire_published_later_than_the_threshold_raises_a_drift_alert(
    nc: Client, jetstream: JetStreamContext, unique_id
):
    integration_id = unique_id("sched")
    firer = await _firer(nc, jetstream, drift_alert_seconds=60)
    alerts = await jetstream.subscribe(t.alert_subject("drift", integration_id))
    late = datetime.now(UTC) - timedelta(minutes=10)
    report = await firer.fire(
        _config(integration_id),
        late,
        due_at=late,
        origin=RequestOrigin.SCHEDULER,
        warm_up_first=False,
    )
    assert report.drift_ms > 590_000
    alert = Alert.from_bytes((await alerts.next_msg(timeout=5)).data)
    assert alert.details["key"] == report.idempotency_key


async def test_a_fire_on_time_raises_no_drift_alert(
    nc: Client, jetstream: JetStreamContext, unique_id
):
    integration_id = unique_id("sched")
    firer = await _firer(nc, jetstream, drift_alert_seconds=60)
    now = datetime.now(UTC)
    await firer.fire(
        _config(integration_id),
        now,
        due_at=now,
        origin=RequestOrigin.SCHEDULER,
        warm_up_first=False,
    )
    info = await jetstream.stream_info(
        t.STREAM_ALERTS, subjects_filter=f"alerts.*.{integration_id}"
    )
    assert not info.state.subjects


async def test_the_clock_sends_the_warm_up_lead_seconds_before_the_fire_then_the_request(
    nc: Client, jetstream: JetStreamContext, unique_id
):
    integration_id = unique_id("sched")
    config = _config(integration_id, cron="* * * * *", lead=0.3)
    recorder = Recorder()
    await recorder.start(nc, integration_id)
    scheduler = Scheduler(await _firer(nc, jetstream), SchedulerSettings(tick_seconds=0.05))
    fire = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    assert config.schedule is not None
    scheduler.plan_at(integration_id, config.schedule, fire)
    runner = asyncio.create_task(scheduler.run())
    try:
        seen = await recorder.wait_for(2, timeout=10)
        await scheduler.wait_settled(1)
    finally:
        runner.cancel()
    assert [kind for kind, _ in seen[:2]] == ["warmup", "request"]
    assert seen[0][1] == seen[1][1]  # the same key: the warm-up announces its request
    await scheduler.firer.writer.flush()  # watermarks are written after the burst
    state = await scheduler.firer.states.get(integration_id)
    assert state is not None
    assert state.last_fired_for == fire
    assert state.last_drift_ms is not None
    assert state.last_drift_ms < 1000


async def test_a_backfill_over_nats_is_answered_by_the_scheduler_service(
    nc: Client, jetstream: JetStreamContext, unique_id
):
    integration_id = unique_id("sched")
    await put_integration(jetstream, _config(integration_id))
    server_url = nc.connected_url
    assert server_url is not None
    app = build_app(
        NatsSettings(url=f"nats://{server_url.hostname}:{server_url.port}"),
        SchedulerSettings(catchup_lead_seconds=0.01),
    )
    async with app.broker:  # type: ignore[union-attr]
        await app.start()
        try:
            reply_msg = await nc.request(
                t.SCHEDULER_BACKFILL,
                BackfillRequest(
                    integration_id=integration_id, from_period="2017-03", to_period="2017-04"
                ).to_bytes(),
                timeout=20,
            )
        finally:
            await app.stop()
    reply = BackfillReply.from_bytes(reply_msg.data)
    assert reply.error is None
    assert [f.idempotency_key for f in reply.fired] == [
        f"{integration_id}:2017-03",
        f"{integration_id}:2017-04",
    ]


@pytest.mark.parametrize(
    ("first", "last", "says"), [("2017-05", "2017-01", "before"), ("2017-W01", "2017-02", "week")]
)
async def test_a_backfill_with_a_bad_range_is_refused_with_a_reason(
    nc: Client, jetstream: JetStreamContext, unique_id, first: str, last: str, says: str
):
    integration_id = unique_id("sched")
    scheduler = Scheduler(await _firer(nc, jetstream), SchedulerSettings())
    with pytest.raises(ValueError, match=says):
        await scheduler.backfill(
            BackfillRequest(integration_id=integration_id, from_period=first, to_period=last),
            _config(integration_id),
        )
