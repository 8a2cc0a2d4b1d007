"""The scheduler service: turns each integration's schedule into warm-ups and sync requests.

It keeps the `integrations` bucket in view (a KV watch: a changed schedule takes effect without a
restart), plans each schedule's next fire from the last fire stored in `schedule-state`, sends the
warm-up `lead_seconds` before the fire and the request at the fire, and on start-up catches up
the fires it missed within the catch-up window. `scheduler.backfill` fires past periods on
purpose; it is how `syncbus demo` exports 2017's periods within seconds, through the same
`Firer.fire` that every scheduled fire uses.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from faststream import FastStream
from faststream.nats import NatsBroker, NatsMessage
from nats.js.kv import KeyValue
from pydantic import ValidationError

from syncbus_shared import topology as t
from syncbus_shared.contracts import (
    AlertKind,
    BackfillReply,
    BackfillRequest,
    ErrorClass,
    ErrorInfo,
    FiredPeriod,
    IntegrationConfig,
    RequestOrigin,
    utc_now,
)
from syncbus_shared.integrations import get_integration
from syncbus_shared.logs import get_logger
from syncbus_shared.settings import NatsSettings

from .cron import fires_between, next_fire
from .firing import Firer
from .periods import fire_for_period, period_range
from .settings import SchedulerSettings
from .state import ScheduleStateStore

log = get_logger()


@dataclass
class Plan:
    config: IntegrationConfig
    next_fire: datetime
    warmed: bool = False


class Scheduler:
    def __init__(self, firer: Firer, settings: SchedulerSettings) -> None:
        self.firer = firer
        self.settings = settings
        self.plans: dict[str, Plan] = {}
        self._wake = asyncio.Event()

    # --- configuration ----------------------------------------------------------------------
    async def apply(self, config: IntegrationConfig | None, integration_id: str) -> None:
        """A config was added, changed or removed: plan it afresh (catching up what it missed)."""
        schedule = config.schedule if config is not None else None
        if config is None or schedule is None or schedule.paused:
            if self.plans.pop(integration_id, None) is not None:
                log.info("scheduler.schedule_removed", integration_id=integration_id)
            return
        current = self.plans.get(integration_id)
        if current is not None and current.config == config:
            return
        now = utc_now()
        state = await self.firer.states.get(integration_id)
        after = state.last_fired_for if state and state.last_fired_for else now
        missed = fires_between(schedule.cron, schedule.timezone, after, now) if after < now else []
        window = now - timedelta(days=self.settings.catchup_window_days)
        too_old = [f for f in missed if f < window]
        if too_old:
            await self.firer.alert(
                AlertKind.MISSED_PERIODS,
                integration_id,
                f"{len(too_old)} fire(s) were missed beyond the catch-up window; "
                "use `syncbus backfill` to export them",
                {"missed": [f.isoformat() for f in too_old]},
            )
        for fire in (f for f in missed if f >= window):
            await self.firer.fire(
                config, fire, due_at=fire, origin=RequestOrigin.SCHEDULER, warm_up_first=True
            )
        start = max(after, now)
        self.plans[integration_id] = Plan(
            config, next_fire(schedule.cron, schedule.timezone, start)
        )
        log.info(
            "scheduler.schedule_planned",
            integration_id=integration_id,
            next_fire=self.plans[integration_id].next_fire.isoformat(),
            caught_up=len(missed),
        )
        self._wake.set()

    async def watch(self, kv: KeyValue) -> None:
        watcher = await kv.watchall()
        async for entry in watcher:
            if entry is None:  # end of the initial values
                continue
            try:
                config = None
                if entry.operation is None and entry.value:
                    config = IntegrationConfig.from_bytes(entry.value)
                await self.apply(config, entry.key)
            except ValidationError as exc:
                log.error(  # noqa: TRY400 - the problem is the config, a traceback adds nothing
                    "scheduler.bad_integration_config", key=entry.key, problems=exc.error_count()
                )
            except Exception as exc:
                log.exception("scheduler.apply_failed", key=entry.key, error=type(exc).__name__)

    # --- the clock --------------------------------------------------------------------------
    async def tick(self) -> float:
        """Send what is due; return seconds until the next thing to do."""
        now = utc_now()
        wait = self.settings.tick_seconds
        for plan in list(self.plans.values()):
            schedule = plan.config.schedule
            assert schedule is not None
            warm_at = plan.next_fire - timedelta(seconds=schedule.lead_seconds)
            if not plan.warmed and now >= warm_at:
                plan.warmed = True
                await self.firer.warm_up(plan.config, plan.next_fire)
            if now >= plan.next_fire:
                fire = plan.next_fire
                await self.firer.fire(
                    plan.config,
                    fire,
                    due_at=fire,
                    origin=RequestOrigin.SCHEDULER,
                    warm_up_first=not plan.warmed,
                )
                plan.next_fire = next_fire(schedule.cron, schedule.timezone, fire)
                plan.warmed = False
            upcoming = plan.next_fire if plan.warmed else warm_at
            wait = min(wait, max(0.0, (upcoming - utc_now()).total_seconds()))
        return wait

    async def run(self) -> None:
        while True:
            try:
                wait = await self.tick()
            except Exception as exc:
                log.exception("scheduler.tick_failed", error=type(exc).__name__)
                wait = self.settings.tick_seconds
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=wait)

    # --- backfill ---------------------------------------------------------------------------
    async def backfill(self, request: BackfillRequest, config: IntegrationConfig) -> BackfillReply:
        schedule = config.schedule
        if schedule is None:
            return _backfill_error(
                request, f"integration {config.integration_id!r} has no schedule"
            )
        periods = period_range(
            schedule.period, request.from_period, request.to_period, schedule.timezone
        )
        if len(periods) > self.settings.max_backfill_periods:
            return _backfill_error(
                request,
                f"{len(periods)} periods asked; at most "
                f"{self.settings.max_backfill_periods} per backfill",
            )
        fired = []
        for period in periods:
            scheduled_for = fire_for_period(schedule, period.period_id)
            report = await self.firer.fire(
                config,
                scheduled_for,
                due_at=None,
                origin=RequestOrigin.BACKFILL,
                warm_up_first=True,
            )
            fired.append(
                FiredPeriod(
                    period_id=report.period_id,
                    idempotency_key=report.idempotency_key,
                    scheduled_for=report.scheduled_for,
                    published_at=report.published_at,
                    drift_ms=report.drift_ms,
                    duplicate=report.duplicate,
                )
            )
        return BackfillReply(integration_id=config.integration_id, fired=tuple(fired))


def _backfill_error(request: BackfillRequest, message: str) -> BackfillReply:
    return BackfillReply(
        integration_id=request.integration_id,
        error=ErrorInfo(error_class=ErrorClass.INVALID_REQUEST, message=message),
    )


def build_app(
    nats: NatsSettings | None = None, settings: SchedulerSettings | None = None
) -> FastStream:
    nats = nats or NatsSettings()
    settings = settings or SchedulerSettings()
    broker = NatsBroker(nats.servers, max_reconnect_attempts=-1, logger=None)
    holder: dict[str, Scheduler] = {}
    started = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []

    @broker.subscriber(
        t.SCHEDULER_BACKFILL,
        queue=t.QUEUE_SCHEDULER_COMMANDS,
        title=t.SCHEDULER_BACKFILL,
        description="Request/reply: fire past periods of one integration, oldest first.",
    )
    async def on_backfill(msg: NatsMessage) -> bytes:
        await started.wait()
        try:
            request = BackfillRequest.from_bytes(msg.body)
        except ValidationError as exc:
            return BackfillReply(
                integration_id="",
                error=ErrorInfo(
                    error_class=ErrorClass.INVALID_REQUEST,
                    message=f"not a backfill request ({exc.error_count()} problem(s))",
                ),
            ).to_bytes()
        scheduler = holder["scheduler"]
        config = await get_integration(broker.connection.jetstream(), request.integration_id)
        if config is None:
            return _backfill_error(
                request, f"integration {request.integration_id!r} is not configured"
            ).to_bytes()
        try:
            reply = await scheduler.backfill(request, config)
        except ValueError as exc:
            reply = _backfill_error(request, str(exc))
        return reply.to_bytes()

    app = FastStream(broker)

    @app.after_startup
    async def start() -> None:
        nc = broker.connection
        js = nc.jetstream()
        states = ScheduleStateStore(await js.key_value(t.KV_SCHEDULE_STATE))
        scheduler = Scheduler(Firer(nc, js, states, settings), settings)
        holder["scheduler"] = scheduler
        integrations = await js.key_value(t.KV_INTEGRATIONS)
        tasks.append(asyncio.create_task(scheduler.watch(integrations)))
        tasks.append(asyncio.create_task(scheduler.run()))
        started.set()
        log.info("scheduler.ready")

    @app.on_shutdown
    async def stop() -> None:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    return app
