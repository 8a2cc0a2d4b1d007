"""The health monitor against real NATS and the real Xledger fake, on a hand-moved clock."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from health_support import Credentials, Xledger
from nats.aio.client import Client
from nats.js import JetStreamContext
from structlog.testing import capture_logs

from syncbus_health_monitor.clock import ManualClock
from syncbus_health_monitor.monitor import HealthMonitor
from syncbus_health_monitor.settings import PROBE_INTERVAL_FLOOR_SECONDS, HealthSettings
from syncbus_health_monitor.status import current_health, fail_fast_error
from syncbus_shared import topology as t
from syncbus_shared.contracts import (
    Alert,
    AlertKind,
    ErrorClass,
    ErrorInfo,
    HealthConfig,
    HealthMode,
    HealthState,
    HealthStatus,
    HealthThresholds,
    IntegrationConfig,
    ProbeBudgetConfig,
    SyncResult,
    SyncStatus,
    VendorHealthMode,
)
from syncbus_shared.probe_budget import ProbeBudget, next_month_start

MakeMonitor = Callable[..., Awaitable[HealthMonitor]]
AddIntegration = Callable[..., Awaitable[IntegrationConfig]]

ROOMY = ProbeBudgetConfig(per_hour=1000, per_month=10_000_000)
"""A budget that neither limits nor paces (pacing: 0.25 s a call), for tests of other rules."""


def roomy(**health: object) -> HealthConfig:
    return HealthConfig(budget=ROOMY, **health)  # type: ignore[arg-type]


async def _events(nc: Client, integration_id: str) -> asyncio.Queue[HealthStatus]:
    queue: asyncio.Queue[HealthStatus] = asyncio.Queue()

    async def put(msg: object) -> None:
        queue.put_nowait(HealthStatus.from_bytes(msg.data))  # type: ignore[attr-defined]

    await nc.subscribe(t.health_subject(integration_id), cb=put)
    return queue


async def _no_more(nc: Client, queue: asyncio.Queue[HealthStatus]) -> None:
    await nc.flush()
    await asyncio.sleep(0.2)
    assert queue.empty(), f"unexpected event: {queue.get_nowait()}"


def _result(
    config: IntegrationConfig,
    status: SyncStatus,
    finished_at: datetime,
    *,
    error: ErrorClass | None = None,
    scheduled: bool = True,
    vouchers: int = 3,
) -> SyncResult:
    """A result of a run that exported `vouchers` (0: nothing to send, so no vendor call)."""
    return SyncResult(
        request_id=f"r-{finished_at.timestamp()}",
        integration_id=config.integration_id,
        idempotency_key=f"{config.integration_id}:2026-11",
        period_id="2026-11",
        status=status,
        vouchers=vouchers,
        error=ErrorInfo(error_class=error, message="Xledger answered HTTP 503 to export")
        if error
        else None,
        scheduled_for=finished_at - timedelta(minutes=1) if scheduled else None,
        finished_at=finished_at,
    )


# --- the interval floor --------------------------------------------------------------------


async def test_a_probe_never_runs_before_the_15_minute_floor_even_when_the_config_asks_for_one_minute(
    make_monitor: MakeMonitor,
    add_integration: AddIntegration,
    xledger: Xledger,
    clock: ManualClock,
    unique_id: Callable[..., str],
):
    config = await add_integration(unique_id("floor"), roomy(interval_seconds=60))
    monitor = await make_monitor()
    await monitor.check(config)
    assert await xledger.requests_total() == 1
    for minutes in (1, 5, 14.9):
        clock.set(datetime(2026, 12, 3, 9, 0, tzinfo=UTC) + timedelta(minutes=minutes))
        due = await monitor.check(config)
        assert await xledger.requests_total() == 1
        assert due == datetime(2026, 12, 3, 9, 15, tzinfo=UTC)
    clock.set(datetime(2026, 12, 3, 9, 15, tzinfo=UTC))
    await monitor.check(config)
    assert await xledger.requests_total() == 2


async def test_the_query_is_the_cheapest_one_typename_and_costs_exactly_one_request(
    make_monitor: MakeMonitor, add_integration: AddIntegration, xledger: Xledger, unique_id
):
    config = await add_integration(unique_id("cheap"), roomy())
    status = await (await make_monitor()).probe(config)
    assert status.state is HealthState.HEALTHY
    stats = (await xledger.control.get("/_fake/stats")).json()
    assert stats["requests_total"] == 1
    assert stats["by_operation"] == {"__typename": 1}


async def test_the_development_override_lowers_the_floor_and_is_logged_as_a_loud_warning(
    make_monitor: MakeMonitor,
    add_integration: AddIntegration,
    xledger: Xledger,
    clock: ManualClock,
    unique_id,
):
    config = await add_integration(unique_id("dev"), roomy(interval_seconds=5))
    monitor = await make_monitor(HealthSettings(dev_min_interval_seconds=5))
    with capture_logs() as logs:
        monitor.announce()
        await monitor.check(config)
    warning = next(e for e in logs if e["event"] == "health.dev_interval_override")
    assert warning["log_level"] == "warning"
    assert "DEVELOPMENT OVERRIDE" in warning["message"]
    probed = next(e for e in logs if e["event"] == "health.probed")
    assert probed["dev_override"] is True
    clock.advance(seconds=5)
    await monitor.check(config)
    assert await xledger.requests_total() == 2


async def test_without_the_override_nothing_is_announced(make_monitor: MakeMonitor):
    with capture_logs() as logs:
        (await make_monitor()).announce()
    assert logs == []


async def test_the_next_probe_time_is_kept_in_kv_so_a_restarted_monitor_does_not_probe_early(
    make_monitor: MakeMonitor,
    add_integration: AddIntegration,
    xledger: Xledger,
    clock: ManualClock,
    unique_id,
):
    config = await add_integration(unique_id("restart"), roomy())
    first = await (await make_monitor()).probe(config)
    assert first.next_probe_at == first.checked_at + timedelta(seconds=PROBE_INTERVAL_FLOOR_SECONDS)
    clock.advance(minutes=10)
    fresh = await make_monitor()
    assert await fresh.check(config) == first.next_probe_at
    assert await xledger.requests_total() == 1


# --- backoff -------------------------------------------------------------------------------


async def test_consecutive_failures_wait_exponentially_longer_with_jitter_up_to_the_cap_and_a_success_resets_it(
    make_monitor: MakeMonitor,
    add_integration: AddIntegration,
    xledger: Xledger,
    clock: ManualClock,
    unique_id,
):
    config = await add_integration(unique_id("backoff"), roomy())
    cap = 4 * 3600.0
    monitor = await make_monitor(HealthSettings(backoff_cap_seconds=cap, backoff_jitter=0.2))
    await xledger.faults(http_error={"status": 503, "count": None})
    waits = []
    for failures in range(1, 7):
        status = await monitor.probe(config)
        assert status.consecutive_failures == failures
        assert status.next_probe_at is not None
        assert status.last_probe_at is not None
        wait = (status.next_probe_at - status.last_probe_at).total_seconds()
        full = min(cap, 900 * 2**failures)
        assert 0.8 * full <= wait <= full  # jitter only ever shortens, never below the interval
        waits.append(wait)
        # Not due before its time, however often the monitor looks.
        clock.set(status.next_probe_at - timedelta(seconds=1))
        before = await xledger.requests_total()
        await monitor.check(config)
        assert await xledger.requests_total() == before
        clock.set(status.next_probe_at)
    assert waits[0] < waits[1] < waits[2] < waits[3]  # 30 min, 1 h, 2 h, 4 h (jittered)
    assert max(waits) <= cap
    assert len({round(w) for w in waits[3:]}) > 1  # jitter: capped waits differ
    await xledger.faults(http_error=None)
    healthy = await monitor.probe(config)
    assert healthy.state is HealthState.HEALTHY
    assert healthy.consecutive_failures == 0
    assert healthy.next_probe_at == healthy.checked_at + timedelta(seconds=900)


async def test_a_vendor_retry_after_is_honoured_before_the_next_probe(
    make_monitor: MakeMonitor, add_integration: AddIntegration, xledger: Xledger, unique_id
):
    config = await add_integration(unique_id("quota"), roomy())
    await xledger.faults(insufficient_credits={"reset_in_seconds": 6 * 3600})
    monitor = await make_monitor()
    alerts = await monitor.js.subscribe(t.alert_subject("quota", config.integration_id))
    status = await monitor.probe(config)
    assert status.state is HealthState.UNHEALTHY
    assert status.error_class is ErrorClass.QUOTA
    assert status.next_probe_at is not None
    assert status.next_probe_at - status.checked_at >= timedelta(hours=6) - timedelta(minutes=2)
    alert = Alert.from_bytes((await alerts.next_msg(timeout=10)).data)
    assert alert.kind is AlertKind.QUOTA
    assert "quota" in alert.message
    assert not status.fails_fast()  # quota defers exports; only auth fails them fast


# --- the state machine ---------------------------------------------------------------------


async def test_states_go_healthy_degraded_unhealthy_by_the_configured_thresholds_and_are_published_only_on_change(
    nc: Client,
    make_monitor: MakeMonitor,
    add_integration: AddIntegration,
    xledger: Xledger,
    jetstream: JetStreamContext,
    unique_id,
):
    config = await add_integration(
        unique_id("states"),
        roomy(thresholds=HealthThresholds(degraded_after=2, unhealthy_after=3)),
    )
    events = await _events(nc, config.integration_id)
    monitor = await make_monitor()
    assert (await monitor.probe(config)).state is HealthState.HEALTHY
    await xledger.faults(http_error={"status": 503, "count": None})
    seen = [(await monitor.probe(config)).state for _ in range(4)]
    assert seen == [
        HealthState.HEALTHY,
        HealthState.DEGRADED,
        HealthState.UNHEALTHY,
        HealthState.UNHEALTHY,
    ]
    await xledger.faults(http_error=None)
    assert (await monitor.probe(config)).state is HealthState.HEALTHY
    published = [(await asyncio.wait_for(events.get(), 10)) for _ in range(4)]
    assert [e.state for e in published] == [
        HealthState.HEALTHY,
        HealthState.DEGRADED,
        HealthState.UNHEALTHY,
        HealthState.HEALTHY,
    ]
    assert published[1].reason.startswith("retryable: Xledger answered HTTP 503")
    assert published[2].consecutive_failures == 3
    await _no_more(nc, events)
    stored = await current_health(jetstream, config.integration_id)
    assert stored is not None
    assert stored.state is HealthState.HEALTHY


async def test_an_auth_failure_is_unhealthy_at_once_and_tells_the_dispatcher_to_fail_fast(
    make_monitor: MakeMonitor,
    add_integration: AddIntegration,
    xledger: Xledger,
    credentials: Credentials,
    jetstream: JetStreamContext,
    unique_id,
):
    config = await add_integration(unique_id("auth"), roomy())
    monitor = await make_monitor()
    await monitor.probe(config)
    token = credentials.tokens[config.integration_id]
    await xledger.revoke(token)
    status = await monitor.probe(config)
    assert status.state is HealthState.UNHEALTHY
    assert status.error_class is ErrorClass.AUTH
    assert status.consecutive_failures == 1
    assert token not in status.to_bytes().decode()
    stored = await current_health(jetstream, config.integration_id)
    assert stored is not None
    assert stored.fails_fast()
    assert await current_health(jetstream, "never-seen") is None


# --- the probe budget ----------------------------------------------------------------------


async def test_a_probe_is_skipped_when_warm_ups_spent_the_hour_and_runs_in_the_next_hour(
    make_monitor: MakeMonitor,
    add_integration: AddIntegration,
    xledger: Xledger,
    clock: ManualClock,
    jetstream: JetStreamContext,
    unique_id,
):
    config = await add_integration(
        unique_id("hour"), HealthConfig(budget=ProbeBudgetConfig(per_hour=1, per_month=10_000))
    )
    budget = await ProbeBudget.open(jetstream, clock=clock.now)
    assert await budget.try_spend(config.integration_id, kind="warmup")
    monitor = await make_monitor()
    due = await monitor.check(config)
    assert await xledger.requests_total() == 0  # the monitor called nobody
    assert due == datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
    usage = await budget.usage(config.integration_id)
    assert usage.month_by_kind == {"warmup": 1}
    assert usage.month_refused == 1
    clock.set(datetime(2026, 12, 3, 10, 0, tzinfo=UTC))
    await monitor.check(config)
    assert await xledger.requests_total() == 1
    assert (await budget.usage(config.integration_id)).month_by_kind == {"warmup": 1, "probe": 1}


async def test_a_spent_monthly_budget_means_no_probe_until_next_month(
    make_monitor: MakeMonitor,
    add_integration: AddIntegration,
    xledger: Xledger,
    clock: ManualClock,
    jetstream: JetStreamContext,
    unique_id,
):
    config = await add_integration(
        unique_id("month"), HealthConfig(budget=ProbeBudgetConfig(per_hour=10, per_month=1))
    )
    budget = await ProbeBudget.open(jetstream, clock=clock.now)
    assert await budget.try_spend(config.integration_id, kind="warmup")
    monitor = await make_monitor()
    assert await monitor.check(config) == next_month_start(clock.now())
    clock.advance(days=3)
    await monitor.check(config)
    assert await xledger.requests_total() == 0
    stored = await monitor.current(config.integration_id)
    assert stored is not None
    assert stored.next_probe_at == datetime(2027, 1, 1, tzinfo=UTC)


async def test_a_month_of_probing_with_the_default_budget_spends_at_most_two_percent_of_the_xledger_quota(
    make_monitor: MakeMonitor,
    add_integration: AddIntegration,
    xledger: Xledger,
    clock: ManualClock,
    jetstream: JetStreamContext,
    unique_id,
):
    config = await add_integration(unique_id("month-long"))
    # A month of probes runs in a second of real time: lift the fake's real-time burst window.
    await xledger.faults(burst_limit={"requests": 1000, "window_seconds": 1})
    clock.set(datetime(2026, 12, 1, tzinfo=UTC))
    monitor = await make_monitor()
    probes: list[datetime] = []
    end = datetime(2027, 1, 1, tzinfo=UTC)
    while clock.now() < end:
        before = await xledger.requests_total()
        due = await monitor.check(config)
        if await xledger.requests_total() > before:
            probes.append(clock.now())
        assert due is not None
        clock.set(max(due, clock.now() + timedelta(minutes=15)))
    stats = (await xledger.control.get("/_fake/stats")).json()
    assert stats["credits_used"] <= 100  # 2% of 5,000
    assert len(probes) >= 90  # and spread over the month, not spent in the first day
    gaps = [(b - a).total_seconds() / 3600 for a, b in itertools.pairwise(probes)]
    assert max(gaps) < 8.5
    budget = await ProbeBudget.open(jetstream, clock=lambda: datetime(2026, 12, 31, tzinfo=UTC))
    assert (await budget.usage(config.integration_id)).month_used == len(probes)


# --- evidence from syncs and warm-ups ------------------------------------------------------


async def test_a_recent_successful_sync_proves_health_so_the_monitor_skips_its_probe(
    make_monitor: MakeMonitor,
    add_integration: AddIntegration,
    xledger: Xledger,
    clock: ManualClock,
    unique_id,
):
    config = await add_integration(unique_id("proof"), roomy())
    monitor = await make_monitor()
    await monitor.check(config)  # 09:00
    clock.advance(minutes=10)
    status = await monitor.observe_result(_result(config, SyncStatus.SUCCEEDED, clock.now()))
    assert status is not None
    assert status.source == "sync"
    assert status.next_probe_at == datetime(2026, 12, 3, 9, 25, tzinfo=UTC)
    clock.set(datetime(2026, 12, 3, 9, 20, tzinfo=UTC))  # past the probe's own interval
    await monitor.check(config)
    assert await xledger.requests_total() == 1
    clock.set(datetime(2026, 12, 3, 9, 25, tzinfo=UTC))
    await monitor.check(config)
    assert await xledger.requests_total() == 2


async def test_a_sync_that_exported_nothing_leaves_an_integration_without_its_secret_unhealthy(
    make_monitor: MakeMonitor,
    add_integration: AddIntegration,
    xledger: Xledger,
    credentials: Credentials,
    clock: ManualClock,
    unique_id: Callable[..., str],
) -> None:
    config = await add_integration(unique_id("no-secret"), roomy())
    credentials.missing.add(config.integration_id)
    monitor = await make_monitor()
    unhealthy = await monitor.probe(config)
    assert unhealthy.state is HealthState.UNHEALTHY
    assert unhealthy.reason.startswith("configuration: no secret at ")
    # Incremental fires that find nothing new succeed without a credential or a vendor call.
    for _ in range(4):
        clock.advance(minutes=15)
        empty = _result(config, SyncStatus.SUCCEEDED, clock.now(), vouchers=0)
        assert await monitor.observe_result(empty) is None
    assert await monitor.current(config.integration_id) == unhealthy
    assert await xledger.requests_total() == 0


async def test_a_sync_that_exported_vouchers_still_proves_an_unhealthy_integration_healthy(
    make_monitor: MakeMonitor,
    add_integration: AddIntegration,
    credentials: Credentials,
    clock: ManualClock,
    unique_id: Callable[..., str],
) -> None:
    config = await add_integration(unique_id("fixed"), roomy())
    credentials.missing.add(config.integration_id)
    monitor = await make_monitor()
    assert (await monitor.probe(config)).state is HealthState.UNHEALTHY
    credentials.missing.discard(config.integration_id)  # the secret is written to Vault
    clock.advance(minutes=5)
    exported = _result(config, SyncStatus.SUCCEEDED, clock.now(), vouchers=2)
    status = await monitor.observe_result(exported)
    assert status is not None
    assert (status.state, status.source) == (HealthState.HEALTHY, "sync")
    assert status.next_probe_at == clock.now() + timedelta(minutes=15)


async def test_an_empty_success_on_the_bus_is_ignored_and_the_next_real_one_is_taken(
    nc: Client,
    make_monitor: MakeMonitor,
    add_integration: AddIntegration,
    jetstream: JetStreamContext,
    credentials: Credentials,
    clock: ManualClock,
    unique_id: Callable[..., str],
) -> None:
    config = await add_integration(unique_id("bus-empty"), roomy())
    credentials.missing.add(config.integration_id)
    monitor = await make_monitor()
    assert (await monitor.probe(config)).state is HealthState.UNHEALTHY
    events = await _events(nc, config.integration_id)
    subscription = await monitor.follow_results()
    try:
        clock.advance(minutes=15)
        empty = _result(config, SyncStatus.SUCCEEDED, clock.now(), vouchers=0)
        await jetstream.publish(t.result_subject(config.integration_id), empty.to_bytes())
        clock.advance(minutes=15)
        real = _result(config, SyncStatus.SUCCEEDED, clock.now(), vouchers=1)
        await jetstream.publish(t.result_subject(config.integration_id), real.to_bytes())
        healthy = await asyncio.wait_for(events.get(), 10)
        assert healthy.state is HealthState.HEALTHY
        assert healthy.checked_at == real.finished_at
        await _no_more(nc, events)
    finally:
        await subscription.unsubscribe()


async def test_a_successful_warm_up_recorded_in_the_budget_proves_health_and_counts_as_spent(
    make_monitor: MakeMonitor,
    add_integration: AddIntegration,
    xledger: Xledger,
    clock: ManualClock,
    jetstream: JetStreamContext,
    unique_id,
):
    config = await add_integration(unique_id("warm"), roomy())
    budget = await ProbeBudget.open(jetstream, clock=clock.now)
    # What the dispatcher does around its warm-up call:
    assert await budget.try_spend(config.integration_id, kind="warmup")
    await budget.record_warmup(config.integration_id, ok=True)
    monitor = await make_monitor()
    due = await monitor.check(config)
    assert await xledger.requests_total() == 0
    status = await monitor.current(config.integration_id)
    assert status is not None
    assert (status.state, status.source) == (HealthState.HEALTHY, "warmup")
    assert due == clock.now() + timedelta(minutes=15)


async def test_a_failed_warm_up_counts_as_a_failure(
    make_monitor: MakeMonitor,
    add_integration: AddIntegration,
    clock: ManualClock,
    jetstream: JetStreamContext,
    unique_id,
):
    config = await add_integration(unique_id("warm-fail"), roomy(mode=HealthMode.PASSIVE))
    budget = await ProbeBudget.open(jetstream, clock=clock.now)
    await budget.record_warmup(
        config.integration_id,
        ok=False,
        error_class=ErrorClass.AUTH,
        message="Xledger refused the API token (HTTP 401)",
    )
    monitor = await make_monitor()
    await monitor.check(config)
    status = await monitor.current(config.integration_id)
    assert status is not None
    assert (status.state, status.source) == (HealthState.UNHEALTHY, "warmup")
    assert status.reason.startswith("auth: warm-up failed")


async def test_a_passive_integration_is_never_probed_and_takes_its_health_from_sync_results(
    nc: Client,
    make_monitor: MakeMonitor,
    add_integration: AddIntegration,
    xledger: Xledger,
    clock: ManualClock,
    unique_id,
):
    config = await add_integration(unique_id("passive"), roomy(mode=HealthMode.PASSIVE))
    events = await _events(nc, config.integration_id)
    monitor = await make_monitor()
    for _ in range(3):
        assert await monitor.check(config) is None
        clock.advance(hours=1)
    assert await xledger.requests_total() == 0
    ok = await monitor.observe_result(_result(config, SyncStatus.SUCCEEDED, clock.now()))
    assert ok is not None
    assert ok.state is HealthState.HEALTHY
    assert ok.next_probe_at is None
    clock.advance(hours=1)
    # One failed scheduled sync is enough in passive mode (thresholds would say 3).
    failed = await monitor.observe_result(
        _result(config, SyncStatus.FAILED, clock.now(), error=ErrorClass.RETRYABLE)
    )
    assert failed is not None
    assert failed.state is HealthState.UNHEALTHY
    assert failed.reason.startswith("retryable: sync ")
    assert [(await asyncio.wait_for(events.get(), 10)).state for _ in range(2)] == [
        HealthState.HEALTHY,
        HealthState.UNHEALTHY,
    ]
    assert await xledger.requests_total() == 0


async def test_in_active_mode_a_failed_sync_counts_towards_the_thresholds_and_a_data_error_does_not(
    make_monitor: MakeMonitor, add_integration: AddIntegration, clock: ManualClock, unique_id
):
    config = await add_integration(unique_id("active-sync"), roomy())
    monitor = await make_monitor()
    data = await monitor.observe_result(
        _result(config, SyncStatus.FAILED, clock.now(), error=ErrorClass.DATA)
    )
    assert data is None
    clock.advance(minutes=1)
    failed = await monitor.observe_result(
        _result(config, SyncStatus.FAILED, clock.now(), error=ErrorClass.RETRYABLE)
    )
    assert failed is not None
    assert failed.state is HealthState.DEGRADED


async def test_results_older_than_the_current_status_change_nothing(
    make_monitor: MakeMonitor, add_integration: AddIntegration, clock: ManualClock, unique_id
):
    config = await add_integration(unique_id("stale"), roomy())
    monitor = await make_monitor()
    probed = await monitor.probe(config)
    old = _result(
        config, SyncStatus.FAILED, clock.now() - timedelta(hours=1), error=ErrorClass.AUTH
    )
    assert await monitor.observe_result(old) is None
    assert await monitor.current(config.integration_id) == probed


async def test_the_monitor_follows_sync_results_on_the_bus_starting_with_the_last_one_before_it_started(
    nc: Client,
    make_monitor: MakeMonitor,
    add_integration: AddIntegration,
    jetstream: JetStreamContext,
    clock: ManualClock,
    unique_id,
):
    config = await add_integration(unique_id("follow"), roomy(mode=HealthMode.PASSIVE))
    before = _result(config, SyncStatus.SUCCEEDED, clock.now() - timedelta(minutes=5))
    await jetstream.publish(t.result_subject(config.integration_id), before.to_bytes())
    events = await _events(nc, config.integration_id)
    monitor = await make_monitor()
    subscription = await monitor.follow_results()
    try:
        first = await asyncio.wait_for(events.get(), 10)
        assert (first.state, first.source) == (HealthState.HEALTHY, "sync")
        failed = _result(config, SyncStatus.FAILED, clock.now(), error=ErrorClass.AUTH)
        await jetstream.publish(t.result_subject(config.integration_id), failed.to_bytes())
        second = await asyncio.wait_for(events.get(), 10)
        assert second.state is HealthState.UNHEALTHY
        assert second.fails_fast()
    finally:
        await subscription.unsubscribe()


# --- passive by vendor, by itself ----------------------------------------------------------


async def test_a_rate_limited_probe_switches_the_vendor_to_passive_and_an_alert_says_so(
    make_monitor: MakeMonitor,
    add_integration: AddIntegration,
    xledger: Xledger,
    credentials: Credentials,
    clock: ManualClock,
    jetstream: JetStreamContext,
    unique_id,
):
    limited = await add_integration(unique_id("limited"), roomy())
    sibling = await add_integration(unique_id("sibling"), roomy())
    await xledger.faults(burst_limit={"requests": 1, "window_seconds": 60})
    # Someone else (an export, say) used this token's burst window just now.
    token = credentials.tokens[limited.integration_id]
    used = await xledger.control.post(
        "/graphql",
        json={"query": "query { __typename }"},
        headers={"Authorization": f"token {token}"},
    )
    assert "errors" not in used.json()
    alerts = await jetstream.subscribe(t.alert_subject("quota", limited.integration_id))
    monitor = await make_monitor(HealthSettings(auto_passive_seconds=3600))
    assert await monitor.check(limited) is None
    status = await monitor.current(limited.integration_id)
    assert status is not None
    assert status.mode is HealthMode.PASSIVE
    assert status.vendor_code == "BAD_REQUEST.BURST_RATE_LIMIT_REACHED"
    assert status.consecutive_failures == 0  # the vendor answered: not a failure
    alert = Alert.from_bytes((await alerts.next_msg(timeout=10)).data)
    assert alert.kind is AlertKind.QUOTA
    assert "every xledger integration is passive now" in alert.message
    assert alert.details["vendor"] == "xledger"
    entry = await monitor.vendor_mode("xledger")
    assert isinstance(entry, VendorHealthMode)
    assert (entry.mode, entry.set_by) == (HealthMode.PASSIVE, "auto")
    assert entry.until == clock.now() + timedelta(hours=1)
    # The whole type is passive: its other integrations are not probed either.
    calls = await xledger.requests_total()
    assert await monitor.check(sibling) is None
    clock.advance(minutes=30)
    assert await monitor.check(limited) is None
    assert await xledger.requests_total() == calls
    # When the switch ends, the vendor is active again and probes resume.
    await xledger.faults(burst_limit=None)
    clock.advance(minutes=31)
    assert await monitor.check(sibling) is not None
    assert await monitor.vendor_mode("xledger") is None
    assert await xledger.requests_total() == calls + 1


async def test_a_passive_integration_unhealthy_for_auth_is_still_rechecked_with_backoff(
    make_monitor: MakeMonitor,
    add_integration: AddIntegration,
    xledger: Xledger,
    clock: ManualClock,
    unique_id,
):
    config = await add_integration(unique_id("recheck"), roomy(mode=HealthMode.PASSIVE))
    monitor = await make_monitor()
    failed = await monitor.observe_result(
        _result(config, SyncStatus.FAILED, clock.now(), error=ErrorClass.AUTH)
    )
    assert failed is not None
    assert failed.fails_fast()
    assert failed.next_probe_at is not None
    clock.set(failed.next_probe_at)
    await monitor.check(config)
    assert await xledger.requests_total() == 1  # the credential was fixed meanwhile
    status = await monitor.current(config.integration_id)
    assert status is not None
    assert status.state is HealthState.HEALTHY
    assert status.next_probe_at is None  # healthy and passive: no more probes


async def test_a_round_on_the_real_clock_probes_a_new_integration_once_and_waits_for_the_next(
    nc: Client, add_integration: AddIntegration, xledger: Xledger, unique_id
):
    config = await add_integration(unique_id("round"))
    monitor = await HealthMonitor.open(nc, HealthSettings(rescan_seconds=30))
    wait = await monitor.run_once()
    assert await xledger.requests_total() == 1
    assert wait == 30  # the next probe is hours away: the next round is the rescan
    await monitor.run_once()
    assert await xledger.requests_total() == 1
    status = await monitor.current(config.integration_id)
    assert status is not None
    assert status.state is HealthState.HEALTHY


async def test_a_recheck_skips_the_backoff_wait_but_never_the_floor_and_is_answered_over_nats(
    nc: Client,
    make_monitor: MakeMonitor,
    add_integration: AddIntegration,
    xledger: Xledger,
    credentials: Credentials,
    clock: ManualClock,
    unique_id,
):
    config = await add_integration(unique_id("recheck-now"), roomy())
    monitor = await make_monitor()
    token = credentials.tokens[config.integration_id]
    await xledger.revoke(token)
    for _ in range(3):
        failed = await monitor.probe(config)
        assert failed.next_probe_at is not None
        clock.set(failed.next_probe_at)
    failed = await monitor.probe(config)
    assert failed.next_probe_at is not None
    assert failed.next_probe_at - failed.checked_at > timedelta(hours=3)  # backed off
    await xledger.add_token(token)  # the credential is fixed
    subscription = await monitor.serve_rechecks()
    try:
        clock.advance(minutes=10)  # inside the floor: nothing is probed
        reply = await nc.request(t.health_recheck_subject(config.integration_id), b"", timeout=10)
        assert HealthStatus.from_bytes(reply.data) == failed
        clock.advance(minutes=5)  # the floor has passed; the backoff has not
        reply = await nc.request(t.health_recheck_subject(config.integration_id), b"", timeout=10)
        healthy = HealthStatus.from_bytes(reply.data)
        assert healthy.state is HealthState.HEALTHY
        assert healthy.last_probe_at == clock.now()
        unknown = await nc.request(t.health_recheck_subject("not-configured"), b"", timeout=10)
        assert "not configured" in HealthStatus.from_bytes(unknown.data).reason
    finally:
        await subscription.unsubscribe()


async def test_a_sync_the_dispatcher_failed_fast_on_our_word_is_no_evidence_and_says_what_to_do(
    make_monitor: MakeMonitor,
    add_integration: AddIntegration,
    xledger: Xledger,
    credentials: Credentials,
    clock: ManualClock,
    unique_id,
):
    config = await add_integration(unique_id("fast"), roomy())
    monitor = await make_monitor()
    await xledger.revoke(credentials.tokens[config.integration_id])
    unhealthy = await monitor.probe(config)
    assert unhealthy.fails_fast()
    error = fail_fast_error(unhealthy)
    assert error.error_class is ErrorClass.AUTH
    assert f"syncbus health recheck {config.integration_id}" in error.message
    clock.advance(minutes=1)
    failed_fast = _result(config, SyncStatus.FAILED, clock.now()).model_copy(
        update={"error": error}
    )
    assert await monitor.observe_result(failed_fast) is None
    assert await monitor.current(config.integration_id) == unhealthy  # backoff not fed
