"""The Xledger adapter against the Xledger fake, over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from syncbus_adapters import AdapterContext, AdapterError, Credential, adapter_class
from syncbus_adapters.xledger import XledgerAdapter, decimal_text
from syncbus_fakes.server import bind_socket, serve_app
from syncbus_fakes.xledger import XledgerFakeSettings, create_app
from syncbus_shared.contracts import AnalysisDimension, ErrorClass, Voucher, VoucherLine

TOKEN = "xl-adapter-secret-5e1d0b77"
TLS = ssl.create_default_context()  # built once; a client loading it itself costs ~30 ms


def voucher(
    voucher_id: str = "888888888-GL-1001",
    amount: str = "12500",
    *,
    lines: int = 2,
    text: str | None = None,
) -> Voucher:
    """A balanced voucher: one debit on 1920, then credits on 3000 that add up to it."""
    total = Decimal(amount)
    credit_lines = lines - 1
    share = (total / credit_lines).quantize(Decimal("0.01"))
    parts = [share] * (credit_lines - 1) + [total - share * (credit_lines - 1)]
    return Voucher(
        voucher_id=voucher_id,
        transaction_id="1001",
        period_id="2017-01",
        transaction_date=date(2017, 1, 5),
        posting_date=date(2017, 1, 31),
        description="Salg til Tøyen Lekefabrikk",
        lines=(
            VoucherLine(
                record_id="1",
                account_id="1920",
                debit=amount,
                dimensions=(
                    AnalysisDimension(analysis_type="A", analysis_id="102"),
                    AnalysisDimension(analysis_type="P", analysis_id="202"),
                    AnalysisDimension(analysis_type="X", analysis_id="skipped"),
                ),
            ),
            *(
                VoucherLine(
                    record_id=str(number),
                    account_id="3000",
                    credit=str(part),
                    tax_code="3",
                    customer_id="10001",
                    description=text,
                )
                for number, part in enumerate(parts, start=2)
            ),
        ),
    )


@dataclass
class Setup:
    url: str
    client: httpx.AsyncClient

    def adapter(
        self, token: str = TOKEN, *, timeout: float = 5.0, **options: str
    ) -> XledgerAdapter:
        return XledgerAdapter(
            AdapterContext(
                integration_id="toyen-xledger",
                endpoint=f"{self.url}/graphql",
                credential=Credential(scheme="token", secret=SecretStr(token)),
                http=self.client,
                timeout_seconds=timeout,
                options=dict(options),
            )
        )

    async def faults(self, **changes: Any) -> None:
        response = await self.client.post(f"{self.url}/_fake/faults", json=changes)
        assert response.status_code == 200, response.text

    async def control(self, path: str) -> Any:
        return (await self.client.get(f"{self.url}/_fake/{path}")).json()


@pytest.fixture
async def setup() -> AsyncIterator[Setup]:
    settings = XledgerFakeSettings(tokens=[TOKEN], burst_requests=1000)
    async with (
        serve_app(create_app(settings)) as url,
        httpx.AsyncClient(timeout=10, verify=TLS) as client,
    ):
        yield Setup(url, client)


def assert_no_secret(error: BaseException, secret: str = TOKEN) -> None:
    """Neither the error nor anything chained to it shows the secret."""
    seen: BaseException | None = error
    while seen is not None:
        for text in (str(seen), repr(seen), *map(str, seen.args)):
            assert secret not in text
        assert seen.__cause__ is None or isinstance(seen.__cause__, AdapterError)
        seen = seen.__context__
    if isinstance(error, AdapterError):
        assert secret not in error.message


# ---- export ----------------------------------------------------------------------------


async def test_the_entry_point_names_this_adapter() -> None:
    assert adapter_class("xledger") is XledgerAdapter
    assert XledgerAdapter.max_lines_per_call == 500


async def test_a_balanced_voucher_is_posted_once_with_decimal_string_amounts(
    setup: Setup,
) -> None:
    receipt = await setup.adapter().export_batch([voucher()])
    postings = (await setup.control("postings"))["postings"]
    assert receipt.voucher_ids == ("888888888-GL-1001",)
    assert receipt.vendor_refs == tuple(str(p["dbId"]) for p in postings)
    assert [p["clientId"] for p in postings] == ["888888888-GL-1001#1", "888888888-GL-1001#2"]
    debit, credit = (p["node"] for p in postings)
    assert debit["amount"] == "12500.00"
    assert credit["amount"] == "-12500.00"
    assert debit == {
        "extIdentifier": "888888888-GL-1001",
        "postedDate": "2017-01-31",
        "invoiceDate": "2017-01-05",
        "account": {"code": "1920"},
        "amount": "12500.00",
        "text": "Salg til Tøyen Lekefabrikk",
        "trRegNumber": 1001,
        "glObject1": {"code": "102"},
        "project": {"code": "202"},
    }
    assert credit["taxRule"] == {"code": "3"}
    assert credit["subledger"] == {"code": "10001"}
    counts = await setup.control("postings/counts")
    assert counts["calls"] == {"888888888-GL-1001": 1}
    assert counts["lines"] == {"888888888-GL-1001": 2}


async def test_all_lines_of_a_batch_go_in_one_call(setup: Setup) -> None:
    await setup.adapter().export_batch([voucher("V1", lines=3), voucher("V2"), voucher("V3")])
    counts = await setup.control("postings/counts")
    assert counts["total_calls"] == 1
    assert counts["lines"] == {"V1": 3, "V2": 2, "V3": 2}


async def test_text_with_norwegian_letters_quotes_backslashes_and_newlines_arrives_unchanged(
    setup: Setup,
) -> None:
    text = 'Søte kosebamser «ÆØÅ» "sitat" C:\\mappe\\fil\nandre linje'
    await setup.adapter().export_batch([voucher(text=text)])
    postings = (await setup.control("postings"))["postings"]
    assert postings[1]["node"]["text"].encode("utf-8") == text.encode("utf-8")


async def test_a_batch_over_500_lines_is_refused_before_anything_is_sent(setup: Setup) -> None:
    batch = [voucher(f"V{n}") for n in range(249)] + [voucher("V-last", lines=3)]
    with pytest.raises(AdapterError) as raised:
        await setup.adapter().export_batch(batch)
    assert raised.value.error_class is ErrorClass.DATA
    assert "501" in raised.value.message
    assert (await setup.control("stats"))["requests_total"] == 0


async def test_exactly_500_lines_are_sent_in_one_call(setup: Setup) -> None:
    receipt = await setup.adapter().export_batch([voucher(f"V{n}") for n in range(250)])
    assert len(receipt.vendor_refs) == 500
    assert (await setup.control("postings/counts"))["total_calls"] == 1


async def test_an_empty_batch_sends_nothing(setup: Setup) -> None:
    receipt = await setup.adapter().export_batch([])
    assert receipt.voucher_ids == ()
    assert (await setup.control("stats"))["requests_total"] == 0


async def test_the_dimension_table_can_be_configured(setup: Setup) -> None:
    await setup.adapter(dimensions="A=glObject3,X=glObject5").export_batch([voucher()])
    node = (await setup.control("postings"))["postings"][0]["node"]
    assert node["glObject3"] == {"code": "102"}
    assert node["glObject5"] == {"code": "skipped"}
    assert "project" not in node
    assert "glObject1" not in node


async def test_a_line_split_over_several_projects_becomes_one_xledger_line_per_project(
    setup: Setup,
) -> None:
    split = Voucher(
        voucher_id="V-split",
        period_id="2017-02",
        transaction_date=date(2017, 2, 1),
        posting_date=date(2017, 2, 1),
        lines=(
            VoucherLine(
                record_id="1",
                account_id="4000",
                debit="10000",
                dimensions=(
                    AnalysisDimension(analysis_type="A", analysis_id="102"),
                    AnalysisDimension(analysis_type="P", analysis_id="200", amount="4000"),
                    AnalysisDimension(analysis_type="P", analysis_id="202", amount="6000"),
                ),
            ),
            VoucherLine(record_id="2", account_id="2400", credit="10000"),
        ),
    )
    adapter = setup.adapter()
    assert adapter.vendor_lines(split) == 3
    await adapter.export_batch([split])
    postings = (await setup.control("postings"))["postings"]
    assert [p["clientId"] for p in postings] == ["V-split#1.1", "V-split#1.2", "V-split#2"]
    assert [p["node"]["amount"] for p in postings] == ["4000.00", "6000.00", "-10000.00"]
    assert [p["node"].get("project") for p in postings[:2]] == [{"code": "200"}, {"code": "202"}]
    assert all(p["node"]["glObject1"] == {"code": "102"} for p in postings[:2])


def test_amounts_are_written_with_at_least_two_decimals() -> None:
    assert decimal_text(Decimal(12500)) == "12500.00"
    assert decimal_text(Decimal(-12500)) == "-12500.00"
    assert decimal_text(Decimal("0.5")) == "0.50"
    assert decimal_text(Decimal("1.2345")) == "1.2345"
    assert decimal_text(Decimal("-0")) == "0.00"
    assert decimal_text(Decimal("1E+3")) == "1000.00"


# ---- lookup and ping -------------------------------------------------------------------


async def test_lookup_finds_posted_vouchers_and_not_unposted_ones(setup: Setup) -> None:
    adapter = setup.adapter(lookup_page_size="1")  # one record a page: pagination is used
    first = await adapter.export_batch([voucher("V1")])
    second = await adapter.export_batch([voucher("V2", lines=3)])
    found = await adapter.lookup(["V1", "V2", "V-never-sent"])
    assert found == {"V1": first.vendor_refs, "V2": second.vendor_refs}
    # Five posted lines, one a page: five pages, the last one without a next page.
    assert (await setup.control("stats"))["by_operation"]["glImportItems"] == 5


async def test_lookup_of_nothing_posted_is_empty(setup: Setup) -> None:
    assert await setup.adapter().lookup(["V1"]) == {}


async def test_ping_times_the_typename_probe(setup: Setup) -> None:
    result = await setup.adapter().ping()
    assert result.latency_ms > 0
    assert (await setup.control("stats"))["by_operation"] == {"__typename": 1}


# ---- failures --------------------------------------------------------------------------


async def test_an_unknown_token_is_an_auth_error(setup: Setup) -> None:
    with pytest.raises(AdapterError) as raised:
        await setup.adapter("an-unknown-token-9x").ping()
    assert raised.value.error_class is ErrorClass.AUTH
    assert_no_secret(raised.value, "an-unknown-token-9x")


async def test_a_badly_formed_token_is_an_auth_error_that_never_echoes_it(setup: Setup) -> None:
    with pytest.raises(AdapterError) as raised:
        await setup.adapter("two words\nand a newline").export_batch([voucher()])
    assert raised.value.error_class is ErrorClass.AUTH
    assert_no_secret(raised.value, "two words\nand a newline")
    assert (await setup.control("stats"))["requests_total"] == 0


async def test_a_burst_limit_answer_is_retryable_after_xledgers_five_seconds(
    setup: Setup,
) -> None:
    await setup.faults(burst_limit={"requests": 1, "window_seconds": 60})
    adapter = setup.adapter()
    await adapter.ping()
    with pytest.raises(AdapterError) as raised:
        await adapter.export_batch([voucher()])
    assert raised.value.error_class is ErrorClass.RETRYABLE
    assert raised.value.vendor_code == "BAD_REQUEST.BURST_RATE_LIMIT_REACHED"
    assert raised.value.retry_after == 5.0
    assert (await setup.control("postings"))["postings"] == []


async def test_a_concurrency_limit_answer_is_retryable(setup: Setup) -> None:
    await setup.faults(concurrency_limit={"max": 1}, latency={"seconds": 0.3})
    adapter = setup.adapter()
    results = await asyncio.gather(adapter.ping(), adapter.ping(), return_exceptions=True)
    errors = [r for r in results if isinstance(r, AdapterError)]
    assert len(errors) == 1
    assert errors[0].error_class is ErrorClass.RETRYABLE
    assert errors[0].vendor_code == "BAD_REQUEST.CONCURRENCY_LIMIT_REACHED"


async def test_insufficient_credits_is_a_quota_error_that_waits_until_the_reset(
    setup: Setup,
) -> None:
    await setup.faults(insufficient_credits={"reset_in_seconds": 600})
    with pytest.raises(AdapterError) as raised:
        await setup.adapter().export_batch([voucher()])
    assert raised.value.error_class is ErrorClass.QUOTA
    assert raised.value.vendor_code == "BAD_REQUEST.INSUFFICIENT_CREDITS"
    assert raised.value.retry_after is not None
    assert 590 <= raised.value.retry_after <= 601


async def test_a_drop_after_commit_is_ambiguous_and_the_lookup_then_finds_the_voucher(
    setup: Setup,
) -> None:
    await setup.faults(drop_after_commit={"count": 1})
    adapter = setup.adapter()
    with pytest.raises(AdapterError) as raised:
        await adapter.export_batch([voucher("V1")])
    assert raised.value.error_class is ErrorClass.AMBIGUOUS
    assert_no_secret(raised.value)
    found = await adapter.lookup(["V1"])
    assert len(found["V1"]) == 2


async def test_a_read_timeout_after_commit_is_ambiguous(setup: Setup) -> None:
    await setup.faults(stall_after_commit={"seconds": 10})
    with pytest.raises(AdapterError) as raised:
        await setup.adapter(timeout=0.3).export_batch([voucher("V1")])
    assert raised.value.error_class is ErrorClass.AMBIGUOUS
    assert_no_secret(raised.value)
    assert (await setup.control("postings/counts"))["calls"] == {"V1": 1}


async def test_your_query_timed_out_is_ambiguous_for_the_export_and_retryable_for_a_ping(
    setup: Setup,
) -> None:
    await setup.faults(stall={"seconds": 0.05, "count": 2})
    adapter = setup.adapter()
    with pytest.raises(AdapterError) as export:
        await adapter.export_batch([voucher()])
    with pytest.raises(AdapterError) as ping:
        await adapter.ping()
    assert export.value.error_class is ErrorClass.AMBIGUOUS
    assert ping.value.error_class is ErrorClass.RETRYABLE
    assert "timed out" in ping.value.message


async def test_a_5xx_is_retryable_and_honours_retry_after(setup: Setup) -> None:
    await setup.faults(http_error={"status": 503, "retry_after_seconds": 7})
    with pytest.raises(AdapterError) as raised:
        await setup.adapter().export_batch([voucher()])
    assert raised.value.error_class is ErrorClass.RETRYABLE
    assert raised.value.status_code == 503
    assert raised.value.retry_after == 7.0
    assert (await setup.control("postings"))["postings"] == []


async def test_a_refused_connection_is_retryable() -> None:
    closed = bind_socket()  # bound, never listening: connecting is refused
    port = closed.getsockname()[1]
    try:
        async with httpx.AsyncClient(verify=TLS) as client:
            adapter = Setup(f"http://127.0.0.1:{port}", client).adapter()
            with pytest.raises(AdapterError) as raised:
                await adapter.export_batch([voucher()])
    finally:
        closed.close()
    assert raised.value.error_class is ErrorClass.RETRYABLE
    assert_no_secret(raised.value)


async def test_an_unknown_account_is_a_data_error_with_the_vendors_message(setup: Setup) -> None:
    await setup.client.post(f"{setup.url}/_fake/accounts", json={"codes": ["1920"]})
    with pytest.raises(AdapterError) as raised:
        await setup.adapter().export_batch([voucher()])
    assert raised.value.error_class is ErrorClass.DATA
    assert "'3000'" in raised.value.message
    assert (await setup.control("postings"))["postings"] == []


async def test_the_token_never_appears_in_any_raised_error(setup: Setup) -> None:
    adapter = setup.adapter()
    raised: list[AdapterError] = []
    for faults in (
        {"http_error": {"status": 500}},
        {"drop_after_commit": {}},
        {"insufficient_credits": {}},
        {"stall": {"seconds": 0.01}},
    ):
        await setup.faults(**faults)
        with pytest.raises(AdapterError) as caught:
            await adapter.export_batch([voucher()])
        raised.append(caught.value)
        await setup.client.post(f"{setup.url}/_fake/reset")
    assert len(raised) == 4
    for error in raised:
        assert_no_secret(error)
