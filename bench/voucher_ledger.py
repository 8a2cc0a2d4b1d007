"""What the voucher ledger costs an incremental run, beside reading the vouchers it decides on.

    .venv/bin/python bench/voucher_ledger.py [--vouchers 5000] [--rounds 3]

A real nats-server (JetStream, fresh store) with the syncbus topology. One integration has N
vouchers staged in LEDGER. Per round, three timings, each the median of the rounds:

    read         `read_staged`: every staged voucher of the integration, as an incremental run
                 reads them (the baseline: the run cannot decide less than this)
    first fire   `VoucherLedger.select` with nothing exported yet: one watch of the marks, then
                 N atomic creates (the claims), after the read
    next fire    `select` again under a new key once all N are exported: one watch, no writes
                 (what every later incremental fire pays while nothing new is staged)

Figures are seconds and ratios to `read` measured in the same round. There is no stated goal;
the question this answers is whether the ledger, not the data, dominates an incremental run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from syncbus_devstack import NatsServer
from syncbus_dispatcher.voucher_ledger import VoucherLedger
from syncbus_shared import topology as t
from syncbus_shared.contracts import Voucher, VoucherLine
from syncbus_shared.natsclient import connect
from syncbus_shared.provision import provision
from syncbus_shared.settings import NatsSettings
from syncbus_shared.staging import read_staged, stage_vouchers


def _voucher(n: int) -> Voucher:
    period = f"2017-{(n % 12) + 1:02d}"
    return Voucher(
        voucher_id=f"bench-{n}",
        period_id=period,
        transaction_date=f"{period}-10",
        posting_date=f"{period}-10",
        lines=(
            VoucherLine(record_id="1", account_id="6300", debit="10.00"),
            VoucherLine(record_id="2", account_id="1920", credit="10.00"),
        ),
    )


async def _never_alive(_key: str, _voucher_id: str) -> bool:
    return False


async def main(vouchers: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        async with NatsServer(Path(folder) / "store") as server:
            nc = await connect(NatsSettings(url=server.url), "bench-voucher-ledger")
            js = nc.jetstream()
            await provision(js)
            kv = await js.key_value(t.KV_EXPORTED_VOUCHERS)
            ledger = VoucherLedger(kv)
            reads: list[float] = []
            firsts: list[float] = []
            nexts: list[float] = []
            for round_number in range(rounds):
                integration = f"bench-{round_number}"
                await stage_vouchers(js, integration, [_voucher(n) for n in range(vouchers)])
                start = time.perf_counter()
                staged = await read_staged(js, integration)
                reads.append(time.perf_counter() - start)
                assert len(staged) == vouchers

                start = time.perf_counter()
                first = await ledger.select(
                    integration, "k1", staged, confirmed_by_run=(), is_alive=_never_alive
                )
                firsts.append(time.perf_counter() - start)
                assert len(first.mine) == vouchers
                await ledger.mark_exported(integration, "k1", first.mine)

                start = time.perf_counter()
                nothing = await ledger.select(
                    integration, "k2", staged, confirmed_by_run=(), is_alive=_never_alive
                )
                nexts.append(time.perf_counter() - start)
                assert not nothing.mine
                assert len(nothing.already_exported) == vouchers
            await nc.close()
    read_s, first_s, next_s = (statistics.median(x) for x in (reads, firsts, nexts))
    print(f"voucher ledger, {vouchers} staged vouchers, median of {rounds} rounds")
    print(f"  read (baseline)   {read_s:8.3f} s")
    print(
        f"  first fire        {first_s:8.3f} s   {first_s / read_s:5.2f}x read   (watch + claims)"
    )
    print(f"  next fire         {next_s:8.3f} s   {next_s / read_s:5.2f}x read   (watch only)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vouchers", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.vouchers, args.rounds))
