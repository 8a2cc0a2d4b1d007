"""The dispatcher's Prometheus metrics, in a registry of its own (served on /metrics).

Labels are the integration type (the adapter name: `xledger`, `business_central`; `unknown`
when a request is rejected before its integration is read), the status or outcome, and an
error class: a handful of values each. The integration id is never a label: there can be
100,000 of them, and a time series per integration and status would cost Prometheus more than
the whole system; per-integration detail is in the logs (`key`, `integration_id` on each
line), `syncbus runs` and `syncbus health`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.process_collector import ProcessCollector

from syncbus_shared.contracts import SyncResult

UNKNOWN_TYPE = "unknown"

_DURATION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0)
_REQUEST_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_LAG_MIN_INTERVAL_SECONDS = 1.0
"""Scrapes closer together than this reuse the last consumer read."""

ConsumerPending = Callable[[], Awaitable[tuple[int, int]]]
"""Reads (num_pending, num_ack_pending) of the dispatcher's durable consumer."""


class DispatcherMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        self.syncs = Counter(
            "syncbus_dispatcher_syncs",
            "Final results published, by integration type and status (succeeded, failed, "
            "rejected, duplicate).",
            ("integration_type", "status"),
            registry=self.registry,
        )
        self.sync_duration = Histogram(
            "syncbus_dispatcher_sync_duration_seconds",
            "From the run's start to its result, by integration type and status.",
            ("integration_type", "status"),
            buckets=_DURATION_BUCKETS,
            registry=self.registry,
        )
        self.warmups = Counter(
            "syncbus_dispatcher_warmups",
            "Warm-ups by outcome: succeeded, failed, skipped_exported (the key already "
            "succeeded), skipped_budget (the probe budget refused), unknown_integration.",
            ("integration_type", "outcome"),
            registry=self.registry,
        )
        self.cold_starts = Counter(
            "syncbus_dispatcher_cold_starts",
            "Syncs that found no warm vendor session (no warm-up, or it expired).",
            ("integration_type",),
            registry=self.registry,
        )
        self.warm_starts = Counter(
            "syncbus_dispatcher_warm_starts",
            "Syncs that found a warm vendor session left by a warm-up.",
            ("integration_type",),
            registry=self.registry,
        )
        self.slow_first_calls = Counter(
            "syncbus_dispatcher_slow_first_calls",
            "Succeeded syncs whose first vendor call took longer than the cold-start threshold "
            "(`cold_start` in the result).",
            ("integration_type",),
            registry=self.registry,
        )
        self.vendor_requests = Counter(
            "syncbus_dispatcher_vendor_requests",
            "Vendor HTTP requests by integration type and HTTP status (or timeout, "
            "connect_error, transport_error when no answer came).",
            ("integration_type", "status"),
            registry=self.registry,
        )
        self.vendor_request_duration = Histogram(
            "syncbus_dispatcher_vendor_request_duration_seconds",
            "Time to a vendor's answer (its headers), by integration type.",
            ("integration_type",),
            buckets=_REQUEST_BUCKETS,
            registry=self.registry,
        )
        self.retries = Counter(
            "syncbus_dispatcher_retries",
            "Batches sent again after a retryable vendor error, by integration type and error "
            "class.",
            ("integration_type", "error_class"),
            registry=self.registry,
        )
        self.budget_spends = Counter(
            "syncbus_dispatcher_probe_budget_spends",
            "Spends asked from the probe budget (warm-ups), by kind and outcome (spent, "
            "refused, contended).",
            ("kind", "outcome"),
            registry=self.registry,
        )
        self.consumer_pending = Gauge(
            "syncbus_dispatcher_consumer_pending_messages",
            "Sync requests not yet delivered to any dispatcher (JetStream num_pending of the "
            "durable consumer), read at scrape time.",
            registry=self.registry,
        )
        self.consumer_ack_pending = Gauge(
            "syncbus_dispatcher_consumer_ack_pending_messages",
            "Sync requests delivered and not yet acknowledged (runs in flight or awaiting "
            "redelivery), read at scrape time.",
            registry=self.registry,
        )
        self._consumer: ConsumerPending | None = None
        self._consumer_read_at = 0.0

    # --- what the service reports ----------------------------------------------------------
    def result(self, result: SyncResult, integration_type: str | None) -> None:
        kind = integration_type or UNKNOWN_TYPE
        status = result.status.value
        self.syncs.labels(kind, status).inc()
        if result.started_at is not None:
            seconds = (result.finished_at - result.started_at).total_seconds()
            self.sync_duration.labels(kind, status).observe(max(0.0, seconds))
        if result.cold_start:
            self.slow_first_calls.labels(kind).inc()

    def warmup(self, integration_type: str | None, outcome: str) -> None:
        self.warmups.labels(integration_type or UNKNOWN_TYPE, outcome).inc()

    def sync_session(self, integration_type: str, *, warm: bool) -> None:
        (self.warm_starts if warm else self.cold_starts).labels(integration_type).inc()

    def vendor_request(self, integration_type: str, status: str, seconds: float) -> None:
        self.vendor_requests.labels(integration_type, status).inc()
        self.vendor_request_duration.labels(integration_type).observe(seconds)

    def retried(self, integration_type: str, error_class: str) -> None:
        self.retries.labels(integration_type, error_class).inc()

    def budget_spend(self, kind: str, outcome: str) -> None:
        self.budget_spends.labels(kind, outcome).inc()

    # --- consumer lag, read when scraped ----------------------------------------------------
    def follow_consumer(self, read: ConsumerPending) -> None:
        self._consumer = read

    async def refresh_consumer_lag(self) -> None:
        if self._consumer is None:
            return
        now = time.monotonic()
        if now - self._consumer_read_at < _LAG_MIN_INTERVAL_SECONDS:
            return
        pending, ack_pending = await self._consumer()
        self._consumer_read_at = now
        self.consumer_pending.set(pending)
        self.consumer_ack_pending.set(ack_pending)
