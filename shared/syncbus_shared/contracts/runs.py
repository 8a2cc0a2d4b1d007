"""The durable ledgers: KV `sync-runs` (one entry per idempotency key) and KV
`exported-vouchers` (one entry per staged voucher and integration)."""

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


class VoucherState(StrEnum):
    CLAIMED = "claimed"
    """A run holds the voucher: it may be sending it now, or may have sent it and died."""
    EXPORTED = "exported"
    """The vendor confirmed it (or a lookup found it): no key will send it again."""


class VoucherMark(Message):
    """One voucher's entry in the voucher ledger, keyed `<integration>.<period>.<voucher>`.

    A voucher is posted at most once per integration, whatever key asks for it: the period
    runs and the incremental (`scope: staged`) runs of an integration share these marks.
    """

    type: Literal["syncbus.voucher_mark.v1"] = "syncbus.voucher_mark.v1"
    integration_id: str
    voucher_id: str
    state: VoucherState
    idempotency_key: str = Field(description="The key whose run claimed or exported it.")
    updated_at: Instant = Field(default_factory=utc_now)
