"""The probe budget on real NATS: limits per hour and month, shared by kinds, kept across restarts."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from nats.js import JetStreamContext

from syncbus_health_monitor.clock import ManualClock
from syncbus_shared.contracts import HealthConfig, IntegrationConfig, ProbeBudgetConfig
from syncbus_shared.integrations import put_integration
from syncbus_shared.probe_budget import (
    DEFAULT_LIMITS,
    GENERIC_LIMITS,
    XLEDGER_MONTHLY_QUOTA,
    BudgetLimits,
    ProbeBudget,
    budget_limits,
)

START = datetime(2026, 12, 3, 9, 10, tzinfo=UTC)


def _config(vendor: str = "xledger", budget: ProbeBudgetConfig | None = None) -> IntegrationConfig:
    return IntegrationConfig(
        integration_id="b-1",
        vendor=vendor,
        endpoint="http://x",
        credentials_path="p",
        health=HealthConfig(budget=budget),
    )


def test_the_default_xledger_budget_is_two_percent_of_its_monthly_quota():
    assert DEFAULT_LIMITS["xledger"].per_month == XLEDGER_MONTHLY_QUOTA * 2 // 100 == 100
    assert budget_limits(_config()) == DEFAULT_LIMITS["xledger"]
    assert budget_limits(_config("business_central")) == GENERIC_LIMITS
    assert budget_limits(_config(budget=ProbeBudgetConfig(per_hour=1))) == BudgetLimits(1, 100)


async def test_spends_stop_at_the_hourly_limit_and_start_again_in_the_next_hour(
    jetstream: JetStreamContext, unique_id
):
    clock = ManualClock(START)
    budget = await ProbeBudget.open(jetstream, clock=clock.now)
    limits = BudgetLimits(per_hour=2, per_month=100)
    key = unique_id("hour")
    spent = [await budget.try_spend(key, kind="probe", limits=limits) for _ in range(3)]
    assert spent == [True, True, False]
    usage = await budget.usage(key, limits=limits)
    assert (usage.hour_used, usage.month_used, usage.month_refused) == (2, 2, 1)
    assert usage.next_allowed_at(clock.now()) == datetime(2026, 12, 3, 10, tzinfo=UTC)
    clock.set(datetime(2026, 12, 3, 10, tzinfo=UTC))
    assert await budget.try_spend(key, kind="probe", limits=limits)
    assert (await budget.usage(key, limits=limits)).month_used == 3


async def test_spends_stop_at_the_monthly_limit_and_start_again_next_month(
    jetstream: JetStreamContext, unique_id
):
    clock = ManualClock(START)
    budget = await ProbeBudget.open(jetstream, clock=clock.now)
    limits = BudgetLimits(per_hour=10, per_month=2)
    key = unique_id("month")
    assert await budget.try_spend(key, kind="probe", limits=limits)
    clock.advance(days=10)
    assert await budget.try_spend(key, kind="warmup", limits=limits)
    clock.advance(days=10)
    assert not await budget.try_spend(key, kind="warmup", limits=limits)
    usage = await budget.usage(key, limits=limits)
    assert usage.next_allowed_at(clock.now()) == datetime(2027, 1, 1, tzinfo=UTC)
    clock.set(datetime(2027, 1, 1, tzinfo=UTC))
    usage = await budget.usage(key, limits=limits)
    assert (usage.month, usage.month_used, usage.month_refused) == ("2027-01", 0, 0)
    assert await budget.try_spend(key, kind="probe", limits=limits)


async def test_probes_and_warm_ups_spend_from_one_budget_and_are_counted_by_kind(
    jetstream: JetStreamContext, unique_id
):
    budget = await ProbeBudget.open(jetstream, clock=lambda: START)
    limits = BudgetLimits(per_hour=3, per_month=100)
    key = unique_id("kinds")
    assert await budget.try_spend(key, kind="warmup", limits=limits)
    assert await budget.try_spend(key, kind="probe", limits=limits)
    assert await budget.try_spend(key, kind="warmup", limits=limits)
    assert not await budget.try_spend(key, kind="probe", limits=limits)
    usage = await budget.usage(key, limits=limits)
    assert usage.month_by_kind == {"warmup": 2, "probe": 1}
    assert usage.as_json()["month_used"] == 3


async def test_counts_survive_a_restart_because_they_live_in_kv(
    jetstream: JetStreamContext, unique_id
):
    limits = BudgetLimits(per_hour=2, per_month=100)
    key = unique_id("restart")
    first = await ProbeBudget.open(jetstream, clock=lambda: START)
    assert await first.try_spend(key, kind="probe", limits=limits)
    assert await first.try_spend(key, kind="probe", limits=limits)
    after_restart = await ProbeBudget.open(jetstream, clock=lambda: START + timedelta(minutes=5))
    assert not await after_restart.try_spend(key, kind="warmup", limits=limits)


async def test_concurrent_spenders_in_several_processes_never_exceed_the_limit(
    jetstream: JetStreamContext, unique_id
):
    limits = BudgetLimits(per_hour=7, per_month=100)
    key = unique_id("race")
    spenders = [await ProbeBudget.open(jetstream, clock=lambda: START) for _ in range(3)]
    results = await asyncio.gather(
        *(spenders[i % 3].try_spend(key, kind="warmup", limits=limits) for i in range(24))
    )
    assert sum(results) == 7
    usage = await spenders[0].usage(key, limits=limits)
    assert (usage.hour_used, usage.month_refused) == (7, 17)


async def test_without_limits_the_budget_reads_them_from_the_integration_config(
    jetstream: JetStreamContext, unique_id
):
    config = _config(budget=ProbeBudgetConfig(per_hour=1)).model_copy(
        update={"integration_id": unique_id("cfg")}
    )
    await put_integration(jetstream, config)
    budget = await ProbeBudget.open(jetstream, clock=lambda: START)
    assert await budget.try_spend(config.integration_id, kind="warmup")
    assert not await budget.try_spend(config.integration_id, kind="warmup")
    assert (await budget.usage(config.integration_id)).limits == BudgetLimits(1, 100)


async def test_a_clock_behind_the_stored_hour_does_not_reset_the_counts(
    jetstream: JetStreamContext, unique_id
):
    limits = BudgetLimits(per_hour=1, per_month=100)
    key = unique_id("skew")
    ahead = await ProbeBudget.open(jetstream, clock=lambda: START + timedelta(hours=1))
    assert await ahead.try_spend(key, kind="probe", limits=limits)
    behind = await ProbeBudget.open(jetstream, clock=lambda: START)
    assert not await behind.try_spend(key, kind="warmup", limits=limits)


async def test_a_warm_up_outcome_is_kept_beside_the_counts_without_spending(
    jetstream: JetStreamContext, unique_id
):
    budget = await ProbeBudget.open(jetstream, clock=lambda: START)
    key = unique_id("outcome")
    await budget.record_warmup(key, ok=True, message="warm-up succeeded")
    usage = await budget.usage(key, limits=BudgetLimits(1, 1))
    assert usage.month_used == 0
    assert usage.last_warmup is not None
    assert usage.last_warmup.ok
    assert usage.last_warmup.at == START
