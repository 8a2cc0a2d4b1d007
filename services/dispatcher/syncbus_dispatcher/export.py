"""One run: export a key's vouchers through the vendor adapter, batch by batch, resumably.

After each batch the vendor confirmed, the voucher ids go into the run ledger, so a run that is
resumed (by this or another dispatcher, after a crash) sends only what is not confirmed. When the
vendor's answer was ambiguous (the request was sent, the answer lost), the vouchers are looked up
at the vendor by their natural key before anything is sent again.

Which vouchers a run sends is decided with the voucher ledger (`voucher_ledger.py`): each voucher
is posted at most once per integration, whatever key asks, so an incremental run (`scope:
staged`) exports only what no run exported yet, and a period run leaves out what incremental
runs already posted.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

from syncbus_adapters import AdapterError, BatchReceipt
from syncbus_shared.contracts import (
    ErrorClass,
    IntegrationConfig,
    RunState,
    SyncRequest,
    SyncScope,
    Voucher,
    utc_now,
)
from syncbus_shared.credentials_client import CredentialUnavailableError
from syncbus_shared.logs import get_logger

from .batching import VoucherTooLargeError, pack_batches
from .retry import backoff_delay
from .run_ledger import Claim, ClaimOutcome, RunLedger
from .sessions import SessionPool, VendorSession
from .settings import DispatcherSettings
from .voucher_ledger import VoucherBusyError, VoucherLedger

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
    """Try the whole run again after `delay` seconds: the vendor's quota is spent (`quota`), or
    another live run holds some of its vouchers (`retryable`)."""

    def __init__(self, delay: float, message: str, error_class: ErrorClass) -> None:
        super().__init__(message)
        self.delay = delay
        self.message = message
        self.error_class = error_class


@dataclass(frozen=True)
class RunPlan:
    """What a run is to export: the vouchers of the request, with their totals."""

    vouchers: tuple[Voucher, ...]
    confirmed: frozenset[str] = frozenset()
    """Of `vouchers`, those this key exported already: never sent again."""
    to_look_up: frozenset[str] = frozenset()
    """Of `vouchers`, those a run that is over may have sent: looked up before sending."""
    already_exported: int = 0
    """Vouchers asked for but left out: another key's run exported them."""

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
    load_staged: Callable[[str], Coroutine[Any, Any, list[Voucher]]]
    voucher_ledger: VoucherLedger
    busy_retry_seconds: float = 5.0
    cold_starts: int = 0
    _first_call_ms: dict[str, float] = field(default_factory=dict)

    async def plan(self, request: SyncRequest, config: IntegrationConfig, claim: Claim) -> RunPlan:
        asked, period = await self._asked_for(request, config)
        try:
            selection = await self.voucher_ledger.select(
                config.integration_id,
                request.idempotency_key,
                asked,
                confirmed_by_run=claim.record.exported_voucher_ids,
                is_alive=self._run_is_alive,
                period_id=period,
            )
        except VoucherBusyError as exc:
            delay = await self._busy_delay(exc.busy.values())
            raise RunDeferredError(delay, str(exc), ErrorClass.RETRYABLE) from exc
        if selection.already_exported:
            log.info(
                "dispatcher.vouchers_already_exported",
                key=request.idempotency_key,
                left_out=len(selection.already_exported),
            )
        return RunPlan(
            tuple(selection.mine),
            confirmed=frozenset(selection.confirmed),
            to_look_up=frozenset(selection.to_look_up),
            already_exported=len(selection.already_exported),
        )

    async def _asked_for(
        self, request: SyncRequest, config: IntegrationConfig
    ) -> tuple[list[Voucher], str | None]:
        """The vouchers the request names, and the period the voucher ledger can narrow to."""
        if request.vouchers is not None:
            return list(request.vouchers), None
        if request.scope is SyncScope.STAGED:
            # Everything staged for the integration; the voucher ledger leaves out what any
            # run exported. Nothing new is a success with no vouchers, not a failure: the next
            # fire has its own key.
            return await self.load_staged(config.integration_id), None
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
        return vouchers, request.period_id

    async def _busy_delay(self, keys: Iterable[str]) -> float:
        """Until the runs holding our vouchers end or their leases lapse (each deferral spends
        one of the request's deliveries, so waiting a few seconds at a time could run out)."""
        now = utc_now()
        delay = self.busy_retry_seconds
        for key in set(keys):
            record = await self.ledger.get(key)
            if record is not None and record.state is RunState.CLAIMED:
                delay = max(delay, (record.lease_until - now).total_seconds() + 1.0)
        return delay

    async def _run_is_alive(self, key: str, voucher_id: str) -> bool:
        """May the run of `key` still send this voucher? (Its claim is live, and it is not done.)"""
        record = await self.ledger.get(key)
        if record is None or record.state is not RunState.CLAIMED:
            return False
        return record.lease_until > utc_now() and voucher_id not in record.exported_voucher_ids

    async def run(
        self,
        config: IntegrationConfig,
        claim: Claim,
        plan: RunPlan,
        progress: ProgressFn,
    ) -> RunOutcome:
        if not plan.vouchers:
            # Nothing left to send (an incremental fire with nothing new, or a period that
            # other keys exported already): no credential, no vendor call.
            return RunOutcome(vendor_refs=(), started_warm=False, cold_start=False)
        await self.sessions.wait_for_warmup(
            config.integration_id, self.settings.warmup_wait_seconds
        )
        before = self.sessions.peek(config.integration_id)
        started_warm = before is not None and before.is_warm(self.settings.warm_ttl_seconds)
        session = await self._session(config, refresh=False)
        vouchers = plan.vouchers
        key = claim.record.idempotency_key
        done = set(claim.record.exported_voucher_ids) | plan.confirmed
        pending = [v for v in vouchers if v.voucher_id not in done]
        probe = _CallTimer()
        resumed_confirmed = 0
        resumed = claim.outcome is ClaimOutcome.RESUMED
        suspect = [v for v in pending if resumed or v.voucher_id in plan.to_look_up]
        if suspect:
            # The previous owner may have sent a batch whose answer it never saw.
            found = await self._lookup(session, [v.voucher_id for v in suspect], probe)
            if found:
                ids = tuple(v.voucher_id for v in suspect if v.voucher_id in found)
                refs = tuple(ref for vid in ids for ref in found[vid])
                await self.ledger.record_exported(claim, ids, refs)
                await self.voucher_ledger.mark_exported(
                    config.integration_id, key, [v for v in suspect if v.voucher_id in found]
                )
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
            sent = set(receipt.voucher_ids)
            await self.voucher_ledger.mark_exported(
                config.integration_id, key, [v for v in batch if v.voucher_id in sent]
            )
            confirmed = len(set(claim.record.exported_voucher_ids) | plan.confirmed)
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

    async def _lookup(
        self, session: VendorSession, voucher_ids: list[str], probe: _CallTimer
    ) -> dict[str, tuple[str, ...]]:
        """The vendor's answer, retried like a send; anything else ends the run unsent, since
        sending without knowing what the vendor holds could post a voucher twice."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return await probe.time(session.adapter.lookup(voucher_ids))
            except AdapterError as exc:
                if exc.error_class is ErrorClass.QUOTA:
                    raise RunDeferredError(
                        exc.retry_after or 1200.0, exc.message, ErrorClass.QUOTA
                    ) from exc
                transient = exc.error_class in (ErrorClass.RETRYABLE, ErrorClass.AMBIGUOUS)
                if not transient or attempt >= self.settings.batch_attempts:
                    raise RunFailedError(
                        exc.error_class,
                        f"could not look up what was already sent, so nothing was sent again: "
                        f"{exc.message}",
                        exc.vendor_code,
                    ) from exc
                delay = backoff_delay(
                    attempt,
                    initial=self.settings.backoff_initial_seconds,
                    cap=self.settings.backoff_max_seconds,
                    retry_after=exc.retry_after,
                )
                log.info("dispatcher.lookup_retry_scheduled", attempt=attempt, delay_s=delay)
                await asyncio.sleep(delay)

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
                    found = await self._lookup(session, [v.voucher_id for v in remaining], probe)
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
                    raise RunDeferredError(
                        exc.retry_after or 1200.0, exc.message, ErrorClass.QUOTA
                    ) from exc
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
                self.sessions.metrics.retried(config.vendor, exc.error_class.value)
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
