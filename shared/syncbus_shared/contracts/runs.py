"""The durable run ledger entry in KV `sync-runs`, one per idempotency key."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field

from ._base import Instant, Message, utc_now
from .sync import SyncResult


class RunState(StrEnum):
    CLAIMED = "claimed"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class RunRecord(Message):
    type: Literal["syncbus.run_record.v1"] = "syncbus.run_record.v1"
    idempotency_key: str
    integration_id: str
    request_id: str = Field(description="The request whose run owns the key.")
    state: RunState
    owner: str = Field(description="Which dispatcher instance holds the claim.")
    lease_until: Instant
    attempt: int = 1
    exported_voucher_ids: tuple[str, ...] = ()
    vendor_refs: tuple[str, ...] = ()
    result: SyncResult | None = None
    claimed_at: Instant = Field(default_factory=utc_now)
    updated_at: Instant = Field(default_factory=utc_now)
