"""Counting every vendor HTTP request in one place: the client an adapter is given.

    http = observe_requests(traced_http_client(...), "xledger", metrics.vendor_request)

`observe_requests` adds httpx event hooks (public API, so it composes with whatever transport
the client has, e.g. the tracing one) that report each answered request, once its headers
are in, as `observer(vendor, status, seconds)` with the HTTP status code as text ("200",
"429", "503"). Adapters never see the difference: they call `context.http` as before.

Only answers are seen: a request that got none (connection refused, timeout) raises inside the
adapter, which turns it into a retryable or ambiguous `AdapterError`, counted by the dispatcher
as a retry. Only the outer status is seen (a Business Central `$batch` answers 200 with its
own statuses inside). Nothing about the request (URL, headers, body) is reported.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

import httpx

__all__ = ["VendorRequestObserver", "observe_requests"]

VendorRequestObserver = Callable[[str, str, float], None]
"""observer(vendor, status, seconds)"""

_STARTED = "syncbus.started"


def observe_requests(
    client: httpx.AsyncClient, vendor: str, observer: VendorRequestObserver | None
) -> httpx.AsyncClient:
    """`client`, whose answered requests `observer` now sees (unchanged without an observer)."""
    if observer is None:
        return client

    async def started(request: httpx.Request) -> None:
        request.extensions[_STARTED] = time.perf_counter()

    async def answered(response: httpx.Response) -> None:
        began = response.request.extensions.get(_STARTED)
        seconds = time.perf_counter() - began if isinstance(began, float) else 0.0
        with contextlib.suppress(Exception):  # counting must never break a vendor call
            observer(vendor, str(response.status_code), seconds)

    hooks = client.event_hooks
    client.event_hooks = {
        "request": [*hooks.get("request", []), started],
        "response": [*hooks.get("response", []), answered],
    }
    return client
