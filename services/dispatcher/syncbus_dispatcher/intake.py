"""Reading a raw sync-request message: a valid `SyncRequest`, or a rejection that says why.

Nothing here raises: bad input of any kind becomes a `Rejection` with a specific sentence and
the integration its result should go to (`_invalid` when not even that can be read).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from pydantic import ValidationError

from syncbus_shared import topology as t
from syncbus_shared.contracts import SyncRequest
from syncbus_shared.dlq import REPLAY_SUFFIX
from syncbus_shared.keys import is_integration_id


@dataclass(frozen=True)
class Rejection:
    integration_id: str
    request_id: str
    message: str
    idempotency_key: str | None = None
    period_id: str | None = None


def is_own_msg_id(msg_id: str, key: str) -> bool:
    """The key itself, or `<key>#replay-<seq>-<id>` for a dead letter replayed on purpose.

    The broker must not drop a replay as a copy of the original; the run ledger sees the key.
    """
    return msg_id == key or msg_id.startswith(key + REPLAY_SUFFIX)


def describe_validation_error(exc: ValidationError, limit: int = 3) -> str:
    parts = []
    for error in exc.errors(include_input=False, include_url=False)[:limit]:
        where = ".".join(str(p) for p in error["loc"]) or "body"
        parts.append(f"{where}: {error['msg']}")
    more = exc.error_count() - limit
    if more > 0:
        parts.append(f"and {more} more problem(s)")
    return "; ".join(parts)


def _peek(body: bytes) -> dict[str, object]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def _text(value: object, limit: int = 200) -> str | None:
    return value[:limit] if isinstance(value, str) and value.isprintable() else None


def read_request(
    subject: str, body: bytes, headers: dict[str, str] | None, *, fallback_id: str, max_bytes: int
) -> SyncRequest | Rejection:
    token = subject.split(".", 2)[2] if subject.count(".") >= 2 else ""
    subject_integration = token if is_integration_id(token) else t.INVALID_INTEGRATION
    peek = _peek(body) if len(body) <= max_bytes else {}
    request_id = _text(peek.get("request_id"), 64) or fallback_id
    key, period = _text(peek.get("idempotency_key")), _text(peek.get("period_id"), 20)

    def reject(message: str, integration: str = subject_integration) -> Rejection:
        return Rejection(integration, request_id, message, key, period)

    if len(body) > max_bytes:
        return reject(f"the request is {len(body)} bytes; at most {max_bytes} are accepted")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return reject("the request body is not UTF-8 text")
    if not peek:
        try:
            json.loads(text)
        except RecursionError:
            return reject("the request body nests JSON too deeply to be read")
        except ValueError as exc:
            return reject(f"the request body is not JSON a parser accepts ({str(exc)[:80]})")
        return reject("the request body must be a JSON object")
    try:
        request = SyncRequest.model_validate_json(text)
    except ValidationError as exc:
        return reject(
            f"the request is not a valid {SyncRequest.model_fields['type'].default}: "
            f"{describe_validation_error(exc)}"
        )
    if request.integration_id != subject_integration:
        return reject(
            f"the subject names integration {subject_integration!r} but the body names "
            f"{request.integration_id!r}"
        )
    msg_id = (headers or {}).get("Nats-Msg-Id")
    if msg_id is not None and not is_own_msg_id(msg_id, request.idempotency_key):
        return reject(
            f"the Nats-Msg-Id header {msg_id[:80]!r} differs from the idempotency key "
            f"{request.idempotency_key!r}; publish with Nats-Msg-Id set to the key"
        )
    return request
