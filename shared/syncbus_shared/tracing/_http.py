"""Vendor HTTP calls as CLIENT spans after the HTTP semantic conventions (stable).

    http = traced_http_client(timeout=httpx.Timeout(10), limits=httpx.Limits(...))

Each request is one span named by its method (`POST`), with `http.request.method`,
`server.address`, `server.port`, `url.scheme`, `url.full`, `http.response.status_code`,
`network.protocol.version` and, when it failed, `error.type` (the status code from 400 up, or
the exception's class). `url.full` carries no user info and no query value: every value of the
query is `REDACTED` (its names stay, so an OData `$filter` still shows). No header and no body
is recorded. The trace context is sent in the request's headers (W3C `traceparent`).

Why not `opentelemetry-instrumentation-httpx`: it is a 0.x beta that records the older
`http.method`/`http.url` attributes unless `OTEL_SEMCONV_STABILITY_OPT_IN` says otherwise,
redacts only a fixed list of query names, and patches httpx globally when used as an
instrumentor; a transport of our own is short and does exactly this.
"""

from __future__ import annotations

import httpx
from opentelemetry import propagate, trace
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.http_attributes import (
    HTTP_REQUEST_METHOD,
    HTTP_RESPONSE_STATUS_CODE,
)
from opentelemetry.semconv.attributes.network_attributes import NETWORK_PROTOCOL_VERSION
from opentelemetry.semconv.attributes.server_attributes import SERVER_ADDRESS, SERVER_PORT
from opentelemetry.semconv.attributes.url_attributes import URL_FULL, URL_SCHEME
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from ._messaging import mark_failed
from ._setup import TRACER_NAME

REDACTED = "REDACTED"
_HTTPX_DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)
_DEFAULT_PORTS = {"http": 80, "https": 443}
_KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)

_tracer = trace.get_tracer(TRACER_NAME)


def redacted_url(url: httpx.URL) -> str:
    """`url` without user info, fragment or any query value."""
    bare = url.copy_with(userinfo=b"", query=None, fragment=None)
    if not url.query:
        return str(bare)
    names = [name for name, _ in url.params.multi_items()]
    query = "&".join(f"{name}={REDACTED}" for name in names)
    return f"{bare}?{query}"


class TracingTransport(httpx.AsyncBaseTransport):
    """Wraps another transport: one CLIENT span per request, trace context in its headers."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        method = request.method.upper()
        known = method in _KNOWN_METHODS
        attributes: dict[str, AttributeValue] = {
            HTTP_REQUEST_METHOD: method if known else "_OTHER",
            SERVER_ADDRESS: url.host,
            SERVER_PORT: url.port or _DEFAULT_PORTS.get(url.scheme, 0),
            URL_SCHEME: url.scheme,
            URL_FULL: redacted_url(url),
        }
        with _tracer.start_as_current_span(
            method if known else "HTTP",
            kind=SpanKind.CLIENT,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            propagate.inject(request.headers)
            try:
                response = await self._inner.handle_async_request(request)
            except BaseException as exc:
                mark_failed(span, exc)
                raise
            status = response.status_code
            span.set_attribute(HTTP_RESPONSE_STATUS_CODE, status)
            version = response.extensions.get("http_version")
            if isinstance(version, bytes) and version.startswith(b"HTTP/"):
                span.set_attribute(NETWORK_PROTOCOL_VERSION, version[5:].decode("ascii"))
            if status >= 400:
                span.set_attribute(ERROR_TYPE, str(status))
                span.set_status(Status(StatusCode.ERROR))
            return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def traced_http_client(
    *, timeout: httpx.Timeout | float, limits: httpx.Limits | None = None
) -> httpx.AsyncClient:
    """An `httpx.AsyncClient` whose every request is a CLIENT span (vendors, token endpoints)."""
    inner = httpx.AsyncHTTPTransport(limits=limits or _HTTPX_DEFAULT_LIMITS)
    return httpx.AsyncClient(timeout=timeout, transport=TracingTransport(inner))
