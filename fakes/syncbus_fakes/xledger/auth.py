"""Xledger's API-token auth: `Authorization: token <API_TOKEN>`, the word `token`, not `Bearer`.

The fake keeps only SHA-256 digests of the tokens it accepts, so no token value can end up in a
log line, a control-API answer or a repr. A request is known to the limits by its digest.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from enum import Enum

# A token is one run of visible ASCII characters (no spaces, no control characters).
_TOKEN = re.compile(r"^[\x21-\x7e]+$")
_SCHEME = "token"


class AuthFailure(Enum):
    BAD_FORMAT = "bad_format"
    UNKNOWN_TOKEN = "unknown_token"  # noqa: S105 - a name, not a secret


@dataclass(frozen=True)
class Principal:
    """Who is calling, by token digest (never the token)."""

    digest: str


def is_well_formed(token: str) -> bool:
    return bool(_TOKEN.match(token))


def digest_of(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def parse_authorization(header: str | None) -> str | None:
    """The token in `token <API_TOKEN>`, or None when the header is missing or malformed."""
    if header is None:
        return None
    scheme, sep, token = header.partition(" ")
    if not sep or scheme.lower() != _SCHEME or not is_well_formed(token):
        return None
    return token


class TokenBook:
    """The tokens the fake accepts (start-up ones plus any added through the control API)."""

    def __init__(self, tokens: tuple[str, ...] = ()) -> None:
        self._digests: set[str] = set()
        for token in tokens:
            self.add(token)

    def __len__(self) -> int:
        return len(self._digests)

    def __repr__(self) -> str:
        return f"TokenBook({len(self._digests)} tokens)"

    def add(self, token: str) -> None:
        if not is_well_formed(token):
            raise ValueError("a token is one run of visible ASCII characters, without spaces")
        self._digests.add(digest_of(token))

    def revoke(self, token: str) -> bool:
        digest = digest_of(token)
        if digest in self._digests:
            self._digests.discard(digest)
            return True
        return False

    def authenticate(self, header: str | None) -> Principal | AuthFailure:
        token = parse_authorization(header)
        if token is None:
            return AuthFailure.BAD_FORMAT
        digest = digest_of(token)
        # Compare every known digest in constant time; the set is small.
        known = any(hmac.compare_digest(digest, candidate) for candidate in self._digests)
        return Principal(digest) if known else AuthFailure.UNKNOWN_TOKEN
