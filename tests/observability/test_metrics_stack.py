"""Each service's /metrics after real syncs through the embedded stack (real nats-server,
OpenBao, the Xledger fake and the four services as processes), read with the Prometheus
parser: syncs by status and integration type, their duration, vendor requests by status,
schedule drift, warm-up outcomes, warm and cold starts, retries, probe budget use, consumer
lag; and the run's key on the dispatcher's log lines."""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import pytest_asyncio
from nats.aio.client import Client
from nats.js.api import DeliverPolicy
from prometheus_client.parser import text_string_to_metric_families

from syncbus_devstack import Stack
from syncbus_scheduler.periods import period_for_fire
from syncbus_scheduler.state import ScheduleState, ScheduleStateStore
from syncbus_shared import topology as t
from syncbus_shared.contracts import (
    HealthConfig,
    HealthMode,
    IntegrationConfig,
    PeriodKind,
    Schedule,
    SyncRequest,
    SyncResult,
    SyncStatus,
    Voucher,
    VoucherLine,
)
from syncbus_shared.integrations import put_integration
from syncbus_shared.natsclient import connect
from syncbus_shared.settings import NatsSettings
from syncbus_shared.staging import stage_vouchers

pytestmark = pytest.mark.asyncio(loop_scope="module")

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    async with Stack(
        tmp_path_factory.mktemp("metrics"),
        extra_env={
            "SYNCBUS_SCHEDULER_CATCHUP_LEAD_SECONDS": "2.0",
            "SYNCBUS_DISPATCHER_BACKOFF_INITIAL_SECONDS": "0.05",
        },
    ) as running:
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bus(stack: Stack) -> AsyncIterator[Client]:
    nc = await connect(NatsSettings(url=stack.nats_url), "pytest-metrics")
    yield nc
    await nc.close()


async def scrape(stack: Stack, service: str) -> Samples:
    """Every sample of the service's /metrics, by (sample name, labels)."""
    async with httpx.AsyncClient(timeout=10.0) as http:
        answer = await http.get(f"{stack.probe_urls[service]}/metrics")
    assert answer.status_code == 200
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(answer.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def grew(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


async def integration(
    stack: Stack,
    bus: Client,
    integration_id: str,
    *,
    schedule: Schedule | None = None,
    passive: bool = True,
) -> IntegrationConfig:
    token = secrets.token_urlsafe(18)
    await stack.vault.write_secret(f"integrations/{integration_id}", {"api_token": token})
    async with httpx.AsyncClient(base_url=stack.fake_urls["xledger"], timeout=10.0) as fake:
        await fake.post("/_fake/tokens", json={"token": token})
    config = IntegrationConfig(
        integration_id=integration_id,
        vendor="xledger",
        endpoint=f"{stack.fake_urls['xledger']}/graphql",
        credentials_path=f"integrations/{integration_id}",
        schedule=schedule,
        health=HealthConfig(mode=HealthMode.PASSIVE if passive else HealthMode.ACTIVE),
        timeout_seconds=5.0,
    )
    await put_integration(bus.jetstream(), config)
    return config


async def stage(bus: Client, integration_id: str, period_id: str, day: str, count: int) -> None:
    vouchers = [
        Voucher(
            voucher_id=f"{integration_id}-v{n}",
            period_id=period_id,
            transaction_date=day,
            posting_date=day,
            lines=(
                VoucherLine(record_id="1", account_id="6300", debit="100.50"),
                VoucherLine(record_id="2", account_id="1920", credit="100.50"),
            ),
        )
        for n in range(count)
    ]
    await stage_vouchers(bus.jetstream(), integration_id, vouchers)


async def first_result(bus: Client, integration_id: str, timeout: float = 60.0) -> SyncResult:
    sub = await bus.jetstream().subscribe(
        t.result_subject(integration_id), deliver_policy=DeliverPolicy.ALL
    )
    try:
        msg = await sub.next_msg(timeout=timeout)
    finally:
        await sub.unsubscribe()
    return SyncResult.from_bytes(msg.data)


async def test_a_caught_up_scheduled_sync_shows_in_the_scheduler_and_dispatcher_metrics(
    stack: Stack, bus: Client, unique_id: Callable[..., str]
):
    integration_id = unique_id("metrics")
    schedule = Schedule(
        cron="0 0 * * *", timezone="UTC", period=PeriodKind.DAY, period_offset=-1, lead_seconds=1
    )
    due = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    period = period_for_fire(schedule, due)
    # The scheduler last fired the day before: today's midnight fire is missed, so the
    # scheduler catches it up at once, warm-up first, late by the hours since midnight.
    states = ScheduleStateStore(await bus.jetstream().key_value(t.KV_SCHEDULE_STATE))
    await states.put(
        ScheduleState(integration_id=integration_id, last_fired_for=due - timedelta(days=1))
    )
    await stage(bus, integration_id, period.period_id, period.start_local.isoformat(), 3)
    dispatcher_before = await scrape(stack, "dispatcher")
    scheduler_before = await scrape(stack, "scheduler")

    await integration(stack, bus, integration_id, schedule=schedule)
    result = await first_result(bus, integration_id)
    assert result.status is SyncStatus.SUCCEEDED, result.error
    assert result.started_warm is True

    dispatcher = await scrape(stack, "dispatcher")
    scheduler = await scrape(stack, "scheduler")
    xledger = {"integration_type": "xledger"}
    succeeded = {**xledger, "status": "succeeded"}
    assert grew(dispatcher_before, dispatcher, "syncbus_dispatcher_syncs_total", **succeeded) == 1
    duration = "syncbus_dispatcher_sync_duration_seconds"
    assert grew(dispatcher_before, dispatcher, f"{duration}_count", **succeeded) == 1
    assert grew(dispatcher_before, dispatcher, f"{duration}_sum", **succeeded) > 0
    requests = "syncbus_dispatcher_vendor_requests_total"
    assert (
        grew(dispatcher_before, dispatcher, requests, **xledger, status="200") >= 2
    )  # warm-up, post
    assert (
        value(dispatcher, "syncbus_dispatcher_vendor_request_duration_seconds_count", **xledger) > 0
    )
    warmups = "syncbus_dispatcher_warmups_total"
    assert grew(dispatcher_before, dispatcher, warmups, **xledger, outcome="succeeded") == 1
    assert (
        grew(dispatcher_before, dispatcher, "syncbus_dispatcher_warm_starts_total", **xledger) == 1
    )
    assert (
        grew(dispatcher_before, dispatcher, "syncbus_dispatcher_cold_starts_total", **xledger) == 0
    )
    spends = "syncbus_dispatcher_probe_budget_spends_total"
    assert grew(dispatcher_before, dispatcher, spends, kind="warmup", outcome="spent") == 1
    assert value(dispatcher, "syncbus_dispatcher_consumer_pending_messages") == 0
    assert ("syncbus_dispatcher_consumer_ack_pending_messages", frozenset()) in dispatcher

    drift = "syncbus_scheduler_schedule_drift_seconds"
    assert grew(scheduler_before, scheduler, f"{drift}_count", kind="catch_up") == 1
    late = (datetime.now(UTC) - due).total_seconds()
    assert 0 < grew(scheduler_before, scheduler, f"{drift}_sum", kind="catch_up") <= late
    assert grew(scheduler_before, scheduler, "syncbus_scheduler_fires_stored_total") == 1
    assert grew(scheduler_before, scheduler, "syncbus_scheduler_catchup_fires_total") == 1
    assert grew(scheduler_before, scheduler, "syncbus_scheduler_warmups_sent_total") == 1
    assert value(scheduler, "syncbus_scheduler_schedules_planned") >= 1
    assert value(scheduler, "syncbus_scheduler_warmup_leader") == 1


async def test_a_retried_batch_is_counted_by_status_and_error_class_and_its_lines_carry_the_key(
    stack: Stack, bus: Client, unique_id: Callable[..., str]
):
    integration_id = unique_id("retry")
    await integration(stack, bus, integration_id)
    await stage(bus, integration_id, "2017-01", "2017-01-10", 2)
    before = await scrape(stack, "dispatcher")
    credentials_before = await scrape(stack, "credentials")
    async with httpx.AsyncClient(base_url=stack.fake_urls["xledger"], timeout=10.0) as fake:
        await fake.post("/_fake/faults", json={"http_error": {"status": 503, "count": 1}})
    request = SyncRequest(integration_id=integration_id, period_id="2017-01")
    await bus.jetstream().publish(
        t.request_subject(integration_id),
        request.to_bytes(),
        headers={"Nats-Msg-Id": request.idempotency_key},
    )
    result = await first_result(bus, integration_id)
    assert result.status is SyncStatus.SUCCEEDED, result.error

    after = await scrape(stack, "dispatcher")
    xledger = {"integration_type": "xledger"}
    requests = "syncbus_dispatcher_vendor_requests_total"
    assert grew(before, after, requests, **xledger, status="503") == 1
    assert grew(before, after, requests, **xledger, status="200") >= 1
    retries = "syncbus_dispatcher_retries_total"
    assert grew(before, after, retries, **xledger, error_class="retryable") == 1
    assert grew(before, after, "syncbus_dispatcher_cold_starts_total", **xledger) == 1  # no warm-up
    credentials_after = await scrape(stack, "credentials")
    served = "syncbus_credentials_requests_total"
    assert grew(credentials_before, credentials_after, served, outcome="served") >= 1

    lines = [
        json.loads(line)
        for line in stack.service("dispatcher").log_path.read_text().splitlines()
        if line.startswith("{")
    ]
    mine = [line for line in lines if line.get("request_id") == result.request_id]
    events = {line["event"] for line in mine}
    # `retry_scheduled` and `vendor_error` name no key themselves: it is bound for the run.
    assert {
        "dispatcher.run_started",
        "dispatcher.vendor_error",
        "dispatcher.retry_scheduled",
    } <= events
    assert {line.get("key") for line in mine} == {request.idempotency_key}
    assert {line.get("integration_type") for line in mine} == {"xledger"}
    after_run = [line for line in lines if line.get("event") == "dispatcher.ready"]
    assert all("key" not in line for line in after_run)


async def test_a_rejected_request_is_counted_with_an_unknown_integration_type(
    stack: Stack, bus: Client, unique_id: Callable[..., str]
):
    integration_id = unique_id("rejected")
    before = await scrape(stack, "dispatcher")
    await bus.jetstream().publish(t.request_subject(integration_id), b"{not json")
    result = await first_result(bus, integration_id)
    assert result.status is SyncStatus.REJECTED
    after = await scrape(stack, "dispatcher")
    syncs = "syncbus_dispatcher_syncs_total"
    assert grew(before, after, syncs, integration_type="unknown", status="rejected") == 1
    duration = "syncbus_dispatcher_sync_duration_seconds_count"
    assert grew(before, after, duration, integration_type="unknown", status="rejected") == 0


async def test_a_health_probe_is_counted_with_its_vendor_request_and_budget_spend(
    stack: Stack, bus: Client, unique_id: Callable[..., str]
):
    integration_id = unique_id("probe")
    before = await scrape(stack, "health-monitor")
    await integration(stack, bus, integration_id, passive=False)
    await bus.request(t.health_recheck_subject(integration_id), b"", timeout=30)
    after = await scrape(stack, "health-monitor")
    xledger = {"integration_type": "xledger"}
    probes = "syncbus_health_monitor_probes_total"
    assert grew(before, after, probes, **xledger, outcome="succeeded") >= 1
    requests = "syncbus_health_monitor_vendor_requests_total"
    assert grew(before, after, requests, **xledger, status="200") >= 1
    spends = "syncbus_health_monitor_probe_budget_spends_total"
    assert grew(before, after, spends, kind="probe", outcome="spent") >= 1
