"""Connecting to NATS the same way in every service: reconnect forever, log state changes."""

from __future__ import annotations

import asyncio

import nats
from nats.aio.client import Client

from .logs import get_logger
from .settings import NatsSettings

log = get_logger()


class NatsUnreachableError(ConnectionError):
    def __init__(self, servers: list[str], seconds: float) -> None:
        super().__init__(f"cannot reach NATS at {', '.join(servers)} within {seconds:.0f} s")


async def connect(
    settings: NatsSettings, name: str, *, first_connect_timeout: float | None = None
) -> Client:
    """Connect and stay connected (reconnecting forever), like every service does.

    A service waits for NATS as long as it takes; a command a person runs should not:
    `first_connect_timeout` bounds the first connection, then `NatsUnreachableError`.
    """
    if first_connect_timeout is not None:
        try:
            return await asyncio.wait_for(connect(settings, name), first_connect_timeout)
        except TimeoutError:
            raise NatsUnreachableError(settings.servers, first_connect_timeout) from None

    async def on_error(exc: Exception) -> None:
        log.warning("nats.error", error=type(exc).__name__, detail=str(exc)[:200])

    async def on_disconnect() -> None:
        log.info("nats.disconnected")

    async def on_reconnect() -> None:
        log.info("nats.reconnected")

    options: dict[str, object] = {}
    if settings.user:
        options["user"] = settings.user
    if settings.password is not None:
        options["password"] = settings.password.get_secret_value()
    return await nats.connect(
        servers=settings.servers,
        name=name,
        connect_timeout=settings.connect_timeout_seconds,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        allow_reconnect=True,
        error_cb=on_error,
        disconnected_cb=on_disconnect,
        reconnected_cb=on_reconnect,
        **options,
    )
