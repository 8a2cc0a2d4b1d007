"""The dead-letter stream SYNC_DLQ: requests that exhausted their attempts, listed and replayed.

A dead letter is the original request message, copied by the dispatcher when it publishes the
request's `failed` result, with headers saying why. Replaying one publishes it again as a new
request (a new request id, so it gets its own result) with the same idempotency key, so the run
ledger decides: a key that meanwhile succeeded gets a `duplicate` result and posts nothing; a
failed one resumes where it stopped.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime

from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from pydantic import ValidationError

from . import topology as t
from .contracts import SyncRequest, new_request_id, utc_now

HEADER_REQUEST_ID = "Syncbus-Request-Id"
HEADER_ERROR_CLASS = "Syncbus-Error-Class"
HEADER_ERROR = "Syncbus-Error"
HEADER_SUBJECT = "Syncbus-Original-Subject"
HEADER_REPLAY_OF = "Syncbus-Replay-Of"
REPLAY_SUFFIX = "#replay-"


class DeadLetterError(LookupError):
    pass


@dataclass(frozen=True)
class DeadLetter:
    seq: int
    integration_id: str
    request_id: str
    idempotency_key: str | None
    error_class: str
    error: str
    subject: str
    stored_at: datetime | None
    body: bytes


def _letter(
    seq: int, subject: str, data: bytes, headers: dict[str, str] | None, stored_at: datetime | None
) -> DeadLetter:
    headers = headers or {}
    key = None
    with contextlib.suppress(ValidationError):
        key = SyncRequest.from_bytes(data).idempotency_key
    return DeadLetter(
        seq=seq,
        integration_id=subject.rsplit(".", 1)[-1],
        request_id=headers.get(HEADER_REQUEST_ID, ""),
        idempotency_key=key,
        error_class=headers.get(HEADER_ERROR_CLASS, ""),
        error=headers.get(HEADER_ERROR, ""),
        subject=headers.get(HEADER_SUBJECT, t.request_subject(subject.rsplit(".", 1)[-1])),
        stored_at=stored_at,
        body=data,
    )


async def list_dead_letters(
    js: JetStreamContext, integration_id: str | None = None, limit: int = 1000
) -> list[DeadLetter]:
    subject = t.dlq_subject(integration_id) if integration_id else "sync.dlq.*"
    sub = await js.pull_subscribe(
        subject,
        stream=t.STREAM_DLQ,
        config=ConsumerConfig(
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.NONE,
            inactive_threshold=30.0,
            mem_storage=True,
        ),
    )
    try:
        pending = min((await sub.consumer_info()).num_pending or 0, limit)
        letters: list[DeadLetter] = []
        while len(letters) < pending:
            for msg in await sub.fetch(min(pending - len(letters), 256), timeout=5.0):
                meta = msg.metadata
                letters.append(
                    _letter(
                        meta.sequence.stream, msg.subject, msg.data, msg.headers, meta.timestamp
                    )
                )
        return letters
    finally:
        await sub.unsubscribe()


async def get_dead_letter(js: JetStreamContext, seq: int) -> DeadLetter:
    try:
        raw = await js.get_msg(t.STREAM_DLQ, seq)
    except NotFoundError:
        raise DeadLetterError(f"no dead letter with id {seq}") from None
    assert raw.subject is not None
    return _letter(seq, raw.subject, raw.data or b"", raw.headers, None)


async def replay_dead_letter(js: JetStreamContext, seq: int) -> SyncRequest:
    """Publish dead letter `seq` again as a new request with the same key."""
    letter = await get_dead_letter(js, seq)
    try:
        original = SyncRequest.from_bytes(letter.body)
    except ValidationError as exc:
        raise DeadLetterError(f"dead letter {seq} is not a sync request") from exc
    replay = original.model_copy(update={"request_id": new_request_id(), "published_at": utc_now()})
    await js.publish(
        t.request_subject(replay.integration_id),
        replay.to_bytes(),
        headers={
            # Unique per replay, so the broker never drops a deliberate replay as a copy; the
            # run ledger, keyed by the idempotency key, still stops a second export.
            "Nats-Msg-Id": f"{replay.idempotency_key}{REPLAY_SUFFIX}{seq}-{replay.request_id}",
            HEADER_REPLAY_OF: str(seq),
        },
    )
    return replay
