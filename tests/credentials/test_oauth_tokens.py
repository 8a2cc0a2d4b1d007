"""The credential service's OAuth2 client: grants from Vault secrets, caching, single flight and
the token endpoint's errors, against the Business Central fake's Entra endpoint over HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from pydantic import SecretStr

from syncbus_credentials.oauth import (
    DEFAULT_SCOPE,
    ClientGrant,
    GrantConfigError,
    TokenEndpointError,
    TokenMinter,
    client_grant,
)
from syncbus_fakes.business_central import BusinessCentralFakeSettings, create_app
from syncbus_fakes.server import serve_app
from syncbus_shared.contracts import ErrorClass

CLIENT_ID = "oauth-unit-app"
CLIENT_SECRET = "oauth-unit-secret-5a5a"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Endpoint:
    url: str
    token_url: str
    http: httpx.AsyncClient

    def grant(self, secret: str = CLIENT_SECRET, scope: str = DEFAULT_SCOPE) -> ClientGrant:
        return ClientGrant(self.token_url, CLIENT_ID, SecretStr(secret), scope)

    async def token_requests(self) -> int:
        return int((await self.http.get(f"{self.url}/_fake/stats")).json()["token_requests"])


@pytest.fixture
async def endpoint() -> AsyncIterator[Endpoint]:
    settings = BusinessCentralFakeSettings(
        clients=[f"{CLIENT_ID}:{CLIENT_SECRET}"], token_lifetime_seconds=3600
    )
    async with serve_app(create_app(settings)) as url, httpx.AsyncClient(timeout=10) as http:
        yield Endpoint(url, f"{url}/{settings.tenant_id}/oauth2/v2.0/token", http)


def test_a_secret_with_client_id_and_secret_is_an_oauth_grant_with_the_default_scope() -> None:
    grant = client_grant(
        {"client_id": "a", "client_secret": "hidden-value-3", "tenant_id": "t-1"}, "integrations/x"
    )
    assert grant is not None
    assert grant.token_url == "https://login.microsoftonline.com/t-1/oauth2/v2.0/token"
    assert grant.scope == DEFAULT_SCOPE
    assert "hidden-value-3" not in repr(grant)
    assert client_grant({"api_token": "x"}, "integrations/x") is None


def test_an_incomplete_oauth_secret_names_the_missing_fields_not_the_values() -> None:
    with pytest.raises(GrantConfigError) as caught:
        client_grant({"client_secret": "hidden-value-9"}, "integrations/x")
    assert "client_id" in str(caught.value)
    assert "token_url" in str(caught.value)
    assert "hidden-value-9" not in str(caught.value)


async def test_a_token_is_served_from_the_cache_until_half_its_life_or_the_margin(
    endpoint: Endpoint,
) -> None:
    clock = Clock()
    minter = TokenMinter(endpoint.http, refresh_margin_seconds=300, clock=clock)
    first = await minter.token("it", endpoint.grant())
    clock.now += 3600 - 301
    assert (await minter.token("it", endpoint.grant())).value == first.value
    clock.now += 2
    renewed = await minter.token("it", endpoint.grant())
    assert renewed.value != first.value
    assert await endpoint.token_requests() == 2
    assert minter.stats.served_from_cache == 1


async def test_concurrent_callers_share_one_token_request(endpoint: Endpoint) -> None:
    minter = TokenMinter(endpoint.http)
    tokens = await asyncio.gather(*(minter.token("it", endpoint.grant()) for _ in range(25)))
    assert len({t.value.get_secret_value() for t in tokens}) == 1
    assert await endpoint.token_requests() == 1


async def test_a_forced_refresh_is_shared_by_callers_that_asked_before_it_was_sent(
    endpoint: Endpoint,
) -> None:
    clock = Clock()
    minter = TokenMinter(endpoint.http, clock=clock)
    old = await minter.token("it", endpoint.grant())
    clock.now += 1
    asked = clock.now
    clock.now += 0.001
    forced = await asyncio.gather(
        *(minter.token("it", endpoint.grant(), force=True, asked_at=asked) for _ in range(10))
    )
    assert {t.value.get_secret_value() for t in forced} == {forced[0].value.get_secret_value()}
    assert forced[0].value != old.value
    assert await endpoint.token_requests() == 2


async def test_a_rotated_secret_gets_a_token_of_its_own(endpoint: Endpoint) -> None:
    minter = TokenMinter(endpoint.http)
    await minter.token("it", endpoint.grant())
    await endpoint.http.post(
        f"{endpoint.url}/_fake/clients",
        json={"client_id": CLIENT_ID, "client_secret": "rotated-secret-1"},
    )
    await minter.token("it", endpoint.grant("rotated-secret-1"))
    assert await endpoint.token_requests() == 2


@pytest.mark.parametrize(
    ("secret", "scope", "error_class", "code"),
    [
        ("wrong-secret-77", DEFAULT_SCOPE, ErrorClass.AUTH, "invalid_client"),
        (CLIENT_SECRET, "https://example.org/.default", ErrorClass.CONFIGURATION, "invalid_scope"),
    ],
)
async def test_token_endpoint_refusals_are_classified_and_name_the_entra_code(
    endpoint: Endpoint, secret: str, scope: str, error_class: ErrorClass, code: str
) -> None:
    minter = TokenMinter(endpoint.http)
    with pytest.raises(TokenEndpointError) as caught:
        await minter.token("it", endpoint.grant(secret, scope))
    assert caught.value.error_class is error_class
    assert caught.value.vendor_code == code
    assert code in caught.value.message
    assert "AADSTS" in caught.value.message
    assert "Trace ID" not in caught.value.message
    assert secret not in caught.value.message


async def test_an_unreachable_token_endpoint_means_credentials_are_unavailable() -> None:
    async with httpx.AsyncClient(timeout=2) as http:
        minter = TokenMinter(http)
        grant = ClientGrant("http://127.0.0.1:9/t/oauth2/v2.0/token", "a", SecretStr("s"), "x")
        with pytest.raises(TokenEndpointError) as caught:
            await minter.token("it", grant)
    assert caught.value.error_class is ErrorClass.CREDENTIALS_UNAVAILABLE
    assert caught.value.__context__ is None
