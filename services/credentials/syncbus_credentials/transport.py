"""The one hvac client of the service: URL, timeout and TLS; and what its failures mean.

TLS settings go on the `requests.Session` itself. hvac's adapter, when given a session, takes
the session's `verify` over its own `verify=` argument, and a fresh session's `verify` is
`True`: passing `verify=<ca>` together with a custom session silently drops the CA. Setting
them on the session is the one way that holds either way.
"""

from __future__ import annotations

from typing import Any

import hvac
import requests
from hvac.exceptions import (
    BadGateway,
    InternalServerError,
    RateLimitExceeded,
    UnexpectedError,
    VaultDown,
    VaultNotInitialized,
)

from .errors import (
    VaultSealedError,
    VaultTlsError,
    VaultUnavailableError,
    VaultUnreachableError,
)
from .settings import VaultSettings

_SERVER_SIDE = (
    InternalServerError,
    BadGateway,
    UnexpectedError,
    VaultNotInitialized,
    RateLimitExceeded,
)


def tls_session(settings: VaultSettings) -> requests.Session:
    session = requests.Session()
    session.verify = str(settings.ca_cert) if settings.ca_cert is not None else True
    if settings.client_cert is not None:
        session.cert = (
            (str(settings.client_cert), str(settings.client_key))
            if settings.client_key is not None
            else str(settings.client_cert)
        )
    return session


def make_client(settings: VaultSettings) -> Any:
    """An hvac client without a token (hvac is untyped: `Any`)."""
    return hvac.Client(
        url=settings.url, timeout=settings.timeout_seconds, session=tls_session(settings)
    )


def unavailable(exc: Exception, settings: VaultSettings) -> VaultUnavailableError | None:
    """The outage `exc` stands for, or None when it is not one (a 4xx answer, a bug)."""
    if isinstance(exc, requests.exceptions.SSLError):
        return VaultTlsError(_tls_reason(str(exc), settings))
    if isinstance(exc, requests.ConnectionError | requests.Timeout):
        return VaultUnreachableError(f"Vault at {settings.url} is unreachable")
    if isinstance(exc, VaultDown):
        return VaultSealedError(f"Vault at {settings.url} is sealed")
    if isinstance(exc, _SERVER_SIDE):
        return VaultUnavailableError(f"Vault at {settings.url} answered {type(exc).__name__}")
    return None


def _tls_reason(text: str, settings: VaultSettings) -> str:
    trusted = (
        f"the CA in SYNCBUS_VAULT_CA_CERT ({settings.ca_cert})"
        if settings.ca_cert is not None
        else "the system's trust store (set SYNCBUS_VAULT_CA_CERT to a CA bundle)"
    )
    if "CERTIFICATE_VERIFY_FAILED" in text:
        detail = text.split("certificate verify failed:", 1)[-1].split("(_ssl", 1)[0].strip()
        return (
            f"TLS to Vault at {settings.url} failed: its certificate is not trusted by "
            f"{trusted} ({detail or 'verify failed'})"
        )
    if "WRONG_VERSION_NUMBER" in text or "record layer failure" in text:
        return f"TLS to Vault at {settings.url} failed: the server does not speak TLS there"
    return f"TLS to Vault at {settings.url} failed during the handshake"
