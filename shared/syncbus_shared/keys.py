"""Names that become NATS subject tokens or KV keys, and the one reversible mapping between them.

NATS subject tokens may not contain `.`, `*`, `>` or white space, and KV keys allow only letters,
digits and `-/_=.`. An idempotency key such as `toyen-xledger:2017-01` therefore needs a mapping
before it can be a KV key. syncbus uses one, everywhere:

    every byte of the UTF-8 text that is not an ASCII letter, digit, `-` or `_`
    is written as `=` followed by two upper-case hex digits.

So `toyen-xledger:2017-01` becomes `toyen-xledger=3A2017-01`, and `ø` becomes `=C3=B8`. The
result is a valid subject token and a valid KV key, and `decode_token` gives the text back.
"""

from __future__ import annotations

import re

_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
_ESCAPE = re.compile(r"=([0-9A-F]{2})")

INTEGRATION_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
"""Integration ids become subject tokens as they are, so only these characters are allowed."""

PERIOD_ID_PATTERN = r"^[0-9]{4}(-[0-9]{2}(-[0-9]{2})?|-W[0-9]{2}|-Q[1-4])?$"
"""`2017`, `2017-01`, `2017-01-31`, `2017-W05`, `2017-Q1`."""

_INTEGRATION_ID = re.compile(INTEGRATION_ID_PATTERN)


def encode_token(text: str) -> str:
    """Map any text to a subject token / KV key; reversible by `decode_token`."""
    if not text:
        raise ValueError("an empty name cannot become a subject token or KV key")
    return "".join(chr(b) if b in _SAFE else f"={b:02X}" for b in text.encode("utf-8"))


def decode_token(token: str) -> str:
    """Reverse `encode_token`."""
    raw = bytearray()
    pos = 0
    for match in _ESCAPE.finditer(token):
        raw += token[pos : match.start()].encode("ascii")
        raw.append(int(match.group(1), 16))
        pos = match.end()
    raw += token[pos:].encode("ascii")
    return raw.decode("utf-8")


def is_integration_id(text: str) -> bool:
    return bool(_INTEGRATION_ID.match(text))


def period_key(integration_id: str, period_id: str) -> str:
    """The idempotency key of a scheduled period export: `<integration_id>:<period_id>`."""
    return f"{integration_id}:{period_id}"
