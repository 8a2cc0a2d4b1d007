"""The ingress's Prometheus metrics, in a registry of its own (served on /metrics)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class IngressMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.http_requests = Counter(
            "syncbus_ingress_http_requests",
            "HTTP requests answered, by route template, method and status code.",
            ("route", "method", "status"),
            registry=self.registry,
        )
        self.http_duration = Histogram(
            "syncbus_ingress_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template.",
            ("route",),
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
        )
        self.sync_requests = Counter(
            "syncbus_ingress_sync_requests",
            "POST /v1/sync-requests by outcome: accepted, duplicate, invalid, unauthorized, "
            "too_large, unavailable.",
            ("outcome",),
            registry=self.registry,
        )
        self._connected = Gauge(
            "syncbus_ingress_nats_connected",
            "1 while the ingress is connected to NATS.",
            registry=self.registry,
        )
        self._ready = Gauge(
            "syncbus_ingress_ready", "1 while /readyz answers 200.", registry=self.registry
        )
        self._indexed = Gauge(
            "syncbus_ingress_result_index_entries",
            "Results held for GET /v1/sync-results/{request_id}.",
            registry=self.registry,
        )

    def observe_state(
        self,
        connected: Callable[[], bool],
        ready: Callable[[], bool],
        indexed: Callable[[], int],
    ) -> None:
        self._connected.set_function(lambda: float(connected()))
        self._ready.set_function(lambda: float(ready()))
        self._indexed.set_function(lambda: float(indexed()))
