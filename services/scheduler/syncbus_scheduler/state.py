"""What the scheduler remembers per schedule, in KV `schedule-state` (key: integration id).

`last_fired_for` is the catch-up watermark: the newest scheduled instant whose request was
stored. It only moves forward: every write is a compare-and-set on the key's revision that
refuses to go back, so a slow replica (or one with a skewed clock) can never rewind it, and
several replicas writing the same fire agree. Only scheduled fires (on time or caught up) move
it; a backfill or trigger of some period leaves it where the schedule put it.

Keys with a dot (`scheduler.clock`, ...) belong to the scheduler itself; integration ids never
contain one.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Literal

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from syncbus_shared.contracts import Instant, Message

_CAS_ATTEMPTS = 20


class ScheduleState(Message):
    type: Literal["syncbus.schedule_state.v1"] = "syncbus.schedule_state.v1"
    integration_id: str
    last_fired_for: Instant | None = None
    last_period_id: str | None = None
    last_key: str | None = None
    last_published_at: Instant | None = None
    last_drift_ms: float | None = None
    missed_reported_through: Instant | None = None
    """The newest fire beyond the catch-up window already listed in a missed-periods alert."""


def is_state_key(key: str) -> bool:
    """Whether a `schedule-state` key holds a schedule's state (not a scheduler-internal key)."""
    return "." not in key


class ScheduleStateStore:
    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

    async def get(self, integration_id: str) -> ScheduleState | None:
        try:
            entry = await self._kv.get(integration_id)
        except KeyNotFoundError:
            return None
        return None if entry.value is None else ScheduleState.from_bytes(entry.value)

    async def put(self, state: ScheduleState) -> None:
        """Overwrite unconditionally (tests and tools; the scheduler uses the methods below)."""
        await self._kv.put(state.integration_id, state.to_bytes())

    async def advance(self, state: ScheduleState) -> bool:
        """Record a stored fire, unless the stored watermark is already at or past it."""
        fired = state.last_fired_for
        assert fired is not None

        def change(current: ScheduleState | None) -> ScheduleState | None:
            if current is None:
                return state
            if current.last_fired_for is not None and current.last_fired_for >= fired:
                return None
            return state.model_copy(
                update={"missed_reported_through": current.missed_reported_through}
            )

        return await self._modify(state.integration_id, change)

    async def move_watermark(self, integration_id: str, to: datetime) -> bool:
        """Treat every fire up to `to` as done (`syncbus resume --skip-missed`)."""

        def change(current: ScheduleState | None) -> ScheduleState | None:
            if current is None:
                return ScheduleState(integration_id=integration_id, last_fired_for=to)
            if current.last_fired_for is not None and current.last_fired_for >= to:
                return None
            return current.model_copy(update={"last_fired_for": to})

        return await self._modify(integration_id, change)

    async def mark_missed_reported(self, integration_id: str, through: datetime) -> bool:
        """Remember that misses up to `through` were alerted, so no replica lists them again."""

        def change(current: ScheduleState | None) -> ScheduleState | None:
            if current is None:
                return ScheduleState(integration_id=integration_id, missed_reported_through=through)
            reported = current.missed_reported_through
            if reported is not None and reported >= through:
                return None
            return current.model_copy(update={"missed_reported_through": through})

        return await self._modify(integration_id, change)

    async def _modify(
        self, key: str, change: Callable[[ScheduleState | None], ScheduleState | None]
    ) -> bool:
        """Compare-and-set `change(current)` into `key`; False when `change` declines."""
        for _ in range(_CAS_ATTEMPTS):
            try:
                entry = await self._kv.get(key)
            except KeyNotFoundError:
                current, revision = None, None
            else:
                current = None if entry.value is None else ScheduleState.from_bytes(entry.value)
                revision = entry.revision
            new = change(current)
            if new is None:
                return False
            try:
                if revision is None:
                    await self._kv.create(key, new.to_bytes())
                else:
                    await self._kv.update(key, new.to_bytes(), last=revision)
            except KeyWrongLastSequenceError:
                continue  # another replica wrote in between: look again
            return True
        raise RuntimeError(f"schedule-state {key!r} kept changing under {_CAS_ATTEMPTS} writes")
