"""The Xledger fake behaves like Xledger: auth, limits, error shapes, postings, faults."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import ssl
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import pytest

from syncbus_fakes.server import serve_app
from syncbus_fakes.xledger import XledgerFakeSettings, create_app

TOKEN = "xl-test-token-7f3a9c"
# Built once: a client that loads the CA bundle itself spends ~30 ms doing so, per test.
TLS = ssl.create_default_context()
BAD_FORMAT = "Bad format for API Token"

ADD = """
mutation Add($inputs: [AddGLImportItemsInput!]!) {
  addGLImportItems(inputs: $inputs) { edges { clientId node { dbId } } }
}
"""

READ_BACK = """
query Read($first: Int, $after: String, $ids: [String!]) {
  glImportItems(first: $first, after: $after, filter: {extIdentifier_in: $ids}) {
    edges { cursor node { dbId extIdentifier text amount account { code } } }
    pageInfo { hasNextPage }
  }
}
"""


@dataclass
class Fake:
    url: str
    client: httpx.AsyncClient

    async def gql(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        authorization: str | None = f"token {TOKEN}",
    ) -> httpx.Response:
        headers = {"Authorization": authorization} if authorization is not None else {}
        return await self.client.post(
            "/graphql", json={"query": query, "variables": variables}, headers=headers
        )

    async def faults(self, **changes: Any) -> dict[str, Any]:
        response = await self.client.post("/_fake/faults", json=changes)
        assert response.status_code == 200, response.text
        return response.json()

    async def control(self, path: str) -> Any:
        response = await self.client.get(f"/_fake/{path}")
        assert response.status_code == 200
        return response.json()


def node(ext: str, amount: str = "100.00", **more: Any) -> dict[str, Any]:
    return {"extIdentifier": ext, "amount": amount, "account": {"code": "1920"}, **more}


def inputs(ext: str, count: int = 1) -> list[dict[str, Any]]:
    return [{"clientId": f"{ext}#{i}", "node": node(ext)} for i in range(1, count + 1)]


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert body.get("errors"), body
    return body["errors"][0]


@pytest.fixture
async def fake() -> AsyncIterator[Fake]:
    settings = XledgerFakeSettings(tokens=[TOKEN], burst_requests=1000)
    async with (
        serve_app(create_app(settings)) as url,
        httpx.AsyncClient(base_url=url, timeout=10, verify=TLS) as client,
    ):
        yield Fake(url, client)


# ---- auth ------------------------------------------------------------------------------


async def test_a_missing_header_is_refused_with_the_bad_format_message(fake: Fake) -> None:
    response = await fake.gql("{ __typename }", authorization=None)
    assert response.status_code == 200
    assert BAD_FORMAT in error_of(response)["message"]
    assert response.json()["data"] is None


async def test_a_bearer_header_is_refused_with_the_bad_format_message(fake: Fake) -> None:
    response = await fake.gql("{ __typename }", authorization=f"Bearer {TOKEN}")
    assert response.status_code == 200
    assert BAD_FORMAT in error_of(response)["message"]


@pytest.mark.parametrize("header", ["token", f"token{TOKEN}", "token two words", f"Basic {TOKEN}"])
async def test_a_malformed_header_is_refused_with_the_bad_format_message(
    fake: Fake, header: str
) -> None:
    response = await fake.gql("{ __typename }", authorization=header)
    assert BAD_FORMAT in error_of(response)["message"]


async def test_an_unknown_token_is_refused_as_an_authentication_failure(fake: Fake) -> None:
    response = await fake.gql("{ __typename }", authorization="token not-a-known-token")
    assert response.status_code == 200
    message = error_of(response)["message"]
    assert message.startswith("Authentication failed")
    assert "not-a-known-token" not in response.text


async def test_a_token_added_through_the_control_api_is_accepted_and_can_be_revoked(
    fake: Fake,
) -> None:
    added = await fake.client.post("/_fake/tokens", json={"token": "second-token"})
    assert added.status_code == 201
    assert added.json() == {"tokens": 2}
    assert "second-token" not in added.text
    ok = await fake.gql("{ __typename }", authorization="token second-token")
    assert ok.json() == {"data": {"__typename": "Query"}}
    revoked = await fake.client.post("/_fake/tokens/revoke", json={"token": "second-token"})
    assert revoked.json() == {"revoked": True, "tokens": 1}
    refused = await fake.gql("{ __typename }", authorization="token second-token")
    assert error_of(refused)["message"].startswith("Authentication failed")


async def test_a_token_with_spaces_cannot_be_added(fake: Fake) -> None:
    response = await fake.client.post("/_fake/tokens", json={"token": "two words"})
    assert response.status_code == 400
    assert "two words" not in response.text


def test_tokens_are_read_comma_separated_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SYNCBUS_FAKE_XLEDGER_TOKENS", "env-one, env-two")
    monkeypatch.setenv("SYNCBUS_FAKE_XLEDGER_ACCOUNTS", "1920,3000")
    settings = XledgerFakeSettings()
    assert [t.get_secret_value() for t in settings.tokens] == ["env-one", "env-two"]
    assert settings.accounts == ("1920", "3000")
    assert "env-one" not in repr(settings)


# ---- GraphQL ---------------------------------------------------------------------------


async def test_the_typename_probe_answers_and_is_counted_as_an_operation(fake: Fake) -> None:
    response = await fake.gql("query { __typename }")
    assert response.status_code == 200
    assert response.json() == {"data": {"__typename": "Query"}}
    stats = await fake.control("stats")
    assert stats["requests_total"] == 1
    assert stats["by_operation"] == {"__typename": 1}
    assert stats["credits_used"] == 1


async def test_an_unknown_field_gets_a_genuine_graphql_validation_error(fake: Fake) -> None:
    response = await fake.gql("{ glImportItems { edges { node { noSuchField } } } }")
    assert response.status_code == 200
    error = error_of(response)
    assert "noSuchField" in error["message"]
    assert error["locations"]
    assert response.json()["data"] is None


async def test_a_body_that_is_not_json_is_answered_with_http_400(fake: Fake) -> None:
    response = await fake.client.post(
        "/graphql", content=b"{not json", headers={"Authorization": f"token {TOKEN}"}
    )
    assert response.status_code == 400
    assert "JSON" in error_of(response)["message"]


async def test_a_posting_round_trips_byte_for_byte(fake: Fake) -> None:
    text = 'Tøyen Lekefabrikk: «Søte kosebamser» ÆØÅ æøå "sitat" back\\slash\nny linje\ttab'
    sent = node("888888888-GL-1001", "-12500.00", text=text, postedDate="2017-01-31")
    response = await fake.gql(ADD, {"inputs": [{"clientId": "V#1", "node": sent}]})
    body = response.json()
    assert "errors" not in body, body
    edge = body["data"]["addGLImportItems"]["edges"][0]
    assert edge["clientId"] == "V#1"
    assert isinstance(edge["node"]["dbId"], int)

    (posting,) = (await fake.control("postings"))["postings"]
    assert posting["node"] == sent
    assert posting["node"]["text"].encode("utf-8") == text.encode("utf-8")
    assert posting["clientId"] == "V#1"
    assert posting["call"] == 1

    read = await fake.gql(READ_BACK, {"ids": ["888888888-GL-1001"]})
    item = read.json()["data"]["glImportItems"]["edges"][0]["node"]
    assert item["text"].encode("utf-8") == text.encode("utf-8")
    assert item["amount"] == "-12500.00"


@pytest.mark.parametrize("amount", ["12,50", "1e3", "12.", " 12.00", "abc"])
async def test_an_amount_that_is_not_a_decimal_string_is_refused_and_nothing_is_posted(
    fake: Fake, amount: str
) -> None:
    response = await fake.gql(ADD, {"inputs": [{"clientId": "V#1", "node": node("V", amount)}]})
    assert response.status_code == 200
    assert "Decimal" in error_of(response)["message"]
    assert (await fake.control("postings"))["postings"] == []


async def test_an_amount_sent_as_a_json_number_is_refused(fake: Fake) -> None:
    response = await fake.gql(ADD, {"inputs": [{"clientId": "V#1", "node": node("V", 12.5)}]})  # type: ignore[arg-type]
    assert "Decimal" in error_of(response)["message"]


async def test_500_inputs_are_posted_in_one_call_with_every_client_id_echoed(fake: Fake) -> None:
    response = await fake.gql(ADD, {"inputs": inputs("BIG", 500)})
    edges = response.json()["data"]["addGLImportItems"]["edges"]
    assert [edge["clientId"] for edge in edges] == [f"BIG#{i}" for i in range(1, 501)]
    assert len({edge["node"]["dbId"] for edge in edges}) == 500


async def test_more_than_500_inputs_are_refused_and_nothing_is_posted(fake: Fake) -> None:
    response = await fake.gql(ADD, {"inputs": inputs("BIG", 501)})
    assert response.status_code == 200
    assert "at most 500" in error_of(response)["message"]
    assert (await fake.control("postings/counts"))["total_lines"] == 0


async def test_an_unknown_account_is_refused_when_a_chart_of_accounts_is_set(fake: Fake) -> None:
    chart = await fake.client.post("/_fake/accounts", json={"codes": ["1920", "3000"]})
    assert chart.json() == {"codes": ["1920", "3000"]}
    bad = [
        {"clientId": "V#1", "node": node("V")},
        {"clientId": "V#2", "node": {**node("V"), "account": {"code": "9999"}}},
    ]
    response = await fake.gql(ADD, {"inputs": bad})
    assert "9999" in error_of(response)["message"]
    assert (await fake.control("postings"))["postings"] == []


async def test_the_read_back_filters_by_ext_identifier_and_paginates(fake: Fake) -> None:
    for ext, lines in (("V1", 2), ("V2", 1), ("V3", 2)):
        await fake.gql(ADD, {"inputs": inputs(ext, lines)})
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        body = (await fake.gql(READ_BACK, {"first": 1, "after": after, "ids": ["V1", "V3"]})).json()
        connection = body["data"]["glImportItems"]
        seen += [edge["node"]["extIdentifier"] for edge in connection["edges"]]
        pages += 1
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["edges"][-1]["cursor"]
        assert pages < 10
    assert seen == ["V1", "V1", "V3", "V3"]
    assert pages == 4


async def test_a_page_larger_than_10000_is_refused(fake: Fake) -> None:
    response = await fake.gql(READ_BACK, {"first": 10_001, "ids": ["V1"]})
    assert "10000" in error_of(response)["message"]


async def test_the_counts_endpoint_counts_mutation_calls_and_lines_per_ext_identifier(
    fake: Fake,
) -> None:
    await fake.gql(ADD, {"inputs": inputs("V1", 2)})
    await fake.gql(ADD, {"inputs": inputs("V1", 2) + inputs("V2", 1)})
    counts = await fake.control("postings/counts")
    assert counts == {
        "calls": {"V1": 2, "V2": 1},
        "lines": {"V1": 4, "V2": 1},
        "total_calls": 2,
        "total_lines": 5,
    }


# ---- limits ----------------------------------------------------------------------------


async def test_the_burst_limit_is_answered_in_xledgers_shape_and_lifts_after_the_window(
    fake: Fake,
) -> None:
    await fake.faults(burst_limit={"requests": 3, "window_seconds": 1})
    for _ in range(3):
        assert (await fake.gql("{ __typename }")).json() == {"data": {"__typename": "Query"}}
    limited = await fake.gql("{ __typename }")
    assert limited.status_code == 200
    error = error_of(limited)
    assert error["code"] == "BAD_REQUEST.BURST_RATE_LIMIT_REACHED"
    assert "extensions" not in error or "code" not in error["extensions"]
    assert (await fake.control("stats"))["rate_limited"] == 1

    deadline = time.monotonic() + 5
    while "errors" in (await fake.gql("{ __typename }")).json():
        assert time.monotonic() < deadline, "the burst window never lifted"
        await asyncio.sleep(0.05)


async def test_the_control_api_does_not_count_against_the_limits(fake: Fake) -> None:
    await fake.faults(burst_limit={"requests": 1, "window_seconds": 60})
    for _ in range(5):
        await fake.control("stats")
        await fake.control("postings")
    assert (await fake.gql("{ __typename }")).json() == {"data": {"__typename": "Query"}}
    assert (await fake.control("stats"))["requests_total"] == 1


async def test_the_concurrency_limit_refuses_a_request_while_another_is_in_flight(
    fake: Fake,
) -> None:
    await fake.faults(concurrency_limit={"max": 1}, latency={"seconds": 0.3})
    first, second = await asyncio.gather(fake.gql("{ __typename }"), fake.gql("{ __typename }"))
    bodies = [first.json(), second.json()]
    assert {"data": {"__typename": "Query"}} in bodies
    codes = [b["errors"][0]["code"] for b in bodies if "errors" in b]
    assert codes == ["BAD_REQUEST.CONCURRENCY_LIMIT_REACHED"]


async def test_spent_monthly_credits_give_insufficient_credits_with_a_reset_time(
    fake: Fake,
) -> None:
    await fake.faults(monthly_credits={"limit": 2})
    for _ in range(2):
        assert "errors" not in (await fake.gql("{ __typename }")).json()
    error = error_of(await fake.gql("{ __typename }"))
    assert error["code"] == "BAD_REQUEST.INSUFFICIENT_CREDITS"
    reset = datetime.fromisoformat(error["extensions"]["resetAt"])
    assert reset.tzinfo is None  # CET/CEST wall clock, like Xledger's timestamps
    assert reset.day == 1
    assert (reset.hour, reset.minute) == (0, 0)


async def test_the_insufficient_credits_fault_answers_now_with_the_given_reset(
    fake: Fake,
) -> None:
    await fake.faults(insufficient_credits={"reset_in_seconds": 600})
    error = error_of(await fake.gql("{ __typename }"))
    assert error["code"] == "BAD_REQUEST.INSUFFICIENT_CREDITS"
    assert datetime.fromisoformat(error["extensions"]["resetAt"]).tzinfo is None
    await fake.faults(insufficient_credits=None)
    assert "errors" not in (await fake.gql("{ __typename }")).json()


# ---- faults ----------------------------------------------------------------------------


async def test_an_injected_5xx_answers_the_next_n_requests_and_then_stops(fake: Fake) -> None:
    await fake.faults(http_error={"status": 503, "count": 2, "retry_after_seconds": 7})
    statuses = [(await fake.gql("{ __typename }")).status_code for _ in range(3)]
    assert statuses == [503, 503, 200]
    assert (await fake.control("faults"))["fault_hits"] == {"http_error": 2}


async def test_a_5xx_carries_the_retry_after_header_when_asked(fake: Fake) -> None:
    await fake.faults(http_error={"status": 502, "retry_after_seconds": 7})
    response = await fake.gql("{ __typename }")
    assert response.status_code == 502
    assert response.headers["retry-after"] == "7"


async def test_drop_after_commit_commits_the_posting_and_then_drops_the_connection(
    fake: Fake,
) -> None:
    await fake.faults(drop_after_commit={"count": 1})
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        await fake.gql(ADD, {"inputs": inputs("V1", 2)})
    counts = await fake.control("postings/counts")
    assert counts["calls"] == {"V1": 1}
    assert counts["lines"] == {"V1": 2}
    # The fault was for one call only: the next one is answered.
    answered = await fake.gql(ADD, {"inputs": inputs("V2", 1)})
    assert "errors" not in answered.json()


async def test_stall_after_commit_posts_then_outlasts_a_client_read_timeout(fake: Fake) -> None:
    await fake.faults(stall_after_commit={"seconds": 10})
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        await fake.client.post(
            "/graphql",
            json={"query": ADD, "variables": {"inputs": inputs("V1")}},
            headers={"Authorization": f"token {TOKEN}"},
            timeout=httpx.Timeout(5, read=0.3),
        )
    assert time.monotonic() - started < 5
    assert (await fake.control("postings/counts"))["calls"] == {"V1": 1}


async def test_a_stall_that_the_client_waits_out_answers_your_query_timed_out(
    fake: Fake,
) -> None:
    await fake.faults(stall={"seconds": 0.2})
    response = await fake.gql(ADD, {"inputs": inputs("V1")})
    assert response.status_code == 200
    assert error_of(response)["message"] == "Your query timed out."
    assert (await fake.control("postings"))["postings"] == []


async def test_a_cold_first_request_takes_longer_than_the_warm_ones_after_it(fake: Fake) -> None:
    await fake.faults(cold_start={"idle_seconds": 60, "extra_seconds": 0.4})
    started = time.monotonic()
    await fake.gql("{ __typename }")
    cold = time.monotonic() - started
    started = time.monotonic()
    await fake.gql("{ __typename }")
    warm = time.monotonic() - started
    assert cold >= 0.4
    assert warm < 0.4
    assert (await fake.control("faults"))["fault_hits"] == {"cold_start": 1}


async def test_an_unknown_fault_is_refused_with_the_known_ones_listed(fake: Fake) -> None:
    response = await fake.client.post("/_fake/faults", json={"gremlins": {}})
    assert response.status_code == 400
    assert "drop_after_commit" in response.json()["error"]
    bad_params = await fake.client.post("/_fake/faults", json={"latency": {"seconds": -1}})
    assert bad_params.status_code == 400


async def test_reset_clears_postings_stats_faults_and_limits(fake: Fake) -> None:
    await fake.gql(ADD, {"inputs": inputs("V1")})
    await fake.faults(latency={"seconds": 0.01}, burst_limit={"requests": 1, "window_seconds": 60})
    assert (await fake.client.post("/_fake/reset")).json() == {"reset": True}
    assert (await fake.control("postings"))["postings"] == []
    assert (await fake.control("stats"))["requests_total"] == 0
    described = await fake.control("faults")
    assert described["faults"] == {}
    assert described["limits"]["burst_limit"]["requests"] == 1000


# ---- the process -----------------------------------------------------------------------


async def test_the_process_prints_one_ready_line_and_stops_cleanly_on_sigterm() -> None:
    env = {**os.environ, "SYNCBUS_FAKE_XLEDGER_TOKENS": "env-token-1"}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "syncbus_fakes.xledger",
        "--port",
        "0",
        "--token",
        TOKEN,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    assert process.stderr is not None
    assert process.stdout is not None
    lines: list[str] = []
    try:
        ready: dict[str, Any] | None = None
        async with asyncio.timeout(15):
            while ready is None:
                raw = await process.stderr.readline()
                assert raw, f"the fake exited before it was ready: {lines}"
                line = raw.decode()
                lines.append(line)
                event = json.loads(line)  # every stderr line is JSON
                if str(event.get("event", "")).endswith(".ready"):
                    ready = event
        assert ready == {"event": "fake.xledger.ready", "url": ready["url"]}
        async with httpx.AsyncClient(base_url=ready["url"], verify=TLS) as client:
            for token in (TOKEN, "env-token-1"):
                response = await client.post(
                    "/graphql",
                    json={"query": "{ __typename }"},
                    headers={"Authorization": f"token {token}"},
                )
                assert response.json() == {"data": {"__typename": "Query"}}
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
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
    assert TOKEN not in everything
    assert "env-token-1" not in everything
