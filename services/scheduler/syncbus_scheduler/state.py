"""What the scheduler remembers per schedule, in KV `schedule-state` (key: integration id)."""

from __future__ import annotations

from typing import Literal

from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from syncbus_shared.contracts import Instant, Message


class ScheduleState(Message):
    type: Literal["syncbus.schedule_state.v1"] = "syncbus.schedule_state.v1"
    integration_id: str
    last_fired_for: Instant | None = None
    last_period_id: str | None = None
    last_published_at: Instant | None = None
    last_drift_ms: float | None = None


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
        await self._kv.put(state.integration_id, state.to_bytes())
