"""Helpers for the scheduler's tests over real NATS (imported by name: tests/ has no packages).

Time: a scheduler under test runs on a `virtual_clock`, a `Clock` that does not follow the
server and is shifted to a chosen instant; it then advances in real time, and a test can jump
it (`clock.simulated_skew_s += 120`). So a cron fire "at 10:15" can be made due a second from
now, and a test never waits a minute for one.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from syncbus_scheduler.clock import Clock
from syncbus_scheduler.firing import Firer
from syncbus_scheduler.service import Scheduler
from syncbus_scheduler.settings import SchedulerSettings
from syncbus_scheduler.state import ScheduleStateStore
from syncbus_scheduler.warmups import WarmupGate
from syncbus_shared import topology as t
from syncbus_shared.contracts import (
    IntegrationConfig,
    PeriodKind,
    Schedule,
    ScheduleMode,
    SyncRequest,
    WarmUp,
)


def virtual_clock(at: datetime) -> Clock:
    """A clock that reads `at` now and runs on from there."""
    return Clock(simulated_skew_s=at.timestamp() - time.time(), follow_server=False)


def just_before_a_minute(seconds: float = 1.5) -> datetime:
    """An instant `seconds` before the next whole minute (after the next one if too close)."""
    now = datetime.now(UTC)
    minute = now.replace(second=0, microsecond=0) + timedelta(minutes=2)
    return minute - timedelta(seconds=seconds)


def config(
    integration_id: str,
    cron: str = "5 0 1 * *",
    *,
    tz: str = "Europe/Oslo",
    period: PeriodKind = PeriodKind.MONTH,
    lead: float = 30.0,
    mode: ScheduleMode = ScheduleMode.PERIOD,
    paused: bool = False,
) -> IntegrationConfig:
    return IntegrationConfig(
        integration_id=integration_id,
        vendor="xledger",
        endpoint="http://127.0.0.1:9/graphql",
        credentials_path=f"integrations/{integration_id}",
        schedule=Schedule(
            cron=cron, timezone=tz, period=period, lead_seconds=lead, mode=mode, paused=paused
        ),
    )


async def make_scheduler(
    nc: Client,
    js: JetStreamContext,
    *,
    clock: Clock | None = None,
    gate: WarmupGate | None = None,
    **settings: Any,
) -> Scheduler:
    options: dict[str, Any] = {"catchup_lead_seconds": 0.05, "tick_seconds": 0.2} | settings
    scheduler_settings = SchedulerSettings(**options)
    states = ScheduleStateStore(await js.key_value(t.KV_SCHEDULE_STATE))
    firer = Firer(nc, js, states, scheduler_settings, clock=clock or Clock(follow_server=False))
    return Scheduler(firer, scheduler_settings, gate=gate)


@dataclass
class Seen:
    kind: str
    """`warmup` or `request`."""
    key: str
    at: float
    body: WarmUp | SyncRequest


@dataclass
class Recorder:
    """Every warm-up and request of some integrations, in the order NATS delivered them."""

    seen: list[Seen] = field(default_factory=list)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def start(self, nc: Client, *integration_ids: str) -> Recorder:
        async def on(msg: Any) -> None:
            if msg.subject.startswith("sync.warmup."):
                warmup = WarmUp.from_bytes(msg.data)
                item = Seen("warmup", warmup.idempotency_key, time.time(), warmup)
            else:
                request = SyncRequest.from_bytes(msg.data)
                item = Seen("request", request.idempotency_key, time.time(), request)
            async with self._changed:
                self.seen.append(item)
                self._changed.notify_all()

        for integration_id in integration_ids:
            await nc.subscribe(t.warmup_subject(integration_id), cb=on)
            await nc.subscribe(t.request_subject(integration_id), cb=on)
        await nc.flush()
        return self

    async def wait_for(
        self, count: int, kind: str | None = None, timeout: float = 30.0
    ) -> list[Seen]:
        def enough() -> bool:
            return len(self.of(kind)) >= count

        async def wait() -> None:
            async with self._changed:
                await self._changed.wait_for(enough)

        await asyncio.wait_for(wait(), timeout)
        return list(self.seen)

    def of(self, kind: str | None) -> list[Seen]:
        return [s for s in self.seen if kind is None or s.kind == kind]

    def order(self) -> list[tuple[str, str]]:
        return [(s.kind, s.key) for s in self.seen]


async def stored_requests(js: JetStreamContext, integration_id: str) -> list[Any]:
    """Every request stored in SYNC_REQUESTS for one integration, oldest first."""
    sub = await js.pull_subscribe(
        t.request_subject(integration_id),
        stream=t.STREAM_REQUESTS,
        config=ConsumerConfig(
            deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE, mem_storage=True
        ),
    )
    try:
        remaining = (await sub.consumer_info()).num_pending or 0
        msgs: list[Any] = []
        while remaining > 0:
            batch = await sub.fetch(min(remaining, 256), timeout=10)
            msgs.extend(batch)
            remaining -= len(batch)
        return msgs
    finally:
        await sub.unsubscribe()


async def stored_alerts(js: JetStreamContext, subject: str) -> list[Any]:
    sub = await js.pull_subscribe(
        subject,
        stream=t.STREAM_ALERTS,
        config=ConsumerConfig(
            deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE, mem_storage=True
        ),
    )
    try:
        remaining = (await sub.consumer_info()).num_pending or 0
        msgs: list[Any] = []
        while remaining > 0:
            batch = await sub.fetch(min(remaining, 256), timeout=10)
            msgs.extend(batch)
            remaining -= len(batch)
        return msgs
    finally:
        await sub.unsubscribe()


class Running:
    """`async with Running(scheduler, js):` its watch and its clock loop, cancelled after."""

    def __init__(self, scheduler: Scheduler, js: JetStreamContext | None = None) -> None:
        self.scheduler = scheduler
        self.js = js
        self.tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Scheduler:
        if self.js is not None:
            self.tasks.append(asyncio.create_task(self.scheduler.watch(self.js)))
            await asyncio.wait_for(self.scheduler.loaded.wait(), 30)
        self.tasks.append(asyncio.create_task(self.scheduler.run()))
        return self.scheduler

    async def __aexit__(self, *exc: object) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.scheduler.firer.writer.flush()
        await self.scheduler.firer.settle_alerts()
