"""Incremental schedules end to end: the voucher ledger, not the key, prevents resending.

A real scheduler (in this process, its trigger path: the same publish path as a fire) sends
`scope: staged` requests keyed by the fire instant to the stack's real dispatcher process, which
exports through the Xledger fake.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from e2e_support import Integration, make_voucher

from syncbus_scheduler.clock import Clock
from syncbus_scheduler.firing import Firer
from syncbus_scheduler.service import Scheduler
from syncbus_scheduler.settings import SchedulerSettings
from syncbus_scheduler.state import ScheduleStateStore
from syncbus_shared import topology as t
from syncbus_shared.contracts import (
    PeriodKind,
    Schedule,
    ScheduleMode,
    SyncRequest,
    SyncScope,
    SyncStatus,
    TriggerRequest,
)
from syncbus_shared.staging import stage_vouchers

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def _scheduler(it: Integration) -> Scheduler:
    settings = SchedulerSettings(catchup_lead_seconds=0.05, tick_seconds=0.2)
    states = ScheduleStateStore(await it.js.key_value(t.KV_SCHEDULE_STATE))
    firer = Firer(it.nc, it.js, states, settings, clock=Clock(follow_server=False))
    return Scheduler(firer, settings)


def _incremental(it: Integration) -> Integration:
    it.config = it.config.model_copy(
        update={
            "schedule": Schedule(
                cron="* * * * *",
                timezone="Europe/Oslo",
                period=PeriodKind.DAY,
                mode=ScheduleMode.INCREMENTAL,
                lead_seconds=0.1,
            )
        }
    )
    return it


async def _stage(it: Integration, numbers: range, period: str = "2017-01") -> int:
    vouchers = [make_voucher(it.id, n, period) for n in numbers]
    await stage_vouchers(it.js, it.id, vouchers)
    return sum(len(v.lines) for v in vouchers)


def _staged_request(it: Integration, instant: str) -> SyncRequest:
    return SyncRequest(
        integration_id=it.id, scope=SyncScope.STAGED, idempotency_key=f"{it.id}:{instant}"
    )


async def test_each_incremental_fire_exports_only_what_no_earlier_fire_exported(
    integration: Integration,
):
    it = _incremental(integration)
    scheduler = await _scheduler(it)
    first_lines = await _stage(it, range(3))

    first = await scheduler.trigger(TriggerRequest(integration_id=it.id), it.config)
    [one] = await it.wait_results(1)
    more_lines = await _stage(it, range(3, 5), period="2017-02")  # any period: all staged
    await it.publish(_staged_request(it, "2099-01-01T00:00:00Z"))  # the next fire's key
    _, two = await it.wait_results(2)

    assert one.status is SyncStatus.SUCCEEDED, one.error
    assert (one.idempotency_key, one.vouchers, one.lines) == (first.idempotency_key, 3, first_lines)
    assert two.status is SyncStatus.SUCCEEDED, two.error
    assert (two.vouchers, two.lines, two.already_exported) == (2, more_lines, 3)
    postings = await it.postings()
    assert len(postings) == first_lines + more_lines
    assert max(Counter(p["clientId"] for p in postings).values()) == 1


async def test_an_incremental_fire_with_nothing_new_succeeds_with_no_vouchers_and_no_vendor_call(
    integration: Integration,
):
    it = _incremental(integration)
    lines = await _stage(it, range(2))
    await it.publish(_staged_request(it, "2026-12-03T10:00:00Z"))
    await it.wait_results(1)
    calls_before = (await it.fake.get("/_fake/stats")).json()

    await it.publish(_staged_request(it, "2026-12-03T10:15:00Z"))
    _, nothing = await it.wait_results(2)

    assert nothing.status is SyncStatus.SUCCEEDED, nothing.error
    assert (nothing.vouchers, nothing.lines, nothing.already_exported) == (0, 0, 2)
    assert (await it.fake.get("/_fake/stats")).json() == calls_before
    assert len(await it.postings()) == lines


async def test_a_staged_scope_with_nothing_staged_at_all_is_a_success_not_a_failure(
    integration: Integration,
):
    await integration.publish(_staged_request(integration, "2026-12-03T10:00:00Z"))
    [result] = await integration.wait_results(1)
    assert result.status is SyncStatus.SUCCEEDED, result.error
    assert (result.vouchers, result.already_exported) == (0, 0)


async def test_a_period_run_leaves_out_what_incremental_runs_already_exported(
    integration: Integration,
):
    early_lines = await _stage(integration, range(3))
    await integration.publish(_staged_request(integration, "2017-01-15T12:00:00Z"))
    [incremental] = await integration.wait_results(1)
    late_lines = await _stage(integration, range(3, 4))

    await integration.publish(SyncRequest(integration_id=integration.id, period_id="2017-01"))
    _, period = await integration.wait_results(2)

    assert incremental.status is SyncStatus.SUCCEEDED, incremental.error
    assert period.status is SyncStatus.SUCCEEDED, period.error
    assert (period.vouchers, period.lines, period.already_exported) == (1, late_lines, 3)
    postings = await integration.postings()
    assert len(postings) == early_lines + late_lines
    assert max(Counter(p["clientId"] for p in postings).values()) == 1


async def test_an_incremental_run_after_a_period_run_posts_nothing_the_period_run_posted(
    integration: Integration,
):
    lines = await _stage(integration, range(4))
    await integration.publish(SyncRequest(integration_id=integration.id, period_id="2017-01"))
    await integration.wait_results(1)

    await integration.publish(_staged_request(integration, "2017-02-01T00:05:00Z"))
    _, incremental = await integration.wait_results(2)

    assert incremental.status is SyncStatus.SUCCEEDED, incremental.error
    assert (incremental.vouchers, incremental.already_exported) == (0, 4)
    assert len(await integration.postings()) == lines


async def test_two_incremental_requests_published_at_once_post_each_voucher_once(
    integration: Integration,
):
    lines = await _stage(integration, range(6))
    instants = [f"2026-12-03T10:{m:02d}:00Z" for m in (0, 15, 30)]
    await asyncio.gather(*(integration.publish(_staged_request(integration, i)) for i in instants))

    results = await integration.wait_results(3)

    assert {r.status for r in results} == {SyncStatus.SUCCEEDED}
    assert sum(r.vouchers for r in results) == 6
    postings = await integration.postings()
    assert len(postings) == lines
    assert max(Counter(p["clientId"] for p in postings).values()) == 1
