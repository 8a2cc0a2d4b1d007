"""NATS spans after the OpenTelemetry messaging semantic conventions, and their propagation.

    publish sync.request.toyen       PRODUCER  raw nats-py/JetStream publish (`publish_span`)
    request credentials.get.<p>.toyen CLIENT   request/reply, waits for the answer (`request_span`)
    process sync.request.*           CONSUMER  a FastStream handler (`NatsTracingMiddleware`)
    process credentials.get.<p>.*    SERVER    the same, for a request that expects a reply

(`<p>` is the requester's inbox prefix, e.g. `_INBOX_dispatcher`.)

Every span has `messaging.system=nats`, `messaging.destination.name` (the subject),
`messaging.destination.template` (the subject with its integration id as `*`),
`messaging.operation.name` (publish, request, process), `messaging.operation.type` (send or
process: `publish` is the deprecated spelling of `send`) and `messaging.message.body.size`;
`messaging.message.id` is the `Nats-Msg-Id` header when there is one (an idempotency key or a
result's stream sequence, never a secret). A process span is a child of the publish span whose
context came in the message's headers, so one trace follows a sync across services.

FastStream ships `NatsTelemetryMiddleware`, and syncbus does not use it: it names spans
`<subject> process` and sets the older `messaging.operation` instead of the
`messaging.operation.type` of today's conventions, sets no `messaging.destination.name` on
process spans, records exception messages, and leaves its context attached when a handler
raises.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, suppress
from typing import Any

from faststream import BaseMiddleware
from faststream.message import StreamMessage
from nats.aio.msg import Msg
from opentelemetry import propagate, trace
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.trace import Span, SpanContext, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from ._setup import TRACER_NAME

# Messaging attributes are still "development" in the conventions (not in the stable semconv
# module), so they are spelled here once.
MESSAGING_SYSTEM = "messaging.system"
MESSAGING_DESTINATION_NAME = "messaging.destination.name"
MESSAGING_DESTINATION_TEMPLATE = "messaging.destination.template"
MESSAGING_OPERATION_NAME = "messaging.operation.name"
MESSAGING_OPERATION_TYPE = "messaging.operation.type"
MESSAGING_MESSAGE_ID = "messaging.message.id"
MESSAGING_MESSAGE_BODY_SIZE = "messaging.message.body.size"
MESSAGING_CONSUMER_GROUP_NAME = "messaging.consumer.group.name"

NATS = "nats"
MSG_ID_HEADER = "Nats-Msg-Id"
_JETSTREAM_ACK_PREFIX = "$JS.ACK."

_tracer = trace.get_tracer(TRACER_NAME)


def destination_template(subject: str) -> str:
    """The subject's low-cardinality form: its last token (an integration id) as `*`.

    syncbus's per-integration subjects are `<area>.<kind>.<integration_id>` (topology.py), so
    `sync.request.toyen` becomes `sync.request.*`; shorter subjects are kept as they are.
    """
    head, dot, _ = subject.rpartition(".")
    return f"{head}.*" if dot and head.count(".") >= 1 else subject


def _attributes(
    subject: str,
    operation: str,
    operation_type: str,
    payload: bytes,
    headers: Mapping[str, str] | None,
) -> dict[str, AttributeValue]:
    attributes: dict[str, AttributeValue] = {
        MESSAGING_SYSTEM: NATS,
        MESSAGING_DESTINATION_NAME: subject,
        MESSAGING_DESTINATION_TEMPLATE: destination_template(subject),
        MESSAGING_OPERATION_NAME: operation,
        MESSAGING_OPERATION_TYPE: operation_type,
        MESSAGING_MESSAGE_BODY_SIZE: len(payload),
    }
    message_id = (headers or {}).get(MSG_ID_HEADER)
    if message_id:
        attributes[MESSAGING_MESSAGE_ID] = message_id
    return attributes


def current_span_context() -> SpanContext:
    """The current span's context (invalid when there is none)."""
    return trace.get_current_span().get_span_context()


@contextmanager
def resumed(span_context: SpanContext | None) -> Iterator[None]:
    """Make a span's context current again, after the span ended (for its late log lines)."""
    if span_context is None or not span_context.is_valid:
        yield
        return
    with trace.use_span(trace.NonRecordingSpan(span_context)):
        yield


def mark_failed(span: Span, exc: BaseException) -> None:
    """The error's class on the span, never its message (which may quote what it was given)."""
    span.set_attribute(ERROR_TYPE, type(exc).__qualname__)
    span.set_status(Status(StatusCode.ERROR, type(exc).__qualname__))


def tracing_on() -> bool:
    """Whether a tracer provider is installed (`setup_tracing`, or a test's)."""
    return not isinstance(
        trace.get_tracer_provider(), trace.ProxyTracerProvider | trace.NoOpTracerProvider
    )


@contextmanager
def _sending(
    operation: str,
    kind: SpanKind,
    subject: str,
    payload: bytes,
    headers: Mapping[str, str] | None,
) -> Iterator[dict[str, str]]:
    carrier = dict(headers) if headers else {}
    if not tracing_on():
        # No span to make (a 10,000-fire burst should not pay for one): only pass on the
        # context that arrived from upstream, if any.
        if trace.get_current_span().get_span_context().is_valid:
            propagate.inject(carrier)
        yield carrier
        return
    with _tracer.start_as_current_span(
        f"{operation} {subject}",
        kind=kind,
        attributes=_attributes(subject, operation, "send", payload, headers),
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        propagate.inject(carrier)
        try:
            yield carrier
        except BaseException as exc:
            mark_failed(span, exc)
            raise


def publish_span(
    subject: str, payload: bytes, headers: Mapping[str, str] | None = None
) -> AbstractContextManager[dict[str, str]]:
    """A PRODUCER span `publish <subject>` around one publish.

    Gives the headers to publish with: `headers` plus the trace context. Without a tracer
    provider no span is made, and only context that arrived from upstream is passed on.
    """
    return _sending("publish", SpanKind.PRODUCER, subject, payload, headers)


def request_span(
    subject: str, payload: bytes, headers: Mapping[str, str] | None = None
) -> AbstractContextManager[dict[str, str]]:
    """A CLIENT span `request <subject>` around a request that waits for its reply."""
    return _sending("request", SpanKind.CLIENT, subject, payload, headers)


def _process_attributes(raw: Msg, body_size: int) -> tuple[SpanKind, dict[str, AttributeValue]]:
    attributes = _attributes(raw.subject, "process", "process", b"", raw.headers)
    attributes[MESSAGING_MESSAGE_BODY_SIZE] = body_size
    reply = raw.reply or ""
    if reply.startswith(_JETSTREAM_ACK_PREFIX):
        # A JetStream delivery: its (durable) consumer is the consumer group.
        with suppress(Exception):  # an ack subject nats-py cannot read: no name
            attributes[MESSAGING_CONSUMER_GROUP_NAME] = raw.metadata.consumer
        return SpanKind.CONSUMER, attributes
    return (SpanKind.SERVER if reply else SpanKind.CONSUMER), attributes


class NatsTracingMiddleware(BaseMiddleware):
    """FastStream middleware: a `process <template>` span around every NATS handler call.

    Its parent is the context in the message's headers. A message with a reply subject (not a
    JetStream ack subject) is a request whose sender waits: its span is a SERVER span.
    """

    async def consume_scope(self, call_next: Any, msg: StreamMessage[Any]) -> Any:
        raw = msg.raw_message
        if not isinstance(raw, Msg):  # KV and object store watches: not messages of ours
            return await call_next(msg)
        kind, attributes = _process_attributes(raw, len(raw.data or b""))
        parent = propagate.extract(raw.headers or {})
        with _tracer.start_as_current_span(
            f"process {destination_template(raw.subject)}",
            context=parent,
            kind=kind,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                return await call_next(msg)
            except BaseException as exc:
                mark_failed(span, exc)
                raise
