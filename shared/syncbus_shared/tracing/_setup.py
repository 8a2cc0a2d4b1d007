"""The process's tracer provider, configured by the standard `OTEL_*` variables.

    OTEL_SDK_DISABLED=true                nothing: every span is the API's no-op
    OTEL_TRACES_EXPORTER                  otlp, console, none, or a comma-separated list; unset:
                                          otlp when an OTLP endpoint is set, otherwise none
    OTEL_EXPORTER_OTLP_ENDPOINT           e.g. http://collector:4318 (traces go to /v1/traces)
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT    the full traces URL instead
    OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL  http/protobuf (the one syncbus ships)
    OTEL_EXPORTER_OTLP_HEADERS, _TIMEOUT, _COMPRESSION, OTEL_BSP_*, OTEL_TRACES_SAMPLER(_ARG)
                                          read by the SDK and the exporter themselves
    OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
                                          win over the default `syncbus-<service>`

The specification's default exporter is `otlp`; syncbus exports only when told where to, so a
service started with nothing configured builds no SDK provider at all (near-zero cost). A
misconfigured exporter is logged and left out: tracing never stops a service.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, OTELResourceDetector, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
)

from ..logs import get_logger

log = get_logger()

TRACER_NAME = "syncbus"
"""The instrumentation scope of every span syncbus itself makes."""

OTLP_PROTOCOL = "http/protobuf"


class TracingConfigError(ValueError):
    """An `OTEL_*` variable names something syncbus cannot export to."""


def _is_true(value: str | None) -> bool:
    return (value or "").strip().lower() == "true"


def exporter_names(environ: Mapping[str, str]) -> list[str]:
    """Which exporters the environment asks for (empty: export nothing)."""
    raw = environ.get("OTEL_TRACES_EXPORTER", "").strip()
    if not raw:
        endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get(
            "OTEL_EXPORTER_OTLP_ENDPOINT"
        )
        return ["otlp"] if endpoint else []
    names = [part.strip().lower() for part in raw.split(",") if part.strip()]
    return [] if "none" in names else list(dict.fromkeys(names))


def _exporter(name: str, environ: Mapping[str, str]) -> SpanExporter:
    if name == "otlp":
        protocol = (
            environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
            or OTLP_PROTOCOL
        ).strip()
        if protocol != OTLP_PROTOCOL:
            raise TracingConfigError(
                f"the OTLP protocol {protocol!r} is not supported: syncbus exports traces with "
                f"{OTLP_PROTOCOL} (set OTEL_EXPORTER_OTLP_PROTOCOL={OTLP_PROTOCOL})"
            )
        # Imported here: protobuf and requests load only in a process that exports.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
            OTLPSpanExporter,
        )

        return OTLPSpanExporter()
    if name == "console":
        return ConsoleSpanExporter()
    raise TracingConfigError(
        f"OTEL_TRACES_EXPORTER names {name!r}; syncbus exports to otlp, console or none"
    )


def _resource(service_name: str) -> Resource:
    default = Resource.create(
        {SERVICE_NAME: f"syncbus-{service_name}", "service.namespace": "syncbus"}
    )
    # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win over syncbus's defaults.
    return default.merge(OTELResourceDetector().detect())


def build_tracer_provider(
    service_name: str, environ: Mapping[str, str] | None = None
) -> TracerProvider | None:
    """The provider the environment asks for, or None when nothing is to be exported."""
    env = os.environ if environ is None else environ
    if _is_true(env.get("OTEL_SDK_DISABLED")):
        return None
    exporters: list[SpanExporter] = []
    for name in exporter_names(env):
        try:
            exporters.append(_exporter(name, env))
        except TracingConfigError as exc:
            log.warning("tracing.exporter_refused", exporter=name, reason=str(exc))
    if not exporters:
        return None
    provider = TracerProvider(resource=_resource(service_name))
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def setup_tracing(service_name: str) -> TracerProvider | None:
    """Install the process's tracer provider from `OTEL_*` (once per process, at start).

    Returns it, or None when nothing is exported (the API's no-op spans stay in place, and
    trace context arriving in headers is still passed on unchanged). Spans still buffered are
    flushed when the process exits.
    """
    provider = build_tracer_provider(service_name)
    if provider is None:
        log.debug("tracing.off", service=service_name)
        return None
    trace.set_tracer_provider(provider)
    resource = provider.resource.attributes
    log.info(
        "tracing.on",
        service_name=str(resource.get(SERVICE_NAME, "")),
        exporters=exporter_names(os.environ),
    )
    return provider
