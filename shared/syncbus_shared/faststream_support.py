"""How syncbus uses FastStream: every handler reads the raw bytes and parses them itself.

FastStream decodes a body by its `content-type` header before the handler runs; a body that
says `application/json` and is not JSON then fails inside FastStream, where no result can be
published and the message is redelivered forever. Handlers take `raw_body` as their decoder,
so every byte that arrives reaches syncbus's own intake, which rejects it with a reason.
"""

from __future__ import annotations

from typing import Any


async def raw_body(msg: Any) -> bytes:
    """A FastStream decoder that decodes nothing."""
    body = msg.body
    return body if isinstance(body, bytes) else bytes(body)
