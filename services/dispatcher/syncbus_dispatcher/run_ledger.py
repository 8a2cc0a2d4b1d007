"""The durable run ledger in KV `sync-runs`: who owns a key, what is already exported, the result.

The broker's dedup stops most duplicates cheaply; this ledger stops the rest. Every write is a
compare-and-set on the entry's revision, so two dispatchers can never both believe they own a
key: the first `create` wins, a lapsed lease is taken over by one `update`, and a dispatcher
that lost its lease finds out at its next write and stops.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta
from enum import Enum

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from syncbus_shared.contracts import RunRecord, RunState, SyncRequest, SyncResult, utc_now
from syncbus_shared.keys import encode_token


class ClaimOutcome(Enum):
    NEW = "new"
    RESUMED = "resumed"
    SUCCEEDED_BEFORE = "succeeded_before"
    BUSY = "busy"


class LeaseLostError(Exception):
    """Another dispatcher took the key over; this one must stop without a result."""


@dataclass
class Claim:
    outcome: ClaimOutcome
    record: RunRecord
    revision: int
    kv_key: str
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class RunLedger:
    def __init__(self, kv: KeyValue, owner: str, lease_seconds: float) -> None:
        self._kv = kv
        self.owner = owner
        self._lease = timedelta(seconds=lease_seconds)

    @staticmethod
    def kv_key(idempotency_key: str) -> str:
        return encode_token(idempotency_key)

    async def get(self, idempotency_key: str) -> RunRecord | None:
        try:
            entry = await self._kv.get(self.kv_key(idempotency_key))
        except KeyNotFoundError:
            return None
        return None if entry.value is None else RunRecord.from_bytes(entry.value)

    async def claim(self, request: SyncRequest) -> Claim:
        key = self.kv_key(request.idempotency_key)
        for _ in range(5):
            now = utc_now()
            fresh = RunRecord(
                idempotency_key=request.idempotency_key,
                integration_id=request.integration_id,
                request_id=request.request_id,
                state=RunState.CLAIMED,
                owner=self.owner,
                lease_until=now + self._lease,
            )
            try:
                revision = await self._kv.create(key, fresh.to_bytes())
            except KeyWrongLastSequenceError:
                pass
            else:
                return Claim(ClaimOutcome.NEW, fresh, revision, key)
            try:
                entry = await self._kv.get(key)
            except KeyNotFoundError:
                continue
            assert entry.value is not None
            assert entry.revision is not None
            current = RunRecord.from_bytes(entry.value)
            if current.state is RunState.SUCCEEDED:
                return Claim(ClaimOutcome.SUCCEEDED_BEFORE, current, entry.revision, key)
            live = current.state is RunState.CLAIMED and current.lease_until > now
            if live and current.owner != self.owner:
                return Claim(ClaimOutcome.BUSY, current, entry.revision, key)
            taken = current.model_copy(
                update={
                    "state": RunState.CLAIMED,
                    "owner": self.owner,
                    "request_id": request.request_id,
                    "lease_until": now + self._lease,
                    "attempt": current.attempt + 1,
                    "result": None,
                    "updated_at": now,
                }
            )
            try:
                revision = await self._kv.update(key, taken.to_bytes(), last=entry.revision)
            except KeyWrongLastSequenceError:
                continue
            return Claim(ClaimOutcome.RESUMED, taken, revision, key)
        raise LeaseLostError(f"could not claim {request.idempotency_key!r}: too much contention")

    async def _write(self, claim: Claim, record: RunRecord) -> None:
        async with claim.lock:
            try:
                claim.revision = await self._kv.update(
                    claim.kv_key, record.to_bytes(), last=claim.revision
                )
            except KeyWrongLastSequenceError as exc:
                raise LeaseLostError(
                    f"the run of {record.idempotency_key!r} was taken over by another dispatcher"
                ) from exc
            claim.record = record

    async def renew(self, claim: Claim) -> None:
        now = utc_now()
        await self._write(
            claim,
            claim.record.model_copy(update={"lease_until": now + self._lease, "updated_at": now}),
        )

    async def record_exported(
        self, claim: Claim, voucher_ids: tuple[str, ...], vendor_refs: tuple[str, ...]
    ) -> None:
        now = utc_now()
        record = claim.record
        await self._write(
            claim,
            record.model_copy(
                update={
                    "exported_voucher_ids": record.exported_voucher_ids + voucher_ids,
                    "vendor_refs": record.vendor_refs + vendor_refs,
                    "lease_until": now + self._lease,
                    "updated_at": now,
                }
            ),
        )

    async def finish(self, claim: Claim, state: RunState, result: SyncResult) -> None:
        now = utc_now()
        await self._write(
            claim,
            claim.record.model_copy(
                update={"state": state, "result": result, "lease_until": now, "updated_at": now}
            ),
        )

    async def release(self, claim: Claim) -> None:
        """End the lease now without a result, so the next delivery can claim the key again."""
        now = utc_now()
        await self._write(
            claim,
            claim.record.model_copy(
                update={"state": RunState.FAILED, "lease_until": now, "updated_at": now}
            ),
        )
