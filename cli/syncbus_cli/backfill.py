"""`syncbus backfill`: ask a scheduler replica to fire past periods, then wait for their results."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

from nats.js.api import DeliverPolicy

from syncbus_shared import topology as t
from syncbus_shared.contracts import BackfillReply, BackfillRequest, SyncResult, SyncStatus

from .common import cli_connect


@dataclass(frozen=True)
class BackfillRow:
    """One period of a backfill: its key and its result, or a note on why there is none."""

    idempotency_key: str
    result: SyncResult | None = None
    note: str = ""

    def line(self) -> str:
        result = self.result
        if result is None:
            return f"{self.idempotency_key}  {self.note}".rstrip()
        text = (
            f"{self.idempotency_key}  {result.status.value}  {result.vouchers} vouchers  "
            f"{result.lines} lines"
        )
        if result.error is not None:
            text += f"  ({result.error.error_class.value}: {result.error.message})"
        return text

    def to_json(self) -> dict[str, Any]:
        return {
            "idempotency_key": self.idempotency_key,
            "status": self.result.status.value if self.result else None,
            "note": self.note or None,
            "result": self.result.model_dump(mode="json") if self.result else None,
        }


async def run_backfill(
    nats_url: str, integration: str, first: str, last: str, *, timeout: float, wait: bool
) -> tuple[list[BackfillRow], bool]:
    request = BackfillRequest(integration_id=integration, from_period=first, to_period=last)
    nc = await cli_connect(nats_url, "syncbus-backfill")
    results: dict[str, SyncResult] = {}
    arrived = asyncio.Event()

    async def on_result(msg: Any) -> None:
        result = SyncResult.from_bytes(msg.data)
        if result.idempotency_key:
            results[result.idempotency_key] = result
            arrived.set()

    try:
        js = nc.jetstream()
        sub = await js.subscribe(
            t.result_subject(integration), cb=on_result, deliver_policy=DeliverPolicy.NEW
        )
        msg = await nc.request(t.SCHEDULER_BACKFILL, request.to_bytes(), timeout=timeout)
        reply = BackfillReply.from_bytes(msg.data)
        if reply.error is not None:
            raise ValueError(reply.error.message)
        # A period whose request the broker already held gets no new result from this run.
        awaited = {f.idempotency_key for f in reply.fired if not f.duplicate}
        if wait:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while not awaited <= results.keys() and loop.time() < deadline:
                arrived.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(arrived.wait(), deadline - loop.time())
        await sub.unsubscribe()
    finally:
        await nc.close()
    rows: list[BackfillRow] = []
    ok = True
    for fired in reply.fired:
        result = results.get(fired.idempotency_key)
        if fired.duplicate:
            rows.append(
                BackfillRow(fired.idempotency_key, note="already requested (see its result)")
            )
        elif not wait:
            rows.append(BackfillRow(fired.idempotency_key, note="requested"))
        elif result is None:
            ok = False
            rows.append(
                BackfillRow(fired.idempotency_key, note=f"no result within {timeout:.0f} s")
            )
        else:
            ok = ok and result.status in (SyncStatus.SUCCEEDED, SyncStatus.DUPLICATE)
            rows.append(BackfillRow(fired.idempotency_key, result))
    return rows, ok
