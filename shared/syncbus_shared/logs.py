"""Structured JSON logs with dotted event names, one line per event, never a secret.

    log = get_logger()
    log.info("dispatcher.run_claimed", key=key, attempt=1)

Values that are pydantic `SecretStr`/`SecretBytes` are masked by a processor, and so is any
field whose name says it holds a secret, so that a careless `log.info(..., token=t)` cannot leak.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog
from opentelemetry import trace
from pydantic import SecretBytes, SecretStr

_SECRET_NAMES = ("secret", "password", "token", "authorization", "api_key", "apikey")
_MASK = "**********"


def _mask(value: Any) -> Any:
    if isinstance(value, SecretStr | SecretBytes):
        return _MASK
    return value


def redact_secrets(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for name, value in list(event.items()):
        lowered = name.lower()
        if any(part in lowered for part in _SECRET_NAMES) and value is not None:
            if not isinstance(value, bool | int | float):
                event[name] = _MASK
        else:
            event[name] = _mask(value)
    return event


def add_trace_id(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """The current span's trace id (and span id), so a run's log lines and its trace join up."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event.setdefault("trace_id", format(context.trace_id, "032x"))
        event.setdefault("span_id", format(context.span_id, "016x"))
    return event


_TRACEBACKS = structlog.processors.ExceptionRenderer(
    structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
)


def configure_logging(service: str, level: str = "INFO") -> None:
    """JSON lines on stderr for this process; stdlib loggers (httpx, nats, faststream) too."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        add_trace_id,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
        redact_secrets,
    ]
    structlog.configure(
        processors=[
            *shared,
            # Tracebacks as data, but never the frames' local variables: a local may hold a
            # secret in the clear (structlog's `dict_tracebacks` shows them all).
            _TRACEBACKS,
            structlog.processors.EventRenamer("event"),
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    structlog.contextvars.bind_contextvars(service=service)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.JSONRenderer(),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    # httpx logs one INFO line per request; keep it at WARNING so logs show state, not traffic.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)


def get_logger(**initial: Any) -> Any:
    return structlog.get_logger(**initial)
