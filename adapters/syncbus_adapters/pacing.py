"""Vendor-rate pacing: one limiter per vendor credential, shared by every call in the process.

A vendor counts requests per credential (Business Central per user or service principal,
Xledger per API token), whichever export, warm-up or probe sends them. So the limiter is not
per adapter instance but per (vendor, credential identity), from a process-wide registry:

    pacer = pacer_for("business_central", identity, BUSINESS_CENTRAL_RULES)
    async with pacer.slot():
        response = await http.post(...)        # one vendor request
    if response.status_code == 429:
        pacer.hold(retry_after or pacer.rules.window_seconds / 10)

`RateRules(requests, window_seconds, max_concurrent)` is the vendor's rule: at most `requests`
in any sliding window of `window_seconds`, and at most `max_concurrent` in flight.

    BUSINESS_CENTRAL_RULES  6,000 per sliding 5 minutes, 5 at once (the documented limits)
    XLEDGER_RULES           20 per 5 seconds (what an integrator measured), 5 at once (ours:
                            Xledger publishes no number for its concurrency limit)

How the window is kept without ever exceeding it: the pacer holds `requests` slots. A request
takes the slot that became free first, and waits until that slot is free; when its answer
arrives (or the call fails), the slot becomes free again `window_seconds` after that moment.
The vendor saw the request arrive before the answer left, and sees the next request on the
slot arrive after it was sent, so any two requests on one slot reach the vendor at least
`window_seconds` apart, and no window there holds more than `requests`, whatever the latency.
The price is one round trip per slot per window: at 6,000 per 5 minutes and 50 ms, 99.98 % of
the allowed rate. Waiters are served in arrival order.

Identity (`credential_identity`): the credential is never kept, only a digest. A Business
Central access token is a JWT whose claims name the tenant and the service principal (`tid`,
`oid`/`appid`); the pacer keys on those, so a refreshed token keeps its window. A token that is
not a readable JWT (Xledger's) is keyed by the SHA-256 of its value.

The registry is per event loop (asyncio primitives belong to one loop), which in a service is
the same as per process.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import heapq
import json
import time
import weakref
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from syncbus_shared.credentials_client import Credential

__all__ = [
    "BUSINESS_CENTRAL_RULES",
    "XLEDGER_RULES",
    "Pacer",
    "PacerStats",
    "RateRules",
    "credential_identity",
    "pacer_for",
    "parse_rules",
    "reset_pacers",
]


@dataclass(frozen=True)
class RateRules:
    requests: int
    """Most requests in any sliding window."""
    window_seconds: float
    max_concurrent: int | None = None
    """Most requests in flight at once; None: no cap."""

    def __post_init__(self) -> None:
        if self.requests < 1 or self.window_seconds <= 0:
            raise ValueError("a rate rule needs requests >= 1 and window_seconds > 0")
        if self.max_concurrent is not None and self.max_concurrent < 1:
            raise ValueError("max_concurrent must be at least 1 (or None for no cap)")

    @property
    def rate(self) -> float:
        """Allowed requests per second."""
        return self.requests / self.window_seconds


BUSINESS_CENTRAL_RULES = RateRules(requests=6000, window_seconds=300.0, max_concurrent=5)
XLEDGER_RULES = RateRules(requests=20, window_seconds=5.0, max_concurrent=5)


def parse_rules(default: RateRules, options: dict[str, str]) -> RateRules:
    """The vendor's rules with adapter options laid over them.

    `rate_limit`       "REQUESTS/SECONDS", e.g. "6000/300"
    `max_concurrent`   an integer, or "none"
    Raises ValueError with a sentence naming the option.
    """
    requests, window = default.requests, default.window_seconds
    concurrent = default.max_concurrent
    raw = options.get("rate_limit")
    if raw is not None:
        count, sep, seconds = raw.partition("/")
        try:
            requests, window = int(count), float(seconds)
        except ValueError:
            sep = ""
        if not sep or requests < 1 or window <= 0:
            raise ValueError(f"option rate_limit {raw!r} is not REQUESTS/SECONDS, e.g. 6000/300")
    raw = options.get("max_concurrent")
    if raw is not None:
        if raw.strip().lower() == "none":
            concurrent = None
        else:
            try:
                concurrent = int(raw)
            except ValueError:
                concurrent = 0
            if concurrent < 1:
                raise ValueError(f"option max_concurrent {raw!r} is not a whole number >= 1")
    return RateRules(requests, window, concurrent)


@dataclass
class PacerStats:
    requests: int = 0
    waited: int = 0
    """Requests that had to wait for a slot or for the concurrency cap."""
    wait_seconds: float = 0.0
    holds: int = 0
    """Times a vendor's rate-limit answer made the pacer hold everyone back."""


class Pacer:
    """A sliding-window limiter with a concurrency cap (see the module docstring)."""

    def __init__(self, rules: RateRules, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._rules = rules
        self._free: list[float] = [0.0] * rules.requests  # a heap of the times slots free up
        self._busy = 0
        self._turn = asyncio.Lock()
        self._released = asyncio.Event()
        self._not_before = 0.0
        self.stats = PacerStats()

    @property
    def rules(self) -> RateRules:
        return self._rules

    @property
    def in_flight(self) -> int:
        return self._busy

    def update(self, rules: RateRules) -> None:
        """Take new rules; the slots already used keep their times (the tightest are kept)."""
        if rules == self._rules:
            return
        grow = rules.requests - self._rules.requests
        if grow > 0:
            self._free.extend([0.0] * grow)
        elif grow < 0:
            # Keep the slots that free up latest: dropping those would let requests through early.
            self._free = sorted(self._free)[-grow:] if -grow < len(self._free) else []
        heapq.heapify(self._free)
        self._rules = rules
        self._released.set()

    def hold(self, seconds: float) -> None:
        """Send nothing for `seconds` (the vendor said "too many requests" all the same)."""
        self.stats.holds += 1
        self._not_before = max(self._not_before, self._clock() + max(seconds, 0.0))

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Wait for the right to send one request; hold it until the answer is in."""
        started = self._clock()
        await self._take()
        waited = self._clock() - started
        self.stats.requests += 1
        if waited > 0.001:
            self.stats.waited += 1
            self.stats.wait_seconds += waited
        try:
            yield
        finally:
            self._give_back()

    async def _take(self) -> None:
        async with self._turn:  # FIFO: the first waiter takes the next slot
            while True:
                now = self._clock()
                cap = self._rules.max_concurrent
                if cap is not None and self._busy >= cap:
                    await self._wait_release(None)
                    continue
                if now < self._not_before:
                    await self._wait_release(self._not_before - now)
                    continue
                if not self._free:
                    await self._wait_release(None)
                    continue
                free_at = self._free[0]
                if free_at > now:
                    await self._wait_release(free_at - now)
                    continue
                heapq.heappop(self._free)
                self._busy += 1
                return

    async def _wait_release(self, timeout: float | None) -> None:
        self._released.clear()
        if timeout is None:
            await self._released.wait()
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._released.wait()

    def _give_back(self) -> None:
        self._busy -= 1
        if len(self._free) + self._busy < self._rules.requests:
            heapq.heappush(self._free, self._clock() + self._rules.window_seconds)
        self._released.set()


# ---- identity and the registry -----------------------------------------------------------


def _jwt_claims(token: str) -> dict[str, Any] | None:
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        claims = json.loads(payload)
    except (ValueError, UnicodeError):
        return None
    return claims if isinstance(claims, dict) else None


def credential_identity(credential: Credential) -> str:
    """Who the vendor counts requests for, as a string that holds no secret."""
    secret = credential.secret.get_secret_value()
    claims = _jwt_claims(secret)
    if claims is not None:
        principal = claims.get("oid") or claims.get("appid") or claims.get("azp")
        tenant = claims.get("tid")
        if isinstance(principal, str) and principal:
            return f"principal:{tenant}/{principal}"
    digest = hashlib.sha256(secret.encode("utf-8")).hexdigest()[:24]
    return f"sha256:{digest}"


_REGISTRIES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, str], Pacer]] = (
    weakref.WeakKeyDictionary()
)


def pacer_for(vendor: str, identity: str, rules: RateRules) -> Pacer:
    """The pacer of this vendor credential in this process (made on first use)."""
    loop = asyncio.get_running_loop()
    registry = _REGISTRIES.setdefault(loop, {})
    key = (vendor, identity)
    pacer = registry.get(key)
    if pacer is None:
        pacer = registry[key] = Pacer(rules)
    else:
        pacer.update(rules)
    return pacer


def reset_pacers() -> None:
    """Forget every pacer of the running loop (tests and benchmarks that start over)."""
    with contextlib.suppress(RuntimeError):
        _REGISTRIES.pop(asyncio.get_running_loop(), None)
