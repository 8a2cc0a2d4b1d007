"""Entra-like client credentials and the bearer tokens Business Central accepts.

`ClientBook` holds app registrations: a client id, the SHA-256 digest of its secret (never the
secret) and its roles in Business Central. `TokenIssuer` answers the client-credentials grant
with tokens shaped like Entra's v1 access tokens, a JWT (`header.payload.signature`, HS256 with
a key made up at start) whose payload carries the claims a client may read:

    aud    the resource (`https://api.businesscentral.dynamics.com`, or another asked for)
    iss    https://sts.windows.net/<tenant>/          tid    the tenant
    appid  the client id                               oid    the service principal's object id
    roles  e.g. ["API.ReadWrite.All"]                  iat, nbf, exp (seconds), uti (unique)

The fake checks a token by its signature and claims, and also against cut-offs the control API
sets: "revoke" and "expire" refuse every token of a client (or of all) issued before that
instant, which is how a test makes a cached token go bad on the server side. Tokens themselves
are never stored or logged; the issuer keeps counters only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def secret_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass
class Client:
    client_id: str
    secret_digest: str
    roles: tuple[str, ...]
    object_id: str


class ClientBook:
    """App registrations in the fake's tenant."""

    def __init__(self) -> None:
        self._clients: dict[str, Client] = {}

    def __len__(self) -> int:
        return len(self._clients)

    def __repr__(self) -> str:
        return f"ClientBook({len(self._clients)} clients)"

    def register(self, client_id: str, secret: str, roles: tuple[str, ...]) -> None:
        if not client_id or not secret:
            raise ValueError("a client needs a non-empty client_id and client_secret")
        object_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"syncbus-fake-sp/{client_id}"))
        self._clients[client_id] = Client(client_id, secret_digest(secret), roles, object_id)

    def remove(self, client_id: str) -> bool:
        return self._clients.pop(client_id, None) is not None

    def get(self, client_id: str) -> Client | None:
        return self._clients.get(client_id)

    def secret_matches(self, client: Client, secret: str) -> bool:
        return hmac.compare_digest(client.secret_digest, secret_digest(secret))


class TokenProblem(Enum):
    MISSING = "missing"
    MALFORMED = "malformed"
    WRONG_AUDIENCE = "wrong_audience"
    WRONG_TENANT = "wrong_tenant"
    EXPIRED = "expired"
    REVOKED = "revoked"
    NO_ROLES = "no_roles"


@dataclass(frozen=True)
class Principal:
    """Who calls the API: a service principal of one tenant (what the limits count)."""

    tenant_id: str
    client_id: str
    object_id: str

    @property
    def key(self) -> str:
        return f"{self.tenant_id}/{self.object_id}"


@dataclass
class TokenIssuer:
    tenant_id: str
    audience: str
    lifetime_seconds: int
    key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    issued: int = 0
    _revoked_before: dict[str, float] = field(default_factory=dict)
    _expired_before: dict[str, float] = field(default_factory=dict)

    ALL = "*"

    def issue(self, client: Client, audience: str) -> tuple[str, int]:
        """A signed token for `client` and `audience`; returns (token, expires_in)."""
        now = time.time()
        lifetime = self.lifetime_seconds
        claims = {
            "aud": audience,
            "iss": f"https://sts.windows.net/{self.tenant_id}/",
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "appid": client.client_id,
            "oid": client.object_id,
            "tid": self.tenant_id,
            "roles": list(client.roles),
            "uti": secrets.token_urlsafe(16),
            "ver": "1.0",
        }
        header = _b64(json.dumps({"typ": "JWT", "alg": "HS256"}).encode())
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        signature = _b64(self._sign(f"{header}.{payload}"))
        self.issued += 1
        return f"{header}.{payload}.{signature}", lifetime

    def _sign(self, text: str) -> bytes:
        return hmac.new(self.key, text.encode("ascii"), hashlib.sha256).digest()

    def revoke(self, client_id: str | None) -> float:
        """Refuse every token of `client_id` (None: of everyone) issued until now."""
        now = time.time()
        self._revoked_before[client_id or self.ALL] = now
        return now

    def expire(self, client_id: str | None) -> float:
        """Like `revoke`, but the API says the token has expired."""
        now = time.time()
        self._expired_before[client_id or self.ALL] = now
        return now

    def clear_cutoffs(self) -> None:
        self._revoked_before.clear()
        self._expired_before.clear()

    def _cut(self, table: dict[str, float], client_id: str, issued_at: float) -> bool:
        for who in (client_id, self.ALL):
            cutoff = table.get(who)
            if cutoff is not None and issued_at <= cutoff:
                return True
        return False

    def check(self, header: str | None, tenant_id: str) -> Principal | TokenProblem:
        """The caller of an API request, or why its `Authorization` header is refused."""
        if header is None:
            return TokenProblem.MISSING
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return TokenProblem.MALFORMED
        claims = self._claims(token.strip())
        if claims is None:
            return TokenProblem.MALFORMED
        if claims.get("aud") != self.audience:
            return TokenProblem.WRONG_AUDIENCE
        if claims.get("tid") != tenant_id:
            return TokenProblem.WRONG_TENANT
        client_id, issued_at = str(claims.get("appid")), float(claims.get("iat", 0))
        if self._cut(self._revoked_before, client_id, issued_at):
            return TokenProblem.REVOKED
        if self._cut(self._expired_before, client_id, issued_at):
            return TokenProblem.EXPIRED
        if float(claims.get("exp", 0)) <= time.time():
            return TokenProblem.EXPIRED
        if not claims.get("roles"):
            return TokenProblem.NO_ROLES
        return Principal(str(claims["tid"]), client_id, str(claims.get("oid")))

    def _claims(self, token: str) -> dict[str, Any] | None:
        parts = token.split(".")
        if len(parts) != 3:
            return None
        header, payload, signature = parts
        try:
            expected = self._sign(f"{header}.{payload}")
            if not hmac.compare_digest(expected, _unb64(signature)):
                return None
            claims = json.loads(_unb64(payload))
        except (ValueError, UnicodeError):
            return None
        return claims if isinstance(claims, dict) else None
