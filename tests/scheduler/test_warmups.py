"""One replica warms up: the warm-up lease, the standby that covers a silent holder, and order."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from nats.aio.client import Client
from nats.js import JetStreamContext
from scheduler_support import (
    Recorder,
    Running,
    config,
    just_before_a_minute,
    make_scheduler,
    stored_requests,
    virtual_clock,
)

from syncbus_scheduler.clock import Clock
from syncbus_scheduler.warmups import LeaseGate
from syncbus_shared import topology as t
from syncbus_shared.contracts import ScheduleMode
from syncbus_shared.natsclient import connect
from syncbus_shared.settings import NatsSettings


async def _gates(js: JetStreamContext, clocks: list[Clock], lease: float = 15.0) -> list[LeaseGate]:
    kv = await js.key_value(t.KV_SCHEDULE_STATE)
    return [LeaseGate(kv, f"replica-{i}", clock, lease) for i, clock in enumerate(clocks)]


async def test_exactly_one_of_three_replicas_holds_the_warm_up_lease(jetstream: JetStreamContext):
    gates = await _gates(jetstream, [Clock(follow_server=False) for _ in range(3)])

    await asyncio.gather(*(gate.renew() for gate in gates))
    await asyncio.gather(*(gate.renew() for gate in gates))

    assert sum(gate.holds_lease for gate in gates) == 1
    holder = next(gate for gate in gates if gate.holds_lease)
    assert all(gate.holder == holder.instance for gate in gates)
    assert [gate.sends_warmups() for gate in gates].count(True) == 1


async def test_another_replica_takes_the_lease_once_the_holder_stops_renewing(
    jetstream: JetStreamContext,
):
    clocks = [Clock(follow_server=False), Clock(follow_server=False)]
    first, second = await _gates(jetstream, clocks, lease=15.0)
    await first.renew()
    await second.renew()
    assert first.holds_lease
    assert not second.sends_warmups()

    clocks[1].simulated_skew_s += 16  # the holder has not renewed for longer than the lease
    assert second.sends_warmups()  # nobody holds a valid lease: warm-ups do not stop
    await second.renew()

    assert second.holds_lease


async def test_a_released_lease_is_taken_by_the_next_renewal(jetstream: JetStreamContext):
    first, second = await _gates(
        jetstream, [Clock(follow_server=False), Clock(follow_server=False)]
    )
    await first.renew()
    await first.release()
    await second.renew()

    assert second.holds_lease
    assert not first.holds_lease


async def test_two_replicas_send_one_warm_up_and_store_one_request_per_fire(
    nc: Client, jetstream: JetStreamContext, nats_server, unique_id
):
    integration_id = unique_id("warm")
    at = just_before_a_minute()
    cfg = config(integration_id, "* * * * *", lead=0.5, mode=ScheduleMode.INCREMENTAL)
    assert cfg.schedule is not None
    recorder = await Recorder().start(nc, integration_id)
    watchers = [await connect(NatsSettings(url=nats_server.url), f"watch-{i}") for i in range(2)]
    clocks = [virtual_clock(at), virtual_clock(at)]
    gates = await _gates(jetstream, clocks)
    replicas = []
    for gate, clock, watcher in zip(gates, clocks, watchers, strict=True):
        await gate.watch_warmups(watcher)
        await gate.renew()
        replicas.append(await make_scheduler(nc, jetstream, clock=clock, gate=gate))
    try:
        async with Running(replicas[0]), Running(replicas[1]):
            for replica in replicas:
                await replica.apply(cfg, integration_id)
            for replica in replicas:
                await replica.wait_settled(1)
    finally:
        for watcher in watchers:
            await watcher.close()

    fire = at + timedelta(seconds=1.5)
    key = f"{integration_id}:{fire:%Y-%m-%dT%H:%M:%S}Z"
    assert [s.kind for s in recorder.of("warmup")] == ["warmup"]  # one, from the lease holder
    assert recorder.seen[0].kind == "warmup"
    assert [m.headers["Nats-Msg-Id"] for m in await stored_requests(jetstream, integration_id)] == [
        key
    ]
    follower = next(r for r in replicas if not r.gate.holds_lease)
    assert follower.metrics.get("warmups_left_to_leader_total") == 1
    assert follower.metrics.get("warmups_sent_total") == 0


async def test_a_standby_sends_the_warm_up_itself_when_the_lease_holder_is_silent(
    nc: Client, jetstream: JetStreamContext, unique_id
):
    integration_id = unique_id("warm")
    at = just_before_a_minute()
    cfg = config(integration_id, "* * * * *", lead=0.5, mode=ScheduleMode.INCREMENTAL)
    recorder = await Recorder().start(nc, integration_id)
    clocks = [virtual_clock(at), virtual_clock(at)]
    holder, standby = await _gates(jetstream, clocks)
    await holder.renew()  # takes the lease, then never warms anything (it has crashed)
    await standby.renew()
    scheduler = await make_scheduler(nc, jetstream, clock=clocks[1], gate=standby)

    async with Running(scheduler):
        await scheduler.apply(cfg, integration_id)
        await scheduler.wait_settled(1)

    assert [kind for kind, _ in recorder.order()] == ["warmup", "request"]
    warmup, request = recorder.seen
    assert warmup.key == request.key
    # It waited one catch-up lead for the holder's warm-up before sending its own.
    assert request.body.published_at >= at + timedelta(seconds=1.5 + 0.05)
