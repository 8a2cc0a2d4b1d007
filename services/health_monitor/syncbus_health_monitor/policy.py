"""The monitor's rules as pure functions: state machine, backoff, pacing, rate-limit detection.

State machine (thresholds from `HealthConfig.thresholds`, default degraded after 1 failure,
unhealthy after 3):

    any success                                   -> healthy, failures reset to 0
    a failure of class auth, configuration, quota -> unhealthy at once
    a decisive failure (passive: a failed scheduled sync)  -> unhealthy at once
    n consecutive failures >= unhealthy_after     -> unhealthy
    n consecutive failures >= degraded_after      -> degraded
    otherwise                                     -> the state it had (a failure never improves it)

A rate-limited probe is not a failure (the vendor answered and took the credential); it switches
the vendor to passive instead (see `monitor.py`).

Waits between probes, from the last probe:

    success         max(interval, pacing)
    n-th failure    max(interval, min(cap, interval * 2**n) * (1 - jitter * U[0, 1)), pacing,
                        the vendor's retry-after)

`interval` is the configured one raised to the 15-minute floor (or the development override).
Pacing spreads what is left of the month's budget over what is left of the month, so a
budget of 100 is not spent in the first day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from syncbus_shared.contracts import (
    ErrorClass,
    HealthConfig,
    HealthMode,
    HealthState,
    HealthStatus,
    HealthThresholds,
    IntegrationConfig,
    VendorHealthMode,
)
from syncbus_shared.probe_budget import BudgetUsage, next_month_start

IMMEDIATELY_UNHEALTHY = frozenset({ErrorClass.AUTH, ErrorClass.CONFIGURATION, ErrorClass.QUOTA})
"""Failures no retry mends soon: one is enough to call the integration unhealthy (a spent quota
defers every export until the vendor's reset)."""

NOT_VENDOR_HEALTH = frozenset({ErrorClass.DATA, ErrorClass.INVALID_REQUEST})
"""A sync that failed for these reached the vendor (or never needed to): no evidence about its
health, except in passive mode, where any failed scheduled sync marks it unhealthy."""

"""The `vendor_code` of a result the dispatcher failed at once because health said `auth`: it
called no vendor, so the monitor takes it as no evidence (else it would feed its own backoff)."""

RATE_LIMIT_CODES = frozenset(
    {
        "BAD_REQUEST.BURST_RATE_LIMIT_REACHED",  # Xledger
        "BAD_REQUEST.CONCURRENCY_LIMIT_REACHED",  # Xledger
        "Application_TooManyRequests",  # Business Central
    }
)

_SEVERITY = {
    HealthState.UNKNOWN: 0,
    HealthState.HEALTHY: 1,
    HealthState.DEGRADED: 2,
    HealthState.UNHEALTHY: 3,
}


@dataclass(frozen=True)
class Observation:
    """One piece of evidence about an integration's health."""

    source: Literal["probe", "sync", "warmup"]
    at: datetime
    ok: bool
    reason: str
    error_class: ErrorClass | None = None
    vendor_code: str | None = None
    latency_ms: float | None = None
    retry_after: float | None = None
    decisive: bool = False


def thresholds_of(health: HealthConfig) -> HealthThresholds:
    return health.thresholds or HealthThresholds()


def next_state(
    previous: HealthStatus | None, observation: Observation, thresholds: HealthThresholds
) -> tuple[HealthState, int]:
    """The state after this observation, and the consecutive failure count."""
    if observation.ok:
        return HealthState.HEALTHY, 0
    failures = (previous.consecutive_failures if previous else 0) + 1
    at_once = observation.decisive or observation.error_class in IMMEDIATELY_UNHEALTHY
    if at_once or failures >= thresholds.unhealthy_after:
        computed = HealthState.UNHEALTHY
    elif failures >= thresholds.degraded_after:
        computed = HealthState.DEGRADED
    else:
        computed = HealthState.UNKNOWN
    before = previous.state if previous else HealthState.UNKNOWN
    return max(before, computed, key=_SEVERITY.__getitem__), failures


def is_rate_limit(
    error_class: ErrorClass, vendor_code: str | None, status_code: int | None
) -> bool:
    """Whether a vendor's answer says "too many requests" (not "quota used up")."""
    if error_class is not ErrorClass.RETRYABLE:
        return False
    if status_code == 429 or vendor_code in RATE_LIMIT_CODES:
        return True
    code = (vendor_code or "").upper().replace("_", "")
    return "RATELIMIT" in code or "TOOMANYREQUESTS" in code


def backoff_seconds(
    interval: float, failures: int, *, cap: float, jitter: float, draw: float
) -> float:
    """Seconds to wait after `failures` consecutive failures; `draw` is uniform in [0, 1)."""
    if failures <= 0:
        return interval
    grown = interval * 2.0 ** min(failures, 40)
    capped = min(max(cap, interval), grown)
    return max(interval, capped * (1.0 - jitter * draw))


def pacing_seconds(usage: BudgetUsage, now: datetime) -> float:
    """The wait that spreads the month's remaining budget evenly over the rest of the month."""
    left = (next_month_start(now) - now).total_seconds()
    if usage.month_remaining <= 0:
        return left
    return left / usage.month_remaining


def effective_mode(
    config: IntegrationConfig, vendor: VendorHealthMode | None, now: datetime
) -> tuple[HealthMode, str]:
    """The mode in effect and why: the integration's own, or its vendor's."""
    if config.health.mode is HealthMode.PASSIVE:
        return HealthMode.PASSIVE, "configured passive"
    if (
        vendor is not None
        and vendor.mode is HealthMode.PASSIVE
        and not vendor_mode_expired(vendor, now)
    ):
        return HealthMode.PASSIVE, f"vendor {vendor.vendor} passive ({vendor.set_by})"
    return HealthMode.ACTIVE, "active"


def vendor_mode_expired(vendor: VendorHealthMode, now: datetime) -> bool:
    return vendor.until is not None and vendor.until <= now


def last_probe_of(status: HealthStatus | None) -> datetime | None:
    """When the vendor was last probed (statuses written before `last_probe_at` existed too)."""
    if status is None:
        return None
    if status.last_probe_at is not None:
        return status.last_probe_at
    return status.checked_at if status.source == "probe" else None
