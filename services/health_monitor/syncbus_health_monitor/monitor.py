"""Health of every integration, bought as cheaply as possible.

Each round (`run_once`, every `rescan_seconds` or sooner when a probe is due) the monitor, per
integration in KV `integrations`:

1. takes a warm-up outcome the dispatcher left in the probe budget (`ProbeBudget.record_warmup`)
   as evidence, when it is newer than the current status;
2. in passive mode (the integration's own `health.mode`, or its vendor's entry
   `vendor.<vendor>` in KV `integration-health`) stops there: health then comes only from sync
   results and warm-ups;
3. otherwise probes when due, after spending one call from the probe budget (refused: the probe
   is skipped until the budget allows one again).

Sync results (`sync.result.*`, followed by `follow_results`) are evidence too: a succeeded sync
that exported something (`vouchers > 0`) proves the integration healthy, so the next probe moves
to an interval after it; a failed one counts as a failure, and in passive mode a failed
*scheduled* sync makes it unhealthy at once. A succeeded sync with no vouchers (an incremental
fire that found nothing new) called neither the vendor nor the credential service, so it proves
nothing: it must not turn an integration whose secret is missing healthy every 15 minutes.

"Due" is never earlier than the last probe plus the interval (default and floor 15 minutes;
lower only with `SYNCBUS_HEALTH_DEV_MIN_INTERVAL_SECONDS`, which is logged as a warning at
start and flagged on every probe log line), and it is stored in the status, so a restart does
not probe early. Backoff, pacing and the state machine are the pure rules of `policy.py`.

When a vendor answers a probe with a rate-limit error, the monitor switches that vendor (every
integration of its type) to passive for `auto_passive_seconds` and raises an alert on
`alerts.quota.<integration_id>` (stream ALERTS). One exception to passive: an integration that is
unhealthy for an `auth` reason is still probed (with backoff, within budget), because the
dispatcher fails its syncs fast and nothing else could ever prove it healthy again.

The current state is in KV `integration-health` (key = integration id); `health.status.<id>`
carries a status only when the state changes. Run one monitor replica: statuses are written
last-writer-wins (the budget, shared with dispatchers, uses compare-and-set).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue
from pydantic import ValidationError

from syncbus_adapters import AdapterError
from syncbus_shared import topology as t
from syncbus_shared.contracts import (
    Alert,
    AlertKind,
    ErrorClass,
    HealthMode,
    HealthState,
    HealthStatus,
    IntegrationConfig,
    ObservedOutcome,
    SyncResult,
    SyncStatus,
    VendorHealthMode,
)
from syncbus_shared.credentials_client import CredentialUnavailableError
from syncbus_shared.health import FAILED_FAST_CODE
from syncbus_shared.integrations import get_integration, list_integrations
from syncbus_shared.keys import is_integration_id
from syncbus_shared.logs import get_logger
from syncbus_shared.probe_budget import BudgetUsage, ProbeBudget, budget_limits

from .clock import Clock, SystemClock
from .policy import (
    NOT_VENDOR_HEALTH,
    Observation,
    backoff_seconds,
    effective_mode,
    is_rate_limit,
    last_probe_of,
    next_state,
    pacing_seconds,
    thresholds_of,
    vendor_mode_expired,
)
from .prober import AdapterProber, Prober
from .settings import HealthSettings

log = get_logger()

_MIN_WAIT_SECONDS = 0.5


@dataclass
class HealthMonitor:
    nc: Client
    js: JetStreamContext
    kv: KeyValue
    settings: HealthSettings
    budget: ProbeBudget
    clock: Clock = field(default_factory=SystemClock)
    prober: Prober | None = None
    rng: random.Random = field(default_factory=random.Random)
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.prober is None:
            self.prober = AdapterProber(self.nc, self.settings)

    @classmethod
    async def open(
        cls,
        nc: Client,
        settings: HealthSettings | None = None,
        *,
        clock: Clock | None = None,
        prober: Prober | None = None,
        rng: random.Random | None = None,
    ) -> HealthMonitor:
        js = nc.jetstream()
        clock = clock or SystemClock()
        return cls(
            nc=nc,
            js=js,
            kv=await js.key_value(t.KV_HEALTH),
            settings=settings or HealthSettings(),
            budget=await ProbeBudget.open(js, clock=clock.now),
            clock=clock,
            prober=prober,
            rng=rng or random.Random(),  # noqa: S311 - jitter, not cryptography
        )

    # --- reading state -------------------------------------------------------------------

    async def current(self, integration_id: str) -> HealthStatus | None:
        try:
            entry = await self.kv.get(integration_id)
        except KeyNotFoundError:
            return None
        if entry.value is None:
            return None
        return HealthStatus.from_bytes(entry.value)

    async def vendor_mode(self, vendor: str) -> VendorHealthMode | None:
        """The vendor's mode entry; an expired automatic one is removed (the vendor is active)."""
        key = t.vendor_health_key(vendor)
        try:
            entry = await self.kv.get(key)
        except KeyNotFoundError:
            return None
        if entry.value is None:
            return None
        mode = VendorHealthMode.from_bytes(entry.value)
        if mode.set_by == "auto" and vendor_mode_expired(mode, self.clock.now()):
            await self.kv.delete(key)
            log.warning("health.vendor_active_again", vendor=vendor, passive_since=mode.since)
            return None
        return mode

    def interval(self, config: IntegrationConfig) -> float:
        return self.settings.effective_interval(config.health.interval_seconds)

    def due_at(
        self, config: IntegrationConfig, status: HealthStatus | None, now: datetime | None = None
    ) -> datetime:
        """When the next probe may run: never before the last probe plus the interval.

        Without a status (never observed) that is `now`.
        """
        now = now or self.clock.now()
        if status is None:
            return now
        candidates = [status.next_probe_at] if status.next_probe_at else []
        last = last_probe_of(status)
        if last is not None:
            candidates.append(last + timedelta(seconds=self.interval(config)))
        return max(candidates, default=now)

    # --- one round -----------------------------------------------------------------------

    async def run_once(self) -> float:
        """Check every integration; return seconds until the next probe is due (capped)."""
        wait = self.settings.rescan_seconds
        for config in await list_integrations(self.js):
            try:
                due = await self.check(config)
            except Exception as exc:
                log.exception(
                    "health.check_failed",
                    integration_id=config.integration_id,
                    error=type(exc).__name__,
                )
                continue
            if due is not None:
                seconds = (due - self.clock.now()).total_seconds()
                wait = min(wait, max(_MIN_WAIT_SECONDS, seconds))
        return wait

    async def check(self, config: IntegrationConfig) -> datetime | None:
        """Take new warm-up evidence, probe if due and within budget; return when due next.

        None: passive, nothing to probe.
        """
        integration_id = config.integration_id
        async with self._lock(integration_id):
            now = self.clock.now()
            mode, _ = effective_mode(config, await self.vendor_mode(config.vendor), now)
            limits = budget_limits(config)
            usage = await self.budget.usage(integration_id, limits=limits)
            status = await self.current(integration_id)
            status = await self._take_warmup(config, mode, status, usage)
            if mode is HealthMode.PASSIVE and not (status is not None and status.fails_fast()):
                if status is not None and (status.mode is not mode or status.next_probe_at):
                    await self._store(
                        status.model_copy(update={"mode": mode, "next_probe_at": None})
                    )
                return None
            due = self.due_at(config, status, now)
            if due > now:
                return due
            if not await self.budget.try_spend(integration_id, kind="probe", limits=limits):
                return await self._skip_for_budget(config, mode, status, due)
            status = await self._probe(config, mode, status)
            return status.next_probe_at

    async def _take_warmup(
        self,
        config: IntegrationConfig,
        mode: HealthMode,
        status: HealthStatus | None,
        usage: BudgetUsage,
    ) -> HealthStatus | None:
        warm = usage.last_warmup
        if warm is None or (status is not None and warm.at <= status.checked_at):
            return status
        observation = _warmup_observation(warm)
        if observation is None:
            return status
        return await self._observe(config, mode, observation, status, usage)

    async def _skip_for_budget(
        self,
        config: IntegrationConfig,
        mode: HealthMode,
        status: HealthStatus | None,
        due: datetime,
    ) -> datetime:
        now = self.clock.now()
        usage = await self.budget.usage(config.integration_id, limits=budget_limits(config))
        next_at = max(usage.next_allowed_at(now), due)
        log.info(
            "health.probe_skipped",
            integration_id=config.integration_id,
            reason="budget",
            month_used=usage.month_used,
            per_month=usage.limits.per_month,
            hour_used=usage.hour_used,
            per_hour=usage.limits.per_hour,
            next_probe_at=next_at.isoformat(),
        )
        base = status or HealthStatus(
            integration_id=config.integration_id,
            state=HealthState.UNKNOWN,
            reason="not probed yet: the probe budget is spent",
            checked_at=now,
        )
        await self._store(base.model_copy(update={"mode": mode, "next_probe_at": next_at}))
        return next_at

    # --- probing -------------------------------------------------------------------------

    async def probe(self, config: IntegrationConfig) -> HealthStatus:
        """Probe now, whatever the schedule (still spending from the budget; tests, operators).

        A refused spend probes nothing and returns the current status.
        """
        async with self._lock(config.integration_id):
            now = self.clock.now()
            mode, _ = effective_mode(config, await self.vendor_mode(config.vendor), now)
            status = await self.current(config.integration_id)
            limits = budget_limits(config)
            if not await self.budget.try_spend(config.integration_id, kind="probe", limits=limits):
                await self._skip_for_budget(config, mode, status, now)
                skipped = await self.current(config.integration_id)
                assert skipped is not None
                return skipped
            return await self._probe(config, mode, status)

    async def recheck(self, config: IntegrationConfig) -> HealthStatus:
        """An operator's "probe now" (`syncbus health recheck`): skips the backoff wait, and
        passive mode, but never the interval floor since the last probe nor the budget.

        Returns the status afterwards; when nothing was probed it is the unchanged one.
        """
        async with self._lock(config.integration_id):
            now = self.clock.now()
            status = await self.current(config.integration_id)
            last = last_probe_of(status)
            floor = timedelta(seconds=self.interval(config))
            if status is not None and last is not None and last + floor > now:
                return status
            limits = budget_limits(config)
            if not await self.budget.try_spend(config.integration_id, kind="probe", limits=limits):
                mode, _ = effective_mode(config, await self.vendor_mode(config.vendor), now)
                await self._skip_for_budget(config, mode, status, now)
                skipped = await self.current(config.integration_id)
                assert skipped is not None
                return skipped
            mode, _ = effective_mode(config, await self.vendor_mode(config.vendor), now)
            log.info("health.recheck", integration_id=config.integration_id)
            return await self._probe(config, mode, status)

    async def answer_recheck(self, integration_id: str) -> HealthStatus:
        """The reply to `health.recheck.<id>`: the status after `recheck` (never raises)."""
        try:
            config = await get_integration(self.js, integration_id)
            if config is not None:
                return await self.recheck(config)
            reason = f"integration {integration_id} is not configured"
        except Exception as exc:
            log.exception("health.recheck_failed", integration_id=integration_id)
            reason = f"the recheck failed ({type(exc).__name__}; see the monitor's log)"
        return HealthStatus(
            integration_id=integration_id,
            state=HealthState.UNKNOWN,
            reason=reason,
            checked_at=self.clock.now(),
        )

    async def serve_rechecks(self) -> Subscription:
        """Answer `health.recheck.*` on a plain subscription (the service uses FastStream)."""

        async def on_request(msg: Msg) -> None:
            reply = await self.answer_recheck(msg.subject.rsplit(".", 1)[-1])
            await msg.respond(reply.to_bytes())

        return await self.nc.subscribe(t.HEALTH_RECHECK_FILTER, cb=on_request)

    async def _probe(
        self, config: IntegrationConfig, mode: HealthMode, previous: HealthStatus | None
    ) -> HealthStatus:
        assert self.prober is not None
        now = self.clock.now()
        started = time.perf_counter()
        try:
            result = await self.prober.ping(config)
            observation = Observation(
                "probe",
                now,
                ok=True,
                reason="probe succeeded",
                latency_ms=round(result.latency_ms, 1),
            )
        except AdapterError as exc:
            latency = round((time.perf_counter() - started) * 1000, 1)
            if is_rate_limit(exc.error_class, exc.vendor_code, exc.status_code):
                return await self._rate_limited(config, previous, exc, now, latency)
            observation = Observation(
                "probe",
                now,
                ok=False,
                reason=f"{exc.error_class.value}: {exc.message}"[:300],
                error_class=exc.error_class,
                vendor_code=exc.vendor_code,
                latency_ms=latency,
                retry_after=exc.retry_after,
            )
        except CredentialUnavailableError as exc:
            observation = Observation(
                "probe",
                now,
                ok=False,
                reason=f"{exc.error_class.value}: {exc.message}"[:300],
                error_class=exc.error_class,
                latency_ms=round((time.perf_counter() - started) * 1000, 1),
            )
        usage = await self.budget.usage(config.integration_id, limits=budget_limits(config))
        status = await self._observe(config, mode, observation, previous, usage)
        log.info(
            "health.probed",
            integration_id=config.integration_id,
            ok=observation.ok,
            state=status.state.value,
            latency_ms=observation.latency_ms,
            next_probe_at=status.next_probe_at.isoformat() if status.next_probe_at else None,
            budget_month_used=usage.month_used,
            budget_per_month=usage.limits.per_month,
            dev_override=self.settings.dev_min_interval_seconds is not None,
        )
        return status

    async def _rate_limited(
        self,
        config: IntegrationConfig,
        previous: HealthStatus | None,
        exc: AdapterError,
        now: datetime,
        latency_ms: float,
    ) -> HealthStatus:
        """Not a failure (the vendor answered and took the credential): go passive instead.

        The state and its reason stay what they were, except that a status never observed
        before says why it has none.
        """
        await self._switch_vendor_passive(config, exc, now)
        failing = previous is not None and previous.state in {
            HealthState.DEGRADED,
            HealthState.UNHEALTHY,
        }
        base = previous or HealthStatus(
            integration_id=config.integration_id, state=HealthState.UNKNOWN, checked_at=now
        )
        changes: dict[str, object] = {
            "source": "probe",
            "checked_at": now,
            "last_probe_at": now,
            "latency_ms": latency_ms,
            "mode": HealthMode.PASSIVE,
        }
        if not failing:
            changes["reason"] = f"rate limited: {exc.message}; {config.vendor} went passive"[:300]
            changes["vendor_code"] = exc.vendor_code
        status = base.model_copy(update=changes)
        # Passive now: no next probe, unless an auth failure is being rechecked (with backoff).
        observation = Observation(
            "probe", now, ok=False, reason=status.reason, retry_after=exc.retry_after
        )
        usage = await self.budget.usage(config.integration_id, limits=budget_limits(config))
        status = status.model_copy(
            update={"next_probe_at": self._plan_next(config, observation, previous, status, usage)}
        )
        await self.record(status, previous)
        return status

    async def _switch_vendor_passive(
        self, config: IntegrationConfig, exc: AdapterError, now: datetime
    ) -> None:
        current = await self.vendor_mode(config.vendor)
        if current is not None and current.mode is HealthMode.PASSIVE:
            log.info("health.rate_limited_while_passive", integration_id=config.integration_id)
            return
        seconds = self.settings.auto_passive_seconds
        until = now + timedelta(seconds=seconds) if seconds > 0 else None
        code = exc.vendor_code or (f"HTTP {exc.status_code}" if exc.status_code else "rate limit")
        mode = VendorHealthMode(
            vendor=config.vendor,
            mode=HealthMode.PASSIVE,
            reason=f"{config.vendor} rate-limited a health probe of {config.integration_id} "
            f"({code})",
            set_by="auto",
            since=now,
            until=until,
        )
        await self.kv.put(t.vendor_health_key(config.vendor), mode.to_bytes())
        ending = f"until {until.isoformat()}" if until else "until an operator switches it back"
        await self._alert(
            config.integration_id,
            f"{config.vendor} rate-limited a health probe of {config.integration_id} ({code}): "
            f"every {config.vendor} integration is passive now (health only from syncs and "
            f"warm-ups) {ending}",
            {
                "vendor": config.vendor,
                "vendor_code": exc.vendor_code,
                "mode": HealthMode.PASSIVE.value,
                "until": until.isoformat() if until else None,
            },
        )
        log.warning(
            "health.vendor_passive",
            vendor=config.vendor,
            integration_id=config.integration_id,
            vendor_code=exc.vendor_code,
            until=until.isoformat() if until else None,
        )

    async def _alert(self, integration_id: str, message: str, details: dict[str, object]) -> None:
        alert = Alert(
            kind=AlertKind.QUOTA,
            integration_id=integration_id,
            message=message,
            details=details,
            raised_at=self.clock.now(),
        )
        await self.js.publish(
            t.alert_subject(AlertKind.QUOTA.value, integration_id), alert.to_bytes()
        )

    # --- evidence from syncs -------------------------------------------------------------

    async def follow_results(self) -> JetStreamContext.PushSubscription:
        """Follow `sync.result.*`: the last result of each integration first, then new ones.

        An ordered ephemeral consumer (nothing to provision); results older than the current
        status are ignored, so the replay after a restart changes nothing it should not.
        """

        async def on_result(msg: Msg) -> None:
            try:
                await self.observe_result(SyncResult.from_bytes(msg.data))
            except ValidationError:
                log.warning("health.result_unreadable", subject=msg.subject)
            except Exception as exc:
                log.exception("health.result_failed", subject=msg.subject, error=type(exc).__name__)

        return await self.js.subscribe(
            t.RESULT_FILTER,
            cb=on_result,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
        )

    async def observe_result(self, result: SyncResult) -> HealthStatus | None:
        """Take one sync result as evidence; return the new status, or None if it says nothing."""
        if result.status not in {SyncStatus.SUCCEEDED, SyncStatus.FAILED}:
            return None
        if not is_integration_id(result.integration_id):
            return None
        config = await get_integration(self.js, result.integration_id)
        if config is None:
            return None
        async with self._lock(config.integration_id):
            previous = await self.current(config.integration_id)
            if previous is not None and result.finished_at <= previous.checked_at:
                return None
            mode, _ = effective_mode(
                config, await self.vendor_mode(config.vendor), self.clock.now()
            )
            observation = _sync_observation(result, mode)
            if observation is None:
                return None
            usage = await self.budget.usage(config.integration_id, limits=budget_limits(config))
            return await self._observe(config, mode, observation, previous, usage)

    # --- state ---------------------------------------------------------------------------

    async def _observe(
        self,
        config: IntegrationConfig,
        mode: HealthMode,
        observation: Observation,
        previous: HealthStatus | None,
        usage: BudgetUsage,
    ) -> HealthStatus:
        state, failures = next_state(previous, observation, thresholds_of(config.health))
        status = HealthStatus(
            integration_id=config.integration_id,
            state=state,
            reason=observation.reason,
            source=observation.source,
            consecutive_failures=failures,
            checked_at=observation.at,
            latency_ms=observation.latency_ms,
            error_class=None if observation.ok else observation.error_class,
            vendor_code=None if observation.ok else observation.vendor_code,
            mode=mode,
            last_probe_at=observation.at
            if observation.source == "probe"
            else last_probe_of(previous),
            last_success_at=observation.at
            if observation.ok
            else (previous.last_success_at if previous else None),
        )
        status = status.model_copy(
            update={"next_probe_at": self._plan_next(config, observation, previous, status, usage)}
        )
        await self.record(status, previous)
        if (
            status.state is HealthState.UNHEALTHY
            and status.error_class is ErrorClass.QUOTA
            and (previous is None or previous.state is not HealthState.UNHEALTHY)
        ):
            await self._alert(
                config.integration_id,
                f"{config.vendor} says the request quota of {config.integration_id} is used up "
                f"({observation.source}); no probe before the reset",
                {"vendor": config.vendor, "vendor_code": observation.vendor_code},
            )
        return status

    def _plan_next(
        self,
        config: IntegrationConfig,
        observation: Observation,
        previous: HealthStatus | None,
        status: HealthStatus,
        usage: BudgetUsage,
    ) -> datetime | None:
        if status.mode is HealthMode.PASSIVE and not status.fails_fast():
            return None
        at = observation.at
        interval = self.interval(config)
        pace = pacing_seconds(usage, at)
        backoff = backoff_seconds(
            interval,
            status.consecutive_failures,
            cap=self.settings.backoff_cap_seconds,
            jitter=self.settings.backoff_jitter,
            draw=self.rng.random(),
        )
        if observation.source == "probe":
            wait = max(backoff, pace, observation.retry_after or 0.0)
            return at + timedelta(seconds=wait)
        last_probe = last_probe_of(previous)
        if observation.ok:
            # A sync or warm-up just proved it healthy: no probe for an interval after it.
            return at + timedelta(seconds=max(interval, pace))
        planned = (last_probe or at) + timedelta(seconds=max(backoff, pace))
        if previous is not None and previous.next_probe_at is not None:
            planned = max(planned, previous.next_probe_at)
        return planned

    async def record(self, status: HealthStatus, previous: HealthStatus | None) -> None:
        """Store the status; publish it on `health.status.<id>` only when the state changed."""
        await self._store(status)
        before = previous.state if previous else HealthState.UNKNOWN
        if before is status.state:
            return
        await self.nc.publish(t.health_subject(status.integration_id), status.to_bytes())
        log.info(
            "health.changed",
            integration_id=status.integration_id,
            state=status.state.value,
            reason=status.reason,
            previous=before.value,
            source=status.source,
        )

    async def _store(self, status: HealthStatus) -> None:
        await self.kv.put(status.integration_id, status.to_bytes())

    def _lock(self, integration_id: str) -> asyncio.Lock:
        return self._locks.setdefault(integration_id, asyncio.Lock())

    # --- running -------------------------------------------------------------------------

    def announce(self) -> None:
        """Say at start what deserves attention: a development override of the probe floor."""
        if self.settings.dev_min_interval_seconds is not None:
            log.warning(
                "health.dev_interval_override",
                message="DEVELOPMENT OVERRIDE: probes may run more often than every 15 minutes "
                "and will spend vendor quota",
                min_interval_seconds=self.settings.dev_min_interval_seconds,
            )

    async def run(self) -> None:
        self.announce()
        while True:
            try:
                wait = await self.run_once()
            except Exception as exc:
                log.exception("health.round_failed", error=type(exc).__name__)
                wait = self.settings.rescan_seconds
            await asyncio.sleep(wait)


def _warmup_observation(warm: ObservedOutcome) -> Observation | None:
    if warm.ok:
        return Observation("warmup", warm.at, ok=True, reason="warm-up succeeded")
    error_class = warm.error_class or ErrorClass.RETRYABLE
    if error_class in NOT_VENDOR_HEALTH or is_rate_limit(error_class, warm.vendor_code, None):
        return None
    return Observation(
        "warmup",
        warm.at,
        ok=False,
        reason=f"{error_class.value}: warm-up failed: {warm.message}"[:300],
        error_class=error_class,
        vendor_code=warm.vendor_code,
    )


def called_the_vendor(result: SyncResult) -> bool:
    """Did this succeeded run reach the vendor with the integration's credential?

    Only a run with vouchers to export does (they went to the vendor in this attempt, or in an
    earlier one of the same key that the vendor confirmed): with none left to send (an
    incremental fire that found nothing new, or a period other keys exported already) the
    dispatcher returns at once, fetching no credential and calling no vendor (`Exporter.run`).
    `started_warm` and `cold_start` cannot tell: such a run reports them False, not None.
    """
    return result.vouchers > 0


def _sync_observation(result: SyncResult, mode: HealthMode) -> Observation | None:
    key = result.idempotency_key or result.request_id
    if result.status is SyncStatus.SUCCEEDED:
        if not called_the_vendor(result):
            return None
        return Observation("sync", result.finished_at, ok=True, reason=f"sync {key} succeeded")
    error = result.error
    if error is not None and error.vendor_code == FAILED_FAST_CODE:
        return None  # the dispatcher failed it on our word, without calling the vendor
    error_class = error.error_class if error else ErrorClass.RETRYABLE
    decisive = mode is HealthMode.PASSIVE and result.scheduled_for is not None
    if error_class in NOT_VENDOR_HEALTH and not decisive:
        return None
    message = error.message if error else "no error given"
    return Observation(
        "sync",
        result.finished_at,
        ok=False,
        reason=f"{error_class.value}: sync {key} failed: {message}"[:300],
        error_class=error_class,
        vendor_code=error.vendor_code if error else None,
        decisive=decisive,
    )


async def stop_task(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
