"""The Business Central fake behaves like Business Central and Entra: tokens, resources, $batch,
posting, ETags, error shapes, limits and faults, over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest

from syncbus_fakes.business_central import BC_AUDIENCE, BusinessCentralFakeSettings, create_app
from syncbus_fakes.server import serve_app

CLIENT_ID = "3f1c6a2e-syncbus-test-app"
CLIENT_SECRET = "bc-test-secret-9d8c7b6a"
SCOPE = f"{BC_AUDIENCE}/.default"


def _exact(raw: bytes) -> Any:
    return json.loads(raw, parse_float=Decimal)


@dataclass
class Fake:
    url: str
    client: httpx.AsyncClient
    tenant: str
    token: str
    company: str

    @property
    def root(self) -> str:
        return f"/v2.0/{self.tenant}/production/api/v2.0"

    @property
    def company_path(self) -> str:
        return f"{self.root}/companies({self.company})"

    async def token_request(self, tenant: str | None = None, **form: str) -> httpx.Response:
        body = {
            "grant_type": "client_credentials",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "scope": SCOPE,
            **form,
        }
        body = {k: v for k, v in body.items() if v != ""}
        return await self.client.post(f"/{tenant or self.tenant}/oauth2/v2.0/token", data=body)

    async def new_token(self, **form: str) -> str:
        response = await self.token_request(**form)
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    async def api(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        all_headers = {"Authorization": f"Bearer {token or self.token}", **(headers or {})}
        content = None
        if body is not None:
            content = body if isinstance(body, bytes) else json.dumps(body).encode()
            all_headers.setdefault("Content-Type", "application/json")
        url = path if path.startswith("/") else f"{self.root}/{path}"
        return await self.client.request(
            method, url, content=content, headers=all_headers, params=params
        )

    async def journal(self, code: str = "SBTEST") -> dict[str, Any]:
        response = await self.api(
            "POST", f"{self.company_path}/journals", body={"code": code, "displayName": "t"}
        )
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def add_line(self, journal_id: str, **fields: Any) -> httpx.Response:
        line = {
            "accountNumber": "1920",
            "postingDate": "2017-01-31",
            "documentNumber": "DOC1",
            **fields,
        }
        raw = _raw_json(line)
        return await self.api(
            "POST", f"{self.company_path}/journals({journal_id})/journalLines", body=raw
        )

    async def post(self, journal_id: str) -> httpx.Response:
        return await self.api(
            "POST", f"{self.company_path}/journals({journal_id})/Microsoft.NAV.post"
        )

    async def faults(self, **changes: Any) -> dict[str, Any]:
        response = await self.client.post("/_fake/faults", json=changes)
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def control(self, path: str) -> Any:
        response = await self.client.get(f"/_fake/{path}")
        assert response.status_code == 200
        return response.json()


def _raw_json(value: dict[str, Any]) -> bytes:
    """JSON with Decimal amounts written as exact numbers (what the adapter sends)."""
    parts = []
    for key, item in value.items():
        shown = format(item, "f") if isinstance(item, Decimal) else json.dumps(item)
        parts.append(f"{json.dumps(key)}:{shown}")
    return ("{" + ",".join(parts) + "}").encode()


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert "error" in body, body
    return dict(body["error"])


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


async def _started(**settings: Any) -> AsyncIterator[Fake]:
    config = BusinessCentralFakeSettings(
        clients=[f"{CLIENT_ID}:{CLIENT_SECRET}"], companies=("Tøyen Lekefabrikk AS",), **settings
    )
    async with (
        serve_app(create_app(config)) as url,
        httpx.AsyncClient(base_url=url, timeout=10) as client,
    ):
        fake = Fake(url, client, config.tenant_id, "", "")
        fake.token = await fake.new_token()
        listed = await fake.control("companies")
        fake.company = listed["environments"]["production"][0]["id"]
        yield fake


@pytest.fixture
async def fake() -> AsyncIterator[Fake]:
    async for started in _started():
        yield started


# ---- the token endpoint -----------------------------------------------------------------


async def test_client_credentials_give_a_bearer_token_that_expires_with_the_set_lifetime() -> None:
    async for fake in _started(token_lifetime_seconds=120):
        response = await fake.token_request()
        body = response.json()
        assert response.status_code == 200
        assert body["token_type"] == "Bearer"
        assert body["expires_in"] == 120
        assert "refresh_token" not in body
        claims = claims_of(body["access_token"])
        assert claims["aud"] == BC_AUDIENCE
        assert claims["tid"] == fake.tenant
        assert claims["appid"] == CLIENT_ID
        assert claims["exp"] - claims["iat"] == pytest.approx(120)


async def test_a_wrong_client_secret_is_invalid_client_in_entras_shape(fake: Fake) -> None:
    response = await fake.token_request(client_secret="not-the-secret")
    body = response.json()
    assert response.status_code == 400
    assert body["error"] == "invalid_client"
    assert body["error_description"].startswith("AADSTS7000215: ")
    assert body["error_codes"] == [7000215]
    assert {"trace_id", "correlation_id", "timestamp"} <= set(body)
    assert "not-the-secret" not in response.text


async def test_an_unknown_client_is_unauthorized_client(fake: Fake) -> None:
    response = await fake.token_request(client_id="someone-else")
    assert response.status_code == 400
    assert response.json()["error"] == "unauthorized_client"
    assert response.json()["error_description"].startswith("AADSTS700016: ")


@pytest.mark.parametrize("scope", ["", BC_AUDIENCE, "https://example.org/.default"])
async def test_a_missing_or_wrong_scope_is_invalid_scope(fake: Fake, scope: str) -> None:
    response = await fake.token_request(scope=scope)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"


async def test_another_grant_type_and_an_unknown_tenant_are_refused(fake: Fake) -> None:
    grant = await fake.token_request(grant_type="password")
    assert grant.json()["error"] == "unsupported_grant_type"
    tenant = await fake.token_request(tenant="no-such-tenant")
    assert tenant.status_code == 400
    assert tenant.json()["error_description"].startswith("AADSTS90002: ")


async def test_a_token_dies_at_its_expiry_and_the_api_then_answers_401() -> None:
    async for fake in _started(token_lifetime_seconds=1):
        token = await fake.new_token()
        assert (await fake.api("GET", "companies", token=token)).status_code == 200
        # Wait for the instant the token itself says it expires (its `exp` claim).
        await asyncio.sleep(max(claims_of(token)["exp"] - time.time(), 0) + 0.05)
        response = await fake.api("GET", "companies", token=token)
        assert response.status_code == 401
        assert error_of(response)["code"] == "Authentication_InvalidCredentials"
        assert "expired" in error_of(response)["message"]


async def test_revoking_a_clients_tokens_refuses_them_and_a_new_token_works(fake: Fake) -> None:
    await fake.client.post("/_fake/tokens/revoke", json={"client_id": CLIENT_ID})
    refused = await fake.api("GET", "companies")
    assert refused.status_code == 401
    assert error_of(refused)["code"] == "Authentication_InvalidCredentials"
    fresh = await fake.new_token()
    assert (await fake.api("GET", "companies", token=fresh)).status_code == 200
    stats = await fake.control("stats")
    assert stats["auth_failures_by_reason"] == {"revoked": 1}


async def test_a_token_for_another_audience_gets_401_with_an_xml_body(fake: Fake) -> None:
    graph = await fake.new_token(scope="https://graph.microsoft.com/.default")
    response = await fake.api("GET", "companies", token=graph)
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/xml")
    assert response.text.startswith("<?xml")
    with pytest.raises(ValueError):
        response.json()


async def test_a_client_without_roles_gets_401_authentication_invalid_credentials(
    fake: Fake,
) -> None:
    await fake.client.post(
        "/_fake/clients", json={"client_id": "no-roles", "client_secret": "s-1", "roles": []}
    )
    token = await fake.new_token(client_id="no-roles", client_secret="s-1")
    response = await fake.api("GET", "companies", token=token)
    assert response.status_code == 401
    assert error_of(response)["code"] == "Authentication_InvalidCredentials"


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer not.a.jwt", "token abc"])
async def test_a_missing_or_malformed_bearer_header_is_401(fake: Fake, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    response = await fake.client.get(f"{fake.root}/companies", headers=headers)
    assert response.status_code == 401
    assert error_of(response)["code"] == "Authentication_InvalidCredentials"


# ---- resources --------------------------------------------------------------------------


async def test_companies_top_1_is_the_cheap_probe_and_lists_one_company(fake: Fake) -> None:
    response = await fake.api("GET", "companies", params={"$top": "1"})
    assert response.status_code == 200
    body = response.json()
    assert [c["name"] for c in body["value"]] == ["Tøyen Lekefabrikk AS"]
    assert body["@odata.context"].endswith("/$metadata#companies")
    assert (await fake.control("stats"))["by_operation"] == {"companies.list": 1}


async def test_metadata_is_xml(fake: Fake) -> None:
    response = await fake.api("GET", "$metadata")
    assert response.status_code == 200
    assert response.text.startswith("<?xml")


async def test_an_unknown_company_is_404_in_the_odata_envelope(fake: Fake) -> None:
    response = await fake.api("GET", "companies(00000000-0000-0000-0000-000000000001)/journals")
    assert response.status_code == 404
    error = error_of(response)
    assert error["code"] == "BadRequest_ResourceNotFound"
    assert "  CorrelationId:  " in error["message"]


async def test_a_journal_is_created_with_its_code_in_upper_case_and_a_code_is_unique(
    fake: Fake,
) -> None:
    journal = await fake.journal("sbtest")
    assert journal["code"] == "SBTEST"
    assert journal["@odata.etag"].startswith('W/"')
    again = await fake.api(
        "POST", f"{fake.company_path}/journals", body={"code": "SBTEST", "displayName": "x"}
    )
    assert again.status_code == 400
    assert error_of(again)["code"] == "Internal_EntityWithSameKeyExists"
    long = await fake.api("POST", f"{fake.company_path}/journals", body={"code": "X" * 11})
    assert error_of(long)["code"] == "Application_StringExceededLength"


async def test_a_journal_line_is_created_with_the_next_line_number_and_exact_amount(
    fake: Fake,
) -> None:
    journal = await fake.journal()
    first = await fake.add_line(journal["id"], amount=Decimal("12500.50"), lineNumber=0)
    second = await fake.add_line(journal["id"], amount=Decimal("-12500.50"))
    assert first.status_code == second.status_code == 201
    line = _exact(first.content)
    assert line["lineNumber"] == 10000
    assert _exact(second.content)["lineNumber"] == 20000
    assert line["amount"] == Decimal("12500.50")
    assert b'"amount":12500.50' in first.content
    assert line["accountType"] == "G/L Account"
    assert line["journalId"] == journal["id"]


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("documentNumber", "D" * 21, "Application_StringExceededLength"),
        ("externalDocumentNumber", "E" * 36, "Application_StringExceededLength"),
        ("description", "d" * 101, "Application_StringExceededLength"),
        ("accountType", "Customer", "BadRequest_InvalidRequestBody"),
        ("postingDate", "31.01.2017", "BadRequest_InvalidRequestBody"),
        ("amount", "100.00", "BadRequest_InvalidRequestBody"),
        ("currencyCode", "EUR", "BadRequest_InvalidRequestBody"),
    ],
)
async def test_journal_lines_are_checked_against_the_field_rules(
    fake: Fake, field: str, value: str, code: str
) -> None:
    journal = await fake.journal()
    response = await fake.add_line(journal["id"], **{field: value})
    assert response.status_code == 400, response.text
    assert error_of(response)["code"] == code


async def test_a_string_too_long_gets_business_centrals_length_message(fake: Fake) -> None:
    journal = await fake.journal()
    response = await fake.add_line(journal["id"], documentNumber="D" * 21)
    assert error_of(response)["message"].startswith(
        "The length of the string is 21, but it must be less than or equal to 20 characters."
    )


async def test_an_account_outside_the_chart_is_an_invalid_table_relation(fake: Fake) -> None:
    await fake.client.post("/_fake/accounts", json={"numbers": ["1920", "3000"]})
    journal = await fake.journal()
    response = await fake.add_line(journal["id"], accountNumber="9999")
    assert response.status_code == 400
    assert error_of(response)["code"] == "Internal_InvalidTableRelation"


# ---- posting ----------------------------------------------------------------------------


async def test_posting_a_balanced_journal_answers_204_and_moves_the_lines_into_the_ledger(
    fake: Fake,
) -> None:
    journal = await fake.journal()
    await fake.add_line(journal["id"], amount=Decimal("100.00"), description="Salg «Tøyen»")
    await fake.add_line(journal["id"], amount=Decimal("-100.00"), accountNumber="3000")
    posted = await fake.post(journal["id"])
    assert posted.status_code == 204
    assert posted.content == b""
    lines = await fake.api("GET", f"{fake.company_path}/journals({journal['id']})/journalLines")
    assert lines.json()["value"] == []
    entries = await fake.api(
        "GET",
        f"{fake.company_path}/generalLedgerEntries",
        params={"$filter": "documentNumber eq 'DOC1'"},
    )
    body = _exact(entries.content)
    assert [(e["accountNumber"], e["debitAmount"], e["creditAmount"]) for e in body["value"]] == [
        ("1920", Decimal("100.00"), Decimal("0.00")),
        ("3000", Decimal("0.00"), Decimal("100.00")),
    ]
    assert body["value"][0]["description"] == "Salg «Tøyen»"
    counts = await fake.control("postings/counts")
    assert counts == {
        "documents": {"DOC1": 1},
        "lines": {"DOC1": 2},
        "total_posts": 1,
        "total_lines": 2,
    }


async def test_posting_an_empty_journal_says_there_is_nothing_to_post(fake: Fake) -> None:
    journal = await fake.journal()
    response = await fake.post(journal["id"])
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "Application_DialogException"
    assert error["message"].startswith("There is nothing to post.")


async def test_posting_an_unbalanced_journal_says_out_of_balance_and_posts_nothing(
    fake: Fake,
) -> None:
    journal = await fake.journal()
    await fake.add_line(journal["id"], amount=Decimal("100.00"))
    await fake.add_line(journal["id"], amount=Decimal("-90.00"))
    response = await fake.post(journal["id"])
    assert response.status_code == 400
    assert "DOC1 is out of balance by 10.00" in error_of(response)["message"]
    assert (await fake.control("postings/counts"))["total_lines"] == 0


async def test_an_amount_not_rounded_to_cents_is_taken_but_fails_at_posting(fake: Fake) -> None:
    journal = await fake.journal()
    created = await fake.add_line(journal["id"], amount=Decimal("100.005"))
    assert created.status_code == 201
    await fake.add_line(journal["id"], amount=Decimal("-100.005"))
    response = await fake.post(journal["id"])
    assert response.status_code == 400
    assert "0.01" in error_of(response)["message"]


async def test_filters_on_general_ledger_entries_take_or_and_and(fake: Fake) -> None:
    for document in ("A1", "B2", "C3"):
        journal = await fake.journal(f"J{document}")
        await fake.add_line(journal["id"], documentNumber=document, amount=Decimal(5))
        await fake.add_line(journal["id"], documentNumber=document, amount=Decimal(-5))
        assert (await fake.post(journal["id"])).status_code == 204
    response = await fake.api(
        "GET",
        f"{fake.company_path}/generalLedgerEntries",
        params={"$filter": "documentNumber eq 'A1' or documentNumber eq 'C3' and debitAmount gt 0"},
    )
    found = [(e["documentNumber"], e["debitAmount"]) for e in response.json()["value"]]
    assert found == [("A1", 5), ("A1", 0), ("C3", 5)]
    bad = await fake.api(
        "GET", f"{fake.company_path}/generalLedgerEntries", params={"$filter": "nope eq 'x'"}
    )
    assert bad.status_code == 400


async def test_a_long_list_is_paged_with_a_next_link_when_asked(fake: Fake) -> None:
    journal = await fake.journal()
    for n in range(5):
        await fake.add_line(journal["id"], amount=Decimal(n))
    path = f"{fake.company_path}/journals({journal['id']})/journalLines"
    first = await fake.api("GET", path, headers={"Prefer": "odata.maxpagesize=2"})
    body = first.json()
    assert len(body["value"]) == 2
    rest = await fake.client.get(
        body["@odata.nextLink"], headers={"Authorization": f"Bearer {fake.token}"}
    )
    assert [line["lineNumber"] for line in rest.json()["value"]] == [30000, 40000, 50000]


# ---- ETags ------------------------------------------------------------------------------


async def test_patch_needs_if_match_and_a_stale_etag_is_refused_with_409(fake: Fake) -> None:
    journal = await fake.journal()
    created = (await fake.add_line(journal["id"], amount=Decimal(1))).json()
    path = f"{fake.company_path}/journals({journal['id']})/journalLines({created['id']})"
    missing = await fake.api("PATCH", path, body={"description": "x"})
    assert missing.status_code == 400
    assert error_of(missing)["code"] == "BadRequest_InvalidToken"
    changed = await fake.api(
        "PATCH", path, body={"description": "x"}, headers={"If-Match": created["@odata.etag"]}
    )
    assert changed.status_code == 200
    assert changed.json()["@odata.etag"] != created["@odata.etag"]
    stale = await fake.api(
        "PATCH", path, body={"description": "y"}, headers={"If-Match": created["@odata.etag"]}
    )
    assert stale.status_code == 409
    assert error_of(stale)["code"] == "Request_EntityChanged"
    star = await fake.api("DELETE", path, headers={"If-Match": "*"})
    assert star.status_code == 204


# ---- $batch -----------------------------------------------------------------------------


def _line_operation(fake: Fake, journal_id: str, n: int, amount: str) -> dict[str, Any]:
    return {
        "id": str(n),
        "method": "POST",
        "url": f"companies({fake.company})/journals({journal_id})/journalLines",
        "headers": {"Content-Type": "application/json"},
        "body": {
            "accountNumber": "1920",
            "postingDate": "2017-01-31",
            "documentNumber": "BATCH1",
            "amount": float(amount),
        },
    }


async def test_a_batch_runs_its_operations_by_relative_url_and_answers_each(fake: Fake) -> None:
    journal = await fake.journal()
    operations = [_line_operation(fake, journal["id"], n, "1.5") for n in range(3)]
    operations.append({"id": "get", "method": "GET", "url": "companies?$top=1"})
    response = await fake.api("POST", "$batch", body={"requests": operations})
    assert response.status_code == 200
    answers = response.json()["responses"]
    assert [(a["id"], a["status"]) for a in answers] == [
        ("0", 201),
        ("1", 201),
        ("2", 201),
        ("get", 200),
    ]
    assert answers[0]["body"]["lineNumber"] == 10000
    stats = await fake.control("stats")
    assert stats["requests_total"] == 2  # the journal and the batch: one request each
    assert stats["batch_operations"] == 4


async def test_a_batch_of_more_than_100_operations_is_refused_whole(fake: Fake) -> None:
    journal = await fake.journal()
    operations = [_line_operation(fake, journal["id"], n, "1") for n in range(101)]
    response = await fake.api("POST", "$batch", body={"requests": operations})
    assert response.status_code == 400
    assert error_of(response)["code"] == "BadRequest_TooManyBatchOperations"
    lines = await fake.api("GET", f"{fake.company_path}/journals({journal['id']})/journalLines")
    assert lines.json()["value"] == []


async def test_a_failing_snapshot_batch_rolls_every_operation_back(fake: Fake) -> None:
    journal = await fake.journal()
    operations = [_line_operation(fake, journal["id"], n, "1") for n in range(3)]
    operations[1]["body"]["documentNumber"] = "X" * 21
    response = await fake.api(
        "POST", "$batch", body={"requests": operations}, headers={"Isolation": "snapshot"}
    )
    answers = response.json()["responses"]
    assert [a["status"] for a in answers] == [424, 400, 424]
    assert answers[1]["body"]["error"]["code"] == "Application_StringExceededLength"
    lines = await fake.api("GET", f"{fake.company_path}/journals({journal['id']})/journalLines")
    assert lines.json()["value"] == []


async def test_without_snapshot_isolation_the_good_operations_of_a_batch_stay(
    fake: Fake,
) -> None:
    journal = await fake.journal()
    operations = [_line_operation(fake, journal["id"], n, "1") for n in range(3)]
    operations[1]["body"]["documentNumber"] = "X" * 21
    response = await fake.api("POST", "$batch", body={"requests": operations})
    assert [a["status"] for a in response.json()["responses"]] == [201, 400, 201]
    lines = await fake.api("GET", f"{fake.company_path}/journals({journal['id']})/journalLines")
    assert len(lines.json()["value"]) == 2


async def test_a_batch_operation_with_an_absolute_url_is_refused(fake: Fake) -> None:
    response = await fake.api(
        "POST",
        "$batch",
        body={
            "requests": [{"id": "1", "method": "GET", "url": f"{fake.url}{fake.root}/companies"}]
        },
    )
    assert response.json()["responses"][0]["status"] == 400


# ---- limits -----------------------------------------------------------------------------


async def test_the_sliding_window_answers_429_too_many_requests_and_retry_after_only_sometimes() -> (
    None
):
    async for fake in _started(rate_limit_requests=3, rate_limit_window_seconds=30):
        for _ in range(3):
            assert (await fake.api("GET", "companies")).status_code == 200
        first = await fake.api("GET", "companies")
        second = await fake.api("GET", "companies")
        assert first.status_code == second.status_code == 429
        assert error_of(first)["code"] == "Application_TooManyRequests"
        assert "Too many requests reached. Actual (4). Maximum (3)." in error_of(first)["message"]
        assert "retry-after" not in first.headers
        assert 1 <= int(second.headers["retry-after"]) <= 30
        assert (await fake.control("stats"))["rate_limited"] == 2


async def test_the_window_slides_so_requests_are_taken_again_once_old_ones_leave_it() -> None:
    async for fake in _started(rate_limit_requests=2, rate_limit_window_seconds=0.5):
        for _ in range(2):
            assert (await fake.api("GET", "companies")).status_code == 200
        assert (await fake.api("GET", "companies")).status_code == 429
        await asyncio.sleep(0.6)  # the window's own length: the thing under test
        assert (await fake.api("GET", "companies")).status_code == 200


async def test_beyond_the_concurrency_cap_requests_queue_and_beyond_the_queue_get_429() -> None:
    async for fake in _started(max_concurrent=2, max_queued=1):
        await fake.faults(latency={"seconds": 0.5, "operation": "companies.list"})
        answers = await asyncio.gather(*(fake.api("GET", "companies") for _ in range(4)))
        statuses = sorted(a.status_code for a in answers)
        assert statuses == [200, 200, 200, 429]
        refused = next(a for a in answers if a.status_code == 429)
        assert "Actual (4). Maximum (3)." in error_of(refused)["message"]
        stats = await fake.control("stats")
        assert stats["max_running"] == 2
        assert stats["max_waiting"] == 1


async def test_a_request_queued_past_the_timeout_gets_503() -> None:
    async for fake in _started(max_concurrent=1, max_queued=1, queue_timeout_seconds=0.2):
        await fake.faults(latency={"seconds": 1.0, "operation": "companies.list"})
        slow, queued = await asyncio.gather(
            fake.api("GET", "companies"), fake.api("GET", "companies(x)")
        )
        assert slow.status_code == 200
        assert queued.status_code == 503


async def test_limits_can_be_made_small_through_the_control_api_and_reset(fake: Fake) -> None:
    described = await fake.faults(rate_limit={"requests": 1, "window_seconds": 60})
    assert described["limits"]["rate_limit"] == {"requests": 1, "window_seconds": 60}
    assert (await fake.api("GET", "companies")).status_code == 200
    assert (await fake.api("GET", "companies")).status_code == 429
    await fake.client.post("/_fake/reset")
    assert (await fake.api("GET", "companies")).status_code == 200
    assert (await fake.control("faults"))["limits"]["rate_limit"]["requests"] == 6000


# ---- faults -----------------------------------------------------------------------------


async def test_an_injected_5xx_answers_the_next_n_requests_then_stops(fake: Fake) -> None:
    await fake.faults(http_error={"status": 503, "count": 2, "retry_after_seconds": 3})
    first = await fake.api("GET", "companies")
    assert first.status_code == 503
    assert first.headers["retry-after"] == "3"
    assert (await fake.api("GET", "companies")).status_code == 503
    assert (await fake.api("GET", "companies")).status_code == 200


async def test_the_too_many_requests_fault_answers_429_without_retry_after(fake: Fake) -> None:
    await fake.faults(too_many_requests={"count": 1})
    response = await fake.api("GET", "companies")
    assert response.status_code == 429
    assert "retry-after" not in response.headers
    assert (await fake.api("GET", "companies")).status_code == 200


async def test_drop_after_commit_posts_the_journal_and_then_drops_the_connection(
    fake: Fake,
) -> None:
    journal = await fake.journal()
    await fake.add_line(journal["id"], amount=Decimal(7))
    await fake.add_line(journal["id"], amount=Decimal(-7))
    await fake.faults(drop_after_commit={"count": 1})
    with pytest.raises(httpx.TransportError):
        await fake.post(journal["id"])
    assert (await fake.control("postings/counts"))["documents"] == {"DOC1": 1}


async def test_stall_after_commit_posts_then_answers_504_gateway_timeout(fake: Fake) -> None:
    journal = await fake.journal()
    await fake.add_line(journal["id"], amount=Decimal(7))
    await fake.add_line(journal["id"], amount=Decimal(-7))
    await fake.faults(stall_after_commit={"seconds": 0.1})
    response = await fake.post(journal["id"])
    assert response.status_code == 504
    assert (await fake.control("postings/counts"))["total_posts"] == 1


async def test_a_stall_before_running_answers_504_and_changes_nothing(fake: Fake) -> None:
    await fake.faults(stall={"seconds": 0.1, "operation": "journals.create"})
    response = await fake.api(
        "POST", f"{fake.company_path}/journals", body={"code": "STALL", "displayName": "x"}
    )
    assert response.status_code == 504
    assert (await fake.control("journals"))["journals"] == []


async def test_a_cold_first_request_takes_longer_than_the_next(fake: Fake) -> None:
    await fake.client.post("/_fake/reset")  # forget the setup's requests: the next is "first"
    await fake.faults(cold_start={"idle_seconds": 60, "extra_seconds": 1.0})
    loop = asyncio.get_running_loop()
    started = loop.time()
    await fake.api("GET", "companies")
    cold = loop.time() - started
    started = loop.time()
    await fake.api("GET", "companies")
    warm = loop.time() - started
    assert cold >= 1.0 > warm


async def test_an_unknown_fault_is_refused_with_the_known_ones_listed(fake: Fake) -> None:
    response = await fake.client.post("/_fake/faults", json={"meteor": {}})
    assert response.status_code == 400
    assert "drop_after_commit" in response.json()["error"]


# ---- the process ------------------------------------------------------------------------


async def test_the_process_prints_one_json_ready_line_and_stops_cleanly_on_sigterm() -> None:
    env = {**os.environ, "SYNCBUS_FAKE_BUSINESS_CENTRAL_CLIENTS": "env-app:env-secret-77"}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "syncbus_fakes.business_central",
        "--port",
        "0",
        "--client",
        f"{CLIENT_ID}:{CLIENT_SECRET}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    assert process.stderr is not None
    assert process.stdout is not None
    lines: list[str] = []
    try:
        ready: dict[str, Any] | None = None
        async with asyncio.timeout(20):
            while ready is None:
                raw = await process.stderr.readline()
                assert raw, f"the fake exited before it was ready: {lines}"
                lines.append(raw.decode())
                event = json.loads(raw)
                if str(event.get("event", "")).endswith(".ready"):
                    ready = event
        assert ready["event"] == "fake.business_central.ready"
        assert ready["token_url"] == f"{ready['url']}/{ready['tenant_id']}/oauth2/v2.0/token"
        async with httpx.AsyncClient(timeout=10) as client:
            for client_id, secret in ((CLIENT_ID, CLIENT_SECRET), ("env-app", "env-secret-77")):
                token = await client.post(
                    ready["token_url"],
                    data={
                        "grant_type": "client_credentials",
                        "client_id": client_id,
                        "client_secret": secret,
                        "scope": SCOPE,
                    },
                )
                assert token.status_code == 200, token.text
                companies = await client.get(
                    f"{ready['api_root']}/companies?$top=1",
                    headers={"Authorization": f"Bearer {token.json()['access_token']}"},
                )
                assert companies.status_code == 200
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(15):
            rest = await process.stderr.read()
            stdout = await process.stdout.read()
            code = await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert code == 0
    assert stdout == b""
    everything = "".join(lines) + rest.decode()
    for line in everything.splitlines():
        json.loads(line)
    assert CLIENT_SECRET not in everything
    assert "env-secret-77" not in everything
