"""The scheduler's metrics: plain counters (read by `scheduler.status` and tests) and the
Prometheus registry served on /metrics.

The counters stay plain integers (`inc`, `get`, `snapshot`); a collector publishes each as the
Prometheus counter `syncbus_scheduler_<name>` (`fires_stored_total`, ...) at scrape time, so
counting costs a dict update even in a burst of 10,000 fires. The drift of each stored fire
that had a due time (published minus due) goes into a histogram by kind: `scheduled` (on
time, by the clock) or `catch_up` (a missed fire sent after downtime, late by design).
Backfills and triggers have no due time and no drift.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

COUNTERS: dict[str, str] = {
    "fires_stored_total": "Requests this replica published that the broker stored.",
    "fires_duplicate_total": "Requests this replica published that the broker already held.",
    "fires_failed_total": "Request publishes that failed (retried with backoff).",
    "warmups_sent_total": "Warm-ups this replica published.",
    "warmups_left_to_leader_total": "Warm-ups this replica left to the replica holding the lease.",
    "drift_over_threshold_total": "Stored requests published later than the drift threshold.",
    "catchup_fires_total": "Missed fires within the catch-up window sent after downtime.",
    "missed_beyond_window_total": "Missed fires older than the catch-up window (alerted).",
    "schedules_rejected_total": "Configs whose schedule was refused (never fires, bad cron).",
    "state_writes_total": "Catch-up watermarks written to KV schedule-state.",
    "state_write_errors_total": "Watermark writes that failed (retried with the next fire).",
}

PREFIX = "syncbus_scheduler_"
_DRIFT_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
    900.0, 3600.0, 21600.0, 86400.0, 604800.0,
)  # fmt: skip


class _Counters(Collector):
    def __init__(self, counts: Counter[str]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[CounterMetricFamily]:
        for name, doc in COUNTERS.items():
            # The family name goes without `_total`; the exposition adds it to the sample.
            yield CounterMetricFamily(
                PREFIX + name.removesuffix("_total"), doc, value=self._counts[name]
            )

    def describe(self) -> Iterator[CounterMetricFamily]:
        return self.collect()


class SchedulerMetrics:
    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        self.registry.register(_Counters(self._counts))
        self.drift = Histogram(
            PREFIX + "schedule_drift_seconds",
            "Published minus due of each stored request, by kind (scheduled, catch_up).",
            ("kind",),
            buckets=_DRIFT_BUCKETS,
            registry=self.registry,
        )

    def inc(self, name: str, amount: int = 1) -> None:
        if name not in COUNTERS:
            raise KeyError(f"unknown scheduler counter {name!r}")
        self._counts[name] += amount

    def get(self, name: str) -> int:
        return self._counts[name]

    def snapshot(self) -> dict[str, int]:
        """Every counter, zeros included, in a stable order."""
        return {name: self._counts[name] for name in COUNTERS}

    def observe_drift(self, drift_ms: float, *, catch_up: bool) -> None:
        self.drift.labels("catch_up" if catch_up else "scheduled").observe(drift_ms / 1000)

    def observe_state(
        self,
        schedules: Callable[[], int],
        paused: Callable[[], int],
        rejected: Callable[[], int],
        warmup_leader: Callable[[], bool],
        clock_offset_s: Callable[[], float],
    ) -> None:
        """Gauges read from the running scheduler at scrape time."""
        gauges: dict[str, tuple[str, Callable[[], float]]] = {
            "schedules_planned": (
                "Schedules planned on this replica.",
                lambda: float(schedules()),
            ),
            "schedules_paused": ("Paused schedules.", lambda: float(paused())),
            "schedules_invalid": ("Schedules refused as invalid.", lambda: float(rejected())),
            "warmup_leader": (
                "1 while this replica holds the warm-up lease.",
                lambda: float(warmup_leader()),
            ),
            "clock_offset_seconds": (
                "Correction applied to this host's clock to follow the NATS server's.",
                clock_offset_s,
            ),
        }
        for name, (doc, read) in gauges.items():
            Gauge(PREFIX + name, doc, registry=self.registry).set_function(read)
