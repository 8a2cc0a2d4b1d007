"""What every log line of one run carries: its key, request and integration (structlog
contextvars), bound for the run's scope and gone after it.

    with run_scope():                      # one request message or warm-up
        bind_run(key=..., request_id=..., integration_id=...)
        log.info("dispatcher.run_started")  # carries key, request_id, integration_id
        bound("integration_type")           # read back (the metrics' label)

Hook for tracing: `add_scope_binder(fn)` registers a function called when a scope opens (and
returns its remover); the fields it returns are bound too, e.g. `{"trace_id": ..., "span_id":
...}` of the span the tracing middleware made current for the message. A binder that raises
is skipped.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import structlog

__all__ = ["add_scope_binder", "bind_run", "bound", "run_scope"]

ScopeBinder = Callable[[], Mapping[str, Any]]

_BINDERS: list[ScopeBinder] = []
_TOKENS: contextvars.ContextVar[dict[str, contextvars.Token[Any]] | None] = contextvars.ContextVar(
    "syncbus_run_tokens", default=None
)


def add_scope_binder(binder: ScopeBinder) -> Callable[[], None]:
    """Bind `binder()`'s fields at the start of every run scope (the trace id hook).

    Returns the function that removes it again.
    """
    if binder not in _BINDERS:
        _BINDERS.append(binder)

    def remove() -> None:
        if binder in _BINDERS:
            _BINDERS.remove(binder)

    return remove


def bind_run(**fields: Any) -> None:
    """Bind fields to every log line until the current run scope ends."""
    tokens = _TOKENS.get()
    new = structlog.contextvars.bind_contextvars(**fields)
    if tokens is None:  # outside a scope: bound until something resets them
        return
    for name, token in new.items():
        tokens.setdefault(name, token)  # the first token restores what was there before


def bound(name: str) -> Any:
    """A field bound in the current context (None when it is not)."""
    return structlog.contextvars.get_contextvars().get(name)


@contextlib.contextmanager
def run_scope() -> Iterator[None]:
    """Fields bound inside are unbound when the scope ends (they never reach the next run)."""
    tokens: dict[str, contextvars.Token[Any]] = {}
    outer = _TOKENS.set(tokens)
    try:
        for binder in _BINDERS:
            try:
                fields = dict(binder())
            except Exception:  # noqa: S112 - a broken binder must not stop the run
                continue
            bind_run(**fields)
        yield
    finally:
        structlog.contextvars.reset_contextvars(**tokens)
        _TOKENS.reset(outer)
