"""Reading an integration's health from anywhere (the dispatcher, the CLI), and the one rule
that acts on it: a sync of an integration unhealthy for an `auth` reason fails at once.

    status = await current_health(js, integration_id)
    if status is not None and status.fails_fast():
        error = fail_fast_error(status)   # ErrorInfo for the `failed` result; no vendor call
"""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError

from . import topology as t
from .contracts import ErrorClass, ErrorInfo, HealthStatus

FAILED_FAST_CODE = "SYNCBUS.FAILED_FAST_UNHEALTHY_AUTH"
"""The `vendor_code` of a result failed fast: the monitor knows no vendor was called."""


async def _get(js: JetStreamContext, key: str) -> bytes | None:
    kv = await js.key_value(t.KV_HEALTH)
    try:
        entry = await kv.get(key)
    except KeyNotFoundError:
        return None
    return entry.value or None


async def current_health(js: JetStreamContext, integration_id: str) -> HealthStatus | None:
    """The integration's current status from KV `integration-health` (None: never observed)."""
    value = await _get(js, integration_id)
    return HealthStatus.from_bytes(value) if value else None


def fail_fast_error(status: HealthStatus) -> ErrorInfo:
    """The error of a sync the dispatcher fails at once because `status.fails_fast()`.

    Its `vendor_code` (`FAILED_FAST_CODE`) tells the monitor that no vendor was called.
    """
    since = status.checked_at.strftime("%Y-%m-%d %H:%MZ")
    message = (
        f"{status.integration_id} is unhealthy for an auth reason since {since} "
        f"({status.reason[:160]}), so nothing was sent; fix the credential, run "
        f"`syncbus health recheck {status.integration_id}`, then request the sync again"
    )
    return ErrorInfo(error_class=ErrorClass.AUTH, message=message, vendor_code=FAILED_FAST_CODE)
