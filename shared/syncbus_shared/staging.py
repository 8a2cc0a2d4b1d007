"""Staging vouchers in the LEDGER stream and reading a period's vouchers back.

Each voucher has its own subject `ledger.<integration>.<period>.<voucher>`, and the stream keeps
at most one message per subject and refuses a second (`discard_new_per_subject`). Staging the
same voucher again is therefore a no-op at any age, not only inside a dedup window: vouchers
are immutable, as in bookkeeping, and a correction is a new voucher.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import APIError

from . import topology as t
from .contracts import Voucher

# The server's error code for "maximum messages per subject exceeded" with discard-new.
_PER_SUBJECT_LIMIT = 10077


@dataclass(frozen=True)
class StageReport:
    staged: int
    already_staged: int


async def stage_vouchers(
    js: JetStreamContext, integration_id: str, vouchers: Iterable[Voucher]
) -> StageReport:
    staged = already = 0
    for voucher in vouchers:
        subject = t.ledger_voucher_subject(integration_id, voucher.period_id, voucher.voucher_id)
        try:
            # The dedup id names the integration too: the same voucher staged for a second
            # integration is a different message, not a copy of the first.
            ack = await js.publish(
                subject,
                voucher.to_bytes(),
                headers={"Nats-Msg-Id": f"{integration_id}:{voucher.voucher_id}"},
            )
        except APIError as exc:
            if exc.err_code == _PER_SUBJECT_LIMIT:
                already += 1
                continue
            raise
        if ack.duplicate:
            already += 1
        else:
            staged += 1
    return StageReport(staged=staged, already_staged=already)


async def read_period(js: JetStreamContext, integration_id: str, period_id: str) -> list[Voucher]:
    """Every voucher staged for this integration and period, in staging order."""
    return await _read(js, t.ledger_period_subject(integration_id, period_id))


async def read_staged(js: JetStreamContext, integration_id: str) -> list[Voucher]:
    """Every voucher staged for this integration, in any period, in staging order."""
    return await _read(js, t.ledger_integration_subject(integration_id))


async def _read(js: JetStreamContext, subject: str) -> list[Voucher]:
    sub = await js.pull_subscribe(
        subject,
        stream=t.STREAM_LEDGER,
        config=ConsumerConfig(
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.NONE,
            inactive_threshold=30.0,
            mem_storage=True,
        ),
    )
    try:
        info = await sub.consumer_info()
        remaining = info.num_pending or 0
        vouchers: list[Voucher] = []
        while remaining > 0:
            msgs = await sub.fetch(min(remaining, 256), timeout=5.0)
            vouchers.extend(Voucher.from_bytes(msg.data) for msg in msgs)
            remaining -= len(msgs)
        return vouchers
    finally:
        await sub.unsubscribe()
