"""The voucher ledger (KV `exported-vouchers`) against a real nats-server: who may send what."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from nats.js import JetStreamContext

from syncbus_dispatcher.voucher_ledger import VoucherBusyError, VoucherLedger
from syncbus_shared import topology as t
from syncbus_shared.contracts import Voucher, VoucherLine, VoucherState

pytestmark = pytest.mark.asyncio


def _voucher(n: int, period: str = "2017-01") -> Voucher:
    return Voucher(
        voucher_id=f"v.{n}/x",  # dots and slashes: the KV key must encode them
        period_id=period,
        transaction_date="2017-01-10",
        posting_date="2017-01-10",
        lines=(
            VoucherLine(record_id="1", account_id="6300", debit="10.00"),
            VoucherLine(record_id="2", account_id="1920", credit="10.00"),
        ),
    )


def _alive(*keys: str) -> Callable[[str, str], Awaitable[bool]]:
    async def is_alive(key: str, voucher_id: str) -> bool:
        return key in keys

    return is_alive


async def _ledger(js: JetStreamContext) -> VoucherLedger:
    return VoucherLedger(await js.key_value(t.KV_EXPORTED_VOUCHERS))


async def test_a_first_run_claims_every_voucher_and_has_nothing_to_look_up(
    jetstream: JetStreamContext, unique_id
):
    ledger, it = await _ledger(jetstream), unique_id("vl")
    vouchers = [_voucher(n) for n in range(3)]

    selection = await ledger.select(it, "k1", vouchers, confirmed_by_run=(), is_alive=_alive())

    assert [v.voucher_id for v in selection.mine] == [v.voucher_id for v in vouchers]
    assert selection.to_look_up == set()
    assert selection.already_exported == []
    marks = await ledger.marks(it)
    assert {m.state for m, _ in marks.values()} == {VoucherState.CLAIMED}


async def test_vouchers_another_key_exported_are_left_out_and_the_rest_are_claimed(
    jetstream: JetStreamContext, unique_id
):
    ledger, it = await _ledger(jetstream), unique_id("vl")
    await ledger.mark_exported(it, "k1", [_voucher(0), _voucher(1, "2017-02")])

    selection = await ledger.select(
        it,
        "k2",
        [_voucher(n, "2017-02" if n == 1 else "2017-01") for n in range(3)],
        confirmed_by_run=(),
        is_alive=_alive(),
    )

    assert [v.voucher_id for v in selection.already_exported] == ["v.0/x", "v.1/x"]
    assert [v.voucher_id for v in selection.mine] == ["v.2/x"]


async def test_a_voucher_held_by_another_live_run_defers_this_run_and_releases_its_fresh_claims(
    jetstream: JetStreamContext, unique_id
):
    ledger, it = await _ledger(jetstream), unique_id("vl")
    await ledger.select(it, "k1", [_voucher(1)], confirmed_by_run=(), is_alive=_alive())

    with pytest.raises(VoucherBusyError, match="being exported by the run of 'k1'"):
        await ledger.select(
            it, "k2", [_voucher(0), _voucher(1)], confirmed_by_run=(), is_alive=_alive("k1")
        )

    marks = await ledger.marks(it)
    assert [m.idempotency_key for m, _ in marks.values()] == ["k1"]  # k2 left nothing behind


async def test_a_voucher_claimed_by_a_run_that_is_over_is_taken_over_and_looked_up_first(
    jetstream: JetStreamContext, unique_id
):
    ledger, it = await _ledger(jetstream), unique_id("vl")
    await ledger.select(it, "dead", [_voucher(0)], confirmed_by_run=(), is_alive=_alive())

    selection = await ledger.select(
        it, "k2", [_voucher(0), _voucher(1)], confirmed_by_run=(), is_alive=_alive()
    )

    assert [v.voucher_id for v in selection.mine] == ["v.0/x", "v.1/x"]
    assert selection.to_look_up == {"v.0/x"}  # it may have been sent before its run died
    marks = await ledger.marks(it)
    assert {m.idempotency_key for m, _ in marks.values()} == {"k2"}


async def test_a_resumed_run_keeps_its_own_claims_and_its_confirmed_vouchers(
    jetstream: JetStreamContext, unique_id
):
    ledger, it = await _ledger(jetstream), unique_id("vl")
    vouchers = [_voucher(n) for n in range(3)]
    await ledger.select(it, "k1", vouchers, confirmed_by_run=(), is_alive=_alive())

    # Crash after the run ledger recorded v.0 but before its voucher mark said `exported`.
    again = await ledger.select(
        it, "k1", vouchers, confirmed_by_run=("v.0/x",), is_alive=_alive("k1")
    )

    assert len(again.mine) == 3
    assert again.confirmed == {"v.0/x"}
    assert again.to_look_up == {"v.1/x", "v.2/x"}
    marks = await ledger.marks(it)
    states = {m.voucher_id: m.state for m, _ in marks.values()}
    assert states["v.0/x"] is VoucherState.EXPORTED


async def test_concurrent_runs_of_different_keys_never_both_get_a_voucher(
    jetstream: JetStreamContext, unique_id
):
    ledger, it = await _ledger(jetstream), unique_id("vl")
    vouchers = [_voucher(n) for n in range(40)]
    keys = [f"k{n}" for n in range(5)]

    async def attempt(key: str) -> set[str]:
        others = [k for k in keys if k != key]
        try:
            selection = await ledger.select(
                it, key, vouchers, confirmed_by_run=(), is_alive=_alive(*others)
            )
        except VoucherBusyError:
            return set()
        return {v.voucher_id for v in selection.mine}

    won = await asyncio.gather(*(attempt(k) for k in keys))

    claimed = [vid for s in won for vid in s]
    assert len(claimed) == len(set(claimed))  # no voucher in two runs
    assert sum(1 for s in won if s) >= 1
    marks = await ledger.marks(it)
    owners = {m.voucher_id: m.idempotency_key for m, _ in marks.values()}
    for key, got in zip(keys, won, strict=True):
        assert all(owners[vid] == key for vid in got)
