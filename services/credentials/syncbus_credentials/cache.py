"""Secrets from Vault, cached per integration, with one Vault call in flight per key.

    cache = SecretCache(reader, state, ttl_seconds=300)
    found = await cache.get("toyen-xledger", "integrations/toyen-xledger")
    found.secret, found.source          # source: cache | revalidated | vault | stale

- Within the TTL a cached secret is served as it is (`cache`).
- After the TTL the secret's metadata is read (`current_version`): the same version is served
  again and its TTL starts over (`revalidated`, no secret data moves); a new version (a
  rotation) is read and served (`vault`). A rotation is so picked up within one TTL.
- `force=True` reads the secret again, unless a read began after `fresher_than` (the moment
  the caller asked): callers that all want a fresh value at once share one read.
- `invalidate(key)` drops the entry; a read that was in flight meanwhile is not kept either.
- Vault unreachable or sealed: the cached secret is served (`stale`) while the outage is
  within its grace period (`VaultState.within_grace`); after it, or with nothing cached, the
  `VaultUnavailableError` goes to the caller.
- A denial (policy, or the service's login refused) or a deleted secret drops the entry: it is
  never served stale after that.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from .errors import SecretNotFoundError, VaultDeniedError, VaultLoginError, VaultUnavailableError
from .health import VaultState
from .vault import SecretVersion, VaultReader

Source = Literal["cache", "revalidated", "vault", "stale"]


@dataclass(frozen=True)
class Found:
    secret: SecretVersion
    source: Source


@dataclass
class _Entry:
    secret: SecretVersion
    path: str
    checked_at: float
    """When the Vault call that last confirmed it began (monotonic)."""


@dataclass
class CacheStats:
    reads: int = 0
    """Secret data read from Vault."""
    version_checks: int = 0
    """Metadata reads (a rotation check after the TTL)."""
    served_stale: int = 0
    by_source: dict[str, int] = field(default_factory=dict)


class SecretCache:
    def __init__(
        self,
        reader: VaultReader,
        state: VaultState,
        ttl_seconds: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._reader = reader
        self._state = state
        self._ttl = ttl_seconds
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._invalidated: dict[str, float] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.stats = CacheStats()

    def invalidate(self, key: str) -> bool:
        """Drop `key`'s entry (True if there was one); reads in flight are not kept either."""
        self._invalidated[key] = self._clock()
        return self._entries.pop(key, None) is not None

    def _entry(self, key: str, path: str) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is None or entry.path != path:
            return None
        if entry.checked_at < self._invalidated.get(key, float("-inf")):
            return None
        return entry

    async def get(
        self,
        key: str,
        path: str,
        *,
        force: bool = False,
        fresher_than: float | None = None,
    ) -> Found:
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            found = await self._get(key, path, force=force, fresher_than=fresher_than)
        self.stats.by_source[found.source] = self.stats.by_source.get(found.source, 0) + 1
        return found

    async def _get(self, key: str, path: str, *, force: bool, fresher_than: float | None) -> Found:
        entry = self._entry(key, path)
        if entry is not None:
            if force and fresher_than is not None and entry.checked_at >= fresher_than:
                return Found(entry.secret, "cache")
            if not force and self._clock() - entry.checked_at < self._ttl:
                return Found(entry.secret, "cache")
        started = self._clock()
        try:
            if entry is not None and not force:
                self.stats.version_checks += 1
                current = await self._reader.current_version(path)
                if current == entry.secret.version:
                    entry.checked_at = started
                    return Found(entry.secret, "revalidated")
                self.stats.reads += 1
                secret = await self._reader.read(path, version=current)
            else:
                self.stats.reads += 1
                secret = await self._reader.read(path)
        except VaultUnavailableError:
            if entry is not None and self._state.within_grace():
                self.stats.served_stale += 1
                return Found(entry.secret, "stale")
            raise
        except (SecretNotFoundError, VaultDeniedError, VaultLoginError):
            self._entries.pop(key, None)
            raise
        if started >= self._invalidated.get(key, float("-inf")):
            self._entries[key] = _Entry(secret, path, started)
        return Found(secret, "vault")
