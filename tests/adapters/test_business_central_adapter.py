"""The Business Central adapter against the Business Central fake, over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from syncbus_adapters import AdapterContext, AdapterError, Credential, adapter_class
from syncbus_adapters.business_central import (
    BusinessCentralAdapter,
    document_number,
    external_reference,
    journal_code,
)
from syncbus_adapters.pacing import reset_pacers
from syncbus_fakes.business_central import BC_AUDIENCE, BusinessCentralFakeSettings, create_app
from syncbus_fakes.server import serve_app
from syncbus_shared.contracts import ErrorClass, Voucher, VoucherLine

CLIENT_ID = "bc-adapter-app"
CLIENT_SECRET = "bc-adapter-secret-31c4"
COMPANY = "Tøyen Lekefabrikk AS"


def voucher(
    voucher_id: str = "888888888-GL-1001",
    *,
    lines: int = 2,
    amount: str = "12500.00",
    description: str | None = "Salg til Tøyen «Lekefabrikk»",
) -> Voucher:
    """A balanced voucher: one debit on 1920, then credits on 3000 that add up to it."""
    total = Decimal(amount)
    n_credits = lines - 1
    share = (total / n_credits).quantize(Decimal("0.01"))
    parts = [share] * (n_credits - 1) + [total - share * (n_credits - 1)]
    return Voucher(
        voucher_id=voucher_id,
        period_id="2017-01",
        transaction_date=date(2017, 1, 5),
        posting_date=date(2017, 1, 31),
        description=description,
        lines=(
            VoucherLine(record_id="1", account_id="1920", debit=amount),
            *(
                VoucherLine(record_id=str(n), account_id="3000", credit=str(part))
                for n, part in enumerate(parts, start=2)
            ),
        ),
    )


@dataclass
class Setup:
    url: str
    http: httpx.AsyncClient
    tenant: str
    company: str

    @property
    def root(self) -> str:
        return f"{self.url}/v2.0/{self.tenant}/production/api/v2.0"

    async def token(self, scope: str = f"{BC_AUDIENCE}/.default") -> str:
        response = await self.http.post(
            f"{self.url}/{self.tenant}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "scope": scope,
            },
        )
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    async def adapter(
        self, token: str | None = None, *, endpoint: str | None = None, **options: str
    ) -> BusinessCentralAdapter:
        secret = token if token is not None else await self.token()
        return BusinessCentralAdapter(
            AdapterContext(
                integration_id="toyen-bc",
                endpoint=endpoint or f"{self.root}/companies({self.company})",
                credential=Credential(scheme="Bearer", secret=SecretStr(secret)),
                http=self.http,
                timeout_seconds=5.0,
                options=dict(options),
            )
        )

    async def faults(self, **changes: Any) -> None:
        response = await self.http.post(f"{self.url}/_fake/faults", json=changes)
        assert response.status_code == 200, response.text

    async def control(self, path: str) -> Any:
        return (await self.http.get(f"{self.url}/_fake/{path}")).json()


@pytest.fixture
async def setup() -> AsyncIterator[Setup]:
    reset_pacers()
    settings = BusinessCentralFakeSettings(
        clients=[f"{CLIENT_ID}:{CLIENT_SECRET}"], companies=(COMPANY, "Other AS")
    )
    async with (
        serve_app(create_app(settings)) as url,
        httpx.AsyncClient(timeout=10) as http,
    ):
        companies = (await http.get(f"{url}/_fake/companies")).json()
        company = next(
            c["id"] for c in companies["environments"]["production"] if c["name"] == COMPANY
        )
        yield Setup(url, http, settings.tenant_id, company)


def _expired_jwt() -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    claims = {"aud": BC_AUDIENCE, "exp": time.time() - 10, "oid": "x", "tid": "t"}
    return f"{part({'alg': 'HS256'})}.{part(claims)}.c2ln"


# ---- the registry and the configuration -----------------------------------------------


def test_the_adapter_is_found_through_its_entry_point() -> None:
    assert adapter_class("business_central") is BusinessCentralAdapter


@pytest.mark.parametrize(
    ("endpoint", "options", "root"),
    [
        (
            "https://api.businesscentral.dynamics.com/v2.0/T/production/api/v2.0/companies(C1)",
            {},
            "https://api.businesscentral.dynamics.com/v2.0/T/production/api/v2.0",
        ),
        (
            "https://api.businesscentral.dynamics.com/v2.0/T/sandbox/api/v2.0",
            {"company_id": "C2"},
            "https://api.businesscentral.dynamics.com/v2.0/T/sandbox/api/v2.0",
        ),
        (
            "https://api.businesscentral.dynamics.com",
            {"tenant": "T", "environment": "production", "company_name": "X"},
            "https://api.businesscentral.dynamics.com/v2.0/T/production/api/v2.0",
        ),
    ],
)
def test_the_api_root_and_company_come_from_the_endpoint_or_the_options(
    endpoint: str, options: dict[str, str], root: str
) -> None:
    adapter = BusinessCentralAdapter(
        AdapterContext(
            "it", endpoint, Credential("Bearer", SecretStr("t")), httpx.AsyncClient(), 1, options
        )
    )
    assert adapter.api_root == root


@pytest.mark.parametrize(
    ("endpoint", "options"),
    [
        ("https://example.org/graphql", {}),
        ("https://api.businesscentral.dynamics.com/v2.0/T/production/api/v2.0", {}),
        (
            "https://api.businesscentral.dynamics.com/v2.0/T/production/api/v2.0/companies(C)",
            {"rate_limit": "fast"},
        ),
    ],
)
def test_an_endpoint_without_a_company_or_a_bad_option_is_a_configuration_error(
    endpoint: str, options: dict[str, str]
) -> None:
    with pytest.raises(AdapterError) as caught:
        BusinessCentralAdapter(
            AdapterContext(
                "it",
                endpoint,
                Credential("Bearer", SecretStr("t")),
                httpx.AsyncClient(),
                1,
                options,
            )
        )
    assert caught.value.error_class is ErrorClass.CONFIGURATION


# ---- mapping ----------------------------------------------------------------------------


def test_the_document_number_is_20_characters_derived_from_the_voucher_id_only() -> None:
    number = document_number("888888888-123ABC-1001")
    assert len(number) == 20
    assert number.startswith("SB")
    assert number == number.upper()
    assert number == document_number("888888888-123ABC-1001")
    assert number != document_number("888888888-123ABC-1002")


def test_the_external_document_number_is_our_reference_cut_to_35_with_a_hash() -> None:
    assert external_reference("888888888-123ABC-1001") == "888888888-123ABC-1001"
    long_a, long_b = "A" * 40, "A" * 39 + "B"
    assert len(external_reference(long_a)) == 35
    assert external_reference(long_a).startswith("A" * 26 + "~")
    assert external_reference(long_a) != external_reference(long_b)


def test_the_journal_code_fits_10_characters_and_does_not_depend_on_order() -> None:
    code = journal_code(["b", "a"])
    assert len(code) == 10
    assert code == journal_code(["a", "b"])


async def test_amounts_are_rounded_half_up_to_cents(setup: Setup) -> None:
    adapter = await setup.adapter()
    odd = Voucher(
        voucher_id="v-round",
        period_id="2017-01",
        transaction_date=date(2017, 1, 5),
        posting_date=date(2017, 1, 31),
        lines=(
            VoucherLine(record_id="1", account_id="1920", debit="10.005"),
            VoucherLine(record_id="2", account_id="3000", credit="10.005"),
        ),
    )
    lines = adapter.build_lines([odd])
    assert [line["amount"] for line in lines] == [Decimal("10.01"), Decimal("-10.01")]


async def test_a_voucher_that_no_longer_balances_once_rounded_is_refused_before_sending(
    setup: Setup,
) -> None:
    adapter = await setup.adapter()
    odd = Voucher(
        voucher_id="v-odd",
        period_id="2017-01",
        transaction_date=date(2017, 1, 5),
        posting_date=date(2017, 1, 31),
        lines=(
            VoucherLine(record_id="1", account_id="1920", debit="0.01"),
            VoucherLine(record_id="2", account_id="3000", credit="0.005"),
            VoucherLine(record_id="3", account_id="3001", credit="0.005"),
        ),
    )
    with pytest.raises(AdapterError) as caught:
        await adapter.export_batch([odd])
    assert caught.value.error_class is ErrorClass.DATA
    assert "rounded to 0.01" in caught.value.message
    assert (await setup.control("stats"))["requests_total"] == 0


async def test_a_voucher_becomes_one_posted_line_per_line_with_the_documented_fields(
    setup: Setup,
) -> None:
    adapter = await setup.adapter()
    text = 'Tøyen «kvittering» "quoted" \\ ' + "x" * 120
    v = voucher(description=text)
    receipt = await adapter.export_batch([v])
    assert receipt.voucher_ids == (v.voucher_id,)
    assert receipt.vendor_refs == (document_number(v.voucher_id),)
    entries = (await setup.control("postings"))["entries"]
    assert [(e["accountNumber"], e["amount"]) for e in entries] == [
        ("1920", 12500.0),
        ("3000", -12500.0),
    ]
    assert {e["documentNumber"] for e in entries} == {document_number(v.voucher_id)}
    assert {e["externalDocumentNumber"] for e in entries} == {v.voucher_id.upper()}
    assert {e["postingDate"] for e in entries} == {"2017-01-31"}
    assert {e["company"] for e in entries} == {COMPANY}
    description = entries[0]["description"]
    assert len(description) == 100
    assert description.startswith('Tøyen «kvittering» "quoted" \\ ')
    assert description.endswith("…")


async def test_a_batch_is_one_journal_its_lines_in_batches_of_100_and_one_post(
    setup: Setup,
) -> None:
    adapter = await setup.adapter()
    vouchers = [voucher(f"v-{n}", lines=25) for n in range(10)]  # 250 lines
    await adapter.export_batch(vouchers)
    stats = await setup.control("stats")
    assert stats["by_operation"] == {
        "journals.create": 1,
        "$batch": 3,
        "journals.post": 1,
        "journals.delete": 1,
    }
    assert stats["batch_operations"] == 250
    counts = await setup.control("postings/counts")
    assert counts["total_posts"] == 1
    assert counts["total_lines"] == 250
    assert set(counts["documents"].values()) == {1}
    assert (await setup.control("journals"))["journals"] == []


async def test_a_batch_of_more_lines_than_one_post_takes_is_refused_before_sending(
    setup: Setup,
) -> None:
    adapter = await setup.adapter()
    with pytest.raises(AdapterError) as caught:
        await adapter.export_batch([voucher(f"v-{n}", lines=100) for n in range(6)])
    assert caught.value.error_class is ErrorClass.DATA
    assert (await setup.control("stats"))["requests_total"] == 0


async def test_lookup_finds_the_posted_vouchers_by_document_number_and_not_the_others(
    setup: Setup,
) -> None:
    adapter = await setup.adapter()
    posted = [voucher(f"posted-{n}") for n in range(3)]
    await adapter.export_batch(posted)
    asked = [v.voucher_id for v in posted] + [f"never-{n}" for n in range(150)]
    found = await adapter.lookup(asked)
    assert found == {v.voucher_id: (document_number(v.voucher_id),) for v in posted}
    stats = await setup.control("stats")
    assert stats["by_operation"]["$batch"] == 1 + 2  # one for the lines, two for 153 lookups


async def test_the_company_can_be_named_instead_of_given_by_id(setup: Setup) -> None:
    adapter = await setup.adapter(endpoint=setup.root, company_name=COMPANY)
    await adapter.warm_up()
    await adapter.export_batch([voucher()])
    assert {e["company"] for e in (await setup.control("postings"))["entries"]} == {COMPANY}


async def test_an_unknown_company_name_is_a_configuration_error(setup: Setup) -> None:
    adapter = await setup.adapter(endpoint=setup.root, company_name="Nobody AS")
    with pytest.raises(AdapterError) as caught:
        await adapter.warm_up()
    assert caught.value.error_class is ErrorClass.CONFIGURATION


async def test_ping_is_one_companies_top_1_request(setup: Setup) -> None:
    adapter = await setup.adapter()
    result = await adapter.ping()
    assert result.latency_ms > 0
    assert (await setup.control("stats"))["by_operation"] == {"companies.list": 1}


# ---- failures ---------------------------------------------------------------------------


async def test_a_dropped_connection_after_the_post_is_ambiguous_and_lookup_finds_it(
    setup: Setup,
) -> None:
    adapter = await setup.adapter()
    v = voucher()
    await setup.faults(drop_after_commit={"count": 1})
    with pytest.raises(AdapterError) as caught:
        await adapter.export_batch([v])
    assert caught.value.error_class is ErrorClass.AMBIGUOUS
    assert await adapter.lookup([v.voucher_id]) == {v.voucher_id: (document_number(v.voucher_id),)}
    assert (await setup.control("postings/counts"))["documents"] == {
        document_number(v.voucher_id): 1
    }


async def test_a_gateway_timeout_on_the_post_is_ambiguous(setup: Setup) -> None:
    adapter = await setup.adapter()
    await setup.faults(stall_after_commit={"seconds": 0.05})
    with pytest.raises(AdapterError) as caught:
        await adapter.export_batch([voucher()])
    assert caught.value.error_class is ErrorClass.AMBIGUOUS
    assert caught.value.status_code == 504


async def test_lines_left_by_a_failed_post_are_dropped_before_the_retry_so_nothing_posts_twice(
    setup: Setup,
) -> None:
    adapter = await setup.adapter()
    vouchers = [voucher(f"v-{n}") for n in range(2)]
    await setup.faults(http_error={"status": 503, "count": 1, "operation": "journals.post"})
    with pytest.raises(AdapterError) as caught:
        await adapter.export_batch(vouchers)
    assert caught.value.error_class is ErrorClass.RETRYABLE
    left = (await setup.control("journals"))["journals"]
    assert [j["lines"] for j in left] == [4]
    await adapter.export_batch(vouchers)
    counts = await setup.control("postings/counts")
    assert counts["total_lines"] == 4
    assert set(counts["documents"].values()) == {1}
    assert (await setup.control("journals"))["journals"] == []


async def test_a_line_the_company_refuses_is_a_data_error_and_no_journal_is_left(
    setup: Setup,
) -> None:
    await setup.http.post(f"{setup.url}/_fake/accounts", json={"numbers": ["1920"]})
    adapter = await setup.adapter()
    with pytest.raises(AdapterError) as caught:
        await adapter.export_batch([voucher()])
    assert caught.value.error_class is ErrorClass.DATA
    assert caught.value.vendor_code == "Internal_InvalidTableRelation"
    assert "(3000)" in caught.value.message
    assert (await setup.control("journals"))["journals"] == []
    assert (await setup.control("postings/counts"))["total_lines"] == 0


async def test_a_revoked_token_is_an_auth_error(setup: Setup) -> None:
    adapter = await setup.adapter()
    await setup.http.post(f"{setup.url}/_fake/tokens/revoke", json={})
    with pytest.raises(AdapterError) as caught:
        await adapter.ping()
    assert caught.value.error_class is ErrorClass.AUTH
    assert caught.value.vendor_code == "Authentication_InvalidCredentials"


async def test_a_token_for_another_audience_is_an_auth_error_despite_the_xml_body(
    setup: Setup,
) -> None:
    graph = await setup.token("https://graph.microsoft.com/.default")
    adapter = await setup.adapter(graph)
    with pytest.raises(AdapterError) as caught:
        await adapter.ping()
    assert caught.value.error_class is ErrorClass.AUTH
    assert "credentials provided are incorrect" in caught.value.message


async def test_an_expired_token_is_refused_before_anything_is_sent(setup: Setup) -> None:
    adapter = await setup.adapter(_expired_jwt())
    with pytest.raises(AdapterError) as caught:
        await adapter.ping()
    assert caught.value.error_class is ErrorClass.AUTH
    assert (await setup.control("stats"))["requests_total"] == 0


async def test_a_429_without_retry_after_is_retryable_and_holds_the_pacer_back(
    setup: Setup,
) -> None:
    adapter = await setup.adapter(rate_limit="100/0.4")
    await setup.faults(too_many_requests={"count": 1})
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(AdapterError) as caught:
        await adapter.ping()
    assert caught.value.error_class is ErrorClass.RETRYABLE
    assert caught.value.retry_after is None
    assert adapter.pacer is not None
    assert adapter.pacer.stats.holds == 1
    await adapter.ping()
    # Held for min(window, 5 s) = 0.4 s from the 429, which came after `started`.
    assert loop.time() - started >= 0.39


async def test_the_token_never_appears_in_an_error_message(setup: Setup) -> None:
    token = await setup.token()
    adapter = await setup.adapter(token)
    await setup.faults(http_error={"status": 500, "count": 1})
    with pytest.raises(AdapterError) as caught:
        await adapter.ping()
    assert token not in caught.value.message
    assert token not in repr(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None


async def test_an_unreachable_server_is_retryable_and_nothing_was_sent() -> None:
    async with httpx.AsyncClient() as http:
        adapter = BusinessCentralAdapter(
            AdapterContext(
                "it",
                "http://127.0.0.1:9/v2.0/T/production/api/v2.0/companies(C)",
                Credential("Bearer", SecretStr("opaque-token")),
                http,
                2.0,
            )
        )
        with pytest.raises(AdapterError) as caught:
            await adapter.ping()
    assert caught.value.error_class is ErrorClass.RETRYABLE
    assert "nothing was sent" in caught.value.message
