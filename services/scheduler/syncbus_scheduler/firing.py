"""Firing: the warm-up first, then the request keyed by the period (or the fire instant).

Every request the scheduler publishes, whether on time, caught up after downtime, backfilled or
triggered on purpose, is built and published by `Firer.publish_requests` (`Firer.fire` is the
one-fire form: warm-up, lead, request), so the same rules hold for all of them:

* the key is `<integration_id>:<period_id>` for a period schedule and
  `<integration_id>:<scheduled instant, UTC ISO>` for an incremental one (`fire_target`);
* the request carries its period's bounds as local dates and UTC instants, `scheduled_for`
  and `published_at`; its `Nats-Msg-Id` is the key, so the broker keeps one copy per key
  however many replicas publish it;
* the drift (published minus due) is measured; above the threshold it is logged, counted and
  alerted (a caught-up fire's lateness is alerted once per catch-up, by the scheduler);
* only the replica whose copy the broker stored moves the catch-up watermark in
  `schedule-state`, and only forward (state.py).

A burst of due fires is published together: every request is sent before the first
acknowledgement is awaited, and watermarks are written afterwards by a background writer, so
10,000 schedules due at one instant cost about what publishing 10,000 messages costs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from opentelemetry.trace import SpanContext

from syncbus_shared import topology as t
from syncbus_shared.contracts import (
    Alert,
    AlertKind,
    IntegrationConfig,
    RequestOrigin,
    Schedule,
    ScheduleMode,
)
from syncbus_shared.keys import period_key
from syncbus_shared.logs import get_logger
from syncbus_shared.tracing import current_span_context, publish_span, resumed

from .clock import Clock
from .metrics import SchedulerMetrics
from .periods import Period, period_for_fire
from .settings import SchedulerSettings
from .state import ScheduleState, ScheduleStateStore
from .wire import request_bytes, warmup_bytes

log = get_logger()

ACK_TIMEOUT_SECONDS = 10.0
"""How long a publish waits for the broker's acknowledgement before it counts as failed."""

LOG_EACH_FIRE_UP_TO = 50
"""A batch of more fires than this logs one summary line at INFO (and each fire at DEBUG)."""


@dataclass(frozen=True, slots=True)
class FireTarget:
    """What one fire exports and under which key."""

    idempotency_key: str
    period: Period | None
    """The period a period schedule's fire covers; None for an incremental schedule."""

    @property
    def period_id(self) -> str | None:
        return self.period.period_id if self.period is not None else None


def instant_text(moment: datetime) -> str:
    """A UTC instant as a key part: `2026-11-30T10:15:00Z` (milliseconds only when present)."""
    utc = moment.astimezone(UTC)
    if utc.microsecond:
        return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
    return utc.strftime("%Y-%m-%dT%H:%M:%SZ")


def instant_key(integration_id: str, moment: datetime) -> str:
    """The idempotency key of an incremental fire: `<integration_id>:<instant, UTC ISO>`."""
    return f"{integration_id}:{instant_text(moment)}"


def fire_target(integration_id: str, schedule: Schedule, scheduled_for: datetime) -> FireTarget:
    if schedule.mode is ScheduleMode.INCREMENTAL:
        return FireTarget(instant_key(integration_id, scheduled_for), None)
    period = _period(schedule, scheduled_for)
    return FireTarget(period_key(integration_id, period.period_id), period)


@lru_cache(maxsize=8192)
def _period(schedule: Schedule, scheduled_for: datetime) -> Period:
    # Identical schedules due at one instant (a burst) share the computation.
    return period_for_fire(schedule, scheduled_for)


@dataclass(frozen=True, slots=True)
class Fire:
    """One fire to publish."""

    integration_id: str
    schedule: Schedule
    scheduled_for: datetime
    due_at: datetime | None = None
    """When the request should have been published, for the drift (None: when it is)."""
    origin: RequestOrigin = RequestOrigin.SCHEDULER
    catch_up: bool = False
    """A missed fire sent after downtime: its lateness is alerted once per catch-up."""

    @property
    def advances_watermark(self) -> bool:
        """Scheduled fires move the catch-up watermark; backfills and triggers do not."""
        return self.origin is RequestOrigin.SCHEDULER


@dataclass(frozen=True, slots=True)
class _Sent:
    """One request on its way: what `_settle` needs once its acknowledgement is in."""

    fire: Fire
    target: FireTarget
    published_at: datetime
    drift_ms: float
    span_context: SpanContext | None = None
    """The publish span's, so the lines `_settle` logs carry the request's trace id."""


@dataclass(frozen=True)
class FireReport:
    integration_id: str
    period_id: str | None
    idempotency_key: str
    scheduled_for: datetime
    published_at: datetime
    drift_ms: float
    duplicate: bool
    error: str | None = None
    """Why the publish failed (the request may not have been stored); None when it was."""


@dataclass
class StateWriter:
    """Writes catch-up watermarks in the background, newest per schedule, forward only."""

    states: ScheduleStateStore
    metrics: SchedulerMetrics
    concurrency: int = 256
    _pending: dict[str, _Sent] = field(default_factory=dict)
    _idle: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    def submit(self, sent: _Sent) -> None:
        """Record that `sent` was stored; only the newest fire per schedule is written."""
        integration_id = sent.fire.integration_id
        current = self._pending.get(integration_id)
        if current is None or sent.fire.scheduled_for > current.fire.scheduled_for:
            self._pending[integration_id] = sent
        self._idle.clear()

    def start(self) -> None:
        """Write what was submitted, in the background (after a burst's requests are out)."""
        if self._pending and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self._run())

    async def flush(self) -> None:
        """Wait until every submitted watermark is written (or failed)."""
        self.start()
        if self._pending or (self._task is not None and not self._task.done()):
            await self._idle.wait()

    async def _run(self) -> None:
        gate = asyncio.Semaphore(self.concurrency)
        failures: dict[str, str] = {}

        async def write(sent: _Sent) -> None:
            state = ScheduleState(
                integration_id=sent.fire.integration_id,
                last_fired_for=sent.fire.scheduled_for,
                last_period_id=sent.target.period_id,
                last_key=sent.target.idempotency_key,
                last_published_at=sent.published_at,
                last_drift_ms=sent.drift_ms,
            )
            async with gate:
                try:
                    await self.states.advance(state)
                    self.metrics.inc("state_writes_total")
                except Exception as exc:
                    self.metrics.inc("state_write_errors_total")
                    failures[state.integration_id] = type(exc).__name__

        while self._pending:
            batch = list(self._pending.values())
            self._pending.clear()
            await asyncio.gather(*(write(sent) for sent in batch))
        if failures:
            # The next fire of each writes its watermark again; until then a restart would
            # catch these fires up a second time, which the broker or the dispatcher drops.
            log.warning(
                "scheduler.state_write_failed",
                schedules=len(failures),
                first=sorted(failures)[:5],
                error=sorted(set(failures.values())),
            )
        self._idle.set()


@dataclass
class Firer:
    nc: Client
    js: JetStreamContext
    states: ScheduleStateStore
    settings: SchedulerSettings
    clock: Clock = field(default_factory=lambda: Clock(follow_server=False))
    metrics: SchedulerMetrics = field(default_factory=SchedulerMetrics)
    writer: StateWriter = field(init=False)
    _alerts: set[asyncio.Task[None]] = field(default_factory=set, init=False, repr=False)

    def __post_init__(self) -> None:
        self.writer = StateWriter(self.states, self.metrics, self.settings.state_write_concurrency)

    # --- warm-ups --------------------------------------------------------------------------
    async def publish_warmups(self, fires: Sequence[Fire]) -> None:
        """Publish the warm-up of each fire (core NATS), in order."""
        quiet = len(fires) > LOG_EACH_FIRE_UP_TO
        for fire in fires:
            target = fire_target(fire.integration_id, fire.schedule, fire.scheduled_for)
            body = warmup_bytes(
                fire.integration_id,
                target.idempotency_key,
                target.period_id,
                fire.scheduled_for,
                self.clock.now(),
            )
            subject = t.warmup_subject(fire.integration_id)
            with publish_span(subject, body) as headers:
                await self.nc.publish(subject, body, headers=headers or None)
                if not quiet:  # inside the span: the line carries the warm-up's trace id
                    log.info(
                        "scheduler.warmup_sent",
                        integration_id=fire.integration_id,
                        key=target.idempotency_key,
                        scheduled_for=fire.scheduled_for.isoformat(),
                    )
        # No `flush()`: the request that follows goes down the same connection after these, and
        # a task cancelled inside nats-py's flush leaves a PONG future that its read loop later
        # fails on (nats-py 2.16 `_process_pong`), losing the replies read with it.
        self.metrics.inc("warmups_sent_total", len(fires))
        if quiet:
            log.info("scheduler.warmups_sent", count=len(fires))

    # --- requests: the one path ------------------------------------------------------------
    async def publish_requests(self, fires: Sequence[Fire]) -> list[FireReport]:
        """Publish the request of each fire, all before awaiting any acknowledgement.

        The batch shares one reply subscription (`_AckBatch`) instead of a future per message:
        JetStream acknowledges each publish on its own reply subject, and the batch reads them.
        """
        acks = _AckBatch(self.nc, len(fires))
        await acks.open()
        sent: list[_Sent] = []
        try:
            for index, fire in enumerate(fires):
                target = fire_target(fire.integration_id, fire.schedule, fire.scheduled_for)
                published_at = self.clock.now()
                due_at = fire.due_at or published_at
                drift_ms = max(0.0, (published_at - due_at).total_seconds() * 1000)
                body = request_bytes(
                    fire.integration_id,
                    target.idempotency_key,
                    target.period,
                    origin=fire.origin,
                    scheduled_for=fire.scheduled_for,
                    published_at=published_at,
                    drift_ms=drift_ms,
                )
                subject = t.request_subject(fire.integration_id)
                span_context = None
                try:
                    # A fire of the clock loop starts the sync's trace here (a trigger's or a
                    # backfill's continues the command's); its context rides in the headers.
                    with publish_span(subject, body, {"Nats-Msg-Id": target.idempotency_key}) as h:
                        span_context = current_span_context()
                        await self.nc.publish(subject, body, reply=acks.reply(index), headers=h)
                except Exception as exc:
                    acks.fail(index, f"{type(exc).__name__}: {exc}"[:200])
                sent.append(_Sent(fire, target, published_at, round(drift_ms, 3), span_context))
            await acks.wait(ACK_TIMEOUT_SECONDS)
        finally:
            await acks.close()
        quiet = len(sent) > LOG_EACH_FIRE_UP_TO
        reports: list[FireReport] = []
        for index, one in enumerate(sent):
            with resumed(one.span_context):  # its log lines carry the request's trace id
                reports.append(self._settle(one, *acks.outcome(index), quiet=quiet))
        self.writer.start()
        if quiet:
            log.info(
                "scheduler.requests_published",
                count=len(reports),
                stored=sum(1 for r in reports if r.error is None and not r.duplicate),
                duplicates=sum(1 for r in reports if r.duplicate),
                failed=sum(1 for r in reports if r.error is not None),
                max_drift_ms=round(max(r.drift_ms for r in reports), 3),
            )
        return reports

    def _settle(
        self,
        one: _Sent,
        duplicate: bool,
        error: str | None,
        *,
        quiet: bool = False,
    ) -> FireReport:
        fire, drift_ms = one.fire, one.drift_ms
        key, period_id = one.target.idempotency_key, one.target.period_id
        report = FireReport(
            integration_id=fire.integration_id,
            period_id=period_id,
            idempotency_key=key,
            scheduled_for=fire.scheduled_for,
            published_at=one.published_at,
            drift_ms=drift_ms,
            duplicate=duplicate,
            error=error,
        )
        if error is not None:
            self.metrics.inc("fires_failed_total")
            log.error(
                "scheduler.request_publish_failed",
                integration_id=fire.integration_id,
                key=key,
                error=error,
            )
            return report
        self.metrics.inc("fires_duplicate_total" if duplicate else "fires_stored_total")
        if fire.catch_up:
            self.metrics.inc("catchup_fires_total")
        if not quiet:  # a big batch logs one summary line instead
            log.info(
                "scheduler.request_published",
                integration_id=fire.integration_id,
                key=key,
                origin=fire.origin.value,
                scheduled_for=fire.scheduled_for.isoformat(),
                drift_ms=round(drift_ms, 3),
                duplicate=duplicate,
            )
        if duplicate:
            return report  # the replica whose copy was stored records and alerts
        if fire.due_at is not None:
            self.metrics.observe_drift(drift_ms, catch_up=fire.catch_up)
        if fire.advances_watermark:
            self.writer.submit(one)
        if drift_ms > self.settings.drift_alert_seconds * 1000:
            self.metrics.inc("drift_over_threshold_total")
            log.warning(
                "scheduler.drift_over_threshold",
                integration_id=fire.integration_id,
                key=key,
                drift_ms=round(drift_ms, 3),
                threshold_s=self.settings.drift_alert_seconds,
                catch_up=fire.catch_up,
            )
            if not fire.catch_up:
                self._alert_later(
                    AlertKind.DRIFT,
                    fire.integration_id,
                    f"{key} was published {drift_ms / 1000:.1f} s after it was due",
                    {
                        "key": key,
                        "drift_ms": round(drift_ms, 3),
                        "scheduled_for": fire.scheduled_for.isoformat(),
                        "threshold_s": self.settings.drift_alert_seconds,
                    },
                    msg_id=f"drift:{key}",
                )
        return report

    async def fire(
        self,
        config: IntegrationConfig,
        scheduled_for: datetime,
        *,
        due_at: datetime | None,
        origin: RequestOrigin,
        warm_up_first: bool,
    ) -> FireReport:
        """One fire: its warm-up, the catch-up lead, then its request (backfill, trigger).

        `due_at` is when the request should have been published, for the drift measurement;
        None for a backfill or trigger, whose request is due once its warm-up lead has passed.
        Raises `FirePublishError` when the request could not be published.
        """
        assert config.schedule is not None
        fire = Fire(config.integration_id, config.schedule, scheduled_for, due_at, origin)
        if warm_up_first:
            await self.publish_warmups([fire])
            lead = self.settings.catchup_lead_seconds
            lead_until = self.clock.now() + timedelta(seconds=lead)
            await asyncio.sleep(lead)
            if due_at is None:
                fire = Fire(
                    config.integration_id, config.schedule, scheduled_for, lead_until, origin
                )
        (report,) = await self.publish_requests([fire])
        await self.writer.flush()
        await self.settle_alerts()
        if report.error is not None:
            raise FirePublishError(report.idempotency_key, report.error)
        return report

    # --- alerts ----------------------------------------------------------------------------
    def _alert_later(
        self,
        kind: AlertKind,
        integration_id: str,
        message: str,
        details: dict[str, object],
        *,
        msg_id: str | None = None,
    ) -> None:
        task = asyncio.create_task(
            self.alert(kind, integration_id, message, details, msg_id=msg_id)
        )
        self._alerts.add(task)
        task.add_done_callback(self._alerts.discard)

    async def settle_alerts(self) -> None:
        """Wait for alerts raised in the background (tests, single fires)."""
        if self._alerts:
            await asyncio.gather(*list(self._alerts), return_exceptions=True)

    async def alert(
        self,
        kind: AlertKind,
        integration_id: str,
        message: str,
        details: dict[str, object],
        *,
        msg_id: str | None = None,
    ) -> None:
        """Publish an alert; `msg_id` lets the ALERTS stream keep one copy across replicas."""
        log.warning(
            "scheduler.alert", kind=kind.value, integration_id=integration_id, message=message
        )
        alert = Alert(kind=kind, integration_id=integration_id, message=message, details=details)
        headers = {"Nats-Msg-Id": msg_id} if msg_id else None
        try:
            await self.js.publish(
                t.alert_subject(kind.value, integration_id), alert.to_bytes(), headers=headers
            )
        except Exception as exc:
            log.warning("scheduler.alert_failed", kind=kind.value, error=type(exc).__name__)


class _AckBatch:
    """The JetStream acknowledgements of one batch of publishes, on one reply subscription.

    Publish `i` carries the reply subject `<inbox>.<i>`; the stream answers there with its
    PubAck (`{"stream": ..., "seq": ..., "duplicate": true}`), an error
    (`{"error": {...}}`), or, when no stream takes the subject, a 503 status.
    """

    def __init__(self, nc: Client, count: int) -> None:
        self._nc = nc
        self._inbox = nc.new_inbox()
        self._results: list[tuple[bool, str | None] | None] = [None] * count
        self._missing = count
        self._all_in: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sub: Subscription | None = None
        if count == 0:
            self._all_in.set_result(None)

    def reply(self, index: int) -> str:
        return f"{self._inbox}.{index}"

    async def open(self) -> None:
        self._sub = await self._nc.subscribe(f"{self._inbox}.*", cb=self._on_ack)

    async def _on_ack(self, msg: Msg) -> None:
        try:
            index = int(msg.subject.rsplit(".", 1)[1])
        except ValueError:
            return
        if not 0 <= index < len(self._results) or self._results[index] is not None:
            return
        status = (msg.headers or {}).get("Status")
        if status == "503":
            self._record(index, (False, "no stream takes the request subject (503)"))
            return
        try:
            answer = json.loads(msg.data)
        except ValueError:
            self._record(index, (False, "the acknowledgement is not JSON"))
            return
        error = answer.get("error") if isinstance(answer, dict) else None
        if error is not None:
            text = error.get("description", error) if isinstance(error, dict) else error
            self._record(index, (False, f"JetStream refused the request: {text}"[:200]))
            return
        self._record(index, (bool(answer.get("duplicate", False)), None))

    def fail(self, index: int, error: str) -> None:
        if self._results[index] is None:
            self._record(index, (False, error))

    def _record(self, index: int, result: tuple[bool, str | None]) -> None:
        self._results[index] = result
        self._missing -= 1
        if self._missing == 0 and not self._all_in.done():
            self._all_in.set_result(None)

    async def wait(self, timeout: float) -> None:
        """Until every acknowledgement is in, or `timeout` (missing ones then count as failed)."""
        await asyncio.wait([self._all_in], timeout=timeout)

    def outcome(self, index: int) -> tuple[bool, str | None]:
        """(duplicate, error) of publish `index`."""
        result = self._results[index]
        if result is None:
            return False, f"no acknowledgement within {ACK_TIMEOUT_SECONDS:g} s"
        return result

    async def close(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()


class FirePublishError(RuntimeError):
    def __init__(self, key: str, error: str) -> None:
        super().__init__(f"the request {key} could not be published: {error}")
        self.key = key
        self.error = error
