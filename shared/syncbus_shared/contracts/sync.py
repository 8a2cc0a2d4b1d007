"""Sync requests, warm-ups, progress and results: the messages of one export."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Literal

from pydantic import Field, model_validator

from ..keys import period_key
from ._base import Amount, Instant, IntegrationIdStr, Message, PeriodId, utc_now
from .voucher import Voucher

MAX_KEY_LENGTH = 200


def new_request_id() -> str:
    return uuid.uuid4().hex


class RequestOrigin(StrEnum):
    SCHEDULER = "scheduler"
    BACKFILL = "backfill"
    APPLICATION = "application"
    CLI = "cli"


class SyncScope(StrEnum):
    """What a request without inline vouchers exports."""

    PERIOD = "period"
    """The vouchers staged for `period_id` (the default when `scope` is absent)."""
    STAGED = "staged"
    """Every voucher staged for the integration, in any period, not yet exported under any key
    (incremental schedules). Needs an explicit `idempotency_key`; `period_id` may be absent."""


class SyncRequest(Message):
    """Ask for one export: a staged period, or vouchers carried inline.

    Published on `sync.request.<integration_id>` with `Nats-Msg-Id` = `idempotency_key`.
    """

    type: Literal["syncbus.sync_request.v1"] = "syncbus.sync_request.v1"
    request_id: str = Field(default_factory=new_request_id, min_length=1, max_length=64)
    integration_id: IntegrationIdStr
    period_id: PeriodId | None = None
    idempotency_key: str = Field(
        default="",
        max_length=MAX_KEY_LENGTH,
        description="What may be exported once. Default `<integration_id>:<period_id>`.",
    )
    vouchers: tuple[Voucher, ...] | None = Field(
        default=None, description="Inline vouchers, exported instead of the staged period."
    )
    origin: RequestOrigin = RequestOrigin.APPLICATION
    scheduled_for: Instant | None = Field(
        default=None, description="The schedule's nominal fire instant (scheduled requests)."
    )
    published_at: Instant = Field(default_factory=utc_now)
    schedule_drift_ms: float | None = Field(
        default=None,
        description="How late the scheduler published it: published_at minus the instant it was "
        "due (the fire time; for a backfill, the end of its warm-up lead).",
    )
    scope: SyncScope | None = Field(
        default=None,
        description="What to export when no vouchers are inline: `period` (the default) or "
        "`staged` (everything staged and not yet exported; incremental schedules).",
    )
    period_start_local: date | None = Field(
        default=None, description="The period's first day, local to `period_timezone`."
    )
    period_end_local: date | None = Field(
        default=None,
        description="The period's last day (inclusive), local to `period_timezone`.",
    )
    period_start_utc: Instant | None = Field(
        default=None, description="Local midnight starting the period, as a UTC instant."
    )
    period_end_utc: Instant | None = Field(
        default=None,
        description="Local midnight after the period's last day, as a UTC instant (exclusive): "
        "March 2026 in Europe/Oslo ends at 2026-03-31T22:00:00Z.",
    )
    period_timezone: str | None = Field(
        default=None, description="The IANA zone the period was computed in (the schedule's)."
    )

    @model_validator(mode="after")
    def _key_and_scope(self) -> SyncRequest:
        if self.scope is SyncScope.STAGED and not self.vouchers:
            if not self.idempotency_key:
                raise ValueError("a request with scope `staged` needs an idempotency_key")
        elif self.period_id is None and not self.vouchers:
            raise ValueError("a sync request needs a period_id or inline vouchers")
        if not self.idempotency_key:
            if self.period_id is None:
                raise ValueError("a request with inline vouchers needs an idempotency_key")
            object.__setattr__(
                self, "idempotency_key", period_key(self.integration_id, self.period_id)
            )
        if not self.idempotency_key.isprintable():
            raise ValueError("idempotency_key must be printable text")
        return self


class WarmUp(Message):
    """Sent `lead` seconds before a scheduled request on `sync.warmup.<integration_id>`."""

    type: Literal["syncbus.warmup.v1"] = "syncbus.warmup.v1"
    integration_id: IntegrationIdStr
    idempotency_key: str = Field(min_length=1, max_length=MAX_KEY_LENGTH)
    period_id: PeriodId | None = None
    scheduled_for: Instant
    published_at: Instant = Field(default_factory=utc_now)


class SyncProgress(Message):
    """Live progress of a run on `sync.progress.<integration_id>` (core NATS, may be lost)."""

    type: Literal["syncbus.sync_progress.v1"] = "syncbus.sync_progress.v1"
    integration_id: IntegrationIdStr
    request_id: str
    idempotency_key: str
    batches_done: int = Field(ge=0)
    batches_total: int = Field(ge=0)
    vouchers_done: int = Field(ge=0)
    vouchers_total: int = Field(ge=0)


class SyncStatus(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REJECTED = "rejected"
    DUPLICATE = "duplicate"


class ErrorClass(StrEnum):
    """What kind of failure it was; the class decides retry, defer or fail (DESIGN section 6)."""

    RETRYABLE = "retryable"
    QUOTA = "quota"
    AUTH = "auth"
    DATA = "data"
    AMBIGUOUS = "ambiguous"
    INVALID_REQUEST = "invalid_request"
    CONFIGURATION = "configuration"
    CREDENTIALS_UNAVAILABLE = "credentials_unavailable"


class ErrorInfo(Message):
    type: Literal["syncbus.error.v1"] = "syncbus.error.v1"
    error_class: ErrorClass
    message: str = Field(description="One human sentence; never a secret.")
    vendor_code: str | None = None


class SyncResult(Message):
    """Exactly one final result per request on `sync.result.<integration_id>`."""

    type: Literal["syncbus.sync_result.v1"] = "syncbus.sync_result.v1"
    request_id: str
    integration_id: str
    idempotency_key: str | None = None
    period_id: str | None = None
    status: SyncStatus
    vouchers: int = 0
    lines: int = 0
    debit_total: Amount = Decimal(0)
    credit_total: Amount = Decimal(0)
    vendor_refs: tuple[str, ...] = ()
    already_exported: int = Field(
        default=0,
        ge=0,
        description="Vouchers left out because another key's run exported them already (the "
        "voucher ledger: each voucher is posted at most once per integration).",
    )
    error: ErrorInfo | None = None
    duplicate_of: str | None = Field(
        default=None, description="For `duplicate`: the request id whose run owns the key."
    )
    attempt: int = 1
    started_warm: bool | None = None
    cold_start: bool | None = None
    scheduled_for: Instant | None = None
    published_at: Instant | None = None
    schedule_drift_ms: float | None = None
    started_at: Instant | None = None
    finished_at: Instant = Field(default_factory=utc_now)
