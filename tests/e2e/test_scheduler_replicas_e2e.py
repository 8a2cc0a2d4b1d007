"""Three scheduler processes at once, one with a clock 45 s fast, and a fourth started late.

What must hold (issue 8): exactly one stored request per (integration, period) or fire instant,
no request stored before its scheduled instant (the fast replica fires by the NATS server's
clock), a warm-up before every request and, in steady state, exactly one warm-up per fire.

One integration catches up three missed daily periods when the replicas start; another fires
every minute (incremental), so the test waits for one whole-minute fire with all four running.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from syncbus_devstack import ManagedProcess, Stack, service_command
from syncbus_scheduler.state import ScheduleState
from syncbus_shared import topology as t
from syncbus_shared.contracts import (
    IntegrationConfig,
    PeriodKind,
    Schedule,
    ScheduleMode,
    SchedulerStatus,
    SyncRequest,
    WarmUp,
)
from syncbus_shared.integrations import put_integration
from syncbus_shared.natsclient import connect
from syncbus_shared.settings import NatsSettings

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

SKEW_SECONDS = 45.0
LEAD_SECONDS = 3.0
REPLICAS = ("scheduler", "scheduler-2", "scheduler-fast")


def _integration(integration_id: str, schedule: Schedule) -> IntegrationConfig:
    return IntegrationConfig(
        integration_id=integration_id,
        vendor="xledger",
        endpoint="http://127.0.0.1:9/graphql",
        credentials_path=f"integrations/{integration_id}",
        schedule=schedule,
    )


@dataclass
class Traffic:
    """Warm-ups and requests as a subscriber sees them, with the local time each arrived."""

    warmups: dict[str, list[float]] = field(default_factory=dict)
    requests: dict[str, list[tuple[float, SyncRequest]]] = field(default_factory=dict)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def on_message(self, msg: Msg) -> None:
        if not msg.subject.startswith(("sync.warmup.", "sync.request.")):
            return  # results, progress: not what this test watches
        async with self.changed:
            if msg.subject.startswith("sync.warmup."):
                key = WarmUp.from_bytes(msg.data).idempotency_key
                self.warmups.setdefault(key, []).append(time.time())
            else:
                request = SyncRequest.from_bytes(msg.data)
                self.requests.setdefault(request.idempotency_key, []).append((time.time(), request))
            self.changed.notify_all()

    async def wait(self, condition: Any, timeout: float) -> None:
        async def until() -> None:
            async with self.changed:
                await self.changed.wait_for(condition)

        await asyncio.wait_for(until(), timeout)


async def statuses(nc: Client, expect: int, timeout: float = 5.0) -> list[SchedulerStatus]:
    """The statuses of the replicas that answer, once `expect` have (or at the timeout)."""
    inbox = nc.new_inbox()
    answers: list[SchedulerStatus] = []
    enough = asyncio.Event()

    async def on_reply(msg: Msg) -> None:
        answers.append(SchedulerStatus.from_bytes(msg.data))
        if len(answers) >= expect:
            enough.set()

    sub = await nc.subscribe(inbox, cb=on_reply)
    await nc.publish(t.SCHEDULER_STATUS, b"", reply=inbox)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(enough.wait(), timeout)
    await sub.unsubscribe()
    return answers


async def wait_replicas(
    nc: Client, expect: int, ready: Any, timeout: float = 120.0
) -> list[SchedulerStatus]:
    """Ask the replicas until `expect` of them answer and each satisfies `ready`."""
    deadline = time.monotonic() + timeout
    while True:
        answers = await statuses(nc, expect)
        if len(answers) >= expect and all(ready(s) for s in answers):
            return answers
        if time.monotonic() > deadline:
            raise AssertionError(f"replicas not ready: {[s.model_dump() for s in answers]}")
        await asyncio.sleep(0.5)  # each round trip is the signal; this only paces the asking


async def stored(js: JetStreamContext, integration_id: str) -> list[Msg]:
    sub = await js.pull_subscribe(
        t.request_subject(integration_id),
        stream=t.STREAM_REQUESTS,
        config=ConsumerConfig(
            deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE, mem_storage=True
        ),
    )
    try:
        remaining = (await sub.consumer_info()).num_pending or 0
        msgs: list[Msg] = []
        while remaining > 0:
            batch = await sub.fetch(min(remaining, 256), timeout=10)
            msgs.extend(batch)
            remaining -= len(batch)
        return msgs
    finally:
        await sub.unsubscribe()


async def test_three_replicas_a_fast_one_and_a_late_one_store_each_request_once_and_none_early(
    tmp_path: Path, unique_id
):
    env = shutil.which("env")
    assert env is not None
    fast = [
        env,
        f"SYNCBUS_SCHEDULER_SIMULATED_CLOCK_SKEW_SECONDS={SKEW_SECONDS}",
        *service_command("scheduler"),
    ]
    stack = Stack(
        tmp_path / "stack",
        services=REPLICAS,
        fakes=(),
        service_commands={"scheduler-2": service_command("scheduler"), "scheduler-fast": fast},
        extra_env={"SYNCBUS_SCHEDULER_CATCHUP_LEAD_SECONDS": "1"},
    )
    async with stack:
        nc = await connect(NatsSettings(url=stack.nats_url), "pytest-replicas")
        js = nc.jetstream()
        traffic = Traffic()
        # One subscription for both: NATS keeps one publisher's messages in order on one
        # subscription, while two subscriptions' callbacks may run in either order.
        await nc.subscribe("sync.>", cb=traffic.on_message)
        await nc.flush()
        try:
            await _scenario(stack, nc, js, traffic, unique_id)
        finally:
            await nc.close()


async def _scenario(
    stack: Stack, nc: Client, js: JetStreamContext, traffic: Traffic, unique_id: Any
) -> None:
    started = await wait_replicas(nc, 3, lambda s: s.loaded)
    fast = next(s for s in started if s.instance == "dev-scheduler-fast")
    assert abs(fast.clock_offset_ms + SKEW_SECONDS * 1000) < 500  # corrected to the server's

    # Daily periods missed for three days: caught up by the replicas, each period once.
    daily_id = unique_id("daily")
    states = await js.key_value(t.KV_SCHEDULE_STATE)
    today_6 = datetime.now(UTC).replace(hour=6, minute=0, second=0, microsecond=0)
    if today_6 > datetime.now(UTC) - timedelta(minutes=5):
        today_6 -= timedelta(days=1)  # keep clear of a fire happening during the test
    watermark = today_6 - timedelta(days=3)
    await states.put(
        daily_id, ScheduleState(integration_id=daily_id, last_fired_for=watermark).to_bytes()
    )
    daily = Schedule(
        cron="0 6 * * *", timezone="UTC", period=PeriodKind.DAY, lead_seconds=LEAD_SECONDS
    )
    await put_integration(js, _integration(daily_id, daily))
    # Every minute, incremental: one key per fire instant.
    minutely_id = unique_id("minutely")
    minutely = Schedule(
        cron="* * * * *", timezone="UTC", mode=ScheduleMode.INCREMENTAL, lead_seconds=LEAD_SECONDS
    )
    await put_integration(js, _integration(minutely_id, minutely))

    daily_keys = [
        f"{daily_id}:{(watermark + timedelta(days=d - 1)).date().isoformat()}" for d in (1, 2, 3)
    ]
    await traffic.wait(lambda: all(k in traffic.requests for k in daily_keys), 60)

    # A fourth replica, started now, after the catch-up: it must change nothing.
    late = ManagedProcess(
        "scheduler-late",
        service_command("scheduler"),
        stack.service_env("scheduler-late"),
        stack.log_dir / "scheduler-late.log",
    )
    stack.processes["scheduler-late"] = late  # stopped with the stack
    await late.start()
    await wait_replicas(nc, 4, lambda s: s.loaded)
    joined = time.time()

    # The first whole-minute fire at least a lead after the late replica is in.
    target = datetime.fromtimestamp(joined + LEAD_SECONDS + 1, UTC).replace(second=0, microsecond=0)
    target += timedelta(minutes=1)
    target_key = f"{minutely_id}:{target:%Y-%m-%dT%H:%M:%S}Z"
    await traffic.wait(lambda: target_key in traffic.requests, 130)
    # Every replica has moved past the target fire (so all its copies have been published).
    await wait_replicas(
        nc, 4, lambda s: s.next_fire is not None and s.next_fire > target, timeout=60
    )

    # Exactly one stored request per period, and per fire instant.
    daily_stored = [m.headers["Nats-Msg-Id"] for m in await stored(js, daily_id)]  # type: ignore[index]
    assert daily_stored == daily_keys
    minutely_msgs = await stored(js, minutely_id)
    minutely_keys = [m.headers["Nats-Msg-Id"] for m in minutely_msgs]  # type: ignore[index]
    assert len(minutely_keys) == len(set(minutely_keys))
    assert target_key in minutely_keys
    # None stored before its scheduled instant: the fast replica fired by the server's clock.
    for msg in minutely_msgs:
        request = SyncRequest.from_bytes(msg.data)
        assert request.scheduled_for is not None
        assert msg.metadata.timestamp >= request.scheduled_for - timedelta(milliseconds=200)
    # Each request's warm-up arrived first; the live fire with four replicas had one warm-up.
    for key, copies in traffic.requests.items():
        if key.startswith((daily_id, minutely_id)):
            assert key in traffic.warmups, key
            assert min(traffic.warmups[key]) < min(at for at, _ in copies), key
    assert len(traffic.warmups[target_key]) == 1
    first_warmup = min(traffic.warmups[target_key])
    assert first_warmup >= target.timestamp() - LEAD_SECONDS - 0.5  # not 45 s early either

    final = await statuses(nc, 4)
    assert sum(s.warmup_leader for s in final) == 1
    assert sum(s.counters["fires_stored_total"] for s in final) == len(daily_keys) + len(
        minutely_keys
    )
