"""What the credential service last saw of Vault, as readiness and health (no I/O to ask).

Every Vault call the service makes reports its outcome to one `VaultState`:

    reachable       a call got an answer from an unsealed Vault (even a 403 or a 404)
    unavailable     no answer, a TLS failure, a sealed Vault or a server error: an outage
                    begins (`degraded_since`), and cached secrets are served until
                    `grace_ends_at`; after that requests get `credentials_unavailable`
    login refused   Vault answered but refused the service's own login: Vault is reachable,
                    the service is not ready (nothing can be read until an operator acts)

`CredentialService.health()` returns `VaultState.health()`: a frozen snapshot, cheap enough
for a liveness or readiness endpoint to call on every probe.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from syncbus_shared.logs import get_logger

log = get_logger()


@dataclass(frozen=True)
class CredentialHealth:
    vault_reachable: bool
    """The last Vault call got an answer from an unsealed Vault."""
    degraded_since: datetime | None
    """When the current outage began (UTC); None while Vault answers."""
    grace_ends_at: datetime | None
    """Until when cached secrets are served during the outage (UTC); None while Vault answers."""
    ready: bool
    """Vault is reachable and the service is logged in (Kubernetes readiness follows this)."""
    detail: str
    """One sentence for an operator (never a secret)."""


class VaultState:
    """The outcome of the latest Vault call, and when the current outage began."""

    def __init__(
        self,
        grace_seconds: float,
        *,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._grace = timedelta(seconds=grace_seconds)
        self._wall = wall_clock
        self._reachable = False
        self._logged_in = False
        self._degraded_since: datetime | None = None
        self._outage = "Vault has not been asked yet"
        self._login_problem = "not logged in to Vault yet"

    @property
    def grace_seconds(self) -> float:
        return self._grace.total_seconds()

    @property
    def degraded_since(self) -> datetime | None:
        return self._degraded_since

    def reachable(self) -> None:
        """A Vault call got an answer from an unsealed Vault."""
        if self._degraded_since is not None:
            log.info("credentials.vault_recovered", degraded_since=self._degraded_since.isoformat())
        self._reachable = True
        self._degraded_since = None

    def logged_in(self) -> None:
        self._logged_in = True
        self.reachable()

    def login_refused(self, reason: str) -> None:
        """The service has no valid token: Vault refused its login, or it cannot log in."""
        self._logged_in = False
        self._login_problem = reason

    def unavailable(self, reason: str) -> None:
        """A Vault call got no usable answer (unreachable, TLS, sealed, server error)."""
        now = self._wall()
        if self._degraded_since is None:
            self._degraded_since = now
            log.warning(
                "credentials.vault_degraded",
                reason=reason,
                grace_ends_at=(now + self._grace).isoformat(),
            )
        self._reachable = False
        self._outage = reason

    def within_grace(self) -> bool:
        """Vault is down since less than the grace period (cached secrets may be served)."""
        since = self._degraded_since
        return since is not None and self._wall() < since + self._grace

    def health(self) -> CredentialHealth:
        since = self._degraded_since
        grace_ends = since + self._grace if since is not None else None
        if not self._reachable:
            detail = self._outage
            if grace_ends is not None:
                detail += (
                    f"; cached credentials are served until {grace_ends.isoformat()}"
                    if self.within_grace()
                    else f"; the grace period ended at {grace_ends.isoformat()}"
                )
        elif not self._logged_in:
            detail = self._login_problem
        else:
            detail = "Vault answers and the service is logged in"
        return CredentialHealth(
            vault_reachable=self._reachable,
            degraded_since=since,
            grace_ends_at=grace_ends,
            ready=self._reachable and self._logged_in,
            detail=detail,
        )
