"""The health monitor's Prometheus metrics, in a registry of its own (served on /metrics).

Labels: the integration type (adapter name), a probe's outcome (`succeeded` or the error
class), an HTTP status, a budget spend's kind and outcome. Never the integration id: there can
be 100,000 of them; `syncbus health` shows each one.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.process_collector import ProcessCollector

from syncbus_adapters import AdapterError, ProbeResult
from syncbus_shared.contracts import IntegrationConfig
from syncbus_shared.credentials_client import CredentialUnavailableError

from .prober import Prober

_REQUEST_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class HealthMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        self.probes = Counter(
            "syncbus_health_monitor_probes",
            "Probes made (the vendor's cheapest call), by integration type and outcome "
            "(succeeded, or the error class).",
            ("integration_type", "outcome"),
            registry=self.registry,
        )
        self.vendor_requests = Counter(
            "syncbus_health_monitor_vendor_requests",
            "Vendor HTTP requests of probes, by integration type and HTTP status.",
            ("integration_type", "status"),
            registry=self.registry,
        )
        self.vendor_request_duration = Histogram(
            "syncbus_health_monitor_vendor_request_duration_seconds",
            "Time to a vendor's answer (its headers), by integration type.",
            ("integration_type",),
            buckets=_REQUEST_BUCKETS,
            registry=self.registry,
        )
        self.budget_spends = Counter(
            "syncbus_health_monitor_probe_budget_spends",
            "Spends asked from the probe budget, by kind and outcome (spent, refused, contended).",
            ("kind", "outcome"),
            registry=self.registry,
        )

    def vendor_request(self, integration_type: str, status: str, seconds: float) -> None:
        self.vendor_requests.labels(integration_type, status).inc()
        self.vendor_request_duration.labels(integration_type).observe(seconds)

    def budget_spend(self, kind: str, outcome: str) -> None:
        self.budget_spends.labels(kind, outcome).inc()


@dataclass
class CountingProber:
    """A prober whose every probe is counted by outcome."""

    inner: Prober
    metrics: HealthMetrics

    async def ping(self, config: IntegrationConfig) -> ProbeResult:
        try:
            result = await self.inner.ping(config)
        except (AdapterError, CredentialUnavailableError) as exc:
            self.metrics.probes.labels(config.vendor, exc.error_class.value).inc()
            raise
        self.metrics.probes.labels(config.vendor, "succeeded").inc()
        return result
