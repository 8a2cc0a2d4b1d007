"""Firing one scheduled period: the warm-up first, then the request keyed by the period.

Every fire, whether on time, caught up after downtime or backfilled on purpose, goes through
`Firer.fire`, so the same rules hold for all of them: the warm-up is published before the
request, the request's `Nats-Msg-Id` is `<integration_id>:<period_id>`, and the drift between
when it was due and when it was published is measured and alerted on.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta

from nats.aio.client import Client
from nats.js import JetStreamContext

from syncbus_shared import topology as t
from syncbus_shared.contracts import (
    Alert,
    AlertKind,
    IntegrationConfig,
    RequestOrigin,
    SyncRequest,
    WarmUp,
    utc_now,
)
from syncbus_shared.logs import get_logger

from .periods import period_for_fire
from .settings import SchedulerSettings
from .state import ScheduleState, ScheduleStateStore

log = get_logger()


@dataclass(frozen=True)
class FireReport:
    integration_id: str
    period_id: str
    idempotency_key: str
    scheduled_for: datetime
    published_at: datetime
    drift_ms: float
    duplicate: bool


@dataclass
class Firer:
    nc: Client
    js: JetStreamContext
    states: ScheduleStateStore
    settings: SchedulerSettings

    async def warm_up(self, config: IntegrationConfig, scheduled_for: datetime) -> None:
        assert config.schedule is not None
        period = period_for_fire(config.schedule, scheduled_for)
        warmup = WarmUp(
            integration_id=config.integration_id,
            idempotency_key=f"{config.integration_id}:{period.period_id}",
            period_id=period.period_id,
            scheduled_for=scheduled_for,
        )
        await self.nc.publish(t.warmup_subject(config.integration_id), warmup.to_bytes())
        await self.nc.flush()
        log.info(
            "scheduler.warmup_sent",
            integration_id=config.integration_id,
            period_id=period.period_id,
            scheduled_for=scheduled_for.isoformat(),
        )

    async def fire(
        self,
        config: IntegrationConfig,
        scheduled_for: datetime,
        *,
        due_at: datetime | None,
        origin: RequestOrigin,
        warm_up_first: bool,
    ) -> FireReport:
        """Publish the request for the period `scheduled_for` covers (warming up first if asked).

        `due_at` is when the request should have been published, for the drift measurement:
        the fire instant for scheduled and caught-up fires; None for a backfill, whose request
        is due as soon as its warm-up lead has passed.
        """
        assert config.schedule is not None
        period = period_for_fire(config.schedule, scheduled_for)
        if warm_up_first:
            await self.warm_up(config, scheduled_for)
            lead_until = utc_now() + timedelta(seconds=self.settings.catchup_lead_seconds)
            await asyncio.sleep(self.settings.catchup_lead_seconds)
            if due_at is None:
                due_at = lead_until
        published_at = utc_now()
        if due_at is None:
            due_at = published_at
        drift_ms = max(0.0, (published_at - due_at).total_seconds() * 1000)
        request = SyncRequest(
            integration_id=config.integration_id,
            period_id=period.period_id,
            origin=origin,
            scheduled_for=scheduled_for,
            published_at=published_at,
            schedule_drift_ms=round(drift_ms, 3),
        )
        ack = await self.js.publish(
            t.request_subject(config.integration_id),
            request.to_bytes(),
            headers={"Nats-Msg-Id": request.idempotency_key},
        )
        await self.states.put(
            ScheduleState(
                integration_id=config.integration_id,
                last_fired_for=scheduled_for,
                last_period_id=period.period_id,
                last_published_at=published_at,
                last_drift_ms=round(drift_ms, 3),
            )
        )
        log.info(
            "scheduler.request_published",
            integration_id=config.integration_id,
            key=request.idempotency_key,
            origin=origin.value,
            scheduled_for=scheduled_for.isoformat(),
            drift_ms=round(drift_ms, 3),
            duplicate=ack.duplicate,
        )
        if drift_ms > self.settings.drift_alert_seconds * 1000:
            await self.alert(
                AlertKind.DRIFT,
                config.integration_id,
                f"{request.idempotency_key} was published {drift_ms / 1000:.1f} s after it was due",
                {
                    "key": request.idempotency_key,
                    "drift_ms": round(drift_ms, 3),
                    "scheduled_for": scheduled_for.isoformat(),
                },
            )
        return FireReport(
            integration_id=config.integration_id,
            period_id=period.period_id,
            idempotency_key=request.idempotency_key,
            scheduled_for=scheduled_for,
            published_at=published_at,
            drift_ms=drift_ms,
            duplicate=bool(ack.duplicate),
        )

    async def alert(
        self, kind: AlertKind, integration_id: str, message: str, details: dict[str, object]
    ) -> None:
        log.warning(
            "scheduler.alert", kind=kind.value, integration_id=integration_id, message=message
        )
        alert = Alert(kind=kind, integration_id=integration_id, message=message, details=details)
        await self.js.publish(t.alert_subject(kind.value, integration_id), alert.to_bytes())
