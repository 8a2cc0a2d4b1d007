"""The ingress's HTTP API (Starlette) and the NATS side behind it.

    POST /v1/sync-requests             a v1 sync request as JSON -> 200 {request_id,
                                       idempotency_key, duplicate}; 400 naming what is wrong;
                                       401 without a valid API key; 413 too large; 503 no NATS
    GET  /v1/sync-results/{request_id} 200 the result (v1 JSON); 404 while there is none
    GET  /healthz                      liveness: 200 while the process serves HTTP
    GET  /readyz                       readiness: 200 only when connected to NATS and the
                                       result index has caught up, else 503
    GET  /metrics                      Prometheus text format

Every error answer is JSON: `{"error": <code>, "message": <one sentence>}`, and for a bad body
also `"problems": [{"field", "message"}]`.

A body is read strictly: UTF-8, at most `SYNCBUS_INGRESS_MAX_BODY_BYTES`, no NaN or Infinity,
objects and arrays nested at most `MAX_DEPTH` deep, and no key given twice in one object, at
any depth (`json.loads` would silently keep the last one, so what the caller's JSON library
or proxy saw first might not be what is exported).

The ingress assigns every `request_id`; a body that names one gets 400. The id is what
`GET /v1/sync-results/{request_id}` looks results up by, so a caller choosing it could reuse
another request's id (another caller's, under another idempotency key) and have its result
served, or shadowed, under that id. Refusing reuse instead (409) would need the ingress to know
every id already stored, atomically across replicas and restarts: the result index holds only
results (not requests still in flight), only `result_lookback_hours` of them, and each replica
its own copy, and nothing on the bus claims a request id atomically (the stream deduplicates by
idempotency key only). No such check is cheap and robust, so the ingress refuses the field. A
caller loses nothing: the answer gives the id, and posting the same body again within the
broker's dedup window (2 h) gets the same id back (the request already stored under the key;
later, a new id whose result is `duplicate`). `SyncRequest.request_id`
stays in the v1 contract for publishers on the bus (the scheduler, the CLI, `syncbus_client`).
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta
from typing import Any, NoReturn

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from syncbus_client import (
    InvalidRequestError,
    Problem,
    PublishError,
    SyncbusClient,
    SyncRequest,
)
from syncbus_shared.logs import get_logger
from syncbus_shared.natsclient import NatsUnreachableError, connect
from syncbus_shared.settings import NatsSettings

from .auth import ApiKeys, presented_key
from .metrics import IngressMetrics
from .results import ResultIndex
from .settings import IngressSettings

log = get_logger()

OWNED_FIELDS = frozenset(
    {
        "origin",
        "published_at",
        "scheduled_for",
        "schedule_drift_ms",
        "period_start_local",
        "period_end_local",
        "period_start_utc",
        "period_end_utc",
        "period_timezone",
    }
)
"""Fields of a sync request that syncbus sets itself (the scheduler's); a caller leaves them out."""

ASSIGNED_FIELDS = frozenset({"request_id"})
"""Fields the ingress assigns to every request it publishes (see the module docstring)."""

ACCEPTED_FIELDS = frozenset(SyncRequest.model_fields) - OWNED_FIELDS - ASSIGNED_FIELDS

MAX_DEPTH = 32
"""How deeply a body may nest objects and arrays; a sync request with inline vouchers needs 7
(request, vouchers, voucher, lines, line, dimensions, dimension)."""

_RETRY_CONNECT_SECONDS = 1.0


class Ingress:
    """The NATS side: one client connection (kept trying until up) and the result index."""

    def __init__(
        self, settings: IngressSettings, nats: NatsSettings, keys: ApiKeys, metrics: IngressMetrics
    ) -> None:
        self.settings = settings
        self.nats = nats
        self.keys = keys
        self.metrics = metrics
        self.client: SyncbusClient | None = None
        self.connected = asyncio.Event()
        self.index = ResultIndex(
            timedelta(hours=settings.result_lookback_hours), settings.result_index_size
        )
        metrics.observe_state(self.is_connected, self.is_ready, lambda: len(self.index))

    def is_connected(self) -> bool:
        return self.client is not None and self.client.is_connected

    def is_ready(self) -> bool:
        return self.is_connected() and self.index.caught_up.is_set()

    async def run(self) -> None:
        """Connect (retrying for as long as it takes), then follow the results for ever."""
        while self.client is None:
            try:
                # As its own NATS user, inbox prefix and TLS settings (SYNCBUS_NATS_*).
                nc = await connect(
                    self.nats,
                    "syncbus-ingress",
                    first_connect_timeout=self.settings.nats_connect_timeout_seconds,
                )
                self.client = SyncbusClient(nc, close_connection=True)
            except NatsUnreachableError as exc:
                log.warning("ingress.nats_unreachable", detail=str(exc))
                await asyncio.sleep(_RETRY_CONNECT_SECONDS)
        self.connected.set()
        log.info("ingress.nats_connected")
        await self.index.follow(self.client)

    async def aclose(self) -> None:
        if self.client is not None:
            await self.client.close()


def _error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Bearer realm="syncbus"'} if status == 401 else None
    return JSONResponse({"error": code, "message": message, **extra}, status, headers=headers)


class BadBodyError(Exception):
    def __init__(self, message: str, problems: tuple[Problem, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.problems = problems


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON value")


class _Repeated(dict[str, Any]):
    """A JSON object that gave `key` more than once; refused once its place is known."""

    def __init__(self, pairs: list[tuple[str, Any]], key: str) -> None:
        super().__init__(pairs)
        self.key = key


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """`object_pairs_hook`: a dict of `pairs`, marked `_Repeated` when a key comes twice."""
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            return _Repeated(pairs, key)
        seen.add(key)
    raise AssertionError("unreachable: fewer keys than pairs means a key repeats")


_CONTAINERS = (dict, list)  # a tuple: isinstance is quicker with it than with `dict | list`


def _check_shape(data: Any) -> None:
    """Refuse a key given twice in any object, or nesting deeper than `MAX_DEPTH`.

    A quick walk, level by level and without paths (about 25 ms for a 1 MiB body of voucher
    lines); only a body that offends is walked again to name where.
    """
    level: list[Any] = [data]
    for _ in range(MAX_DEPTH):
        below: list[Any] = []
        for value in level:
            if isinstance(value, _Repeated):
                _name_offence(data)
            children = value.values() if isinstance(value, dict) else value
            below.extend([child for child in children if isinstance(child, _CONTAINERS)])
        if not below:
            return
        level = below
    _name_offence(data)


def _name_offence(data: Any) -> NoReturn:
    """Raise `BadBodyError` naming the first offence in document order, with its path."""
    todo: list[tuple[Any, tuple[str, ...]]] = [(data, ())]
    while todo:
        value, path = todo.pop()
        if len(path) >= MAX_DEPTH:
            where = ".".join(path)[:80]
            raise BadBodyError(
                f"the body is nested more than {MAX_DEPTH} levels deep (at `{where}`)",
                (Problem(where, f"nested more than {MAX_DEPTH} levels deep"),),
            )
        if isinstance(value, _Repeated):
            where = ".".join((*path, value.key[:40]))[:80]
            raise BadBodyError(
                f"the body gives `{where}` twice; give each key once",
                (Problem(where, "given twice; give each key once"),),
            )
        items = value.items() if isinstance(value, dict) else enumerate(value)
        todo.extend(
            reversed(
                [
                    (child, (*path, str(key)))
                    for key, child in items
                    if isinstance(child, _CONTAINERS)
                ]
            )
        )
    raise AssertionError("unreachable: _check_shape found an offence")


def parse_sync_request(body: bytes) -> SyncRequest:
    """A request body as a `SyncRequest` (origin `application`), or `BadBodyError` saying why."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadBodyError("the body is not UTF-8 text") from None
    if not text.strip():
        raise BadBodyError("the body is empty; send a sync request as a JSON object")
    try:
        data = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_object)
    except json.JSONDecodeError as exc:
        raise BadBodyError(
            f"the body is not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None
    except ValueError as exc:
        raise BadBodyError(f"the body is not JSON ({exc})") from None
    except RecursionError:
        # The decoder's own limit (about 1,000 levels): deeper than MAX_DEPTH, so the same answer.
        raise BadBodyError(f"the body is nested more than {MAX_DEPTH} levels deep") from None
    if not isinstance(data, dict):
        raise BadBodyError(f"the body must be a JSON object, not a JSON {type(data).__name__}")
    _check_shape(data)
    owned = sorted(OWNED_FIELDS & set(data))
    if owned:
        raise BadBodyError(
            f"{', '.join(repr(f) for f in owned)} {'is' if len(owned) == 1 else 'are'} set by "
            "syncbus; leave it out",
            tuple(Problem(f, "set by syncbus; leave it out") for f in owned),
        )
    if "request_id" in data:
        raise BadBodyError(
            "'request_id' is assigned by the ingress; leave it out and take the id from the answer",
            (Problem("request_id", "assigned by the ingress; leave it out"),),
        )
    unknown = sorted(set(data) - ACCEPTED_FIELDS, key=str)
    if unknown:
        raise BadBodyError(
            f"unknown field {unknown[0][:40]!r}; a sync request has "
            f"{', '.join(sorted(ACCEPTED_FIELDS))}",
            tuple(Problem(str(f)[:40], "unknown field") for f in unknown[:10]),
        )
    try:
        return SyncRequest.model_validate({**data, "origin": "application"})
    except ValidationError as exc:
        invalid = InvalidRequestError.from_validation_error(exc)
        raise BadBodyError(str(invalid), invalid.problems) from None


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The body, or None when it is larger than `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def build_app(ingress: Ingress) -> ASGIApp:
    settings, metrics, keys = ingress.settings, ingress.metrics, ingress.keys

    def authorize(request: Request) -> str | JSONResponse:
        presented = presented_key(request.headers)
        label = keys.check(presented)
        if label is not None:
            return label
        log.warning(
            "ingress.unauthorized",
            path=request.url.path,
            remote=request.client.host if request.client else None,
            key_given=presented is not None,
        )
        if presented is None:
            return _error(
                401,
                "unauthorized",
                "an API key is required: send Authorization: Bearer <key> or X-API-Key: <key>",
            )
        return _error(401, "unauthorized", "the API key is not valid")

    async def post_sync_request(request: Request) -> Response:
        caller = authorize(request)
        if isinstance(caller, Response):
            metrics.sync_requests.labels("unauthorized").inc()
            return caller
        body = await _read_body(request, settings.max_body_bytes)
        if body is None:
            metrics.sync_requests.labels("too_large").inc()
            return _error(
                413,
                "payload_too_large",
                f"the body is larger than {settings.max_body_bytes} bytes",
            )
        try:
            sync_request = parse_sync_request(body)
        except BadBodyError as exc:
            metrics.sync_requests.labels("invalid").inc()
            log.info("ingress.sync_request_invalid", client=caller, reason=exc.message[:200])
            return _error(
                400,
                "invalid_request",
                exc.message,
                problems=[{"field": p.field, "message": p.message} for p in exc.problems],
            )
        client = ingress.client
        if client is None or not client.is_connected:
            metrics.sync_requests.labels("unavailable").inc()
            return _error(503, "unavailable", "not connected to NATS; retry with the same body")
        try:
            receipt = await client.publish_request(
                sync_request, timeout=settings.publish_timeout_seconds
            )
        except PublishError as exc:
            metrics.sync_requests.labels("unavailable").inc()
            log.warning(
                "ingress.publish_failed", key=sync_request.idempotency_key, reason=exc.reason
            )
            return _error(
                503,
                "unavailable",
                "NATS did not confirm the request; retrying with the same idempotency key is safe",
            )
        metrics.sync_requests.labels("duplicate" if receipt.duplicate else "accepted").inc()
        log.info(
            "ingress.sync_request_published",
            client=caller,
            integration_id=receipt.integration_id,
            key=receipt.idempotency_key,
            request_id=receipt.request_id,
            duplicate=receipt.duplicate,
        )
        return JSONResponse(receipt.as_dict())

    async def get_sync_result(request: Request) -> Response:
        caller = authorize(request)
        if isinstance(caller, Response):
            return caller
        request_id = request.path_params["request_id"]
        if not ingress.index.caught_up.is_set():
            return _error(503, "unavailable", "results are still being loaded; retry shortly")
        found = ingress.index.get(request_id)
        if found is None:
            return _error(404, "not_found", f"no result for request {request_id[:64]!r} yet")
        return Response(found, media_type="application/json")

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        body = {
            "status": "ready" if ingress.is_ready() else "not_ready",
            "nats": "connected" if ingress.is_connected() else "disconnected",
            "results": "caught_up" if ingress.index.caught_up.is_set() else "loading",
        }
        return JSONResponse(body, 200 if ingress.is_ready() else 503)

    async def metrics_endpoint(_: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def http_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        message = {
            404: "no such endpoint",
            405: "this endpoint does not take that method",
        }.get(exc.status_code, str(exc.detail))
        return _error(exc.status_code, code, message)

    routes = [
        Route("/v1/sync-requests", post_sync_request, methods=["POST"]),
        Route("/v1/sync-results/{request_id}", get_sync_result, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error})
    return _Measured(app, routes, metrics)


class _Measured:
    """ASGI middleware: count every answer by route template (not raw path), method, status."""

    def __init__(self, app: Starlette, routes: list[Route], metrics: IngressMetrics) -> None:
        self.app = app
        self.routes = routes
        self.metrics = metrics

    def _route(self, scope: Scope) -> str:
        for route in self.routes:
            match, _ = route.matches(scope)
            if match is not Match.NONE:
                return route.path
        return "unmatched"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route, started, status = self._route(scope), time.perf_counter(), 500

        async def measure(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, measure)
        finally:
            self.metrics.http_requests.labels(route, scope["method"], str(status)).inc()
            self.metrics.http_duration.labels(route).observe(time.perf_counter() - started)
