"""The interface every vendor adapter implements, and the errors it raises.

An adapter turns vouchers into one vendor's API calls. It is given an open `httpx.AsyncClient`
(the dispatcher keeps one per integration so a warm-up leaves a live connection behind) and the
credential the credential service handed out. It never sees Vault, and never logs a secret.

Errors (all `AdapterError`, each with an `ErrorClass` that decides what the dispatcher does):

    AdapterError(error_class, message, vendor_code=None, retry_after=None)
      error_class RETRYABLE  - 429, 5xx, burst/concurrency limits, connection errors before send
      error_class QUOTA      - Xledger INSUFFICIENT_CREDITS; retry_after = seconds to the reset
      error_class AUTH       - the vendor refused the credential
      error_class DATA       - the vendor refused the content (its message says why)
      error_class AMBIGUOUS  - a timeout or dropped connection after the request was sent:
                               the vendor may have committed; look up before sending again
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import httpx

from syncbus_shared.contracts import ErrorClass, Voucher
from syncbus_shared.credentials_client import Credential

__all__ = [
    "AdapterContext",
    "AdapterError",
    "BatchReceipt",
    "Credential",
    "ProbeResult",
    "VendorAdapter",
]


@dataclass(frozen=True)
class BatchReceipt:
    """What the vendor confirmed for one batch."""

    voucher_ids: tuple[str, ...]
    vendor_refs: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProbeResult:
    latency_ms: float


class AdapterError(Exception):
    def __init__(
        self,
        error_class: ErrorClass,
        message: str,
        *,
        vendor_code: str | None = None,
        retry_after: float | None = None,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.error_class = error_class
        self.message = message
        self.vendor_code = vendor_code
        self.retry_after = retry_after
        self.status_code = status_code

    def __repr__(self) -> str:
        return (
            f"AdapterError({self.error_class.value}, {self.message!r}, "
            f"vendor_code={self.vendor_code!r}, retry_after={self.retry_after!r})"
        )


@dataclass
class AdapterContext:
    """Everything an adapter instance works with."""

    integration_id: str
    endpoint: str
    credential: Credential
    http: httpx.AsyncClient
    timeout_seconds: float = 60.0
    options: dict[str, str] = field(default_factory=dict)


MAX_ERROR_MESSAGE = 500
"""The longest error message an adapter passes on (a vendor's may be a whole HTML page)."""


class VendorAdapter(abc.ABC):
    """One vendor. Register the class under the entry point group `syncbus.adapters`."""

    name: ClassVar[str]
    max_lines_per_call: ClassVar[int]
    """The most journal lines one export call may carry; a voucher is never split across calls."""

    def __init__(self, context: AdapterContext) -> None:
        self.context = context

    # ---- for subclasses: every error message leaves the adapter scrubbed of the secret -------

    def _secret(self) -> str:
        return self.context.credential.secret.get_secret_value()

    def _scrub(self, text: str) -> str:
        """`text` with the credential's secret masked, cut to `MAX_ERROR_MESSAGE` characters."""
        secret = self._secret()
        if secret:
            text = text.replace(secret, "**********")
        return text[:MAX_ERROR_MESSAGE]

    def _error(
        self,
        error_class: ErrorClass,
        message: str,
        *,
        vendor_code: str | None = None,
        retry_after: float | None = None,
        status_code: int | None = None,
    ) -> AdapterError:
        """An `AdapterError` whose message cannot carry the secret (vendors echo requests)."""
        return AdapterError(
            error_class,
            self._scrub(message),
            vendor_code=vendor_code,
            retry_after=retry_after,
            status_code=status_code,
        )

    def vendor_lines(self, voucher: Voucher) -> int:
        """How many vendor lines this voucher becomes (what `max_lines_per_call` counts)."""
        return len(voucher.lines)

    @abc.abstractmethod
    async def export_batch(self, vouchers: Sequence[Voucher]) -> BatchReceipt:
        """Send these vouchers in one vendor call (their lines together). Raise AdapterError."""

    @abc.abstractmethod
    async def lookup(self, voucher_ids: Sequence[str]) -> dict[str, tuple[str, ...]]:
        """Which of these vouchers the vendor already holds: voucher id -> vendor refs."""

    @abc.abstractmethod
    async def ping(self) -> ProbeResult:
        """The vendor's cheapest authenticated call (it still counts against quotas)."""

    async def warm_up(self) -> ProbeResult:
        """Open the connection and prove the credential; by default one cheap call."""
        return await self.ping()
