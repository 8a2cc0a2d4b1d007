"""API keys: stored only as SHA-256 digests, compared in constant time, never logged.

A caller sends its key as `Authorization: Bearer <key>` or `X-API-Key: <key>`. The ingress
hashes what it was sent and compares the digest with every stored one using
`hmac.compare_digest`, without stopping at the first match, so the time taken says nothing
about which key matched or how much of it. Make a digest with `python -m syncbus_ingress
hash-key` (reads the key on stdin) or `printf %s "$KEY" | sha256sum`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .settings import IngressSettings

_DIGEST = re.compile(r"^[0-9a-fA-F]{64}$")
_LABEL = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class ApiKeyConfigError(ValueError):
    """A configured digest cannot be read. The message never repeats the entry (it may be a key
    pasted by mistake)."""


def digest_of(key: str) -> str:
    """The SHA-256 hex digest under which a key is configured."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class _Stored:
    label: str
    digest: bytes


def _parse(entries: Iterable[str], source: str) -> list[_Stored]:
    stored = []
    for number, raw in enumerate(entries, 1):
        entry = raw.split("#", 1)[0].strip()
        if not entry:
            continue
        label, _, digest = entry.rpartition("=")
        if not _DIGEST.match(digest):
            raise ApiKeyConfigError(f"{source} entry {number} is not a SHA-256 hex digest")
        if label and not _LABEL.match(label):
            raise ApiKeyConfigError(
                f"{source} entry {number} has a label that is not 1-64 letters, digits, '-_.'"
            )
        stored.append(_Stored(label or f"key-{digest[:8].lower()}", bytes.fromhex(digest)))
    return stored


class ApiKeys:
    def __init__(self, stored: Iterable[_Stored]) -> None:
        self._stored = tuple(stored)

    @classmethod
    def from_settings(cls, settings: IngressSettings) -> ApiKeys:
        stored = _parse(settings.api_key_hashes.split(","), "SYNCBUS_INGRESS_API_KEY_HASHES")
        if settings.api_key_hashes_file is not None:
            try:
                text = settings.api_key_hashes_file.read_text(encoding="utf-8")
            except OSError as exc:
                raise ApiKeyConfigError(
                    f"cannot read SYNCBUS_INGRESS_API_KEY_HASHES_FILE ({exc.strerror})"
                ) from None
            stored += _parse(text.splitlines(), str(settings.api_key_hashes_file))
        return cls(stored)

    def __len__(self) -> int:
        return len(self._stored)

    def check(self, presented: str | None) -> str | None:
        """The label of the key presented, or None when it is none of ours."""
        if not presented:
            return None
        digest = hashlib.sha256(presented.encode("utf-8")).digest()
        match = None
        for stored in self._stored:  # no early exit: every digest is compared every time
            if hmac.compare_digest(digest, stored.digest):
                match = stored.label
        return match


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key a request carries, from `Authorization: Bearer` or `X-API-Key`."""
    authorization = headers.get("authorization", "")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    api_key = headers.get("x-api-key", "").strip()
    return api_key or None
