"""What a run decides to send (`Exporter.plan`), with the real ledgers on a real nats-server."""

from __future__ import annotations

from typing import Any

import pytest
from nats.js import JetStreamContext

from syncbus_dispatcher.export import Exporter, RunDeferredError
from syncbus_dispatcher.run_ledger import RunLedger
from syncbus_dispatcher.settings import DispatcherSettings
from syncbus_dispatcher.voucher_ledger import VoucherLedger
from syncbus_shared import topology as t
from syncbus_shared.contracts import (
    IntegrationConfig,
    SyncRequest,
    SyncScope,
    Voucher,
    VoucherLine,
)

pytestmark = pytest.mark.asyncio

LEASE_SECONDS = 40.0


def _voucher(n: int) -> Voucher:
    return Voucher(
        voucher_id=f"v{n}",
        period_id="2017-01",
        transaction_date="2017-01-10",
        posting_date="2017-01-10",
        lines=(
            VoucherLine(record_id="1", account_id="6300", debit="10.00"),
            VoucherLine(record_id="2", account_id="1920", credit="10.00"),
        ),
    )


async def _exporter(js: JetStreamContext, owner: str, staged: list[Voucher]) -> Exporter:
    async def load_period(integration_id: str, period_id: str) -> list[Voucher]:
        return [v for v in staged if v.period_id == period_id]

    async def load_staged(integration_id: str) -> list[Voucher]:
        return list(staged)

    sessions: Any = None  # planning calls no vendor
    return Exporter(
        settings=DispatcherSettings(),
        ledger=RunLedger(await js.key_value(t.KV_SYNC_RUNS), owner, LEASE_SECONDS),
        sessions=sessions,
        load_period=load_period,
        load_staged=load_staged,
        voucher_ledger=VoucherLedger(await js.key_value(t.KV_EXPORTED_VOUCHERS)),
    )


def _config(integration_id: str) -> IntegrationConfig:
    return IntegrationConfig(
        integration_id=integration_id,
        vendor="xledger",
        endpoint="http://127.0.0.1:9/graphql",
        credentials_path=f"integrations/{integration_id}",
    )


async def test_a_run_whose_vouchers_another_live_run_holds_waits_until_that_lease_could_lapse(
    jetstream: JetStreamContext, unique_id
):
    it = unique_id("plan")
    staged = [_voucher(n) for n in range(3)]
    first = await _exporter(jetstream, "dispatcher-a", staged)
    second = await _exporter(jetstream, "dispatcher-b", staged)
    incremental = SyncRequest(
        integration_id=it, scope=SyncScope.STAGED, idempotency_key=f"{it}:2017-01-15T12:00:00Z"
    )
    period = SyncRequest(integration_id=it, period_id="2017-01")
    holding = await first.ledger.claim(incremental)
    planned = await first.plan(incremental, _config(it), holding)
    assert [v.voucher_id for v in planned.vouchers] == ["v0", "v1", "v2"]

    with pytest.raises(RunDeferredError) as deferred:
        await second.plan(period, _config(it), await second.ledger.claim(period))

    assert "being exported by the run of" in deferred.value.message
    # Not a few seconds at a time: each deferral spends one of the request's deliveries.
    assert LEASE_SECONDS - 5 < deferred.value.delay <= LEASE_SECONDS + 1


async def test_a_period_run_after_an_incremental_one_plans_only_what_is_new(
    jetstream: JetStreamContext, unique_id
):
    it = unique_id("plan")
    staged = [_voucher(n) for n in range(3)]
    exporter = await _exporter(jetstream, "dispatcher-a", staged)
    incremental = SyncRequest(
        integration_id=it, scope=SyncScope.STAGED, idempotency_key=f"{it}:2017-01-15T12:00:00Z"
    )
    claim = await exporter.ledger.claim(incremental)
    planned = await exporter.plan(incremental, _config(it), claim)
    await exporter.voucher_ledger.mark_exported(it, incremental.idempotency_key, planned.vouchers)
    await exporter.ledger.release(claim)
    staged.append(_voucher(3))

    period = SyncRequest(integration_id=it, period_id="2017-01")
    plan = await exporter.plan(period, _config(it), await exporter.ledger.claim(period))

    assert [v.voucher_id for v in plan.vouchers] == ["v3"]
    assert plan.already_exported == 3
    assert plan.to_look_up == frozenset()
