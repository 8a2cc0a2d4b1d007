"""The health-check call budget of each integration: probes and warm-ups spend from one purse.

Every vendor call made only to learn or prepare health (a monitor probe, a dispatcher warm-up)
spends one unit first; the spend is refused (`try_spend` returns False, and the caller makes no
call) once the integration's hourly or monthly limit is reached. Exports themselves never spend
here: they are the product, the budget is the overhead.

    budget = await ProbeBudget.open(js)
    limits = budget_limits(config)
    if await budget.try_spend(config.integration_id, kind="warmup", limits=limits):
        ...  # one cheap vendor call
        await budget.record_warmup(config.integration_id, ok=True)
    usage = await budget.usage(config.integration_id, limits=limits)

The counts live in KV `probe-budget` (key = integration id, value a `ProbeBudgetRecord`), written
with compare-and-set, so they hold across restarts and between the monitor and any number of
dispatchers. Windows are the UTC clock hour and the UTC calendar month. A spend that loses the
compare-and-set race too often is refused: refusing a health check is always the safe side.

Default limits (`DEFAULT_LIMITS`): Xledger 100 calls a month, 2% of the about 5,000 requests its
subscription includes (every request counts, probes included), and 10 an hour; other vendors
3,000 a month (about one every 15 minutes, so the probe floor binds first) and 10 an hour.
`HealthConfig.budget` overrides either number per integration.

The outcome of a warm-up (`record_warmup`) is kept beside the counts, so that the health
monitor can take a successful warm-up as proof of health and skip a probe.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from . import topology as t
from .contracts import (
    ErrorClass,
    IntegrationConfig,
    ObservedOutcome,
    ProbeBudgetRecord,
    utc_now,
)
from .integrations import get_integration
from .logs import get_logger

__all__ = [
    "DEFAULT_LIMITS",
    "GENERIC_LIMITS",
    "XLEDGER_MONTHLY_QUOTA",
    "BudgetLimits",
    "BudgetUsage",
    "ProbeBudget",
    "SpendKind",
    "budget_limits",
    "hour_start",
    "month_of",
    "next_month_start",
]

log = get_logger()

SpendKind = Literal["probe", "warmup"]
SpendObserver = Callable[[str, str], None]
"""on_spend(kind, outcome)"""

XLEDGER_MONTHLY_QUOTA = 5000
"""Requests an Xledger subscription includes per month (vendor-facts.md); every one counts."""


@dataclass(frozen=True)
class BudgetLimits:
    per_hour: int
    per_month: int


DEFAULT_LIMITS: Mapping[str, BudgetLimits] = {
    "xledger": BudgetLimits(per_hour=10, per_month=XLEDGER_MONTHLY_QUOTA * 2 // 100),
}
"""Per vendor (adapter name). Xledger: at most 2% of its monthly quota."""

GENERIC_LIMITS = BudgetLimits(per_hour=10, per_month=3000)
"""Vendors without a counted monthly quota: the 15-minute probe floor binds before this."""

_CAS_ATTEMPTS = 60
"""Compare-and-set rounds before a spend is refused as contended (each loser waits a little)."""


def budget_limits(config: IntegrationConfig) -> BudgetLimits:
    """The limits of one integration: its vendor's default, overridden by `health.budget`."""
    base = DEFAULT_LIMITS.get(config.vendor, GENERIC_LIMITS)
    override = config.health.budget
    if override is None:
        return base
    return BudgetLimits(
        per_hour=base.per_hour if override.per_hour is None else override.per_hour,
        per_month=base.per_month if override.per_month is None else override.per_month,
    )


def month_of(now: datetime) -> str:
    """The UTC calendar month of an instant, e.g. `2026-12`."""
    return now.astimezone(UTC).strftime("%Y-%m")


def hour_start(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def next_month_start(now: datetime) -> datetime:
    now = now.astimezone(UTC)
    if now.month == 12:
        return datetime(now.year + 1, 1, 1, tzinfo=UTC)
    return datetime(now.year, now.month + 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class BudgetUsage:
    """What one integration has spent in the current hour and month, against its limits."""

    integration_id: str
    limits: BudgetLimits
    month: str
    month_used: int
    hour_start: datetime
    hour_used: int
    month_by_kind: Mapping[str, int] = field(default_factory=dict)
    month_refused: int = 0
    last_spent_at: datetime | None = None
    last_warmup: ObservedOutcome | None = None

    @property
    def month_remaining(self) -> int:
        return max(0, self.limits.per_month - self.month_used)

    @property
    def hour_remaining(self) -> int:
        return max(0, self.limits.per_hour - self.hour_used)

    def next_allowed_at(self, now: datetime) -> datetime:
        """The first instant at which a spend can succeed: `now`, the next hour or next month."""
        if self.month_remaining == 0:
            return next_month_start(now)
        if self.hour_remaining == 0:
            return hour_start(now) + timedelta(hours=1)
        return now

    def as_json(self) -> dict[str, Any]:
        return {
            "month": self.month,
            "month_used": self.month_used,
            "per_month": self.limits.per_month,
            "month_by_kind": dict(self.month_by_kind),
            "month_refused": self.month_refused,
            "hour_start": self.hour_start.isoformat(),
            "hour_used": self.hour_used,
            "per_hour": self.limits.per_hour,
            "last_spent_at": self.last_spent_at.isoformat() if self.last_spent_at else None,
        }


def _rolled(
    record: ProbeBudgetRecord | None, integration_id: str, now: datetime
) -> ProbeBudgetRecord:
    """The record with its windows moved to `now`; a clock behind the record never rolls back."""
    month, hour = month_of(now), hour_start(now)
    if record is None:
        return ProbeBudgetRecord(integration_id=integration_id, month=month, hour_start=hour)
    changes: dict[str, Any] = {}
    if month > record.month:
        changes.update(month=month, month_used=0, month_by_kind={}, month_refused=0)
    if hour > record.hour_start:
        changes.update(hour_start=hour, hour_used=0)
    return record.model_copy(update=changes) if changes else record


def _usage(record: ProbeBudgetRecord, limits: BudgetLimits) -> BudgetUsage:
    return BudgetUsage(
        integration_id=record.integration_id,
        limits=limits,
        month=record.month,
        month_used=record.month_used,
        hour_start=record.hour_start,
        hour_used=record.hour_used,
        month_by_kind=dict(record.month_by_kind),
        month_refused=record.month_refused,
        last_spent_at=record.last_spent_at,
        last_warmup=record.last_warmup,
    )


class ProbeBudget:
    """Spends and counts health-check calls per integration in KV `probe-budget`."""

    def __init__(
        self,
        kv: KeyValue,
        js: JetStreamContext | None = None,
        *,
        clock: Callable[[], datetime] = utc_now,
        on_spend: SpendObserver | None = None,
    ) -> None:
        self._kv = kv
        self._js = js
        self._clock = clock
        self.on_spend = on_spend
        """Told each spend's kind and outcome (`spent`, `refused`, `contended`): metrics."""

    @classmethod
    async def open(
        cls,
        js: JetStreamContext,
        *,
        clock: Callable[[], datetime] = utc_now,
        on_spend: SpendObserver | None = None,
    ) -> ProbeBudget:
        return cls(await js.key_value(t.KV_PROBE_BUDGET), js, clock=clock, on_spend=on_spend)

    def _told(self, kind: SpendKind, outcome: str) -> None:
        if self.on_spend is not None:
            self.on_spend(kind, outcome)

    async def _limits(self, integration_id: str, limits: BudgetLimits | None) -> BudgetLimits:
        if limits is not None:
            return limits
        config = await get_integration(self._js, integration_id) if self._js else None
        return budget_limits(config) if config is not None else GENERIC_LIMITS

    async def _read(self, integration_id: str) -> tuple[ProbeBudgetRecord | None, int]:
        """The stored record and its revision (0: none yet)."""
        try:
            entry = await self._kv.get(integration_id)
        except KeyNotFoundError:
            return None, 0
        if entry.value is None or entry.revision is None:
            return None, 0
        return ProbeBudgetRecord.from_bytes(entry.value), entry.revision

    async def _write(self, record: ProbeBudgetRecord, revision: int, attempt: int) -> bool:
        """Compare-and-set; False (after a short random pause) when another writer came first."""
        try:
            if revision == 0:
                await self._kv.create(record.integration_id, record.to_bytes())
            else:
                await self._kv.update(record.integration_id, record.to_bytes(), last=revision)
        except KeyWrongLastSequenceError:
            await asyncio.sleep(random.random() * 0.002 * min(attempt + 1, 10))  # noqa: S311
            return False
        return True

    async def try_spend(
        self, integration_id: str, *, kind: SpendKind, limits: BudgetLimits | None = None
    ) -> bool:
        """Spend one call for `kind` if the hourly and monthly limits allow it; True if spent.

        Without `limits`, they are read from the integration's config in KV `integrations`.
        """
        limits = await self._limits(integration_id, limits)
        for attempt in range(_CAS_ATTEMPTS):
            now = self._clock()
            stored, revision = await self._read(integration_id)
            record = _rolled(stored, integration_id, now)
            allowed = record.hour_used < limits.per_hour and record.month_used < limits.per_month
            if allowed:
                by_kind = dict(record.month_by_kind)
                by_kind[kind] = by_kind.get(kind, 0) + 1
                record = record.model_copy(
                    update={
                        "month_used": record.month_used + 1,
                        "hour_used": record.hour_used + 1,
                        "month_by_kind": by_kind,
                        "last_spent_at": now,
                        "last_kind": kind,
                    }
                )
            else:
                record = record.model_copy(update={"month_refused": record.month_refused + 1})
            if await self._write(record, revision, attempt):
                self._told(kind, "spent" if allowed else "refused")
                if not allowed:
                    log.info(
                        "budget.refused",
                        integration_id=integration_id,
                        kind=kind,
                        hour_used=record.hour_used,
                        per_hour=limits.per_hour,
                        month_used=record.month_used,
                        per_month=limits.per_month,
                    )
                return allowed
        log.warning("budget.contended", integration_id=integration_id, kind=kind)
        self._told(kind, "contended")
        return False

    async def usage(
        self, integration_id: str, *, limits: BudgetLimits | None = None
    ) -> BudgetUsage:
        """The current hour's and month's counts (zero when nothing was spent yet)."""
        limits = await self._limits(integration_id, limits)
        stored, _ = await self._read(integration_id)
        return _usage(_rolled(stored, integration_id, self._clock()), limits)

    async def record_warmup(
        self,
        integration_id: str,
        *,
        ok: bool,
        error_class: ErrorClass | None = None,
        vendor_code: str | None = None,
        message: str = "",
    ) -> None:
        """Keep what a warm-up found, for the health monitor (never a secret in `message`)."""
        outcome = ObservedOutcome(
            at=self._clock(),
            ok=ok,
            error_class=error_class,
            vendor_code=vendor_code,
            message=message[:300],
        )
        for attempt in range(_CAS_ATTEMPTS):
            stored, revision = await self._read(integration_id)
            record = _rolled(stored, integration_id, outcome.at)
            update = record.model_copy(update={"last_warmup": outcome})
            if await self._write(update, revision, attempt):
                return
        log.warning("budget.contended", integration_id=integration_id, kind="warmup_outcome")
