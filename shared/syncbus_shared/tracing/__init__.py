"""OpenTelemetry traces: one trace follows a sync across every NATS hop and vendor HTTP call.

    setup_tracing("dispatcher")          # once, at a service's start (its `__main__`)

    with publish_span(subject, body, {"Nats-Msg-Id": key}) as headers:
        await nc.publish(subject, body, headers=headers)           # raw nats-py: PRODUCER span
    with request_span(subject, body) as headers:
        reply = await nc.request(subject, body, headers=headers)   # request/reply: CLIENT span
    NatsBroker(..., middlewares=(NatsTracingMiddleware,))          # FastStream: process spans
    traced_http_client(timeout=..., limits=...)                    # vendor calls: CLIENT spans

The trace context travels as W3C `traceparent`/`tracestate` in NATS headers and HTTP headers
(the propagators of `OTEL_PROPAGATORS`, W3C trace context and baggage by default). Export is
configured by the standard `OTEL_*` variables; with none set nothing is exported and every
span is the API's no-op. No span carries a message body, a header value other than the trace
context, a query value or an exception message: only names, sizes, ids and error classes.

Modules: `_setup` (the tracer provider from `OTEL_*`), `_messaging` (NATS spans, messaging
semantic conventions), `_http` (httpx client spans, HTTP semantic conventions).
"""

from ._http import TracingTransport, redacted_url, traced_http_client
from ._messaging import (
    NatsTracingMiddleware,
    current_span_context,
    destination_template,
    publish_span,
    request_span,
    resumed,
)
from ._setup import TRACER_NAME, build_tracer_provider, setup_tracing

__all__ = [
    "TRACER_NAME",
    "NatsTracingMiddleware",
    "TracingTransport",
    "build_tracer_provider",
    "current_span_context",
    "destination_template",
    "publish_span",
    "redacted_url",
    "request_span",
    "resumed",
    "setup_tracing",
    "traced_http_client",
]
