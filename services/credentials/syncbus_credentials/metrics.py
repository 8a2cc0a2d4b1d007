"""The credential service's Prometheus metrics and probes (served on /metrics, /readyz).

    probes = credential_probes(build(), ProbeSettings())    # `python -m syncbus_credentials`

Readiness follows `CredentialService.health().ready` (Vault reachable and the service logged
in, as its Vault health check last saw it: no Vault call per probe) and the NATS connection.
The gauges show the same state, and how long an outage has lasted and how much of its grace
(cached secrets still served) is left. No label, no secret: only the service's own state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime

from faststream.nats import NatsBroker
from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from syncbus_shared.probes import Check, Probes, ProbeSettings, nats_check

from .health import CredentialHealth
from .service import Built

PREFIX = "syncbus_credentials_"


class CredentialMetrics:
    def __init__(
        self,
        health: Callable[[], CredentialHealth],
        *,
        answered: Callable[[], Mapping[str, int]] = dict,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        self._health = health
        self._clock = clock
        self.registry.register(_Answered(answered))
        Gauge(
            PREFIX + "vault_reachable",
            "1 while the last Vault call got an answer from an unsealed Vault.",
            registry=self.registry,
        ).set_function(lambda: float(health().vault_reachable))
        Gauge(
            PREFIX + "vault_outage_seconds",
            "How long the current Vault outage has lasted (0 while Vault answers).",
            registry=self.registry,
        ).set_function(self._outage_seconds)
        Gauge(
            PREFIX + "vault_grace_remaining_seconds",
            "How much longer cached secrets are served during the outage (0 when none).",
            registry=self.registry,
        ).set_function(self._grace_remaining)

    def _outage_seconds(self) -> float:
        since = self._health().degraded_since
        return max(0.0, (self._clock() - since).total_seconds()) if since else 0.0

    def _grace_remaining(self) -> float:
        ends = self._health().grace_ends_at
        return max(0.0, (ends - self._clock()).total_seconds()) if ends else 0.0

    def vault_check(self) -> Check:
        def check() -> str | None:
            health = self._health()
            return None if health.ready else health.detail[:200]

        return check


class _Answered(Collector):
    """`syncbus_credentials_requests_total{outcome}` from the service's own tally."""

    def __init__(self, answered: Callable[[], Mapping[str, int]]) -> None:
        self._answered = answered

    def collect(self) -> Iterable[Metric]:
        family = CounterMetricFamily(
            PREFIX + "requests",
            "Credential requests answered, by outcome: served, an error class "
            "(credentials_unavailable, configuration, ...), or reply_refused (a reply subject "
            "outside the requester's inbox).",
            labels=("outcome",),
        )
        for outcome, count in sorted(self._answered().items()):
            family.add_metric((outcome,), count)
        yield family


def credential_probes(built: Built, settings: ProbeSettings) -> Probes:
    """The credential service's probe server, attached to its app (serving once it starts)."""
    metrics = CredentialMetrics(built.service.health, answered=lambda: built.service.answered)
    probes = Probes("credentials", metrics.registry, settings)
    broker = built.app.broker
    assert isinstance(broker, NatsBroker)
    probes.add_check("nats", nats_check(broker))
    probes.add_check("vault", metrics.vault_check())
    probes.attach(built.app)
    return probes
