"""A skewed host clock is corrected to the server's; the catch-up watermark only moves forward."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

from nats.js import JetStreamContext

from syncbus_scheduler.clock import Clock
from syncbus_scheduler.state import ScheduleState, ScheduleStateStore, is_state_key
from syncbus_shared import topology as t


def fired(integration_id: str, day: int) -> ScheduleState:
    return ScheduleState(
        integration_id=integration_id, last_fired_for=datetime(2026, 12, day, 6, tzinfo=UTC)
    )


async def test_a_host_clock_a_minute_fast_reads_the_servers_time_after_sync(
    jetstream: JetStreamContext,
):
    clock = Clock(simulated_skew_s=60.0)
    assert clock.timestamp() - time.time() > 59

    probe = await clock.sync(jetstream)

    assert probe is not None
    assert abs(clock.timestamp() - time.time()) < 0.05  # the server runs on this host's clock
    assert abs(clock.offset_s + 60.0) < 0.05


async def test_a_clock_that_does_not_follow_the_server_keeps_the_host_time(
    jetstream: JetStreamContext,
):
    clock = Clock(simulated_skew_s=60.0, follow_server=False)

    assert await clock.sync(jetstream) is None
    assert clock.timestamp() - time.time() > 59


async def test_the_watermark_only_moves_forward(jetstream: JetStreamContext, unique_id):
    integration_id = unique_id("state")
    store = ScheduleStateStore(await jetstream.key_value(t.KV_SCHEDULE_STATE))

    assert await store.advance(fired(integration_id, 2))
    assert await store.advance(fired(integration_id, 3))
    assert not await store.advance(fired(integration_id, 1))  # a slow replica cannot rewind it
    assert not await store.advance(fired(integration_id, 3))

    state = await store.get(integration_id)
    assert state is not None
    assert state.last_fired_for == datetime(2026, 12, 3, 6, tzinfo=UTC)


async def test_concurrent_writers_leave_the_newest_fire(jetstream: JetStreamContext, unique_id):
    integration_id = unique_id("state")
    store = ScheduleStateStore(await jetstream.key_value(t.KV_SCHEDULE_STATE))

    await asyncio.gather(
        *(store.advance(fired(integration_id, day)) for day in [5, 1, 9, 3, 7] * 4)
    )

    state = await store.get(integration_id)
    assert state is not None
    assert state.last_fired_for == datetime(2026, 12, 9, 6, tzinfo=UTC)


async def test_reported_misses_survive_a_watermark_write_and_skip_missed_moves_it(
    jetstream: JetStreamContext, unique_id
):
    integration_id = unique_id("state")
    store = ScheduleStateStore(await jetstream.key_value(t.KV_SCHEDULE_STATE))
    reported = datetime(2026, 11, 20, tzinfo=UTC)

    await store.mark_missed_reported(integration_id, reported)
    await store.advance(fired(integration_id, 2))
    later = datetime(2026, 12, 2, 6, tzinfo=UTC) + timedelta(days=5)
    assert await store.move_watermark(integration_id, later)
    assert not await store.move_watermark(integration_id, later - timedelta(days=1))

    state = await store.get(integration_id)
    assert state is not None
    assert state.missed_reported_through == reported
    assert state.last_fired_for == later


def test_scheduler_keys_in_the_state_bucket_are_not_schedules():
    assert is_state_key("toyen-xledger")
    assert not is_state_key("scheduler.clock")
    assert not is_state_key("scheduler.warmup-lease")
