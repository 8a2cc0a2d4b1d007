"""Vendor-rate pacing: the window and the concurrency cap hold, and paced traffic gets no 429."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from syncbus_adapters import AdapterContext, Credential
from syncbus_adapters.business_central import BusinessCentralAdapter
from syncbus_adapters.pacing import (
    BUSINESS_CENTRAL_RULES,
    XLEDGER_RULES,
    Pacer,
    RateRules,
    credential_identity,
    pacer_for,
    parse_rules,
    reset_pacers,
)
from syncbus_fakes.business_central import BC_AUDIENCE, BusinessCentralFakeSettings
from syncbus_fakes.business_central import create_app as create_bc_app
from syncbus_fakes.server import serve_app
from syncbus_fakes.xledger import XledgerFakeSettings
from syncbus_fakes.xledger import create_app as create_xledger_app


async def _run_through(pacer: Pacer, count: int, hold_seconds: float = 0.0) -> list[float]:
    """Start `count` requests at once; return the loop time each was let through, in order."""
    loop = asyncio.get_running_loop()
    starts: list[float] = []

    async def one() -> None:
        async with pacer.slot():
            starts.append(loop.time())
            await asyncio.sleep(hold_seconds)

    await asyncio.gather(*(one() for _ in range(count)))
    return starts


def _most_in_any_window(starts: list[float], window: float) -> int:
    ordered = sorted(starts)
    return max(sum(1 for t in ordered if s <= t < s + window) for s in ordered)


async def test_no_sliding_window_ever_lets_more_than_the_allowed_requests_through() -> None:
    rules = RateRules(requests=5, window_seconds=0.3)
    starts = await _run_through(Pacer(rules), 20, hold_seconds=0.01)
    assert _most_in_any_window(starts, rules.window_seconds) <= 5
    # 20 requests at 5 per window need at least 3 more windows after the first burst.
    assert max(starts) - min(starts) >= 3 * rules.window_seconds


async def test_the_concurrency_cap_is_never_exceeded() -> None:
    pacer = Pacer(RateRules(requests=1000, window_seconds=1.0, max_concurrent=2))
    seen: list[int] = []

    async def one() -> None:
        async with pacer.slot():
            seen.append(pacer.in_flight)
            await asyncio.sleep(0.02)

    await asyncio.gather(*(one() for _ in range(10)))
    assert max(seen) == 2
    assert pacer.in_flight == 0


async def test_waiters_are_let_through_in_the_order_they_arrived() -> None:
    pacer = Pacer(RateRules(requests=1, window_seconds=0.02))
    order: list[int] = []

    async def one(n: int) -> None:
        async with pacer.slot():
            order.append(n)

    tasks = []
    for n in range(6):
        tasks.append(asyncio.create_task(one(n)))
        await asyncio.sleep(0)  # each task reaches the pacer before the next starts
    await asyncio.gather(*tasks)
    assert order == list(range(6))


async def test_hold_keeps_every_request_back_for_the_time_given() -> None:
    pacer = Pacer(RateRules(requests=100, window_seconds=1.0))
    loop = asyncio.get_running_loop()
    started = loop.time()
    pacer.hold(0.2)
    async with pacer.slot():
        waited = loop.time() - started
    assert waited >= 0.199
    assert pacer.stats.holds == 1
    assert pacer.stats.waited == 1


async def test_fewer_requests_in_new_rules_keep_the_slots_that_were_used_last() -> None:
    pacer = Pacer(RateRules(requests=4, window_seconds=0.3))
    loop = asyncio.get_running_loop()
    started = loop.time()
    await _run_through(pacer, 4)
    pacer.update(RateRules(requests=2, window_seconds=0.3))
    async with pacer.slot():
        waited = loop.time() - started
    assert waited >= 0.299  # every kept slot was used after `started`: free 0.3 s later


def test_rules_come_from_the_vendor_defaults_and_the_options() -> None:
    assert RateRules(6000, 300.0, 5) == BUSINESS_CENTRAL_RULES
    assert XLEDGER_RULES.requests == 20
    assert XLEDGER_RULES.window_seconds == 5.0
    assert parse_rules(BUSINESS_CENTRAL_RULES, {"rate_limit": "60/2", "max_concurrent": "3"}) == (
        RateRules(60, 2.0, 3)
    )
    assert parse_rules(XLEDGER_RULES, {"max_concurrent": "none"}).max_concurrent is None
    for bad in ({"rate_limit": "60"}, {"rate_limit": "0/5"}, {"max_concurrent": "0"}):
        with pytest.raises(ValueError):
            parse_rules(XLEDGER_RULES, bad)


# ---- identity and the registry ---------------------------------------------------------


async def _bc_token(http: httpx.AsyncClient, url: str, tenant: str, client: str) -> str:
    response = await http.post(
        f"{url}/{tenant}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client,
            "client_secret": f"{client}-secret",
            "scope": f"{BC_AUDIENCE}/.default",
        },
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


@pytest.fixture
async def bc() -> AsyncIterator[tuple[str, str, httpx.AsyncClient]]:
    reset_pacers()
    settings = BusinessCentralFakeSettings(
        clients=["app-a:app-a-secret", "app-b:app-b-secret"], companies=("Pace AS",)
    )
    async with serve_app(create_bc_app(settings)) as url, httpx.AsyncClient(timeout=10) as http:
        yield url, settings.tenant_id, http


async def test_tokens_of_one_service_principal_share_an_identity_and_others_do_not(
    bc: tuple[str, str, httpx.AsyncClient],
) -> None:
    url, tenant, http = bc
    first = await _bc_token(http, url, tenant, "app-a")
    again = await _bc_token(http, url, tenant, "app-a")
    other = await _bc_token(http, url, tenant, "app-b")
    assert first != again
    identity = credential_identity(Credential("Bearer", SecretStr(first)))
    assert identity == credential_identity(Credential("Bearer", SecretStr(again)))
    assert identity != credential_identity(Credential("Bearer", SecretStr(other)))
    assert identity.startswith(f"principal:{tenant}/")
    assert first not in identity


async def test_an_opaque_token_is_known_by_its_digest_only() -> None:
    token = "xl-static-token-0a1b2c"
    identity = credential_identity(Credential("token", SecretStr(token)))
    assert identity.startswith("sha256:")
    assert token not in identity
    assert pacer_for("xledger", identity, XLEDGER_RULES) is pacer_for(
        "xledger", identity, XLEDGER_RULES
    )
    assert pacer_for("xledger", identity, XLEDGER_RULES) is not pacer_for(
        "xledger", "sha256:other", XLEDGER_RULES
    )


# ---- against the fakes -----------------------------------------------------------------


async def test_many_paced_business_central_calls_of_one_principal_get_no_429(
    bc: tuple[str, str, httpx.AsyncClient],
) -> None:
    url, tenant, http = bc
    # 10 per second, 2 at once and no queue: a third request at once would be refused.
    await http.post(
        f"{url}/_fake/faults",
        json={
            "rate_limit": {"requests": 10, "window_seconds": 1.0},
            "concurrency_limit": {"max_concurrent": 2, "max_queued": 0},
            "latency": {"seconds": 0.02},
        },
    )
    company = (await http.get(f"{url}/_fake/companies")).json()["environments"]["production"][0]
    adapters = []
    for _ in range(2):  # two sessions (e.g. an export and a probe), two tokens, one principal
        token = await _bc_token(http, url, tenant, "app-a")
        adapters.append(
            BusinessCentralAdapter(
                AdapterContext(
                    "pace",
                    f"{url}/v2.0/{tenant}/production/api/v2.0/companies({company['id']})",
                    Credential("Bearer", SecretStr(token)),
                    http,
                    10.0,
                    {"rate_limit": "10/1", "max_concurrent": "2"},
                )
            )
        )
    await asyncio.gather(*(adapters[n % 2].ping() for n in range(25)))
    stats: dict[str, Any] = (await http.get(f"{url}/_fake/stats")).json()
    assert stats["rate_limited"] == 0
    assert stats["by_status"] == {"200": 25}
    assert adapters[0].pacer is adapters[1].pacer


async def test_paced_calls_to_the_xledger_fake_never_hit_its_burst_limit() -> None:
    reset_pacers()
    settings = XledgerFakeSettings(
        tokens=["xl-pace-token"], burst_requests=6, burst_window_seconds=0.5, max_concurrent=2
    )
    rules = RateRules(requests=6, window_seconds=0.5, max_concurrent=2)
    pacer = pacer_for("xledger", credential_identity(Credential("token", SecretStr("t"))), rules)
    async with (
        serve_app(create_xledger_app(settings)) as url,
        httpx.AsyncClient(timeout=10) as http,
    ):

        async def probe() -> dict[str, Any]:
            async with pacer.slot():
                response = await http.post(
                    f"{url}/graphql",
                    json={"query": "{ __typename }"},
                    headers={"Authorization": "token xl-pace-token"},
                )
            return dict(response.json())

        answers = await asyncio.gather(*(probe() for _ in range(18)))
        stats = (await http.get(f"{url}/_fake/stats")).json()
    assert all(a == {"data": {"__typename": "Query"}} for a in answers)
    assert stats["rate_limited"] == 0
