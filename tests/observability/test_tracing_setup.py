"""`setup_tracing` follows the standard OTEL_* variables, and exports nothing unless told to."""

from __future__ import annotations

import asyncio
import json
import os
import sys

import pytest
import structlog
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from syncbus_fakes.server import serve_app
from syncbus_shared.logs import configure_logging, get_logger
from syncbus_shared.tracing import build_tracer_provider, destination_template, setup_tracing


@pytest.fixture(autouse=True)
def _no_otel_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever the developer's shell says about OpenTelemetry does not reach these tests."""
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)


def _exporters(provider: TracerProvider) -> list[object]:
    processors = provider._active_span_processor._span_processors
    return [p.span_exporter for p in processors if isinstance(p, BatchSpanProcessor)]  # type: ignore[attr-defined]


def test_with_nothing_configured_no_provider_is_built_and_nothing_is_exported() -> None:
    assert build_tracer_provider("dispatcher") is None


def test_an_otlp_endpoint_alone_turns_the_otlp_http_exporter_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    provider = build_tracer_provider("dispatcher")
    assert provider is not None
    (exporter,) = _exporters(provider)
    assert isinstance(exporter, OTLPSpanExporter)
    assert provider.resource.attributes["service.name"] == "syncbus-dispatcher"
    provider.shutdown()


def test_otel_service_name_wins_over_the_default_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "billing-export")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=test")
    provider = build_tracer_provider("dispatcher")
    assert provider is not None
    assert isinstance(_exporters(provider)[0], ConsoleSpanExporter)
    assert provider.resource.attributes["service.name"] == "billing-export"
    assert provider.resource.attributes["deployment.environment.name"] == "test"
    provider.shutdown()


@pytest.mark.parametrize(
    ("name", "value"), [("OTEL_SDK_DISABLED", "true"), ("OTEL_TRACES_EXPORTER", "none")]
)
def test_otel_sdk_disabled_or_the_none_exporter_builds_nothing_even_with_an_endpoint(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv(name, value)
    assert build_tracer_provider("dispatcher") is None


def test_setup_tracing_installs_no_provider_when_the_sdk_is_disabled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "TRUE")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    before = trace.get_tracer_provider()
    assert setup_tracing("scheduler") is None
    assert trace.get_tracer_provider() is before


@pytest.mark.parametrize(
    ("variables", "says"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "'zipkin'"),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            },
            "http/protobuf",
        ),
    ],
)
def test_an_exporter_syncbus_cannot_use_is_refused_with_a_reason_and_the_service_runs_on(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], says: str
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with structlog.testing.capture_logs() as logs:
        assert build_tracer_provider("dispatcher") is None
    (refused,) = [line for line in logs if line["event"] == "tracing.exporter_refused"]
    assert says in refused["reason"]


def test_a_log_line_inside_a_span_carries_the_trace_and_span_id_and_outside_none(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("pytest")
    tracer = TracerProvider().get_tracer("pytest")  # a provider of its own: the global is untouched
    log = get_logger()
    with tracer.start_as_current_span("work") as span:
        log.info("pytest.inside")
    log.info("pytest.outside")
    inside, outside = (json.loads(line) for line in capsys.readouterr().err.splitlines())
    context = span.get_span_context()
    assert inside["trace_id"] == format(context.trace_id, "032x")
    assert inside["span_id"] == format(context.span_id, "016x")
    assert "trace_id" not in outside


@pytest.mark.parametrize(
    ("subject", "template"),
    [
        ("sync.request.toyen-xledger", "sync.request.*"),
        ("credentials.get.toyen", "credentials.get.*"),
        ("scheduler.trigger", "scheduler.trigger"),
        ("alerts.drift.toyen", "alerts.drift.*"),
    ],
)
def test_a_subject_template_replaces_only_the_integration_id(subject: str, template: str) -> None:
    assert destination_template(subject) == template


# --- OTLP for real: a process exports to an OTLP/HTTP receiver of ours -------------------------

_EXPORTING_PROCESS = """
from syncbus_shared.logs import configure_logging
from syncbus_shared.tracing import publish_span, setup_tracing

configure_logging("pytest")
assert setup_tracing("scheduler") is not None
with publish_span("sync.request.toyen", b"{}", {"Nats-Msg-Id": "toyen:2017-01"}) as headers:
    assert headers["traceparent"].startswith("00-")
# No explicit flush: the provider flushes its batch when the process exits.
"""


async def test_a_process_with_an_otlp_endpoint_exports_its_spans_there_when_it_exits() -> None:
    received: list[bytes] = []
    arrived = asyncio.Event()

    async def traces(request: Request) -> Response:
        received.append(await request.body())
        arrived.set()
        return Response(b"", media_type="application/x-protobuf")

    receiver = Starlette(routes=[Route("/v1/traces", traces, methods=["POST"])])
    async with serve_app(receiver) as url:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = url
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _EXPORTING_PROCESS, env=env, stderr=asyncio.subprocess.PIPE
        )
        _, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0, err.decode()
        await asyncio.wait_for(arrived.wait(), 10)
    export = ExportTraceServiceRequest.FromString(received[0])
    (resource_spans,) = export.resource_spans
    resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
    assert resource["service.name"] == "syncbus-scheduler"
    (span,) = [s for scope in resource_spans.scope_spans for s in scope.spans]
    assert span.name == "publish sync.request.toyen"
    assert span.kind == span.SPAN_KIND_PRODUCER
    attributes = {a.key: a.value.string_value for a in span.attributes}
    assert attributes["messaging.system"] == "nats"
    assert attributes["messaging.message.id"] == "toyen:2017-01"
    assert '"event": "tracing.on"' in err.decode()
