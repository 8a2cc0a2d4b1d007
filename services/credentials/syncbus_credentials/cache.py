"""A small TTL cache with one Vault read in flight per key, however many callers ask at once.

`force=True` reads again, unless a read began after `fresher_than` (the moment the caller
asked): callers that all want a fresh value at once share one read.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass
class _Entry(Generic[T]):
    value: T
    stored_at: float
    """When the read that produced it began (so a forced read can tell it is newer)."""


class TtlCache(Generic[T]):
    def __init__(self, ttl_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl_seconds
        self._clock = clock
        self._entries: dict[str, _Entry[T]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def invalidate(self, key: str) -> None:
        self._entries.pop(key, None)

    async def get(
        self,
        key: str,
        load: Callable[[], Awaitable[T]],
        *,
        force: bool = False,
        fresher_than: float | None = None,
    ) -> T:
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            entry = self._entries.get(key)
            if entry is not None:
                if force and fresher_than is not None and entry.stored_at >= fresher_than:
                    return entry.value
                if not force and self._clock() - entry.stored_at < self._ttl:
                    return entry.value
            started = self._clock()
            value = await load()
            self._entries[key] = _Entry(value, started)
            return value
