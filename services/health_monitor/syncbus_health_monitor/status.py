"""Reading health from outside the monitor: the dispatcher's check and `syncbus health`.

    status = await current_health(js, integration_id)
    if status is not None and status.fails_fast():   # unhealthy for an `auth` reason
        error = fail_fast_error(status)   # ErrorInfo for the `failed` result; no vendor call

`health_overview` gathers, per configured integration, what `syncbus health` shows: state,
reason, mode (and why), last probe, next probe and probe budget use.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from syncbus_shared import topology as t
from syncbus_shared.contracts import (
    HealthMode,
    HealthState,
    HealthStatus,
    IntegrationConfig,
    VendorHealthMode,
    utc_now,
)
from syncbus_shared.health import FAILED_FAST_CODE, current_health, fail_fast_error
from syncbus_shared.integrations import list_integrations
from syncbus_shared.probe_budget import BudgetUsage, ProbeBudget, budget_limits

from .policy import effective_mode, last_probe_of, vendor_mode_expired

__all__ = [
    "FAILED_FAST_CODE",
    "HealthOverview",
    "HealthRow",
    "current_health",
    "fail_fast_error",
    "health_overview",
    "read_vendor_mode",
    "set_vendor_mode",
]


async def _get(kv: KeyValue, key: str) -> bytes | None:
    try:
        entry = await kv.get(key)
    except KeyNotFoundError:
        return None
    return entry.value


async def read_vendor_mode(js: JetStreamContext, vendor: str) -> VendorHealthMode | None:
    value = await _get(await js.key_value(t.KV_HEALTH), t.vendor_health_key(vendor))
    return VendorHealthMode.from_bytes(value) if value else None


async def set_vendor_mode(
    js: JetStreamContext, vendor: str, mode: HealthMode, reason: str = ""
) -> VendorHealthMode:
    """An operator's choice for every integration of one vendor (ends an automatic switch)."""
    entry = VendorHealthMode(
        vendor=vendor, mode=mode, reason=reason or f"set by an operator to {mode.value}"
    )
    kv = await js.key_value(t.KV_HEALTH)
    await kv.put(t.vendor_health_key(vendor), entry.to_bytes())
    return entry


@dataclass(frozen=True)
class HealthRow:
    config: IntegrationConfig
    status: HealthStatus | None
    mode: HealthMode
    mode_reason: str
    budget: BudgetUsage

    @property
    def state(self) -> HealthState:
        return self.status.state if self.status else HealthState.UNKNOWN

    @property
    def last_probe_at(self) -> datetime | None:
        return last_probe_of(self.status)

    @property
    def next_probe_at(self) -> datetime | None:
        """None while passive (unless an auth failure is being rechecked)."""
        if self.status is None:
            return None if self.mode is HealthMode.PASSIVE else utc_now()
        if self.mode is HealthMode.PASSIVE and not self.status.fails_fast():
            return None
        return self.status.next_probe_at

    def as_json(self) -> dict[str, Any]:
        status = self.status
        return {
            "integration_id": self.config.integration_id,
            "vendor": self.config.vendor,
            "state": self.state.value,
            "reason": status.reason if status else "",
            "error_class": status.error_class.value if status and status.error_class else None,
            "source": status.source if status else None,
            "consecutive_failures": status.consecutive_failures if status else 0,
            "checked_at": status.checked_at.isoformat() if status else None,
            "mode": self.mode.value,
            "mode_reason": self.mode_reason,
            "last_probe_at": self.last_probe_at.isoformat() if self.last_probe_at else None,
            "next_probe_at": self.next_probe_at.isoformat() if self.next_probe_at else None,
            "last_success_at": status.last_success_at.isoformat()
            if status and status.last_success_at
            else None,
            "budget": self.budget.as_json(),
        }


@dataclass(frozen=True)
class HealthOverview:
    rows: list[HealthRow]
    vendors: dict[str, VendorHealthMode]

    def as_json(self) -> dict[str, Any]:
        return {
            "integrations": [row.as_json() for row in self.rows],
            "vendors": {
                name: mode.model_dump(mode="json", exclude_none=True)
                for name, mode in sorted(self.vendors.items())
            },
        }


async def health_overview(js: JetStreamContext) -> HealthOverview:
    kv = await js.key_value(t.KV_HEALTH)
    budget = await ProbeBudget.open(js)
    now = utc_now()
    rows: list[HealthRow] = []
    vendors: dict[str, VendorHealthMode] = {}
    for config in sorted(await list_integrations(js), key=lambda c: c.integration_id):
        if config.vendor not in vendors:
            value = await _get(kv, t.vendor_health_key(config.vendor))
            if value:
                vendors[config.vendor] = VendorHealthMode.from_bytes(value)
        vendor = vendors.get(config.vendor)
        if vendor is not None and vendor_mode_expired(vendor, now):
            vendor = None
        mode, why = effective_mode(config, vendor, now)
        value = await _get(kv, config.integration_id)
        rows.append(
            HealthRow(
                config=config,
                status=HealthStatus.from_bytes(value) if value else None,
                mode=mode,
                mode_reason=why,
                budget=await budget.usage(config.integration_id, limits=budget_limits(config)),
            )
        )
    return HealthOverview(rows=rows, vendors=vendors)
