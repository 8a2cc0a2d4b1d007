"""Probing integrations with their vendor's cheapest call, at most once per interval.

The last probe time lives in KV `integration-health` (the status's `checked_at`), so a restart
does not probe again early: every probe costs vendor quota.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import httpx
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from syncbus_adapters import AdapterContext, AdapterError, adapter_class
from syncbus_shared import topology as t
from syncbus_shared.contracts import (
    HealthMode,
    HealthState,
    HealthStatus,
    IntegrationConfig,
    utc_now,
)
from syncbus_shared.credentials_client import CredentialUnavailableError, fetch_credential
from syncbus_shared.integrations import list_integrations
from syncbus_shared.logs import get_logger

from .settings import HealthSettings

log = get_logger()


@dataclass
class HealthMonitor:
    nc: Client
    js: JetStreamContext
    kv: KeyValue
    settings: HealthSettings
    last: dict[str, HealthStatus] = field(default_factory=dict)

    async def current(self, integration_id: str) -> HealthStatus | None:
        if integration_id in self.last:
            return self.last[integration_id]
        try:
            entry = await self.kv.get(integration_id)
        except KeyNotFoundError:
            return None
        if entry.value is None:
            return None
        status = HealthStatus.from_bytes(entry.value)
        self.last[integration_id] = status
        return status

    def next_probe_at(self, config: IntegrationConfig, status: HealthStatus | None) -> datetime:
        if status is None or status.source != "probe":
            return utc_now()
        interval = self.settings.effective_interval(config.health.interval_seconds)
        return status.checked_at + timedelta(seconds=interval)

    async def probe(self, config: IntegrationConfig) -> HealthStatus:
        previous = await self.current(config.integration_id)
        failures = previous.consecutive_failures if previous else 0
        started = time.perf_counter()
        try:
            credential = await fetch_credential(
                self.nc,
                config.integration_id,
                purpose="probe",
                timeout=self.settings.credential_timeout_seconds,
            )
            async with httpx.AsyncClient(timeout=self.settings.probe_timeout_seconds) as http:
                adapter = adapter_class(config.vendor)(
                    AdapterContext(
                        config.integration_id,
                        config.endpoint,
                        credential,
                        http,
                        self.settings.probe_timeout_seconds,
                    )
                )
                result = await adapter.ping()
            status = HealthStatus(
                integration_id=config.integration_id,
                state=HealthState.HEALTHY,
                reason="probe succeeded",
                latency_ms=round(result.latency_ms, 1),
            )
        except (AdapterError, CredentialUnavailableError) as exc:
            error_class = exc.error_class.value
            status = HealthStatus(
                integration_id=config.integration_id,
                state=HealthState.UNHEALTHY,
                reason=f"{error_class}: {exc.message}"[:300],
                consecutive_failures=failures + 1,
                latency_ms=round((time.perf_counter() - started) * 1000, 1),
            )
        await self.record(status, previous)
        return status

    async def record(self, status: HealthStatus, previous: HealthStatus | None) -> None:
        self.last[status.integration_id] = status
        await self.kv.put(status.integration_id, status.to_bytes())
        if previous is None or previous.state != status.state:
            await self.nc.publish(t.health_subject(status.integration_id), status.to_bytes())
            log.info(
                "health.changed",
                integration_id=status.integration_id,
                state=status.state.value,
                reason=status.reason,
                previous=previous.state.value if previous else None,
            )

    async def run_once(self) -> float:
        """Probe what is due; return seconds until the next probe is due (capped by rescan)."""
        wait = self.settings.rescan_seconds
        for config in await list_integrations(self.js):
            if config.health.mode is HealthMode.PASSIVE:
                continue
            due = self.next_probe_at(config, await self.current(config.integration_id))
            now = utc_now()
            if due <= now:
                await self.probe(config)
                due = self.next_probe_at(config, self.last.get(config.integration_id))
            wait = min(wait, max(0.5, (due - utc_now()).total_seconds()))
        return wait

    async def run(self) -> None:
        if self.settings.dev_min_interval_seconds is not None:
            log.warning(
                "health.dev_interval_override",
                message="DEVELOPMENT OVERRIDE: probes may run more often than every 15 minutes "
                "and will spend vendor quota",
                min_interval_seconds=self.settings.dev_min_interval_seconds,
            )
        while True:
            try:
                wait = await self.run_once()
            except Exception as exc:
                log.exception("health.round_failed", error=type(exc).__name__)
                wait = self.settings.rescan_seconds
            await asyncio.sleep(wait)


async def stop_task(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
