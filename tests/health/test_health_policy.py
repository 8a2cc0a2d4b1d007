"""The monitor's pure rules: backoff, thresholds, rate-limit detection, pacing and modes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from syncbus_health_monitor.policy import (
    Observation,
    backoff_seconds,
    effective_mode,
    is_rate_limit,
    next_state,
    pacing_seconds,
)
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
from syncbus_shared.probe_budget import BudgetLimits, BudgetUsage

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def _failure(error_class: ErrorClass = ErrorClass.RETRYABLE, **kw: object) -> Observation:
    return Observation("probe", NOW, ok=False, reason="x", error_class=error_class, **kw)  # type: ignore[arg-type]


def _status(state: HealthState, failures: int) -> HealthStatus:
    return HealthStatus(
        integration_id="a", state=state, consecutive_failures=failures, checked_at=NOW
    )


@pytest.mark.parametrize("failures", [1, 2, 3, 4, 10, 100])
def test_a_backoff_wait_is_never_shorter_than_the_interval_nor_longer_than_the_cap(failures: int):
    for draw in (0.0, 0.5, 0.999):
        wait = backoff_seconds(900, failures, cap=86_400, jitter=0.5, draw=draw)
        assert 900 <= wait <= 86_400


def test_backoff_doubles_per_failure_until_the_cap_and_jitter_only_shortens_it():
    full = [backoff_seconds(900, n, cap=7200, jitter=0.2, draw=0.0) for n in range(5)]
    assert full == [900, 1800, 3600, 7200, 7200]
    assert backoff_seconds(900, 2, cap=7200, jitter=0.2, draw=0.999) == pytest.approx(2880.7, 0.01)


def test_a_cap_below_the_interval_does_not_lower_the_interval():
    assert backoff_seconds(3600, 3, cap=60, jitter=0.2, draw=0.9) == 3600


def test_the_default_thresholds_go_degraded_after_one_failure_and_unhealthy_after_three():
    thresholds = HealthThresholds()
    status = _status(HealthState.HEALTHY, 0)
    states = []
    for _ in range(4):
        state, failures = next_state(status, _failure(), thresholds)
        status = _status(state, failures)
        states.append(state)
    assert states == [
        HealthState.DEGRADED,
        HealthState.DEGRADED,
        HealthState.UNHEALTHY,
        HealthState.UNHEALTHY,
    ]
    assert next_state(status, Observation("sync", NOW, ok=True, reason="ok"), thresholds) == (
        HealthState.HEALTHY,
        0,
    )


@pytest.mark.parametrize(
    "error_class", [ErrorClass.AUTH, ErrorClass.CONFIGURATION, ErrorClass.QUOTA]
)
def test_one_failure_no_retry_mends_is_unhealthy_at_once(error_class: ErrorClass):
    state, failures = next_state(
        _status(HealthState.HEALTHY, 0), _failure(error_class), HealthThresholds(unhealthy_after=9)
    )
    assert (state, failures) == (HealthState.UNHEALTHY, 1)


def test_a_decisive_failure_is_unhealthy_at_once_and_a_later_failure_never_improves_the_state():
    thresholds = HealthThresholds(degraded_after=5, unhealthy_after=9)
    state, failures = next_state(None, _failure(decisive=True), thresholds)
    assert state is HealthState.UNHEALTHY
    again, _ = next_state(_status(state, failures), _failure(), thresholds)
    assert again is HealthState.UNHEALTHY


def test_below_the_degraded_threshold_a_failure_keeps_the_state_it_had():
    thresholds = HealthThresholds(degraded_after=2, unhealthy_after=3)
    assert next_state(_status(HealthState.HEALTHY, 0), _failure(), thresholds) == (
        HealthState.HEALTHY,
        1,
    )
    assert next_state(None, _failure(), thresholds) == (HealthState.UNKNOWN, 1)


def test_thresholds_must_be_ordered():
    with pytest.raises(ValidationError, match="unhealthy_after must be at least degraded_after"):
        HealthThresholds(degraded_after=3, unhealthy_after=2)


@pytest.mark.parametrize(
    ("error_class", "code", "status", "expected"),
    [
        (ErrorClass.RETRYABLE, "BAD_REQUEST.BURST_RATE_LIMIT_REACHED", None, True),
        (ErrorClass.RETRYABLE, "BAD_REQUEST.CONCURRENCY_LIMIT_REACHED", None, True),
        (ErrorClass.RETRYABLE, "Application_TooManyRequests", 429, True),
        (ErrorClass.RETRYABLE, None, 429, True),
        (ErrorClass.RETRYABLE, "SOME_VENDOR.RATE_LIMITED", None, True),
        (ErrorClass.RETRYABLE, None, 503, False),
        (ErrorClass.QUOTA, "BAD_REQUEST.INSUFFICIENT_CREDITS", None, False),
        (ErrorClass.AUTH, None, 401, False),
    ],
)
def test_rate_limit_answers_are_told_apart_from_quota_and_other_failures(
    error_class: ErrorClass, code: str | None, status: int | None, expected: bool
):
    assert is_rate_limit(error_class, code, status) is expected


def _usage(used: int, per_month: int) -> BudgetUsage:
    return BudgetUsage(
        integration_id="a",
        limits=BudgetLimits(per_hour=10, per_month=per_month),
        month="2026-12",
        month_used=used,
        hour_start=NOW,
        hour_used=0,
    )


def test_pacing_spreads_what_is_left_of_the_budget_over_what_is_left_of_the_month():
    start = datetime(2026, 12, 1, tzinfo=UTC)
    assert pacing_seconds(_usage(0, 100), start) == pytest.approx(31 * 86_400 / 100)
    half = datetime(2026, 12, 16, 12, tzinfo=UTC)
    assert pacing_seconds(_usage(90, 100), half) == pytest.approx(15.5 * 86_400 / 10)
    assert pacing_seconds(_usage(100, 100), half) == pytest.approx(15.5 * 86_400)


def _config(mode: HealthMode = HealthMode.ACTIVE) -> IntegrationConfig:
    return IntegrationConfig(
        integration_id="a",
        vendor="xledger",
        endpoint="http://x",
        credentials_path="p",
        health=HealthConfig(mode=mode),
    )


def test_passive_comes_from_the_integration_or_from_its_vendor_until_the_switch_ends():
    assert effective_mode(_config(HealthMode.PASSIVE), None, NOW)[0] is HealthMode.PASSIVE
    assert effective_mode(_config(), None, NOW)[0] is HealthMode.ACTIVE
    auto = VendorHealthMode(
        vendor="xledger",
        mode=HealthMode.PASSIVE,
        set_by="auto",
        since=NOW,
        until=NOW + timedelta(hours=1),
    )
    mode, why = effective_mode(_config(), auto, NOW)
    assert mode is HealthMode.PASSIVE
    assert "vendor xledger" in why
    assert effective_mode(_config(), auto, NOW + timedelta(hours=1))[0] is HealthMode.ACTIVE
    operator_active = VendorHealthMode(vendor="xledger", mode=HealthMode.ACTIVE)
    assert effective_mode(_config(HealthMode.PASSIVE), operator_active, NOW)[0] is (
        HealthMode.PASSIVE
    )
