"""The monitor's notion of now: the system clock, or a hand-moved one for tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol

from syncbus_shared.contracts import utc_now


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware (UTC)."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return utc_now()


class ManualClock:
    """A clock that moves only when told: `clock.advance(minutes=15)`."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = (start or utc_now()).astimezone(UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, **delta: float) -> datetime:
        self._now += timedelta(**delta)
        return self._now

    def set(self, instant: datetime) -> None:
        self._now = instant.astimezone(UTC)
