"""Staging the SAF-T sample in the real LEDGER stream: one subject per voucher, re-import a no-op."""

from __future__ import annotations

import json
from pathlib import Path

from nats.js import JetStreamContext
from typer.testing import CliRunner

from syncbus_cli.main import app
from syncbus_devstack import NatsServer
from syncbus_shared import topology as t
from syncbus_shared.saft import read_saft
from syncbus_shared.staging import read_period, stage_vouchers

SAMPLE = (
    Path(__file__).resolve().parents[3]
    / "shared"
    / "data"
    / "saft"
    / "SAF-T_Financial_888888888_20180228235959.xml"
)


async def test_a_second_import_of_the_same_file_stages_nothing_new(jetstream: JetStreamContext):
    imported = read_saft(SAMPLE)
    first = await stage_vouchers(jetstream, "toyen-xledger", imported.vouchers)
    second = await stage_vouchers(jetstream, "toyen-xledger", imported.vouchers)
    assert (first.staged, first.already_staged) == (53, 0)
    assert (second.staged, second.already_staged) == (0, 53)
    info = await jetstream.stream_info(t.STREAM_LEDGER)
    assert info.state.messages == 53


async def test_each_period_reads_back_exactly_its_own_vouchers_in_staging_order(
    jetstream: JetStreamContext,
):
    imported = read_saft(SAMPLE)
    await stage_vouchers(jetstream, "toyen-xledger", imported.vouchers)
    for period, summary in imported.periods().items():
        vouchers = await read_period(jetstream, "toyen-xledger", period)
        assert len(vouchers) == summary.vouchers
        assert [v.voucher_id for v in vouchers] == [
            v.voucher_id for v in imported.vouchers if v.period_id == period
        ]
        assert vouchers == [v for v in imported.vouchers if v.period_id == period]


def test_syncbus_import_saft_stages_then_reports_everything_already_staged(
    nats_server: NatsServer, jetstream: JetStreamContext
):
    runner = CliRunner()
    args = ["import-saft", str(SAMPLE), "--json", "--nats-url", nats_server.url]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    assert json.loads(first.stdout)["staged"] == 53
    second = json.loads(again.stdout)
    assert (second["staged"], second["already_staged"]) == (0, 53)
