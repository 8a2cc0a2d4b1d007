"""Connecting to NATS the same way in every service: as its own user, over TLS when configured,
with its own inbox prefix, reconnecting forever, logging state changes.

`connect()` is for nats-py connections (CLI, client, devstack, a service's extra connections);
`broker_options()` gives a FastStream broker the same: `NatsBroker(**broker_options(settings))`.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import nats
from faststream.nats import NatsSecurity, NatsUserPassword
from faststream.security import BaseSecurity
from nats.aio.client import Client

from .logs import get_logger
from .settings import NatsSettings

log = get_logger()

RECONNECT_TIME_WAIT_SECONDS = 0.5


class NatsUnreachableError(ConnectionError):
    def __init__(self, servers: list[str], seconds: float, reason: str | None = None) -> None:
        message = f"cannot reach NATS at {', '.join(servers)} within {seconds:.0f} s"
        super().__init__(f"{message}: {reason}" if reason else message)
        self.reason = reason


class NatsTlsConfigError(ValueError):
    """A TLS file named in the settings cannot be used (names the file, never its content)."""


def tls_context(settings: NatsSettings) -> ssl.SSLContext | None:
    """The client TLS context the settings ask for, or None when TLS is not configured.

    The server's certificate is verified against `tls_ca_file` (the system store when only a
    client certificate is given), host names are checked, and TLS 1.2 is the floor.
    """
    if not settings.tls_enabled:
        return None
    try:
        context = ssl.create_default_context(
            ssl.Purpose.SERVER_AUTH,
            cafile=str(settings.tls_ca_file) if settings.tls_ca_file is not None else None,
        )
    except (OSError, ssl.SSLError) as exc:
        raise NatsTlsConfigError(
            f"cannot load the NATS CA file {settings.tls_ca_file}: {_reason(exc)}"
        ) from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if settings.tls_cert_file is not None and settings.tls_key_file is not None:
        try:
            context.load_cert_chain(str(settings.tls_cert_file), str(settings.tls_key_file))
        except (OSError, ssl.SSLError) as exc:
            raise NatsTlsConfigError(
                f"cannot load the NATS client certificate {settings.tls_cert_file} "
                f"with key {settings.tls_key_file}: {_reason(exc)}"
            ) from None
    return context


def _reason(exc: OSError | ssl.SSLError) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason)
    return exc.strerror or type(exc).__name__


def _common(settings: NatsSettings) -> dict[str, Any]:
    """Options nats-py's `connect` and FastStream's `NatsBroker` spell the same way."""
    options: dict[str, Any] = {
        "servers": settings.servers,
        "connect_timeout": settings.connect_timeout_seconds,
        "allow_reconnect": True,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": RECONNECT_TIME_WAIT_SECONDS,
        "inbox_prefix": settings.inbox_prefix,
    }
    return options


def connect_options(settings: NatsSettings) -> dict[str, Any]:
    """Keyword arguments of `nats.connect` for these settings (the password unmasked: pass on)."""
    options = _common(settings)
    if settings.user:
        options["user"] = settings.user
    if settings.password is not None:
        options["password"] = settings.password.get_secret_value()
    context = tls_context(settings)
    if context is not None:
        options["tls"] = context
        options["tls_handshake_first"] = settings.tls_handshake_first
        if settings.tls_hostname:
            options["tls_hostname"] = settings.tls_hostname
    return options


def broker_options(settings: NatsSettings) -> dict[str, Any]:
    """Keyword arguments of FastStream's `NatsBroker` for these settings.

    `NatsBroker` takes user, password and TLS only as a `security` object (it hands them to
    `nats.connect` unchanged); everything else is the nats-py option of the same name. The
    callbacks log connection errors (a refused certificate, say) as `connect()`'s do: services
    build their broker with `logger=None`, so FastStream itself would say nothing.
    """
    options = {**_common(settings), **_Callbacks().options()}
    security = _security(settings)
    if security is not None:
        options["security"] = security
    return options


def pull_inbox_prefix(settings: NatsSettings) -> bytes:
    """The `inbox_prefix` a FastStream pull subscriber needs to keep to the connection's.

    FastStream 0.7.8's `broker.subscriber(..., pull_sub=...)` fetches into `_INBOX.<nuid>`
    unless told otherwise, whatever the connection's prefix, and a locked-down user may not
    subscribe there.
    """
    return f"{settings.inbox_prefix}.".encode()


def _security(settings: NatsSettings) -> BaseSecurity | None:
    context = tls_context(settings)
    tls: dict[str, Any] = {}
    if context is not None:
        tls = {
            "ssl_context": context,
            "use_ssl": True,
            "tls_hostname": settings.tls_hostname,
            "tls_handshake_first": settings.tls_handshake_first,
        }
    if settings.user:
        password = settings.password.get_secret_value() if settings.password is not None else ""
        return NatsUserPassword(settings.user, password, **tls)
    if tls:
        return NatsSecurity(**tls)
    return None


class _Callbacks:
    """Connection state changes into the log; the last error kept for `NatsUnreachableError`."""

    def __init__(self) -> None:
        self.last_error: str | None = None

    async def on_error(self, exc: Exception) -> None:
        # A refusal (authorization, certificate) is often followed by the server hanging up:
        # the refusal is the reason worth reporting, not the reset that came after it.
        if self.last_error is None or not isinstance(exc, ConnectionError):
            self.last_error = _describe(exc)
        log.warning("nats.error", error=type(exc).__name__, detail=str(exc)[:200])

    async def on_disconnect(self) -> None:
        log.info("nats.disconnected")

    async def on_reconnect(self) -> None:
        log.info("nats.reconnected")

    def options(self) -> dict[str, Any]:
        return {
            "error_cb": self.on_error,
            "disconnected_cb": self.on_disconnect,
            "reconnected_cb": self.on_reconnect,
        }


def _describe(exc: Exception) -> str:
    """What went wrong, in a sentence: a TLS refusal names the certificate problem."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS: the server's certificate was refused ({exc.verify_message or exc.reason})"
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {exc.reason or exc}"
    text = str(exc).strip() or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:200]


async def connect(
    settings: NatsSettings,
    name: str,
    *,
    first_connect_timeout: float | None = None,
    **overrides: Any,
) -> Client:
    """Connect and stay connected (reconnecting forever), like every service does.

    A service waits for NATS as long as it takes; a command a person runs should not:
    `first_connect_timeout` bounds the first connection, then `NatsUnreachableError`, which
    says why the last attempt failed (a refused certificate, an authorization violation).
    `overrides` are further `nats.connect` options (e.g. `no_echo=True`).
    """
    callbacks = _Callbacks()
    options = {**connect_options(settings), **callbacks.options(), **overrides}
    opening = nats.connect(name=name, **options)
    if first_connect_timeout is None:
        return await opening
    try:
        return await asyncio.wait_for(opening, first_connect_timeout)
    except TimeoutError:
        raise NatsUnreachableError(
            settings.servers, first_connect_timeout, callbacks.last_error
        ) from None
