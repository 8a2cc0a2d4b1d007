"""Who sends a fire's warm-up when several replicas run: the holder of the warm-up lease.

Every replica publishes every request (the broker keeps one copy per key, so a replica that
dies costs nothing), but a warm-up makes the dispatcher call the vendor, and vendor calls are
counted (Xledger's quota; the health monitor's probe budget counts warm-ups too). So one
replica, the holder of a lease in KV `schedule-state` (key `scheduler.warmup-lease`), sends the
warm-ups; the others watch them go by (`sync.warmup.*`) and stand by:

* at a fire's warm-up time only the lease holder warms (and a replica that sees no valid lease,
  so that warm-ups never stop while a lease expires);
* at a fire's time a replica that neither warmed it nor saw its warm-up waits the catch-up lead
  once (the holder may be warming it right now: a catch-up, a schedule planned late) and then,
  if still no warm-up was seen, sends one itself right before its request.

The lease is a compare-and-set on one key, renewed every third of its length; a replica that
stops renewing (crashed, partitioned) loses it after `warmup_lease_seconds`. A warm-up is
therefore always published before its request, and normally exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from syncbus_shared import topology as t
from syncbus_shared.logs import get_logger

from .clock import Clock

log = get_logger()

LEASE_KEY = "scheduler.warmup-lease"
_SEEN_KEEP_SECONDS = 3600.0


class WarmupGate:
    """Decides whether this replica sends a warm-up. The default gate: always (one replica)."""

    instance = "solo"

    def sends_warmups(self) -> bool:
        return True

    def seen(self, key: str) -> bool:  # noqa: ARG002 - the solo gate sees nothing
        return False

    @property
    def holds_lease(self) -> bool:
        return True


@dataclass
class _Lease:
    holder: str | None = None
    until: float = 0.0


class LeaseGate(WarmupGate):
    """The warm-up lease plus the warm-ups seen from other replicas."""

    def __init__(self, kv: KeyValue, instance: str, clock: Clock, lease_seconds: float) -> None:
        self._kv = kv
        self.instance = instance
        self._clock = clock
        self.lease_seconds = lease_seconds
        self._lease = _Lease()
        self._seen: dict[str, float] = {}
        self.seen_changed = asyncio.Event()
        """Set whenever a warm-up is noted (tests wait on it)."""
        self._sub: Subscription | None = None
        self._was_holder = False

    # --- the lease -------------------------------------------------------------------------
    @property
    def holds_lease(self) -> bool:
        return self._lease.holder == self.instance and self._clock.timestamp() < self._lease.until

    @property
    def holder(self) -> str | None:
        return self._lease.holder if self._clock.timestamp() < self._lease.until else None

    def sends_warmups(self) -> bool:
        """This replica holds the lease, or nobody holds a valid one."""
        return self.holds_lease or self._clock.timestamp() >= self._lease.until

    async def renew(self) -> None:
        """Take or keep the lease when it is ours or free; otherwise note who holds it."""
        for _ in range(3):
            try:
                entry = await self._kv.get(LEASE_KEY)
            except KeyNotFoundError:
                current, revision = _Lease(), None
            else:
                current, revision = _parse(entry.value), entry.revision
            now = self._clock.timestamp()
            if current.holder not in (None, self.instance) and now < current.until:
                self._lease = current
                self._log_change()
                return
            mine = _Lease(self.instance, now + self.lease_seconds)
            body = json.dumps({"holder": mine.holder, "until": mine.until}).encode()
            try:
                if revision is None:
                    await self._kv.create(LEASE_KEY, body)
                else:
                    await self._kv.update(LEASE_KEY, body, last=revision)
            except KeyWrongLastSequenceError:
                continue  # another replica moved first: read again
            self._lease = mine
            self._log_change()
            return

    async def release(self) -> None:
        """Give the lease up at shutdown, so that another replica takes over at once."""
        if not self.holds_lease:
            return
        with contextlib.suppress(Exception):
            entry = await self._kv.get(LEASE_KEY)
            if _parse(entry.value).holder == self.instance:
                body = json.dumps({"holder": None, "until": 0.0}).encode()
                await self._kv.update(LEASE_KEY, body, last=entry.revision)
        self._lease = _Lease()

    def _log_change(self) -> None:
        holder = self.holds_lease
        if holder != self._was_holder:
            self._was_holder = holder
            log.info(
                "scheduler.warmup_lease_taken" if holder else "scheduler.warmup_lease_held_by",
                instance=self.instance,
                holder=self._lease.holder,
            )

    # --- warm-ups seen ---------------------------------------------------------------------
    async def watch_warmups(self, nc: Client) -> None:
        """Note every warm-up on `sync.warmup.*`; give a connection with `no_echo` if you can."""

        async def on_warmup(msg: Msg) -> None:
            try:
                key = json.loads(msg.data).get("idempotency_key")
            except ValueError:
                return
            if isinstance(key, str):
                self._seen[key] = self._clock.timestamp()
                self.seen_changed.set()

        self._sub = await nc.subscribe(t.WARMUP_FILTER, cb=on_warmup)

    def seen(self, key: str) -> bool:
        return key in self._seen

    def forget_old(self) -> None:
        cutoff = self._clock.timestamp() - _SEEN_KEEP_SECONDS
        for key in [k for k, at in self._seen.items() if at < cutoff]:
            del self._seen[key]

    async def aclose(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()


def _parse(value: bytes | None) -> _Lease:
    try:
        data = json.loads(value or b"{}")
        holder = data.get("holder")
        return _Lease(holder if isinstance(holder, str) else None, float(data.get("until", 0.0)))
    except (ValueError, TypeError, AttributeError):
        return _Lease()
