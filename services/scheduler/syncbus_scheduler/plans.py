"""The planned next fire of every schedule, and a heap of when each needs attention.

A `Plan` holds one schedule's next fire (and, after downtime, the missed fires still to send).
The `PlanBook` keeps one heap entry per plan, at the next moment something is due for it (its
warm-up time, or its publish time), so the clock loop pops exactly what is due instead of
scanning every plan: 100,000 schedules cost a heap of 100,000 small tuples, and a tick with
nothing due costs nothing. Entries are invalidated lazily: a replaced or removed plan's entry
stays in the heap until it surfaces and is skipped.

Times here are floats, seconds since the epoch (UTC), on the scheduler's corrected clock.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from syncbus_shared.contracts import Schedule

from .catchup import following_fire
from .cron import next_fire


@dataclass(slots=True, eq=False)
class Plan:
    integration_id: str
    schedule: Schedule
    next_fire: float
    """The scheduled instant of the fire being prepared."""
    publish_at: float
    """When its request is due to be published (the fire itself, or later when deferred)."""
    pending: deque[float] | None = None
    """Missed fires (catch-up) still to send after `next_fire`, oldest first."""
    catch_up: bool = False
    warm_done: bool = False
    """The warm-up step of `next_fire` happened (sent here, or left to the lease holder)."""
    warmed: bool = False
    """This replica sent `next_fire`'s warm-up."""
    standby: bool = False
    """The publish was put off once to wait for the lease holder's warm-up."""
    failures: int = 0
    seq: int = -1
    alive: bool = True

    @property
    def warm_at(self) -> float:
        return self.next_fire - self.schedule.lead_seconds

    @property
    def next_action(self) -> float:
        if self.warm_done:
            return self.publish_at
        return min(self.warm_at, self.publish_at)

    def scheduled_for(self) -> datetime:
        return datetime.fromtimestamp(self.next_fire, UTC)

    def advance(self, now: float) -> None:
        """The current fire is published: move to the next missed fire, or the next cron fire."""
        if self.pending:
            self.next_fire = self.pending.popleft()
            self.publish_at = now  # the session is warm: each later missed fire goes at once
            self.catch_up = True
            if not self.pending:
                self.pending = None
        else:
            # The next fire that exports something new: a period already fired is skipped.
            self.next_fire = following_fire_after(self.schedule, self.next_fire)
            self.publish_at = self.next_fire
            self.catch_up = False
        self.warm_done = self.warmed = self.standby = False
        self.failures = 0


@lru_cache(maxsize=4096)
def next_fire_after(cron: str, tz: str, after: float) -> float:
    """`cron.next_fire` on epoch floats; many schedules due at one instant share the answer."""
    return next_fire(cron, tz, datetime.fromtimestamp(after, UTC)).timestamp()


@lru_cache(maxsize=4096)
def following_fire_after(schedule: Schedule, fire: float) -> float:
    """`catchup.following_fire` on epoch floats, shared by identical schedules."""
    return following_fire(schedule, datetime.fromtimestamp(fire, UTC)).timestamp()


def first_fire_after(schedule: Schedule, start: float, watermark: float | None) -> float:
    """The first fire after `start` whose key is not the watermark fire's.

    Cron fires fall on whole seconds, so none lies in (floor(start), start]: the floored
    instant gives the same answer and lets schedules planned in the same second share it.
    """
    fire = next_fire_after(schedule.cron, schedule.timezone, math.floor(start))
    if watermark is not None and not _is_new(schedule, fire, watermark):
        fire = following_fire_after(schedule, fire)
    return fire


def _is_new(schedule: Schedule, fire: float, watermark: float) -> bool:
    # The first fire after the watermark's period ends is new; one before it repeats its key.
    return following_fire_after(schedule, watermark) <= fire


class PlanBook:
    def __init__(self) -> None:
        self.plans: dict[str, Plan] = {}
        self._heap: list[tuple[float, int, Plan]] = []
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self.plans)

    def get(self, integration_id: str) -> Plan | None:
        return self.plans.get(integration_id)

    def put(self, plan: Plan) -> None:
        old = self.plans.get(plan.integration_id)
        if old is not None and old is not plan:
            old.alive = False
        self.plans[plan.integration_id] = plan
        self.push(plan)

    def remove(self, integration_id: str) -> Plan | None:
        plan = self.plans.pop(integration_id, None)
        if plan is not None:
            plan.alive = False
        return plan

    def is_current(self, plan: Plan) -> bool:
        return plan.alive and self.plans.get(plan.integration_id) is plan

    def push(self, plan: Plan) -> None:
        """(Re)schedule the plan's heap entry at its next action; an older entry goes stale."""
        plan.seq = next(self._seq)
        heapq.heappush(self._heap, (plan.next_action, plan.seq, plan))

    def pop_due(self, now: float) -> list[Plan]:
        due: list[Plan] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, seq, plan = heapq.heappop(heap)
            if plan.alive and plan.seq == seq:
                due.append(plan)
        return due

    def next_due(self) -> float | None:
        heap = self._heap
        while heap:
            _, seq, plan = heap[0]
            if plan.alive and plan.seq == seq:
                return heap[0][0]
            heapq.heappop(heap)
        return None
