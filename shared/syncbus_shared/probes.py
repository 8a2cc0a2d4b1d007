"""Liveness, readiness and Prometheus metrics of one service, on a port of its own.

    probes = Probes("dispatcher", metrics.registry, ProbeSettings())
    probes.add_check("nats", nats_check(broker))
    probes.add_refresh(metrics.refresh_consumer_lag)     # awaited before each /metrics
    probes.attach(app)                                   # last, after the service's own hooks

    GET /livez    200 {"status": "alive", "loop_lag_seconds": 0.001} while the event loop turns
                  (the answer itself comes from the loop; 503 if its heartbeat task died)
    GET /readyz   200 {"status": "ready"} once the service has started and every check passes;
                  503 {"status": "not_ready", "reason": "nats: disconnected", "checks": {...}}
                  otherwise (also from the moment shutdown begins)
    GET /metrics  the service's own registry in the Prometheus text format (OpenMetrics when
                  the scraper asks for it)

Settings (`SYNCBUS_PROBE_`): `PORT` (unset: the service's fixed port in `DEFAULT_PORTS`;
`0`: any free port; either way the URL is logged as `probes.listening`), `HOST` (default
`0.0.0.0`: kubelet and Prometheus reach the pod's address, never its loopback) and `ENABLED`
(`false`: no server). A service run as a process (`python -m syncbus_<name>`) serves probes;
`build_app()` without `probes=` (tests, the AsyncAPI generator) serves none.

The server is uvicorn on a socket bound before the broker connects, so `/livez` answers while
NATS is still unreachable and a port in use stops the start with a sentence. It runs as a task
of the service's event loop, never takes over its signals, and stops after the broker closed.
A check is a plain function that returns None (fine) or a short reason; it must not block.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import Awaitable, Callable, Generator
from typing import Any

import uvicorn
from faststream import FastStream
from faststream.nats import NatsBroker
from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.exposition import choose_encoder
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .logs import get_logger

__all__ = [
    "DEFAULT_PORTS",
    "Check",
    "ProbeBindError",
    "ProbeSettings",
    "Probes",
    "nats_check",
]

log = get_logger()

DEFAULT_PORTS: dict[str, int] = {
    "scheduler": 9310,
    "dispatcher": 9311,
    "credentials": 9312,
    "health-monitor": 9313,
}
"""Each service's probe port when `SYNCBUS_PROBE_PORT` is unset: distinct, so that all four run
side by side on one host (compose, a VM) without configuration, and fixed, so that manifests
and scrape configs can name them."""

Check = Callable[[], str | None]
"""Returns None when the dependency is fine, else a short reason (no secret, one line)."""

Refresh = Callable[[], Awaitable[None]]

_HEARTBEAT_SECONDS = 1.0
_REFRESH_TIMEOUT_SECONDS = 2.0
_STOP_TIMEOUT_SECONDS = 5.0
_JSON = "application/json"


class ProbeSettings(BaseSettings):
    """Where a service serves /livez, /readyz and /metrics. Env prefix `SYNCBUS_PROBE_`."""

    model_config = SettingsConfigDict(env_prefix="SYNCBUS_PROBE_")

    enabled: bool = Field(default=True, description="Serve the probe endpoints at all.")
    host: str = Field(
        default="0.0.0.0",  # noqa: S104 - kubelet and Prometheus connect to the pod's address
        description="Address to listen on (127.0.0.1 to keep it on this host).",
    )
    port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="TCP port; unset: the service's own default (scheduler 9310, dispatcher "
        "9311, credentials 9312, health-monitor 9313); 0: any free port, logged.",
    )

    def port_for(self, service: str) -> int:
        if self.port is not None:
            return self.port
        return DEFAULT_PORTS.get(service, 0)


class ProbeBindError(RuntimeError):
    """The probe port could not be opened (in use, not permitted, no such address)."""


def nats_check(broker: NatsBroker) -> Check:
    """Ready while the broker's nats-py client is connected (not while it reconnects)."""

    def check() -> str | None:
        try:
            nc = broker.connection
        except Exception:
            return "not connected yet"
        if nc.is_connected:
            return None
        if nc.is_reconnecting:
            return "disconnected, reconnecting"
        if nc.is_closed:
            return "connection closed"
        return "not connected"

    return check


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(64)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)  # noqa: FBT003 - the socket API's own flag
    return sock


def _url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    if host in {"0.0.0.0", "::"}:  # noqa: S104 - reading the address, not choosing it
        host = "127.0.0.1" if host == "0.0.0.0" else "::1"  # noqa: S104
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


class _Server(uvicorn.Server):
    """uvicorn that leaves SIGTERM and SIGINT to the service (FastStream handles them)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class Probes:
    """The probe server of one service and the state it reports."""

    def __init__(
        self,
        service: str,
        registry: CollectorRegistry,
        settings: ProbeSettings | None = None,
    ) -> None:
        self.service = service
        self.registry = registry
        self.settings = settings or ProbeSettings()
        self.url: str | None = None
        self._checks: dict[str, Check] = {}
        self._refreshes: list[Refresh] = []
        self._started = False
        self._stopping = False
        self._lag = 0.0
        self._heartbeat: asyncio.Task[None] | None = None
        self._server: _Server | None = None
        self._serving: asyncio.Task[None] | None = None
        self._sock: socket.socket | None = None
        prefix = f"syncbus_{service.replace('-', '_')}"
        Gauge(f"{prefix}_ready", "1 while /readyz answers 200.", registry=registry).set_function(
            lambda: float(self.readiness()[0])
        )
        self._dependency = Gauge(
            f"{prefix}_dependency_up",
            "1 while a readiness check passes, by check (nats, vault).",
            ("dependency",),
            registry=registry,
        )
        Gauge(
            f"{prefix}_event_loop_lag_seconds",
            "How late the event loop ran a 1 s heartbeat, at its last beat.",
            registry=registry,
        ).set_function(lambda: self._lag)

    # --- what is reported ------------------------------------------------------------------
    def add_check(self, name: str, check: Check) -> None:
        self._checks[name] = check
        self._dependency.labels(name).set_function(lambda: float(self._run_check(check) is None))

    def add_refresh(self, refresh: Refresh) -> None:
        """An async step run before each scrape (bounded in time; a failure is logged)."""
        self._refreshes.append(refresh)

    @staticmethod
    def _run_check(check: Check) -> str | None:
        try:
            return check()
        except Exception as exc:  # a broken check says so instead of killing the probe
            return f"check failed: {type(exc).__name__}"

    def readiness(self) -> tuple[bool, dict[str, str]]:
        """Whether the service is ready, and each check's state ("ok" or its reason)."""
        states: dict[str, str] = {}
        if self._stopping:
            states["service"] = "shutting down"
        elif not self._started:
            states["service"] = "starting"
        else:
            states["service"] = "ok"
        for name, check in self._checks.items():
            states[name] = self._run_check(check) or "ok"
        return all(state == "ok" for state in states.values()), states

    def liveness(self) -> tuple[bool, dict[str, Any]]:
        beating = self._heartbeat is not None and not self._heartbeat.done()
        body: dict[str, Any] = {
            "status": "alive" if beating else "stalled",
            "loop_lag_seconds": round(self._lag, 4),
        }
        return beating, body

    # --- HTTP -----------------------------------------------------------------------------
    def asgi(self) -> Starlette:
        async def livez(_: Request) -> Response:
            alive, body = self.liveness()
            return _json(body, 200 if alive else 503)

        async def readyz(_: Request) -> Response:
            ready, states = self.readiness()
            if ready:
                return _json({"status": "ready"}, 200)
            name, reason = next((n, s) for n, s in states.items() if s != "ok")
            return _json(
                {"status": "not_ready", "reason": f"{name}: {reason}", "checks": states}, 503
            )

        async def metrics(request: Request) -> Response:
            await self._refresh()
            encoder, content_type = choose_encoder(request.headers.get("accept", ""))
            return Response(encoder(self.registry), media_type=content_type)

        return Starlette(
            routes=[
                Route("/livez", livez, methods=["GET"]),
                Route("/readyz", readyz, methods=["GET"]),
                Route("/metrics", metrics, methods=["GET"]),
            ]
        )

    async def _refresh(self) -> None:
        for refresh in self._refreshes:
            try:
                await asyncio.wait_for(refresh(), _REFRESH_TIMEOUT_SECONDS)
            except Exception as exc:
                log.debug("probes.refresh_failed", service=self.service, error=type(exc).__name__)

    # --- lifecycle ------------------------------------------------------------------------
    def attach(self, app: FastStream) -> None:
        """Serve from before the broker connects until after it closed; call it last."""

        async def start() -> None:
            await self.start()

        async def started() -> None:
            self._started = True

        async def stopping() -> None:
            self._stopping = True

        async def stop() -> None:
            await self.stop()

        app.on_startup(start)
        app.after_startup(started)
        app.on_shutdown(stopping)
        app.after_shutdown(stop)

    async def start(self) -> None:
        self._heartbeat = asyncio.create_task(self._beat(), name=f"{self.service}-heartbeat")
        if not self.settings.enabled:
            log.info("probes.disabled", service=self.service)
            return
        host, port = self.settings.host, self.settings.port_for(self.service)
        try:
            self._sock = _bind(host, port)
        except OSError as exc:
            message = (
                f"the {self.service} cannot serve its probes on {host}:{port} "
                f"({exc.strerror or exc}); set SYNCBUS_PROBE_PORT to a free port (0: any), "
                "or SYNCBUS_PROBE_ENABLED=false"
            )
            log.error("probes.bind_failed", service=self.service, host=host, port=port)  # noqa: TRY400
            raise ProbeBindError(message) from None
        self.url = _url_of(self._sock)
        config = uvicorn.Config(
            self.asgi(),
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
            server_header=False,
        )
        self._server = _Server(config)
        self._serving = asyncio.create_task(
            self._server.serve(sockets=[self._sock]), name=f"{self.service}-probes"
        )
        log.info("probes.listening", service=self.service, url=self.url)

    async def stop(self) -> None:
        self._stopping = True
        if self._server is not None and self._serving is not None:
            self._server.should_exit = True
            try:
                await asyncio.wait_for(asyncio.shield(self._serving), _STOP_TIMEOUT_SECONDS)
            except (TimeoutError, Exception):
                self._serving.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._serving
        if self._sock is not None:
            self._sock.close()
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        self._server = self._serving = self._sock = None

    async def _beat(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(_HEARTBEAT_SECONDS)
            self._lag = max(0.0, time.monotonic() - before - _HEARTBEAT_SECONDS)


def _json(body: dict[str, Any], status: int) -> Response:
    return Response(json.dumps(body), status_code=status, media_type=_JSON)
