"""Serving a fake: uvicorn on a socket we bind ourselves, plus control over the connection.

    async with serve_app(app) as url:          # tests: real HTTP over loopback, a free port
        ...
    await serve_until_signalled(app, host, port, on_ready=print_ready_line)   # `python -m`

Both bind the socket before uvicorn starts (port 0 = a free port, known at once), run uvicorn
in the current event loop, and report the base URL only after uvicorn's startup has finished,
so a caller never races the listener.

Fakes must be able to misbehave at the transport level, for example commit a posting and then
drop the connection without answering. ASGI has no message for that, so `ConnectionControlApp`
(a Starlette app) puts a `ConnectionControl` into each HTTP scope: `drop()` aborts the TCP
connection (uvicorn's transport, when reachable; otherwise it starts a response and breaks it
off, which a client sees the same way: a protocol error while reading), and
`wait_disconnected(seconds)` lets a stalled handler notice that the client gave up.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Literal

import uvicorn
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "ConnectionControl",
    "ConnectionControlApp",
    "DropConnection",
    "bind_socket",
    "connection_control",
    "serve_app",
    "serve_until_signalled",
]

_SCOPE_KEY = "syncbus.connection_control"


class ConnectionControl:
    """What a handler may do to the connection its request came on."""

    def __init__(self, receive: Receive, send: Send) -> None:
        self._receive = receive
        self._send = send
        self.disconnected = False

    async def _next_message(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.disconnect":
            self.disconnected = True
        return message

    async def wait_disconnected(self, seconds: float) -> bool:
        """Wait up to `seconds` for the client to go away; True if it did."""
        if self.disconnected:
            return True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                while not self.disconnected:
                    await self._next_message()
        return self.disconnected

    async def drop(self) -> None:
        """Close the connection without sending a byte of the response."""
        owner = getattr(self._send, "__self__", None)
        transport = getattr(owner, "transport", None)
        if isinstance(transport, asyncio.WriteTransport):
            transport.abort()
            await self.wait_disconnected(1.0)
            return
        # Not uvicorn's cycle: start a response that promises a body and never finish it.
        await self._send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")],
            }
        )
        await self._send({"type": "http.response.body", "body": b"{", "more_body": True})
        raise _AbandonResponseError


class _AbandonResponseError(Exception):
    """Raised after a deliberately broken-off response; the server then closes the socket."""


def connection_control(scope: Scope) -> ConnectionControl | None:
    control = scope.get(_SCOPE_KEY)
    return control if isinstance(control, ConnectionControl) else None


class ConnectionControlApp(Starlette):
    """A Starlette app whose HTTP handlers can reach their connection (see module docstring)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope[_SCOPE_KEY] = ConnectionControl(receive, send)
        await super().__call__(scope, receive, send)


class DropConnection(Response):
    """A response that is never sent: the connection is dropped instead."""

    def __init__(self) -> None:
        super().__init__(status_code=200)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # noqa: ARG002
        control = connection_control(scope)
        if control is None:
            raise RuntimeError("DropConnection needs an app built on ConnectionControlApp")
        await control.drop()


def bind_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A bound TCP socket (uvicorn calls listen). Port 0 picks a free port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted connections only when the
    # socket's proto says TCP; with proto 0, Nagle plus delayed ACKs add ~40 ms per request.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def base_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


class _Server(uvicorn.Server):
    """uvicorn that leaves signal handling to us and tells when startup has finished."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self.should_exit = True
        self._stopping.set()

    async def main_loop(self) -> None:
        # uvicorn's loop, but a stop wakes it at once instead of at the next 0.1 s tick.
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + 1) % 864_000
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.1):
                    await self._stopping.wait()
            should_exit = await self.on_tick(counter)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def _busy(self) -> bool:
        return bool(self.server_state.connections or self.server_state.tasks)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # Connections a client has just closed are gone after a few loop iterations.
        for _ in range(20):
            if not self._busy():
                break
            await asyncio.sleep(0.002)
        if self._busy():
            await super().shutdown(sockets=sockets)  # graceful: let requests in flight finish
            return
        # Nothing in flight: uvicorn's steps without its fixed 0.1 s grace period.
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for server in self.servers:
            await server.wait_closed()
        if not self.force_exit:
            await self.lifespan.shutdown()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self.ready.set()


def _config(
    app: ASGIApp, *, log_level: str, lifespan: Literal["auto", "on", "off"], graceful: int
) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        http="h11",
        ws="none",
        lifespan=lifespan,
        interface="asgi3",
        log_config=None,
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=graceful,
    )


async def _run(server: _Server, sock: socket.socket) -> None:
    try:
        await server.serve(sockets=[sock])
    except SystemExit as exc:  # uvicorn exits the process when startup fails; we do not
        raise RuntimeError(f"the server failed to start (uvicorn exit code {exc.code})") from None


async def _start(server: _Server, sock: socket.socket) -> asyncio.Task[None]:
    task = asyncio.create_task(_run(server, sock))
    ready = asyncio.create_task(server.ready.wait())
    await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
    if not server.ready.is_set():
        ready.cancel()
        await task  # raises the startup failure, if there was one
        raise RuntimeError("the server stopped before it was ready")
    return task


@contextlib.asynccontextmanager
async def serve_app(
    app: ASGIApp,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    log_level: str = "warning",
    lifespan: Literal["auto", "on", "off"] = "auto",
    graceful_shutdown_seconds: int = 2,
) -> AsyncIterator[str]:
    """Run `app` in this event loop; yield its base URL once it accepts connections."""
    sock = bind_socket(host, port)
    url = base_url(sock)
    server = _Server(
        _config(app, log_level=log_level, lifespan=lifespan, graceful=graceful_shutdown_seconds)
    )
    try:
        task = await _start(server, sock)
        try:
            yield url
        finally:
            server.stop()
            await task
    finally:
        sock.close()


async def serve_until_signalled(
    app: ASGIApp,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    on_ready: Callable[[str], Any],
    log_level: str = "info",
    graceful_shutdown_seconds: int = 5,
) -> None:
    """Serve until SIGTERM or SIGINT, then shut down gracefully (a second SIGINT forces it)."""
    sock = bind_socket(host, port)
    url = base_url(sock)
    server = _Server(
        _config(app, log_level=log_level, lifespan="auto", graceful=graceful_shutdown_seconds)
    )
    loop = asyncio.get_running_loop()

    def stop(sig: signal.Signals) -> None:
        if server.should_exit and sig == signal.SIGINT:
            server.force_exit = True
        server.stop()

    handled = (signal.SIGTERM, signal.SIGINT)
    for sig in handled:
        loop.add_signal_handler(sig, stop, sig)
    try:
        task = await _start(server, sock)
        on_ready(url)
        await task
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
        sock.close()
