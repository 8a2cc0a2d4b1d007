"""OAuth2 client credentials: access tokens are minted here, so no caller sees a client secret.

An integration whose Vault secret (KV v2) holds these fields uses OAuth2:

    client_id       the app registration's id
    client_secret   its secret (never leaves this service)
    token_url       e.g. https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token; or
    tenant_id       with optional `authority` (default https://login.microsoftonline.com)
    scope           optional, default https://api.businesscentral.dynamics.com/.default

The token URL comes from Vault with the secret, never from the integration's config: whoever
may edit the `integrations` bucket must not be able to send the secret to a server of theirs.

`TokenMinter.token(key, grant)` returns a cached access token while it is fresh, and asks the
token endpoint otherwise. Fresh means: more than `min(refresh_margin_seconds, lifetime / 2)`
before it expires (default margin 5 minutes, so a 60-minute token is served for 55). One
request at a time per key: callers that arrive while a token is being fetched wait for that
fetch and share its token (single flight). `force=True` (the vendor refused the token) fetches a
new one, unless one was requested after the caller asked: many callers that all saw the same
401 cause one fetch, not one each.

Token endpoint errors (Entra's shape: 400 with `error`, `error_description` "AADSTS...: ..."):

    invalid_client, unauthorized_client    AUTH           (wrong secret, unknown app)
    invalid_scope, invalid_request,        CONFIGURATION  (wrong scope, tenant, grant)
      unsupported_grant_type, other 4xx
    429, 5xx, no answer, not JSON           CREDENTIALS_UNAVAILABLE (try again later)

Messages carry the error code and the first sentence of the description (no trace ids), and
are scrubbed of the client secret. Tokens and secrets travel as `SecretStr`.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from pydantic import SecretStr

from syncbus_shared.contracts import ErrorClass

DEFAULT_AUTHORITY = "https://login.microsoftonline.com"
DEFAULT_SCOPE = "https://api.businesscentral.dynamics.com/.default"
_MAX_MESSAGE = 300

_AUTH_ERRORS = frozenset({"invalid_client", "unauthorized_client"})


class GrantConfigError(ValueError):
    """The secret asks for OAuth2 but lacks what the grant needs (names fields, not values)."""


@dataclass(frozen=True)
class ClientGrant:
    token_url: str
    client_id: str
    client_secret: SecretStr
    scope: str

    @property
    def fingerprint(self) -> str:
        """Changes when any part changes (a rotated secret gets tokens of its own)."""
        secret = self.client_secret.get_secret_value()
        raw = f"{self.token_url}\n{self.client_id}\n{secret}\n{self.scope}"
        return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:16]


def client_grant(data: Mapping[str, str], path: str) -> ClientGrant | None:
    """The grant a Vault secret describes; None when it is not an OAuth2 secret."""
    if "client_id" not in data and "client_secret" not in data:
        return None
    missing = [name for name in ("client_id", "client_secret") if not data.get(name)]
    token_url = data.get("token_url")
    if not token_url:
        tenant = data.get("tenant_id")
        if tenant:
            authority = data.get("authority") or DEFAULT_AUTHORITY
            token_url = f"{authority.rstrip('/')}/{tenant}/oauth2/v2.0/token"
        else:
            missing.append("token_url (or tenant_id)")
    if missing:
        raise GrantConfigError(f"the OAuth2 secret at {path} lacks {', '.join(missing)}")
    assert token_url is not None
    if not token_url.startswith(("https://", "http://")):
        raise GrantConfigError(f"the token_url of the secret at {path} is not an http(s) URL")
    return ClientGrant(
        token_url=token_url,
        client_id=data["client_id"],
        client_secret=SecretStr(data["client_secret"]),
        scope=data.get("scope") or DEFAULT_SCOPE,
    )


@dataclass(frozen=True)
class AccessToken:
    value: SecretStr
    expires_at: datetime
    """When the vendor stops taking it (UTC)."""
    lifetime_seconds: float
    requested_at: float
    """Monotonic time the token request was sent."""
    refresh_at: float
    """Monotonic time after which the cache stops serving it."""


class TokenEndpointError(Exception):
    def __init__(self, error_class: ErrorClass, message: str, vendor_code: str | None) -> None:
        super().__init__(message)
        self.error_class = error_class
        self.message = message
        self.vendor_code = vendor_code


@dataclass
class MinterStats:
    requests: int = 0
    served_from_cache: int = 0
    joined_a_refresh: int = 0


class TokenMinter:
    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        refresh_margin_seconds: float = 300.0,
        timeout_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._http = http
        self._margin = refresh_margin_seconds
        self._timeout = timeout_seconds
        self._clock = clock
        self._wall = wall_clock
        self._tokens: dict[tuple[str, str], AccessToken] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self.stats = MinterStats()

    def forget(self, key: str) -> None:
        for cached in [k for k in self._tokens if k[0] == key]:
            del self._tokens[cached]

    async def token(
        self,
        key: str,
        grant: ClientGrant,
        *,
        force: bool = False,
        asked_at: float | None = None,
    ) -> AccessToken:
        """`asked_at` (monotonic): when the caller asked, if before this call (default: now)."""
        asked = self._clock() if asked_at is None else asked_at
        slot = (key, grant.fingerprint)
        lock = self._locks.setdefault(slot, asyncio.Lock())
        waited = lock.locked()
        async with lock:
            current = self._tokens.get(slot)
            if current is not None:
                if force and current.requested_at >= asked:
                    self.stats.joined_a_refresh += 1
                    return current
                if not force and self._clock() < current.refresh_at:
                    if waited:
                        self.stats.joined_a_refresh += 1
                    else:
                        self.stats.served_from_cache += 1
                    return current
            token = await self._request(grant)
            self._tokens[slot] = token
            return token

    async def _request(self, grant: ClientGrant) -> AccessToken:
        self.stats.requests += 1
        requested_at = self._clock()
        wall = self._wall()
        form = {
            "grant_type": "client_credentials",
            "client_id": grant.client_id,
            "client_secret": grant.client_secret.get_secret_value(),
            "scope": grant.scope,
        }
        failure: TokenEndpointError | None = None
        response: httpx.Response | None = None
        try:
            response = await self._http.post(
                grant.token_url,
                data=form,
                headers={"Accept": "application/json"},
                timeout=self._timeout,
            )
        except httpx.HTTPError as exc:
            failure = TokenEndpointError(
                ErrorClass.CREDENTIALS_UNAVAILABLE,
                f"the token endpoint did not answer ({type(exc).__name__})",
                None,
            )
        if failure is not None:
            raise failure  # outside the except block: the httpx error holds the form body
        assert response is not None
        payload = _json(response)
        if response.status_code != 200:
            raise self._refused(response.status_code, payload, grant)
        token = payload.get("access_token") if isinstance(payload, dict) else None
        expires_in = payload.get("expires_in") if isinstance(payload, dict) else None
        token_type = payload.get("token_type") if isinstance(payload, dict) else None
        if isinstance(expires_in, str) and expires_in.isdigit():
            expires_in = int(expires_in)
        if (
            not isinstance(token, str)
            or not token
            or not isinstance(expires_in, int | float)
            or isinstance(expires_in, bool)
            or expires_in <= 0
            or not isinstance(token_type, str)
            or token_type.lower() != "bearer"
        ):
            raise TokenEndpointError(
                ErrorClass.CREDENTIALS_UNAVAILABLE,
                "the token endpoint answered 200 without a bearer access_token and expires_in",
                None,
            )
        lifetime = float(expires_in)
        margin = min(self._margin, lifetime / 2)
        return AccessToken(
            value=SecretStr(token),
            expires_at=wall + timedelta(seconds=lifetime),
            lifetime_seconds=lifetime,
            requested_at=requested_at,
            refresh_at=requested_at + lifetime - margin,
        )

    def _refused(self, status: int, payload: Any, grant: ClientGrant) -> TokenEndpointError:
        error = payload.get("error") if isinstance(payload, dict) else None
        description = payload.get("error_description") if isinstance(payload, dict) else None
        code = error if isinstance(error, str) else None
        if status == 429 or status >= 500 or (code is None and status not in {400, 401, 403}):
            error_class = ErrorClass.CREDENTIALS_UNAVAILABLE
        elif code in _AUTH_ERRORS or code is None:
            error_class = ErrorClass.AUTH
        else:
            error_class = ErrorClass.CONFIGURATION
        detail = _first_sentence(description) if isinstance(description, str) else None
        message = f"the token endpoint refused the client credentials (HTTP {status}"
        message += f", {code})" if code else ")"
        if detail:
            message += f": {detail}"
        secret = grant.client_secret.get_secret_value()
        if secret:
            message = message.replace(secret, "**********")
        return TokenEndpointError(error_class, message[:_MAX_MESSAGE], code)


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _first_sentence(description: str) -> str:
    """ "AADSTS7000215: Invalid client secret provided. Ensure ... Trace ID: ..." -> the code and
    the first sentence."""
    head = description.split("Trace ID:", 1)[0].strip()
    code, sep, rest = head.partition(": ")
    first = rest.split(". ", 1)[0].rstrip(".") if sep else head.split(". ", 1)[0]
    return f"{code}: {first}." if sep else f"{first}."
