"""`syncbus backfill`: ask a scheduler replica to fire past periods, then wait for their results."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from nats.js.api import DeliverPolicy

from syncbus_shared import topology as t
from syncbus_shared.contracts import BackfillReply, BackfillRequest, SyncResult, SyncStatus

from .common import cli_connect


def _line(key: str, result: SyncResult | None, note: str = "") -> str:
    if result is None:
        return f"{key}  {note}".rstrip()
    text = f"{key}  {result.status.value}  {result.vouchers} vouchers  {result.lines} lines"
    if result.error is not None:
        text += f"  ({result.error.error_class.value}: {result.error.message})"
    return text


async def run_backfill(
    nats_url: str, integration: str, first: str, last: str, *, timeout: float, wait: bool
) -> tuple[list[str], bool]:
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
    lines = []
    ok = True
    for fired in reply.fired:
        result = results.get(fired.idempotency_key)
        if fired.duplicate:
            lines.append(_line(fired.idempotency_key, None, "already requested (see its result)"))
        elif not wait:
            lines.append(_line(fired.idempotency_key, None, "requested"))
        elif result is None:
            ok = False
            lines.append(_line(fired.idempotency_key, None, f"no result within {timeout:.0f} s"))
        else:
            ok = ok and result.status in (SyncStatus.SUCCEEDED, SyncStatus.DUPLICATE)
            lines.append(_line(fired.idempotency_key, result))
    return lines, ok
