"""The metrics and log-context pieces on their own: the scheduler's counters through
Prometheus, the dispatcher's run scope, the probe budget's spend observer."""

from __future__ import annotations

from collections.abc import Callable

import structlog
from nats.js import JetStreamContext
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from syncbus_dispatcher.run_context import add_scope_binder, bind_run, bound, run_scope
from syncbus_scheduler.metrics import COUNTERS, SchedulerMetrics
from syncbus_shared.probe_budget import BudgetLimits, ProbeBudget


def _samples(metrics: SchedulerMetrics) -> dict[str, float]:
    text = generate_latest(metrics.registry).decode()
    return {
        s.name: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if not s.labels
    }


def test_the_scheduler_counters_are_published_as_prometheus_counters_and_snapshot_still_works():
    metrics = SchedulerMetrics()
    metrics.inc("fires_stored_total", 3)
    metrics.inc("warmups_sent_total")
    samples = _samples(metrics)
    assert metrics.snapshot()["fires_stored_total"] == 3
    assert list(metrics.snapshot()) == list(COUNTERS)
    for name, count in metrics.snapshot().items():
        assert samples[f"syncbus_scheduler_{name}"] == count


def test_drift_is_a_histogram_in_seconds_by_kind():
    metrics = SchedulerMetrics()
    metrics.observe_drift(120.0, catch_up=False)
    metrics.observe_drift(7_200_000.0, catch_up=True)
    text = generate_latest(metrics.registry).decode()
    [drift] = [
        f
        for f in text_string_to_metric_families(text)
        if f.name == "syncbus_scheduler_schedule_drift_seconds"
    ]
    sums = {s.labels["kind"]: s.value for s in drift.samples if s.name.endswith("_sum")}
    assert sums == {"scheduled": 0.12, "catch_up": 7200.0}


def test_a_run_scope_binds_the_key_to_every_line_and_forgets_it_afterwards():
    seen: list[dict[str, object]] = []

    def capture(_: object, __: str, event: dict[str, object]) -> dict[str, object]:
        seen.append(dict(event))
        raise structlog.DropEvent

    structlog.configure(processors=[structlog.contextvars.merge_contextvars, capture])
    log = structlog.get_logger()
    structlog.contextvars.bind_contextvars(service="dispatcher")
    remove = add_scope_binder(lambda: {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"})
    try:
        with run_scope():
            bind_run(key="it-1:2017-01", integration_type="xledger")
            log.info("dispatcher.retry_scheduled")
            assert bound("integration_type") == "xledger"
    finally:
        remove()
    log.info("dispatcher.idle")
    assert seen[0]["key"] == "it-1:2017-01"
    assert seen[0]["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert "key" not in seen[1]
    assert "trace_id" not in seen[1]
    assert seen[1]["service"] == "dispatcher"


async def test_the_probe_budget_tells_its_observer_each_spend_and_refusal(
    jetstream: JetStreamContext, unique_id: Callable[..., str]
):
    told: list[tuple[str, str]] = []
    budget = await ProbeBudget.open(
        jetstream, on_spend=lambda kind, outcome: told.append((kind, outcome))
    )
    limits = BudgetLimits(per_hour=1, per_month=10)
    integration_id = unique_id("budget")
    assert await budget.try_spend(integration_id, kind="probe", limits=limits)
    assert not await budget.try_spend(integration_id, kind="warmup", limits=limits)
    assert told == [("probe", "spent"), ("warmup", "refused")]
