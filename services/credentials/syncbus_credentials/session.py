"""The service's Vault session: its token, kept alive, and every call made through it.

    session = VaultSession(settings, state)
    task = asyncio.create_task(session.keep_alive())    # log in, renew, log in again
    data = await session.call(lambda client: client.secrets.kv.v2.read_secret_version(...))

Token lifecycle (`keep_alive`):

- log in with the configured method (`auth.py`); retry with backoff while Vault is down;
- renew the token (`auth/token/renew-self`) once `renew_at_fraction` (2/3) of its TTL has
  passed; a token that is not renewable, or whose renewal no longer extends it to its full TTL
  (its max TTL caps it), is replaced by a new login at that fraction of what is left;
- a failed renewal (revoked, expired) means a new login; an outage means a retry soon, and a
  new login if the token expired meanwhile.

`call(fn)` runs `fn(client)` in a worker thread (hvac is synchronous). An expired or revoked
token answers 403 `permission denied` exactly like a policy denial, so on a 403 the session
looks its own token up: if Vault refuses that too, the token is gone, the session logs in again
once and `fn` runs again; otherwise the 403 is a real denial (`VaultDeniedError`). Every
outcome is reported to the `VaultState` (readiness and the outage grace follow it).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from hvac.exceptions import Forbidden
from hvac.exceptions import VaultError as HvacError

from syncbus_shared.logs import get_logger

from .auth import Login, LoginMethod, login_method
from .errors import (
    VaultDeniedError,
    VaultError,
    VaultLoginError,
    VaultSealedError,
    VaultUnavailableError,
    VaultUnreachableError,
)
from .health import VaultState
from .settings import VaultSettings
from .transport import make_client, unavailable

log = get_logger()

T = TypeVar("T")

_RETRY_MIN_SECONDS = 0.5
_RETRY_MAX_SECONDS = 30.0
_CAPPED_BELOW = 0.9
"""A renewal whose TTL falls short of the login's TTL by more than this: the max TTL is near."""


@dataclass
class SessionStats:
    logins: int = 0
    renewals: int = 0
    renewal_failures: int = 0
    token_checks: int = 0
    """Self-lookups after a 403 (was it the token, or the policy?)."""


class VaultSession:
    def __init__(
        self,
        settings: VaultSettings,
        state: VaultState,
        *,
        method: LoginMethod | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.state = state
        self.client = make_client(settings)
        self._method = method or login_method(settings)
        self._clock = clock
        self._lock = asyncio.Lock()
        self._token: str | None = None
        self._login: Login | None = None
        self._expires_at: float | None = None
        """Monotonic; None: no token, or one that never expires."""
        self._renew_at: float | None = None
        self._relogin_due = False
        """The last renewal was capped by the max TTL: the next upkeep is a new login."""
        self._changed = asyncio.Condition()
        self._wake = asyncio.Event()
        self.stats = SessionStats()

    @property
    def method(self) -> str:
        return self._method.name

    @property
    def logged_in(self) -> bool:
        return self._token is not None

    # --- calls ---------------------------------------------------------------------------

    async def call(self, fn: Callable[[Any], T], *, what: str) -> T:
        """`fn(client)` with a valid token, retried once after a new login if the token was gone.

        Raises VaultUnavailableError, VaultLoginError, VaultDeniedError (a real 403), or the
        hvac error `fn` raised otherwise (for example `InvalidPath`), for the caller to read.
        """
        if self._token is None:
            await self.login(unless_logged_in=True)
        for attempt in (1, 2):
            used = self._token
            try:
                result = await asyncio.to_thread(fn, self.client)
            except Forbidden:
                self.state.reachable()
                if attempt == 1 and await self._token_was_gone(used):
                    continue
                raise VaultDeniedError(f"permission denied: {what}") from None
            except Exception as exc:
                self._raise_if_outage(exc)
                if isinstance(exc, HvacError):
                    self.state.reachable()
                raise
            self.state.reachable()
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    async def probe(self) -> None:
        """Ask Vault (unauthenticated `sys/seal-status`) whether it answers and is unsealed."""
        try:
            status = await asyncio.to_thread(self.client.sys.read_seal_status)
        except Exception as exc:
            self._raise_if_outage(exc)
            raise
        if isinstance(status, dict) and status.get("sealed") is True:
            reason = f"Vault at {self.settings.url} is sealed"
            self.state.unavailable(reason)
            raise VaultUnavailableError(reason)
        self.state.reachable()

    def _raise_if_outage(self, exc: Exception) -> None:
        outage = exc if isinstance(exc, VaultUnavailableError) else unavailable(exc, self.settings)
        if outage is not None:
            self.state.unavailable(str(outage))
            raise outage from None

    async def _token_was_gone(self, used: str | None) -> bool:
        """After a 403: True once a new token is in place (the old one was expired or revoked)."""
        async with self._lock:
            if self._token != used:
                return True  # another caller has logged in again meanwhile
            self.stats.token_checks += 1
            await self._notify()
            try:
                await asyncio.to_thread(self.client.auth.token.lookup_self)
            except Forbidden:
                log.warning("credentials.vault_token_gone", method=self.method)
            except Exception as exc:
                self._raise_if_outage(exc)
                return False
            else:
                return False  # the token is fine: the 403 was the policy's
            if not self._method.can_login_again:
                self._forget_token()
                reason = "the configured Vault token is expired or revoked"
                self.state.login_refused(reason)
                raise VaultLoginError(reason)
            await self._login_locked()
            return True

    # --- token lifecycle ------------------------------------------------------------------

    async def login(self, *, unless_logged_in: bool = False) -> None:
        async with self._lock:
            if unless_logged_in and self._token is not None:
                return  # another caller logged in while this one waited
            await self._login_locked()

    async def _login_locked(self) -> None:
        try:
            login = await asyncio.to_thread(self._method.login, self.client)
        except VaultLoginError as exc:
            self._forget_token()
            if exc.vault_answered:
                self.state.reachable()
            self.state.login_refused(str(exc))
            log.warning("credentials.vault_login_refused", method=self.method, error=str(exc))
            raise
        except Exception as exc:
            self._raise_if_outage(exc)
            raise
        now = self._clock()
        self._token = login.token.get_secret_value()
        self.client.token = self._token
        self._login = login
        self._relogin_due = False
        self._set_ttl(now, login.ttl_seconds)
        self.stats.logins += 1
        self.state.logged_in()
        log.info(
            "credentials.vault_logged_in",
            method=self.method,
            ttl_s=login.ttl_seconds,
            renewable=login.renewable,
        )
        await self._notify()

    def _forget_token(self) -> None:
        self._token = None
        self._login = None
        self._expires_at = self._renew_at = None
        self.client.token = None

    def _set_ttl(self, now: float, ttl: float) -> None:
        if ttl <= 0:
            self._expires_at = self._renew_at = None
            return
        self._expires_at = now + ttl
        self._renew_at = now + ttl * self.settings.renew_at_fraction

    async def renew(self) -> None:
        """Renew the token now; log in again if Vault refuses or the max TTL is near."""
        async with self._lock:
            login = self._login
            if login is None or self._relogin_due:
                await self._login_locked()
                return
            if not login.renewable:
                if self._method.can_login_again:
                    await self._login_locked()
                else:
                    self._renew_at = None  # nothing to do but let it expire
                return
            used = self._token
            try:
                answer = await asyncio.to_thread(self.client.auth.token.renew_self)
            except Exception as exc:
                # Unreachable or sealed: retry later. Any other answer (403 revoked, 500 past
                # its max TTL, ...): this token is done, log in again (a real outage shows there).
                if not isinstance(exc, HvacError) or isinstance(
                    unavailable(exc, self.settings), VaultUnreachableError | VaultSealedError
                ):
                    self._raise_if_outage(exc)
                    raise
                self.stats.renewal_failures += 1
                await self._notify()
                log.warning(
                    "credentials.vault_renewal_failed", method=self.method, error=type(exc).__name__
                )
                if self._token != used:
                    return
                if not self._method.can_login_again:
                    self._forget_token()
                    reason = "the configured Vault token could not be renewed"
                    self.state.login_refused(reason)
                    raise VaultLoginError(reason) from None
                await self._login_locked()
                return
            self.state.reachable()
            ttl = float((answer.get("auth") or {}).get("lease_duration") or 0)
            self.stats.renewals += 1
            self._set_ttl(self._clock(), ttl)
            log.info("credentials.vault_token_renewed", method=self.method, ttl_s=ttl)
            if self._method.can_login_again and ttl < login.ttl_seconds * _CAPPED_BELOW:
                # The max TTL caps it: log in again (at the same fraction of what is left).
                self._relogin_due = True
                log.info("credentials.vault_token_near_max_ttl", method=self.method, ttl_s=ttl)
            await self._notify()

    async def keep_alive(self) -> None:
        """Log in, then renew (or log in again) before the token expires; runs until cancelled."""
        failures = 0
        while True:
            try:
                if self._token is None:
                    await self.login(unless_logged_in=True)
                elif self._renew_at is not None and self._clock() >= self._renew_at:
                    await self.renew()
                failures = 0
                await self._sleep_until_renewal()
            except asyncio.CancelledError:
                raise
            except VaultUnavailableError as exc:
                failures += 1
                if self._expires_at is not None and self._clock() >= self._expires_at:
                    self._forget_token()  # expired during the outage: log in when Vault is back
                await self._pause(failures, str(exc))
            except VaultError as exc:
                failures += 1
                await self._pause(failures, str(exc))
            except Exception as exc:  # a bug must not end the token's upkeep
                failures += 1
                log.exception("credentials.vault_session_failed", error=type(exc).__name__)
                await self._pause(failures, type(exc).__name__)

    async def _sleep_until_renewal(self) -> None:
        delay = None if self._renew_at is None else max(self._renew_at - self._clock(), 0.0)
        self._wake.clear()
        try:
            async with asyncio.timeout(delay):
                await self._wake.wait()
        except TimeoutError:
            pass

    async def _pause(self, failures: int, reason: str) -> None:
        delay = min(_RETRY_MIN_SECONDS * 2 ** (failures - 1), _RETRY_MAX_SECONDS)
        if self._expires_at is not None:
            # Retry well before the token expires (a third of what is left, at least the min).
            delay = min(delay, max((self._expires_at - self._clock()) / 3, _RETRY_MIN_SECONDS))
        log.info("credentials.vault_session_retry", in_s=round(delay, 2), reason=reason)
        self._wake.clear()
        try:
            async with asyncio.timeout(delay):
                await self._wake.wait()
        except TimeoutError:
            pass

    def wake(self) -> None:
        """Look at the token again now (after a probe saw Vault come back, say)."""
        self._wake.set()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(self, predicate: Callable[[SessionStats], bool], timeout: float) -> None:
        """Until `predicate(stats)` holds (tests and tools); TimeoutError after `timeout`."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: predicate(self.stats))
