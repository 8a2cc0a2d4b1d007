"""The scheduler service: turns each integration's schedule into warm-ups and sync requests.

* **Live configuration.** A KV watch on `integrations` applies every added, changed, paused,
  resumed or removed schedule as it is written; no restart. Each schedule is validated when it
  arrives (`validation.py`); one that can never fire is refused with a sentence, logged and
  alerted (`alerts.invalid_schedule.<id>`), and not planned.
* **The clock.** Plans sit in a heap keyed by their next action (`plans.py`); the loop sleeps
  until the first one is due, sends the warm-ups that are due, then publishes the requests that
  are due, all of one instant together (`firing.py`).
* **Catch-up.** When a schedule is first planned (start-up, a new config, a resume) the fires
  since its watermark in `schedule-state` are computed: those within the catch-up window are
  sent oldest first, each with its own key and its warm-up before its request (a catch-up lead
  after the first warm-up); older ones are not sent but listed in one alert, and
  `syncbus backfill` exports them on purpose.
* **Replicas.** Every replica publishes every request (the broker keeps one per key); one
  replica, the holder of the warm-up lease, sends the warm-ups (`warmups.py`); every replica
  fires by the NATS server's clock (`clock.py`), so a skewed host changes nothing.
* **Commands.** `scheduler.backfill` and `scheduler.trigger` (one replica answers each, queue
  group `scheduler`) fire on purpose through the same `Firer`; `scheduler.status` is answered
  by every replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from faststream import FastStream
from faststream.nats import NatsBroker, NatsMessage
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
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
    Schedule,
    ScheduleMode,
    ScheduleRejected,
    SchedulerStatus,
    SyncRequest,
    TriggerReply,
    TriggerRequest,
)
from syncbus_shared.integrations import get_integration
from syncbus_shared.logs import get_logger
from syncbus_shared.natsclient import broker_options, connect
from syncbus_shared.probes import Probes, ProbeSettings, nats_check
from syncbus_shared.settings import NatsSettings, ServiceSettings
from syncbus_shared.tracing import NatsTracingMiddleware

from .catchup import Missed, missed_fires
from .clock import Clock
from .cron import CronError
from .firing import Fire, FirePublishError, Firer, FireReport, fire_target
from .metrics import SchedulerMetrics
from .periods import fire_for_period, period_range
from .plans import Plan, PlanBook, first_fire_after
from .settings import SchedulerSettings
from .state import ScheduleStateStore
from .validation import ScheduleError, describe_config_error, validate_schedule
from .warmups import LeaseGate, WarmupGate

log = get_logger()

_STANDBY_MARGIN_SECONDS = 0.25
"""A standby replica waits the catch-up lead plus this for the lease holder's warm-up."""
_MAX_RETRY_SECONDS = 30.0
_MISSED_COUNT_LIMIT = 20_000
"""Missed fires beyond the window are counted up to this many ("more than 20,000")."""
_LOAD_PAGE = 256
"""Configs read (and applied concurrently) at a time while loading the bucket."""


@dataclass(frozen=True)
class CatchUp:
    """What `Scheduler.catch_up_fires` found for one schedule."""

    in_window: list[datetime]
    too_old: list[datetime]
    too_old_count: int
    too_old_truncated: bool
    watermark: datetime | None


class Scheduler:
    def __init__(
        self,
        firer: Firer,
        settings: SchedulerSettings,
        *,
        gate: WarmupGate | None = None,
    ) -> None:
        self.firer = firer
        self.settings = settings
        self.clock: Clock = firer.clock
        self.metrics = firer.metrics
        self.gate = gate or WarmupGate()
        self.book = PlanBook()
        self.paused: set[str] = set()
        self.rejected: dict[str, str] = {}
        self.loaded = asyncio.Event()
        self.started_at = self.clock.now()
        self._woken = False
        self._waiter: asyncio.Future[None] | None = None
        self.reports: deque[FireReport] = deque(maxlen=10_000)
        """The latest settled scheduled fires (published or failed), oldest first."""
        self._settled = asyncio.Condition()
        self._settled_count = 0
        self._applied: dict[str, int] = {}
        self._generations: dict[str, int] = {}
        self._applied_changed = asyncio.Condition()
        self._schedules: dict[str, Schedule] = {}
        self._problems: dict[int, str | None] = {}

    @property
    def plans(self) -> dict[str, Plan]:
        return self.book.plans

    # --- configuration ----------------------------------------------------------------------
    async def apply(
        self, config: IntegrationConfig | None, integration_id: str, *, revision: int | None = None
    ) -> None:
        """A config was added, changed or removed: plan it afresh (catching up what it missed)."""
        # Each apply of an integration gets a generation; one that awaited (catch-up reads KV)
        # and finds a newer one applied meanwhile (a delete, a change) leaves the plan to it.
        generation = self._generations.get(integration_id, 0) + 1
        self._generations[integration_id] = generation
        schedule = config.schedule if config is not None else None
        if config is None or schedule is None:
            self._forget(integration_id, "removed")
            self.paused.discard(integration_id)
            self.rejected.pop(integration_id, None)
            return
        if schedule.paused:
            self._forget(integration_id, "paused")
            self.paused.add(integration_id)
            self.rejected.pop(integration_id, None)
            return
        schedule = self._intern(schedule)
        problem = self._problem(schedule)
        if problem is not None:
            await self.reject(integration_id, problem, schedule=schedule, revision=revision)
            return
        self.paused.discard(integration_id)
        self.rejected.pop(integration_id, None)
        current = self.book.get(integration_id)
        if current is not None and current.schedule is schedule:
            return  # something else in the config changed; the plan stands
        now = self.clock.now()
        if current is None or current.catch_up:
            # First planned (start-up, new, resumed), or changed while catching up: whatever
            # the watermark says is missed is caught up with the schedule as it is now.
            found = await self.catch_up_fires(integration_id, schedule, now)
            await self._report_misses(integration_id, schedule, found, now)
            watermark, fires = found.watermark, found.in_window
        else:  # a changed schedule: plan its next fire, catch nothing up
            state = await self.firer.states.get(integration_id)
            watermark, fires = (state.last_fired_for if state else None), []
        if (
            self.book.get(integration_id) is not current
            or self._generations.get(integration_id) != generation
        ):
            return  # a newer config of this integration was applied meanwhile
        if fires:
            plan = Plan(
                integration_id,
                schedule,
                next_fire=fires[0].timestamp(),
                publish_at=now.timestamp() + self.settings.catchup_lead_seconds,
                pending=deque(f.timestamp() for f in fires[1:]) or None,
                catch_up=True,
            )
        else:
            mark = watermark.timestamp() if watermark else None
            fire = first_fire_after(schedule, max(now.timestamp(), mark or 0.0), mark)
            plan = Plan(integration_id, schedule, next_fire=fire, publish_at=fire)
        self.book.put(plan)
        # The initial load logs its plans at DEBUG: 100,000 schedules are one `loaded` line.
        event = log.info if self.loaded.is_set() or fires else log.debug
        event(
            "scheduler.schedule_planned",
            integration_id=integration_id,
            next_fire=plan.scheduled_for().isoformat(),
            catching_up=len(fires),
            changed=current is not None,
        )
        self._wake()

    def plan_at(self, integration_id: str, schedule: Schedule, fire: datetime) -> Plan:
        """Plan one fire at an arbitrary instant, then the cron's (tests and the benchmark)."""
        plan = Plan(
            integration_id,
            self._intern(schedule),
            next_fire=fire.timestamp(),
            publish_at=fire.timestamp(),
        )
        self.book.put(plan)
        self._wake()
        return plan

    def _forget(self, integration_id: str, why: str) -> None:
        if self.book.remove(integration_id) is not None:
            log.info("scheduler.schedule_removed", integration_id=integration_id, reason=why)

    def _intern(self, schedule: Schedule) -> Schedule:
        """One object per distinct schedule: plans share it, and `is` tells a change."""
        text = schedule.model_dump_json()
        return self._schedules.setdefault(text, schedule)

    def _problem(self, schedule: Schedule) -> str | None:
        key = id(schedule)
        if key not in self._problems:
            try:
                validate_schedule(schedule, now=self.clock.now())
            except ScheduleError as exc:
                self._problems[key] = str(exc)
            else:
                self._problems[key] = None
        return self._problems[key]

    async def reject(
        self,
        integration_id: str,
        problem: str,
        *,
        schedule: Schedule | None = None,
        revision: int | None = None,
    ) -> None:
        """Refuse a config: unplan it, log and alert the sentence (once per config revision)."""
        self._forget(integration_id, "rejected")
        self.paused.discard(integration_id)
        if self.rejected.get(integration_id) == problem:
            return
        self.rejected[integration_id] = problem
        self.metrics.inc("schedules_rejected_total")
        log.error(
            "scheduler.schedule_rejected",
            integration_id=integration_id,
            problem=problem,
            revision=revision,
        )
        alert = ScheduleRejected(
            integration_id=integration_id,
            message=f"{integration_id} is not scheduled: {problem}",
            cron=schedule.cron if schedule else None,
            timezone=schedule.timezone if schedule else None,
        )
        msg_id = f"rejected:{integration_id}:{revision}" if revision is not None else None
        try:
            await self.firer.js.publish(
                t.schedule_rejected_subject(integration_id),
                alert.to_bytes(),
                headers={"Nats-Msg-Id": msg_id} if msg_id else None,
            )
        except Exception as exc:
            log.warning("scheduler.alert_failed", kind="invalid_schedule", error=type(exc).__name__)

    async def watch(self, js: JetStreamContext, bucket: str = t.KV_INTEGRATIONS) -> None:
        """Apply the bucket's current values, then every change as it is written.

        The current values are read page by page (a pull consumer, `_LOAD_PAGE` at a time), so
        loading 100,000 configs never holds more than one page in memory; a KV watch would buffer
        all of them while the first ones are still being applied. Changes are then followed from
        the stream sequence the load started at (an ordered consumer), so none falls between.
        """
        stream, prefix = f"KV_{bucket}", f"$KV.{bucket}."
        start = (await js.stream_info(stream)).state.last_seq
        await self._load(js, stream, prefix)
        self.loaded.set()
        log.info(
            "scheduler.loaded",
            schedules=len(self.book),
            paused=len(self.paused),
            rejected=len(self.rejected),
        )

        async def on_change(msg: Msg) -> None:
            await self._apply_msg(msg, prefix)

        sub = await js.subscribe(
            f"{prefix}>",
            stream=stream,
            cb=on_change,
            ordered_consumer=True,
            config=ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=start + 1
            ),
        )
        try:
            await asyncio.Event().wait()  # until cancelled
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _load(self, js: JetStreamContext, stream: str, prefix: str) -> None:
        psub = await js.pull_subscribe(
            f"{prefix}>",
            stream=stream,
            config=ConsumerConfig(
                deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
                ack_policy=AckPolicy.NONE,
                mem_storage=True,
                inactive_threshold=60.0,
            ),
        )
        try:
            remaining = (await psub.consumer_info()).num_pending or 0
            while remaining > 0:
                msgs = await psub.fetch(min(remaining, _LOAD_PAGE), timeout=30)
                remaining = msgs[-1].metadata.num_pending
                latest = {msg.subject: msg for msg in msgs}  # a key written during the load
                await asyncio.gather(*(self._apply_msg(msg, prefix) for msg in latest.values()))
        finally:
            with contextlib.suppress(Exception):
                await psub.unsubscribe()

    async def _apply_msg(self, msg: Msg, prefix: str) -> None:
        key = msg.subject[len(prefix) :]
        revision = msg.metadata.sequence.stream
        if revision <= self._applied.get(key, 0):
            return  # the load already applied this key at this revision or a newer one
        try:
            operation = (msg.headers or {}).get("KV-Operation")
            config = None
            if operation is None and msg.data:
                config = IntegrationConfig.from_bytes(msg.data)
            await self.apply(config, key, revision=revision)
        except ValidationError as exc:
            await self.reject(key, describe_config_error(exc), revision=revision)
        except Exception as exc:
            log.exception("scheduler.apply_failed", key=key, error=type(exc).__name__)
        async with self._applied_changed:
            self._applied[key] = max(revision, self._applied.get(key, 0))
            self._applied_changed.notify_all()

    async def wait_applied(self, key: str, revision: int, timeout: float = 30.0) -> None:
        """Wait until the watch has applied revision `revision` (or a later one) of `key`."""

        async def applied() -> None:
            async with self._applied_changed:
                await self._applied_changed.wait_for(lambda: self._applied.get(key, 0) >= revision)

        await asyncio.wait_for(applied(), timeout)

    # --- catch-up ---------------------------------------------------------------------------
    async def catch_up_fires(
        self, integration_id: str, schedule: Schedule, now: datetime
    ) -> CatchUp:
        """The fires missed since the watermark: within the window (to send) and older."""
        state = await self.firer.states.get(integration_id)
        watermark = state.last_fired_for if state else None
        if watermark is None or watermark >= now:
            return CatchUp([], [], 0, too_old_truncated=False, watermark=watermark)
        window_start = now - timedelta(days=self.settings.catchup_window_days)
        reported = state.missed_reported_through if state else None

        def find(since: datetime) -> Missed:
            return missed_fires(
                schedule,
                since,
                now,
                window_start=window_start,
                reported_through=reported,
                list_limit=self.settings.missed_list_limit,
                count_limit=_MISSED_COUNT_LIMIT,
            )

        missed = find(watermark)
        if missed.in_window or missed.too_old_count:
            stored = await self._last_stored_fire(integration_id)
            if stored is not None and stored > watermark:
                # The replica that stored it stopped before it moved the watermark.
                watermark = stored
                missed = find(watermark)
        return CatchUp(
            missed.in_window, missed.too_old, missed.too_old_count, missed.truncated, watermark
        )

    async def _last_stored_fire(self, integration_id: str) -> datetime | None:
        try:
            msg = await self.firer.js.get_last_msg(
                t.STREAM_REQUESTS, t.request_subject(integration_id)
            )
        except NotFoundError:
            return None
        try:
            request = SyncRequest.from_bytes(msg.data or b"")
        except ValidationError:
            return None
        if request.origin is RequestOrigin.SCHEDULER:
            return request.scheduled_for
        return None

    async def _report_misses(
        self, integration_id: str, schedule: Schedule, found: CatchUp, now: datetime
    ) -> None:
        if found.too_old_count:
            await self._alert_too_old(integration_id, schedule, found, now)
        if found.in_window:
            first, last = found.in_window[0], found.in_window[-1]
            late_h = (now - first).total_seconds() / 3600
            keys = [
                fire_target(integration_id, schedule, f).idempotency_key for f in found.in_window
            ]
            log.warning(
                "scheduler.catching_up",
                integration_id=integration_id,
                fires=len(keys),
                first=first.isoformat(),
                last=last.isoformat(),
            )
            await self.firer.alert(
                AlertKind.DRIFT,
                integration_id,
                f"{len(keys)} fire(s) of {integration_id} missed while no scheduler ran are "
                f"being sent now, oldest first (the oldest is {late_h:.1f} h late)",
                {
                    "catch_up": True,
                    "keys": keys[: self.settings.missed_list_limit],
                    "count": len(keys),
                    "first_scheduled_for": first.isoformat(),
                    "last_scheduled_for": last.isoformat(),
                },
                msg_id=f"catchup:{keys[0]}:{keys[-1]}",
            )

    async def _alert_too_old(
        self, integration_id: str, schedule: Schedule, found: CatchUp, now: datetime
    ) -> None:
        self.metrics.inc("missed_beyond_window_total", found.too_old_count)
        targets = [fire_target(integration_id, schedule, f) for f in found.too_old]
        names = [tg.period_id or tg.idempotency_key.split(":", 1)[1] for tg in targets]
        count = f"{found.too_old_count:,}"
        if found.too_old_truncated:
            count = f"more than {count}"
        shown = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
        days = f"{self.settings.catchup_window_days:g}"
        if schedule.mode is ScheduleMode.PERIOD:
            command = f"syncbus backfill {integration_id} {names[0]} {names[-1]}"
            how = f"export them with `{command}`"
        else:
            command = f"syncbus trigger {integration_id}"
            how = f"`{command}` exports everything staged and not yet exported"
        message = (
            f"{count} fire(s) of {integration_id} were missed longer ago than the {days}-day "
            f"catch-up window and were not sent ({shown}); {how}"
        )
        await self.firer.alert(
            AlertKind.MISSED_PERIODS,
            integration_id,
            message,
            {
                "missed": [
                    {
                        "scheduled_for": fire.isoformat(),
                        "key": target.idempotency_key,
                        "period_id": target.period_id,
                    }
                    for fire, target in zip(found.too_old, targets, strict=True)
                ],
                "count": found.too_old_count,
                "truncated": found.too_old_truncated or found.too_old_count > len(targets),
                "window_days": self.settings.catchup_window_days,
                "command": command,
            },
            msg_id=f"missed:{targets[0].idempotency_key}:{targets[-1].idempotency_key}",
        )
        # Everything up to the window is reported when the list was cut; else up to its last.
        through = found.too_old[-1]
        if found.too_old_count > len(found.too_old):
            through = now - timedelta(days=self.settings.catchup_window_days)
        await self.firer.states.mark_missed_reported(integration_id, through)

    # --- the clock --------------------------------------------------------------------------
    async def tick(self) -> float:
        """Send what is due; return seconds until the next thing to do."""
        now = self.clock.timestamp()
        due = self.book.pop_due(now)
        if due:
            await self._process(due, now)
        upcoming = self.book.next_due()
        wait = self.settings.tick_seconds
        if upcoming is not None:
            wait = min(wait, max(0.0, upcoming - self.clock.timestamp()))
        return wait

    async def _process(self, due: list[Plan], now: float) -> None:
        warm: list[Plan] = []
        fires: list[Plan] = []
        for plan in due:
            if not plan.warm_done and now >= plan.warm_at:
                plan.warm_done = True
                if self.gate.sends_warmups():
                    warm.append(plan)
                    plan.warmed = True
                else:
                    self.metrics.inc("warmups_left_to_leader_total")
            if now >= plan.publish_at:
                fires.append(plan)
            else:
                self.book.push(plan)
        ready: list[Plan] = []
        lead = self.settings.catchup_lead_seconds
        for plan in fires:
            key = fire_target(plan.integration_id, plan.schedule, plan.scheduled_for())
            if plan.warmed or self.gate.seen(key.idempotency_key):
                ready.append(plan)
            elif self.gate.sends_warmups():
                # Not warmed yet (planned inside its lead, or a first missed fire): warm now and
                # give the dispatcher the catch-up lead.
                warm.append(plan)
                plan.warmed = plan.warm_done = True
                plan.publish_at = now + lead
                self.book.push(plan)
            elif not plan.standby:
                plan.standby = plan.warm_done = True
                plan.publish_at = now + lead + _STANDBY_MARGIN_SECONDS
                self.book.push(plan)
            else:  # the lease holder sent no warm-up in time: send one, right before the request
                warm.append(plan)
                plan.warmed = True
                ready.append(plan)
        if warm:
            await self.firer.publish_warmups([_fire_of(plan) for plan in warm])
        if not ready:
            return
        reports = await self.firer.publish_requests([_fire_of(plan) for plan in ready])
        await self._record(reports)
        after = self.clock.timestamp()
        for plan, report in zip(ready, reports, strict=True):
            if not self.book.is_current(plan):
                continue  # replaced or removed while publishing
            if report.error is not None:
                plan.failures += 1
                plan.publish_at = after + min(_MAX_RETRY_SECONDS, 2.0 ** (plan.failures - 1))
                self.book.push(plan)
                continue
            try:
                plan.advance(after)
            except CronError as exc:
                self.book.remove(plan.integration_id)
                log.error(  # noqa: TRY400 - the sentence says it all; a traceback adds nothing
                    "scheduler.schedule_ended", integration_id=plan.integration_id, problem=str(exc)
                )
                continue
            self.book.push(plan)

    async def _record(self, reports: list[FireReport]) -> None:
        self.reports.extend(reports)
        async with self._settled:
            self._settled_count += len(reports)
            self._settled.notify_all()

    async def wait_settled(self, count: int, timeout: float = 30.0) -> list[FireReport]:
        """Wait until `count` scheduled fires have settled since start; the latest reports."""

        async def enough() -> None:
            async with self._settled:
                await self._settled.wait_for(lambda: self._settled_count >= count)

        await asyncio.wait_for(enough(), timeout)
        return list(self.reports)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._woken = False
            try:
                wait = await self.tick()
            except Exception as exc:
                log.exception("scheduler.tick_failed", error=type(exc).__name__)
                wait = self.settings.tick_seconds
            if wait <= 0 or self._woken:
                continue
            # Sleep until the next thing is due (or a new plan wakes the loop): one future and one
            # timer, no task per sleep, woken to the millisecond by the event loop's timer.
            waiter = loop.create_future()
            self._waiter = waiter
            timer = loop.call_later(wait, _release, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None

    def _wake(self) -> None:
        """A plan changed: let the clock loop look again now."""
        self._woken = True
        if self._waiter is not None:
            _release(self._waiter)

    # --- commands ---------------------------------------------------------------------------
    async def backfill(self, request: BackfillRequest, config: IntegrationConfig) -> BackfillReply:
        """Fire past periods on purpose, oldest first, each with its warm-up and its own key."""
        schedule = config.schedule
        if schedule is None:
            return _backfill_error(
                request, f"integration {config.integration_id!r} has no schedule"
            )
        if schedule.mode is ScheduleMode.INCREMENTAL:
            return _backfill_error(
                request,
                f"integration {config.integration_id!r} has an incremental schedule, which has "
                f"no periods to backfill; `syncbus trigger {config.integration_id}` exports "
                "everything staged and not yet exported",
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
        fires = [fire_for_period(schedule, period.period_id) for period in periods]
        now = self.clock.now()
        for period, fire in zip(periods, fires, strict=True):
            if fire > now:
                return _backfill_error(request, _not_due(schedule, period.period_id, fire))
        fired = []
        for scheduled_for in fires:
            report = await self.firer.fire(
                config,
                scheduled_for,
                due_at=None,
                origin=RequestOrigin.BACKFILL,
                warm_up_first=True,
            )
            fired.append(
                FiredPeriod(
                    period_id=report.period_id or "",
                    idempotency_key=report.idempotency_key,
                    scheduled_for=report.scheduled_for,
                    published_at=report.published_at,
                    drift_ms=report.drift_ms,
                    duplicate=report.duplicate,
                )
            )
        return BackfillReply(integration_id=config.integration_id, fired=tuple(fired))

    async def trigger(self, request: TriggerRequest, config: IntegrationConfig) -> TriggerReply:
        """Fire one integration's schedule now (or one due period of it), warm-up first."""
        schedule = config.schedule
        if schedule is None:
            return _trigger_error(request, f"integration {config.integration_id!r} has no schedule")
        now = self.clock.now()
        if request.period_id is None:
            scheduled_for = now
        elif schedule.mode is ScheduleMode.INCREMENTAL:
            return _trigger_error(
                request,
                f"integration {config.integration_id!r} has an incremental schedule, which has "
                "no periods; trigger it without --period",
            )
        else:
            scheduled_for = fire_for_period(schedule, request.period_id)
            if scheduled_for > now:
                return _trigger_error(request, _not_due(schedule, request.period_id, scheduled_for))
        report = await self.firer.fire(
            config, scheduled_for, due_at=None, origin=RequestOrigin.CLI, warm_up_first=True
        )
        return TriggerReply(
            integration_id=config.integration_id,
            idempotency_key=report.idempotency_key,
            period_id=report.period_id,
            scheduled_for=report.scheduled_for,
            published_at=report.published_at,
            duplicate=report.duplicate,
        )

    def status(self) -> SchedulerStatus:
        earliest = min((plan.next_fire for plan in self.book.plans.values()), default=None)
        return SchedulerStatus(
            instance=self.gate.instance,
            started_at=self.started_at,
            loaded=self.loaded.is_set(),
            schedules=len(self.book),
            paused=len(self.paused),
            rejected=len(self.rejected),
            warmup_leader=self.gate.holds_lease,
            clock_offset_ms=round(self.clock.offset_s * 1000, 3),
            next_fire=datetime.fromtimestamp(earliest, UTC) if earliest is not None else None,
            counters=self.metrics.snapshot(),
        )


def _release(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _fire_of(plan: Plan) -> Fire:
    scheduled_for = plan.scheduled_for()
    return Fire(
        plan.integration_id,
        plan.schedule,
        scheduled_for,
        due_at=scheduled_for,
        origin=RequestOrigin.SCHEDULER,
        catch_up=plan.catch_up,
    )


def _not_due(schedule: Schedule, period_id: str, fire: datetime) -> str:
    local = fire.astimezone(ZoneInfo(schedule.timezone))
    return (
        f"period {period_id} is not due yet: the schedule exports it at "
        f"{local:%Y-%m-%d %H:%M} {schedule.timezone} ({fire:%Y-%m-%dT%H:%M}Z), and exporting it "
        "earlier would use its key before the period is complete"
    )


def _backfill_error(request: BackfillRequest, message: str) -> BackfillReply:
    return BackfillReply(
        integration_id=request.integration_id,
        error=ErrorInfo(error_class=ErrorClass.INVALID_REQUEST, message=message),
    )


def _trigger_error(request: TriggerRequest, message: str) -> TriggerReply:
    return TriggerReply(
        integration_id=request.integration_id,
        error=ErrorInfo(error_class=ErrorClass.INVALID_REQUEST, message=message),
    )


def instance_name(settings: ServiceSettings) -> str:
    return settings.instance_id or f"scheduler-{socket.gethostname()}-{os.getpid()}"


async def _connect_no_echo(nats_settings: NatsSettings, name: str) -> Client:
    """A second connection that does not receive its own messages (for watching warm-ups)."""
    return await connect(nats_settings, name, no_echo=True)


def build_app(
    nats_settings: NatsSettings | None = None,
    settings: SchedulerSettings | None = None,
    service: ServiceSettings | None = None,
    probes: ProbeSettings | None = None,
) -> FastStream:
    """The scheduler app; with `probes`, it serves /livez, /readyz and /metrics too."""
    nats_settings = nats_settings or NatsSettings()
    metrics = SchedulerMetrics()
    settings = settings or SchedulerSettings()
    service = service or ServiceSettings()
    instance = instance_name(service)
    broker = NatsBroker(
        **broker_options(nats_settings), logger=None, middlewares=(NatsTracingMiddleware,)
    )
    holder: dict[str, Scheduler] = {}
    started = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    extra: list[Client] = []

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
        except (ValueError, FirePublishError) as exc:
            reply = _backfill_error(request, str(exc))
        return reply.to_bytes()

    @broker.subscriber(
        t.SCHEDULER_TRIGGER,
        queue=t.QUEUE_SCHEDULER_COMMANDS,
        title=t.SCHEDULER_TRIGGER,
        description="Request/reply: fire one integration's schedule now (warm-up first).",
    )
    async def on_trigger(msg: NatsMessage) -> bytes:
        await started.wait()
        try:
            request = TriggerRequest.from_bytes(msg.body)
        except ValidationError as exc:
            return TriggerReply(
                integration_id="",
                error=ErrorInfo(
                    error_class=ErrorClass.INVALID_REQUEST,
                    message=f"not a trigger request ({exc.error_count()} problem(s))",
                ),
            ).to_bytes()
        config = await get_integration(broker.connection.jetstream(), request.integration_id)
        if config is None:
            return _trigger_error(
                request, f"integration {request.integration_id!r} is not configured"
            ).to_bytes()
        try:
            reply = await holder["scheduler"].trigger(request, config)
        except (ValueError, FirePublishError) as exc:
            reply = _trigger_error(request, str(exc))
        return reply.to_bytes()

    @broker.subscriber(
        t.SCHEDULER_STATUS,
        title=t.SCHEDULER_STATUS,
        description="Request, many replies: every replica answers with its SchedulerStatus.",
    )
    async def on_status(msg: NatsMessage) -> bytes:  # noqa: ARG001 - the request has no body
        await started.wait()
        return holder["scheduler"].status().to_bytes()

    app = FastStream(broker)

    @app.after_startup
    async def start() -> None:
        nc = broker.connection
        js = nc.jetstream()
        clock = Clock(
            simulated_skew_s=settings.simulated_clock_skew_seconds,
            follow_server=settings.clock_follow_server,
        )
        await clock.sync(js)
        state_kv = await js.key_value(t.KV_SCHEDULE_STATE)
        states = ScheduleStateStore(state_kv)
        gate = LeaseGate(state_kv, instance, clock, settings.warmup_lease_seconds)
        watcher_nc = await _connect_no_echo(nats_settings, f"{instance}-warmups")
        extra.append(watcher_nc)
        await gate.watch_warmups(watcher_nc)
        await gate.renew()
        firer = Firer(nc, js, states, settings, clock=clock, metrics=metrics)
        scheduler = Scheduler(firer, settings, gate=gate)
        metrics.observe_state(
            lambda: len(scheduler.book),
            lambda: len(scheduler.paused),
            lambda: len(scheduler.rejected),
            lambda: gate.holds_lease,
            lambda: clock.offset_s,
        )
        holder["scheduler"] = scheduler

        async def keep_lease() -> None:
            while True:
                await asyncio.sleep(settings.warmup_lease_seconds / 3)
                try:
                    await gate.renew()
                    gate.forget_old()
                except Exception as exc:
                    log.warning("scheduler.lease_renew_failed", error=type(exc).__name__)

        async def keep_clock() -> None:
            while True:
                await asyncio.sleep(settings.clock_sync_seconds)
                try:
                    await clock.sync(js)
                except Exception as exc:
                    log.warning("scheduler.clock_sync_failed", error=type(exc).__name__)

        tasks.append(asyncio.create_task(scheduler.watch(js)))
        tasks.append(asyncio.create_task(scheduler.run()))
        tasks.append(asyncio.create_task(keep_lease()))
        tasks.append(asyncio.create_task(keep_clock()))
        started.set()
        log.info(
            "scheduler.ready",
            instance=instance,
            warmup_leader=gate.holds_lease,
            clock_offset_ms=round(clock.offset_s * 1000, 3),
        )

    @app.on_shutdown
    async def stop() -> None:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        scheduler = holder.get("scheduler")
        if scheduler is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(scheduler.firer.writer.flush(), timeout=5)
            if isinstance(scheduler.gate, LeaseGate):
                await scheduler.gate.release()
                await scheduler.gate.aclose()
        for client in extra:
            with contextlib.suppress(Exception):
                await client.close()

    if probes is not None:
        server = Probes("scheduler", metrics.registry, probes)
        server.add_check("nats", nats_check(broker))
        server.attach(app)
    return app


__all__ = ["CatchUp", "Plan", "Scheduler", "build_app", "instance_name"]
