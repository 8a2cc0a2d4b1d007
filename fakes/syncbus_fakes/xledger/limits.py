"""Xledger's limits: a burst window and a concurrency cap per token, a monthly credit quota.

- Burst: a sliding window (default 20 requests per 5 s per token, as an integrator measured).
  Every accepted request counts, probes included; a refused one does not extend the window.
- Concurrency: at most N requests of one token in flight; the N+1th is refused at once.
- Credits: one subscription per fake, default 5,000 requests per calendar month in Europe/Oslo.
  Every authenticated request that gets past the burst and concurrency limits costs one credit,
  whatever it asks for and whether or not it succeeds. The reset is the first instant of the
  next month, reported as CET/CEST local time without an offset (Xledger's timestamp style).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

XLEDGER_TIME_ZONE = ZoneInfo("Europe/Oslo")


def xledger_local(instant: datetime) -> str:
    """An aware instant as Xledger writes times: CET/CEST wall clock, no offset, seconds."""
    return instant.astimezone(XLEDGER_TIME_ZONE).replace(tzinfo=None, microsecond=0).isoformat()


@dataclass
class BurstLimit:
    requests: int
    window_seconds: float


class SlidingWindow:
    """Per-key sliding window log."""

    def __init__(self, limit: BurstLimit, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self._clock = clock
        self._seen: dict[str, deque[float]] = {}

    def admit(self, key: str) -> bool:
        now = self._clock()
        seen = self._seen.setdefault(key, deque())
        while seen and now - seen[0] >= self.limit.window_seconds:
            seen.popleft()
        if len(seen) >= self.limit.requests:
            return False
        seen.append(now)
        return True

    def clear(self) -> None:
        self._seen.clear()


class ConcurrencyGate:
    """Per-key count of requests in flight."""

    def __init__(self, max_in_flight: int) -> None:
        self.max_in_flight = max_in_flight
        self._in_flight: dict[str, int] = {}

    def enter(self, key: str) -> bool:
        current = self._in_flight.get(key, 0)
        if current >= self.max_in_flight:
            return False
        self._in_flight[key] = current + 1
        return True

    def leave(self, key: str) -> None:
        current = self._in_flight.get(key, 0)
        if current <= 1:
            self._in_flight.pop(key, None)
        else:
            self._in_flight[key] = current - 1


class CreditMeter:
    """The monthly request quota of the (one) subscription the fake stands for."""

    def __init__(
        self, monthly: int, now: Callable[[], datetime] = lambda: datetime.now(XLEDGER_TIME_ZONE)
    ) -> None:
        self.monthly = monthly
        self._now = now
        self.used = 0
        self._month = self._month_of(now())

    @staticmethod
    def _month_of(instant: datetime) -> tuple[int, int]:
        local = instant.astimezone(XLEDGER_TIME_ZONE)
        return (local.year, local.month)

    def _roll(self) -> None:
        month = self._month_of(self._now())
        if month != self._month:
            self._month = month
            self.used = 0

    @property
    def remaining(self) -> int:
        self._roll()
        return max(self.monthly - self.used, 0)

    def spend(self) -> bool:
        """Take one credit; False when none is left this month."""
        self._roll()
        if self.used >= self.monthly:
            return False
        self.used += 1
        return True

    def reset_at(self) -> datetime:
        local = self._now().astimezone(XLEDGER_TIME_ZONE)
        first = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        next_month = (first + timedelta(days=32)).replace(day=1)
        return next_month.replace(tzinfo=XLEDGER_TIME_ZONE)

    def clear(self) -> None:
        self.used = 0
        self._month = self._month_of(self._now())
