"""One run: export a key's vouchers through the vendor adapter, batch by batch, resumably.

After each batch the vendor confirmed, the voucher ids go into the run ledger, so a run that is
resumed (by this or another dispatcher, after a crash) sends only what is not confirmed. When the
vendor's answer was ambiguous (the request was sent, the answer lost), the vouchers are looked up
at the vendor by their natural key before anything is sent again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

from syncbus_adapters import AdapterError, BatchReceipt
from syncbus_shared.contracts import ErrorClass, IntegrationConfig, SyncRequest, Voucher
from syncbus_shared.credentials_client import CredentialUnavailableError
from syncbus_shared.logs import get_logger

from .batching import VoucherTooLargeError, pack_batches
from .retry import backoff_delay
from .run_ledger import Claim, ClaimOutcome, RunLedger
from .sessions import SessionPool, VendorSession
from .settings import DispatcherSettings

log = get_logger()

T = TypeVar("T")


class RunFailedError(Exception):
    def __init__(
        self, error_class: ErrorClass, message: str, vendor_code: str | None = None
    ) -> None:
        super().__init__(message)
        self.error_class = error_class
        self.message = message
        self.vendor_code = vendor_code


class RunDeferredError(Exception):
    """The vendor's quota is spent: try the whole run again after `delay` seconds."""

    def __init__(self, delay: float, message: str) -> None:
        super().__init__(message)
        self.delay = delay
        self.message = message


@dataclass(frozen=True)
class RunPlan:
    """What a run is to export: the vouchers of the request, with their totals."""

    vouchers: tuple[Voucher, ...]

    @property
    def lines(self) -> int:
        return sum(len(v.lines) for v in self.vouchers)

    @property
    def debit(self) -> Decimal:
        return sum((v.debit_total for v in self.vouchers), Decimal(0))

    @property
    def credit(self) -> Decimal:
        return sum((v.credit_total for v in self.vouchers), Decimal(0))


@dataclass
class RunOutcome:
    vendor_refs: tuple[str, ...]
    started_warm: bool
    cold_start: bool
    batches: int = 0
    resumed_confirmed: int = 0


ProgressFn = Callable[[int, int, int, int], Coroutine[Any, Any, None]]


@dataclass
class Exporter:
    settings: DispatcherSettings
    ledger: RunLedger
    sessions: SessionPool
    load_period: Callable[[str, str], Coroutine[Any, Any, list[Voucher]]]
    cold_starts: int = 0
    _first_call_ms: dict[str, float] = field(default_factory=dict)

    async def plan(self, request: SyncRequest, config: IntegrationConfig) -> RunPlan:
        if request.vouchers is not None:
            return RunPlan(tuple(request.vouchers))
        assert request.period_id is not None
        vouchers = await self.load_period(config.integration_id, request.period_id)
        if not vouchers:
            # Exporting nothing must not use the key up: the period's vouchers may be staged
            # later (or the period has not ended yet), and then the same key must still run.
            raise RunFailedError(
                ErrorClass.DATA,
                f"no vouchers are staged for {config.integration_id} period {request.period_id}; "
                "the key stays unused: stage them, then replay this request "
                "(syncbus dlq list / syncbus dlq replay)",
            )
        return RunPlan(tuple(vouchers))

    async def run(
        self,
        config: IntegrationConfig,
        claim: Claim,
        plan: RunPlan,
        progress: ProgressFn,
    ) -> RunOutcome:
        await self.sessions.wait_for_warmup(
            config.integration_id, self.settings.warmup_wait_seconds
        )
        before = self.sessions.peek(config.integration_id)
        started_warm = before is not None and before.is_warm(self.settings.warm_ttl_seconds)
        session = await self._session(config, refresh=False)
        vouchers = plan.vouchers
        key = claim.record.idempotency_key
        done = set(claim.record.exported_voucher_ids)
        pending = [v for v in vouchers if v.voucher_id not in done]
        probe = _CallTimer()
        resumed_confirmed = 0
        if claim.outcome is ClaimOutcome.RESUMED and pending:
            # The previous owner may have sent a batch whose answer it never saw.
            found = await probe.time(session.adapter.lookup([v.voucher_id for v in pending]))
            if found:
                ids = tuple(v.voucher_id for v in pending if v.voucher_id in found)
                refs = tuple(ref for vid in ids for ref in found[vid])
                await self.ledger.record_exported(claim, ids, refs)
                pending = [v for v in pending if v.voucher_id not in found]
                resumed_confirmed = len(ids)
                log.info("dispatcher.resume_reconciled", key=key, confirmed=len(ids))
        try:
            batches = pack_batches(
                pending, session.adapter.max_lines_per_call, session.adapter.vendor_lines
            )
        except (VoucherTooLargeError, AdapterError) as exc:
            raise RunFailedError(ErrorClass.DATA, str(exc)) from exc
        total_batches = len(batches)
        await progress(0, total_batches, len(vouchers) - len(pending), len(vouchers))
        for index, batch in enumerate(batches, start=1):
            receipt, session = await self._send(session, config, batch, probe)
            await self.ledger.record_exported(claim, receipt.voucher_ids, receipt.vendor_refs)
            confirmed = len(claim.record.exported_voucher_ids)
            await progress(index, total_batches, confirmed, len(vouchers))
        session.last_call_at = time.monotonic()
        cold = probe.first_ms is not None and probe.first_ms > self.settings.cold_start_threshold_ms
        if cold:
            self.cold_starts += 1
            log.warning(
                "dispatcher.cold_start",
                integration_id=config.integration_id,
                first_call_ms=round(probe.first_ms or 0.0, 1),
                started_warm=started_warm,
                cold_starts=self.cold_starts,
            )
        return RunOutcome(
            vendor_refs=claim.record.vendor_refs,
            started_warm=started_warm,
            cold_start=cold,
            batches=total_batches,
            resumed_confirmed=resumed_confirmed,
        )

    async def _session(self, config: IntegrationConfig, *, refresh: bool) -> VendorSession:
        try:
            return await self.sessions.session(config, purpose="sync", refresh=refresh)
        except CredentialUnavailableError as exc:
            raise RunFailedError(exc.error_class, exc.message) from exc

    async def _send(
        self,
        session: VendorSession,
        config: IntegrationConfig,
        batch: tuple[Voucher, ...],
        probe: _CallTimer,
    ) -> tuple[BatchReceipt, VendorSession]:
        confirmed_ids: list[str] = []
        confirmed_refs: list[str] = []
        refreshed = False
        remaining = batch
        attempt = 0
        while True:
            attempt += 1
            try:
                receipt = await probe.time(session.adapter.export_batch(remaining))
            except AdapterError as exc:
                log.warning(
                    "dispatcher.vendor_error",
                    integration_id=config.integration_id,
                    error_class=exc.error_class.value,
                    vendor_code=exc.vendor_code,
                    attempt=attempt,
                    detail=exc.message[:300],
                )
                if exc.error_class is ErrorClass.AMBIGUOUS:
                    found = await probe.time(
                        session.adapter.lookup([v.voucher_id for v in remaining])
                    )
                    confirmed_ids += [v.voucher_id for v in remaining if v.voucher_id in found]
                    confirmed_refs += [r for v in remaining for r in found.get(v.voucher_id, ())]
                    remaining = tuple(v for v in remaining if v.voucher_id not in found)
                    if not remaining:
                        break
                elif exc.error_class is ErrorClass.AUTH and not refreshed:
                    refreshed = True
                    session = await self._session(config, refresh=True)
                    continue
                elif exc.error_class is ErrorClass.QUOTA:
                    raise RunDeferredError(exc.retry_after or 1200.0, exc.message) from exc
                elif exc.error_class is not ErrorClass.RETRYABLE:
                    raise RunFailedError(exc.error_class, exc.message, exc.vendor_code) from exc
                if attempt >= self.settings.batch_attempts:
                    raise RunFailedError(
                        exc.error_class,
                        f"gave up after {attempt} attempts: {exc.message}",
                        exc.vendor_code,
                    ) from exc
                delay = backoff_delay(
                    attempt,
                    initial=self.settings.backoff_initial_seconds,
                    cap=self.settings.backoff_max_seconds,
                    retry_after=exc.retry_after,
                )
                log.info("dispatcher.retry_scheduled", attempt=attempt, delay_s=round(delay, 3))
                await asyncio.sleep(delay)
                continue
            confirmed_ids += receipt.voucher_ids
            confirmed_refs += receipt.vendor_refs
            break
        return BatchReceipt(tuple(confirmed_ids), tuple(confirmed_refs)), session


class _CallTimer:
    """Times vendor calls; remembers how long the first one of a run took (cold-start signal)."""

    def __init__(self) -> None:
        self.first_ms: float | None = None

    async def time(self, call: Coroutine[Any, Any, T]) -> T:
        start = time.perf_counter()
        try:
            return await call
        finally:
            if self.first_ms is None:
                self.first_ms = (time.perf_counter() - start) * 1000
