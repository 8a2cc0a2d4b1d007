"""The scheduler's counters: plain integers, readable by `scheduler.status` and by tests.

They are named as Prometheus counters would be (`*_total`) so that an exporter can publish them
as they are; the service's /metrics endpoint is another issue's.
"""

from __future__ import annotations

from collections import Counter

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


class SchedulerMetrics:
    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()

    def inc(self, name: str, amount: int = 1) -> None:
        if name not in COUNTERS:
            raise KeyError(f"unknown scheduler counter {name!r}")
        self._counts[name] += amount

    def get(self, name: str) -> int:
        return self._counts[name]

    def snapshot(self) -> dict[str, int]:
        """Every counter, zeros included, in a stable order."""
        return {name: self._counts[name] for name in COUNTERS}
