"""The scheduler's "now": this host's clock, corrected to the NATS server's.

Several replicas fire the same schedules. Their requests share an idempotency key, so the broker
keeps one, but the one it keeps is the *first*: a replica whose clock runs ahead would publish
early, and its early copy would win. So every replica measures how far its clock is from the
NATS server's (one shared reference for all replicas) and fires by the corrected clock. A
skewed host clock then changes nothing; a skewed server clock moves every replica alike.

The measurement: write a small value to KV `schedule-state` (key `scheduler.clock`), read the
stored message back by its sequence and take the server's storage timestamp. The server stamps
the message between our send and its acknowledgement, so the offset is taken against the middle
of that round trip; of a few probes the one with the shortest round trip wins (its error is at
most half of that round trip: well under a millisecond on a LAN).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from syncbus_shared import topology as t
from syncbus_shared.logs import get_logger

log = get_logger()

CLOCK_KEY = "scheduler.clock"
"""The `schedule-state` key written by clock probes (integration ids never contain a dot)."""


@dataclass(frozen=True)
class ClockProbe:
    offset_s: float
    """Server time minus this host's (simulated-skew-included) time, seconds."""
    round_trip_s: float


class Clock:
    """UTC now as the scheduler uses it: host time + simulated skew + measured correction.

    `simulated_skew_s` pretends the host clock is off by that much (tests and drills only);
    `offset_s` is the correction `sync()` measured. With `follow_server=False` the correction
    stays zero and the clock is the host's.
    """

    def __init__(self, *, simulated_skew_s: float = 0.0, follow_server: bool = True) -> None:
        self.simulated_skew_s = simulated_skew_s
        self.follow_server = follow_server
        self.offset_s = 0.0
        self.last_probe: ClockProbe | None = None

    def timestamp(self) -> float:
        """Seconds since the epoch (UTC), corrected."""
        return time.time() + self.simulated_skew_s + self.offset_s

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp(), UTC)

    def host_timestamp(self) -> float:
        """What this host believes the time is (with the simulated skew), uncorrected."""
        return time.time() + self.simulated_skew_s

    async def sync(self, js: JetStreamContext, probes: int = 5) -> ClockProbe | None:
        """Measure the offset to the NATS server's clock and apply it; None if not following."""
        if not self.follow_server:
            return None
        kv = await js.key_value(t.KV_SCHEDULE_STATE)
        best: ClockProbe | None = None
        for _ in range(probes):
            sent = self.host_timestamp()
            seq = await kv.put(CLOCK_KEY, b"probe")
            acked = self.host_timestamp()
            try:
                stored = await js.get_msg(f"KV_{t.KV_SCHEDULE_STATE}", seq=seq)
            except NotFoundError:
                # Another replica probed the same key in between, and the bucket keeps one
                # version: this probe is gone, the next one (or the next sync) measures.
                continue
            if stored.time is None:  # pragma: no cover - the server always stamps messages
                continue
            probe = ClockProbe(
                offset_s=stored.time.timestamp() - (sent + acked) / 2, round_trip_s=acked - sent
            )
            if best is None or probe.round_trip_s < best.round_trip_s:
                best = probe
        if best is None:  # every probe was overtaken: keep the offset we had
            return None
        changed = abs(best.offset_s - self.offset_s) > 0.05
        self.offset_s = best.offset_s
        self.last_probe = best
        if changed:
            log.info(
                "scheduler.clock_corrected",
                offset_ms=round(best.offset_s * 1000, 3),
                round_trip_ms=round(best.round_trip_s * 1000, 3),
            )
        return best
