"""Business Central's limits per user or service principal (the facts' "online" numbers).

- Rate: at most 6,000 requests in any sliding 5 minutes (`SlidingWindow`). Every API request
  that gets past auth counts once, a `$batch` included (it is one HTTP request; the facts do
  not say that its operations count one by one). A refused request does not count.
- Concurrency: 5 requests processed at once, up to 95 more queued, first come first served
  (`RequestQueue`). The 101st at once is refused with 429 "Too many requests reached. Actual
  (101). Maximum (100)."; a request that waits in the queue longer than the queue timeout
  (8 minutes) gets 503.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum


class SlidingWindow:
    """Per-key sliding window log: `admit` says whether one more request fits."""

    def __init__(
        self, requests: int, window_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.requests = requests
        self.window_seconds = window_seconds
        self._clock = clock
        self._seen: dict[str, deque[float]] = {}

    def _trim(self, key: str, now: float) -> deque[float]:
        seen = self._seen.setdefault(key, deque())
        while seen and now - seen[0] >= self.window_seconds:
            seen.popleft()
        return seen

    def admit(self, key: str) -> bool:
        now = self._clock()
        seen = self._trim(key, now)
        if len(seen) >= self.requests:
            return False
        seen.append(now)
        return True

    def count(self, key: str) -> int:
        return len(self._trim(key, self._clock()))

    def seconds_until_free(self, key: str) -> int:
        """Whole seconds until one more request would fit (what a Retry-After would say)."""
        now = self._clock()
        seen = self._trim(key, now)
        if len(seen) < self.requests:
            return 0
        return max(1, math.ceil(seen[0] + self.window_seconds - now))

    def clear(self) -> None:
        self._seen.clear()


class Admission(Enum):
    ADMITTED = "admitted"
    FULL = "full"
    TIMED_OUT = "timed_out"


@dataclass
class _Lane:
    running: int = 0
    waiters: deque[asyncio.Future[None]] = field(default_factory=deque)


@dataclass
class QueueStats:
    max_running: int = 0
    max_waiting: int = 0
    queued: int = 0
    full: int = 0
    timed_out: int = 0


class RequestQueue:
    """Per key: `max_concurrent` requests run, `max_queued` more wait in order, others refused."""

    def __init__(self, max_concurrent: int, max_queued: int, timeout_seconds: float) -> None:
        self.max_concurrent = max_concurrent
        self.max_queued = max_queued
        self.timeout_seconds = timeout_seconds
        self._lanes: dict[str, _Lane] = {}
        self.stats = QueueStats()

    @property
    def capacity(self) -> int:
        return self.max_concurrent + self.max_queued

    def occupancy(self, key: str) -> int:
        lane = self._lanes.get(key)
        return 0 if lane is None else lane.running + len(lane.waiters)

    async def enter(self, key: str) -> Admission:
        lane = self._lanes.setdefault(key, _Lane())
        if lane.running + len(lane.waiters) >= self.capacity:
            self.stats.full += 1
            return Admission.FULL
        if lane.running < self.max_concurrent and not lane.waiters:
            lane.running += 1
            self.stats.max_running = max(self.stats.max_running, lane.running)
            return Admission.ADMITTED
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        lane.waiters.append(turn)
        self.stats.queued += 1
        self.stats.max_waiting = max(self.stats.max_waiting, len(lane.waiters))
        try:
            await asyncio.wait({turn}, timeout=self.timeout_seconds)
        except BaseException:
            self._give_up(lane, turn)
            raise
        if turn.done():
            return Admission.ADMITTED  # `leave` handed its slot over: `running` is unchanged
        self._give_up(lane, turn)
        self.stats.timed_out += 1
        return Admission.TIMED_OUT

    def _give_up(self, lane: _Lane, turn: asyncio.Future[None]) -> None:
        if turn.done() and not turn.cancelled():
            self._release(lane)  # the slot arrived as we gave up: pass it on
            return
        turn.cancel()
        if turn in lane.waiters:
            lane.waiters.remove(turn)

    def leave(self, key: str) -> None:
        lane = self._lanes.get(key)
        if lane is not None:
            self._release(lane)

    def _release(self, lane: _Lane) -> None:
        while lane.waiters:
            turn = lane.waiters.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        lane.running = max(lane.running - 1, 0)

    def clear(self) -> None:
        self._lanes.clear()
        self.stats = QueueStats()
