"""Running the ingress: its own listening socket, uvicorn, the NATS side, the ready line.

The socket is bound before anything else, so the port is known (and reserved) from the start;
with `SYNCBUS_INGRESS_PORT=0` the system picks a free one. HTTP is served at once (`/healthz`
answers while NATS is still unreachable); the JSON ready line
`{"event": "ingress.ready", "url": "http://127.0.0.1:<port>"}` goes to stderr once HTTP is up,
NATS is connected and the result index has caught up. SIGTERM or SIGINT stops it cleanly
(exit 0): uvicorn finishes the requests in flight, then the NATS connection is drained.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Callable, Generator
from typing import Any

import uvicorn

from syncbus_shared.logs import get_logger
from syncbus_shared.settings import NatsSettings

from .app import Ingress, build_app
from .auth import ApiKeys
from .metrics import IngressMetrics
from .settings import IngressSettings

log = get_logger()

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _Server(uvicorn.Server):
    """uvicorn with an event for "listening" and signals that end it without re-raising them."""

    def __init__(self, config: uvicorn.Config, *, handle_signals: bool) -> None:
        super().__init__(config)
        self.listening = asyncio.Event()
        self._handle_signals = handle_signals

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if not self._handle_signals:
            yield
            return
        loop = asyncio.get_running_loop()
        for sig in _SIGNALS:
            loop.add_signal_handler(sig, self.stop)
        try:
            yield
        finally:
            for sig in _SIGNALS:
                loop.remove_signal_handler(sig)

    def stop(self) -> None:
        self.should_exit = True

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.listening.set()


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(256)
    except OSError:
        sock.close()
        raise
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


async def serve(
    settings: IngressSettings | None = None,
    nats: NatsSettings | None = None,
    *,
    handle_signals: bool = True,
    stop: asyncio.Event | None = None,
    on_listening: Callable[[str], Any] | None = None,
    on_ready: Callable[[str], Any] | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT (with `handle_signals`) or until `stop` is set.

    `on_listening(url)` is called once HTTP is served, `on_ready(url)` once it is also ready.
    """
    settings = settings or IngressSettings()
    nats = nats or NatsSettings()
    keys = ApiKeys.from_settings(settings)
    if not keys:
        log.warning("ingress.no_api_keys", detail="every request will get 401")
    sock = bind(settings.host, settings.port)
    url = url_of(sock)
    ingress = Ingress(settings, nats, keys, IngressMetrics())
    config = uvicorn.Config(
        build_app(ingress),
        log_config=None,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=5,
        server_header=False,
    )
    server = _Server(config, handle_signals=handle_signals)
    nats_side = asyncio.create_task(ingress.run(), name="ingress-nats")

    async def announce() -> None:
        await server.listening.wait()
        log.info("ingress.listening", url=url)
        if on_listening is not None:
            on_listening(url)
        await ingress.connected.wait()
        await ingress.index.caught_up.wait()
        log.info("ingress.ready", url=url, api_keys=len(keys))
        if on_ready is not None:
            on_ready(url)

    async def stop_on_event() -> None:
        if stop is not None:
            await stop.wait()
            server.stop()

    helpers = [asyncio.create_task(announce()), asyncio.create_task(stop_on_event())]
    try:
        await server.serve(sockets=[sock])
    finally:
        for task in (*helpers, nats_side):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await ingress.aclose()
        sock.close()
        log.info("ingress.stopped")
