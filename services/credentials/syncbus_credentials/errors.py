"""What can go wrong talking to Vault, by what the service should do about it.

    VaultError
    ├── VaultUnavailableError       an outage: cached secrets are served during the grace period
    │   ├── VaultUnreachableError   no answer (connection refused, timeout)
    │   ├── VaultSealedError        Vault answers 503 sealed
    │   └── VaultTlsError           the TLS handshake failed (untrusted certificate, ...)
    ├── VaultLoginError             Vault refused the service's own login (or it cannot try):
    │                               nothing cached is served, an operator must act
    ├── VaultDeniedError            the token is valid but may not read the path (policy)
    └── SecretNotFoundError         no live secret at the path (missing, deleted, destroyed)

Messages name paths, URLs and methods, never a token, secret id or secret value.
"""

from __future__ import annotations


class VaultError(Exception):
    pass


class VaultUnavailableError(VaultError):
    """Vault could not be reached, is sealed, or answered with a server error."""


class VaultUnreachableError(VaultUnavailableError):
    pass


class VaultSealedError(VaultUnavailableError):
    pass


class VaultTlsError(VaultUnavailableError):
    pass


class VaultLoginError(VaultError):
    """The service could not log in to Vault (refused, or its login material is missing)."""

    def __init__(self, message: str, *, vault_answered: bool = False) -> None:
        super().__init__(message)
        self.vault_answered = vault_answered


class VaultDeniedError(VaultError, PermissionError):
    """The service's (valid) token may not read the path."""


class SecretNotFoundError(VaultError, LookupError):
    """No live secret at the path (missing, soft-deleted or destroyed)."""
