"""What the ingress sends and reads on NATS, declared for the AsyncAPI document.

The ingress talks to NATS through `syncbus_client` (nats-py), not FastStream, so it has no
FastStream app to generate from; this broker is built only to describe it, and never started.
"""

from __future__ import annotations

from faststream.nats import NatsBroker

from syncbus_shared import topology as t
from syncbus_shared.contracts import SyncRequest, SyncResult


async def _indexed(result: SyncResult) -> None:
    """Never called: its signature tells the document what the result index reads."""


def specification_broker(url: str) -> NatsBroker:
    broker = NatsBroker(url)
    broker.publisher(
        "sync.request.{integration_id}",
        schema=SyncRequest,
        title="sync.request.* (ingress)",
        description="What POST /v1/sync-requests publishes (JetStream SYNC_REQUESTS, "
        "Nats-Msg-Id = idempotency key); the PubAck's `duplicate` is the answer's.",
    )
    broker.subscriber(
        t.RESULT_FILTER,
        title="sync.result.* (ingress)",
        description="Results read from SYNC_RESULTS (an ephemeral consumer from "
        "SYNCBUS_INGRESS_RESULT_LOOKBACK_HOURS back) for GET /v1/sync-results/{request_id}.",
    )(_indexed)
    return broker
