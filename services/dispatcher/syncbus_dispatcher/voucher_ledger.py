"""The voucher ledger in KV `exported-vouchers`: a voucher is posted once per integration, at most.

The run ledger (`sync-runs`) guards a key; this one guards a voucher, whatever key asks for it.
It is what makes incremental schedules (`scope: staged`, a new key at every fire) safe, and it
keeps a period run from posting what an incremental run already posted (or the reverse).

One entry per voucher, `<integration>.<period>.<voucher>` (each token `=XX`-encoded), holding a
`VoucherMark`: `claimed` by a key before its run sends the voucher, `exported` once the vendor
confirmed it. A run sorts the vouchers it was asked for into a `VoucherSelection`:

- `exported` by another key: left out (`already_exported` in the result);
- `exported` by this key, or in this key's run record: confirmed, not sent again;
- `claimed` by another key whose run is alive: the run is deferred until that run is done;
- `claimed` by a key whose run is over (failed, lease lapsed) or by this key: taken over, and
  looked up at the vendor before anything is sent (it may have been sent before a crash);
- no entry: claimed now with an atomic `create`; losing that race is the "alive" case.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from syncbus_shared.contracts import Voucher, VoucherMark, VoucherState, utc_now
from syncbus_shared.keys import encode_token

_CHUNK = 64
"""KV writes in flight at once while claiming a run's vouchers."""


IsRunAlive = Callable[[str, str], Awaitable[bool]]
"""`(idempotency_key, voucher_id)` → True while that key's run may still send the voucher."""


class VoucherBusyError(Exception):
    """Another key's live run holds some of these vouchers; try again after it is done."""

    def __init__(self, busy: dict[str, str]) -> None:
        first_voucher, first_key = next(iter(busy.items()))
        more = f" and {len(busy) - 1} more" if len(busy) > 1 else ""
        super().__init__(
            f"voucher {first_voucher!r}{more} is being exported by the run of {first_key!r}"
        )
        self.busy = busy


@dataclass
class VoucherSelection:
    """What one run may send, after the voucher ledger was consulted."""

    mine: list[Voucher] = field(default_factory=list)
    """Claimed by this run (or confirmed by it before): the run's vouchers, in order."""
    confirmed: set[str] = field(default_factory=set)
    """Of `mine`, those this key exported already (the vendor confirmed them)."""
    to_look_up: set[str] = field(default_factory=set)
    """Of `mine`, those that a run over may have sent: look them up before sending."""
    already_exported: list[Voucher] = field(default_factory=list)
    """Left out: another key exported them."""


def mark_key(integration_id: str, period_id: str, voucher_id: str) -> str:
    return f"{integration_id}.{encode_token(period_id)}.{encode_token(voucher_id)}"


class VoucherLedger:
    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

    async def marks(
        self, integration_id: str, period_id: str | None = None
    ) -> dict[str, tuple[VoucherMark, int]]:
        """Every mark of the integration (or of one period): kv key → (mark, revision).

        One ordered consumer reads the latest entry per key, instead of one request per voucher.
        """
        pattern = (
            f"{integration_id}.{encode_token(period_id)}.>"
            if period_id is not None
            else f"{integration_id}.>"
        )
        watcher = await self._kv.watch(pattern, ignore_deletes=True, inactive_threshold=30.0)
        found: dict[str, tuple[VoucherMark, int]] = {}
        try:
            while True:
                entry = await watcher.updates(timeout=10.0)  # type: ignore[no-untyped-call]
                if entry is None:
                    break
                if entry.value and entry.revision is not None:
                    found[entry.key] = (VoucherMark.from_bytes(entry.value), entry.revision)
        finally:
            await watcher.stop()  # type: ignore[no-untyped-call]
        return found

    async def select(
        self,
        integration_id: str,
        key: str,
        vouchers: Sequence[Voucher],
        *,
        confirmed_by_run: Iterable[str],
        is_alive: IsRunAlive,
        period_id: str | None = None,
    ) -> VoucherSelection:
        """Sort `vouchers` for the run of `key` and claim the free ones (see the module doc).

        Raises `VoucherBusyError` (having released what it claimed here) when a live run of
        another key holds any of them.
        """
        marks = await self.marks(integration_id, period_id)
        done_here = set(confirmed_by_run)
        selection = VoucherSelection()
        to_create: list[Voucher] = []
        to_take: list[tuple[Voucher, VoucherMark, int]] = []
        to_mark_exported: list[Voucher] = []
        busy: dict[str, str] = {}
        for voucher in vouchers:
            held = marks.get(mark_key(integration_id, voucher.period_id, voucher.voucher_id))
            if voucher.voucher_id in done_here:
                selection.mine.append(voucher)
                selection.confirmed.add(voucher.voucher_id)
                if held is None or held[0].state is not VoucherState.EXPORTED:
                    to_mark_exported.append(voucher)  # a crash came between the two writes
                continue
            if held is None:
                to_create.append(voucher)
                continue
            mark, revision = held
            if mark.state is VoucherState.EXPORTED:
                if mark.idempotency_key == key:
                    selection.mine.append(voucher)
                    selection.confirmed.add(voucher.voucher_id)
                else:
                    selection.already_exported.append(voucher)
            elif mark.idempotency_key == key:
                selection.mine.append(voucher)
                selection.to_look_up.add(voucher.voucher_id)
            elif await is_alive(mark.idempotency_key, voucher.voucher_id):
                busy[voucher.voucher_id] = mark.idempotency_key
            else:
                to_take.append((voucher, mark, revision))
        if busy:
            raise VoucherBusyError(busy)

        created: list[tuple[Voucher, int]] = []
        lost: dict[str, str] = {}

        async def create(voucher: Voucher) -> None:
            kv_key = mark_key(integration_id, voucher.period_id, voucher.voucher_id)
            try:
                revision = await self._kv.create(kv_key, _mark(voucher, key, integration_id))
            except KeyWrongLastSequenceError:
                lost[voucher.voucher_id] = await self._holder(kv_key)
            else:
                created.append((voucher, revision))

        async def take(voucher: Voucher, revision: int) -> None:
            kv_key = mark_key(integration_id, voucher.period_id, voucher.voucher_id)
            try:
                new = await self._kv.update(
                    kv_key, _mark(voucher, key, integration_id), last=revision
                )
            except KeyWrongLastSequenceError:
                lost[voucher.voucher_id] = await self._holder(kv_key)
            else:
                created.append((voucher, new))
                selection.to_look_up.add(voucher.voucher_id)

        jobs = [create(v) for v in to_create] + [take(v, r) for v, _, r in to_take]
        for start in range(0, len(jobs), _CHUNK):
            await asyncio.gather(*jobs[start : start + _CHUNK])
        if lost:
            # Another run won a race for these; what this attempt claimed was never sent.
            await self._release(integration_id, created, keep=selection.to_look_up)
            raise VoucherBusyError(lost)
        await self.mark_exported(integration_id, key, to_mark_exported)
        ours = {v.voucher_id for v, _ in created}
        selection.mine.extend(v for v in vouchers if v.voucher_id in ours)
        order = {v.voucher_id: i for i, v in enumerate(vouchers)}
        selection.mine.sort(key=lambda v: order[v.voucher_id])
        return selection

    async def mark_exported(
        self, integration_id: str, key: str, vouchers: Iterable[Voucher]
    ) -> None:
        """The vendor confirmed these: no key sends them again (a plain put: idempotent)."""
        now = utc_now()
        writes = [
            self._kv.put(
                mark_key(integration_id, v.period_id, v.voucher_id),
                VoucherMark(
                    integration_id=integration_id,
                    voucher_id=v.voucher_id,
                    state=VoucherState.EXPORTED,
                    idempotency_key=key,
                    updated_at=now,
                ).to_bytes(),
            )
            for v in vouchers
        ]
        for start in range(0, len(writes), _CHUNK):
            await asyncio.gather(*writes[start : start + _CHUNK])

    async def _holder(self, kv_key: str) -> str:
        try:
            entry = await self._kv.get(kv_key)
        except KeyNotFoundError:
            return "(released meanwhile)"
        return VoucherMark.from_bytes(entry.value).idempotency_key if entry.value else "?"

    async def _release(
        self, integration_id: str, created: list[tuple[Voucher, int]], *, keep: set[str]
    ) -> None:
        """Delete fresh claims of this attempt (never sent); taken-over ones stay claimed."""
        for voucher, revision in created:
            if voucher.voucher_id in keep:
                continue
            kv_key = mark_key(integration_id, voucher.period_id, voucher.voucher_id)
            with contextlib.suppress(KeyWrongLastSequenceError):
                await self._kv.delete(kv_key, last=revision)


def _mark(voucher: Voucher, key: str, integration_id: str) -> bytes:
    return VoucherMark(
        integration_id=integration_id,
        voucher_id=voucher.voucher_id,
        state=VoucherState.CLAIMED,
        idempotency_key=key,
    ).to_bytes()
