"""Business Central end to end: real NATS, OpenBao, the credential service and the dispatcher
against the Business Central fake; OAuth2 client credentials minted by the credential service.

One stack for the module; each test registers its own app (client id and secret) at the fake and
its own integration. The last test scans every file the stack wrote for every client secret and
access token the tests saw.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import pytest_asyncio
from e2e_support import Integration, make_voucher
from nats.aio.client import Client
from nats.js.api import DeliverPolicy

from syncbus_adapters.business_central import document_number
from syncbus_devstack import Stack
from syncbus_shared import topology as t
from syncbus_shared.contracts import (
    CredentialRequest,
    CredentialResponse,
    ErrorClass,
    IntegrationConfig,
    SyncRequest,
    SyncStatus,
)
from syncbus_shared.integrations import put_integration
from syncbus_shared.natsclient import connect
from syncbus_shared.settings import NatsSettings

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.e2e]

SEEN_SECRETS: list[str] = []
"""Every client secret and access token of this module: none may appear in a file written."""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    state = tmp_path_factory.mktemp("bc-stack")
    async with Stack(
        state,
        services=("credentials", "dispatcher"),
        fakes=("xledger", "business_central"),
        extra_env={"SYNCBUS_DISPATCHER_BACKOFF_INITIAL_SECONDS": "0.05"},
    ) as running:
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bus(stack: Stack) -> AsyncIterator[Client]:
    nc = await connect(NatsSettings(url=stack.nats_url), "pytest-bc-e2e")
    yield nc
    await nc.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bc(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.fake_urls["business_central"], timeout=10) as c:
        yield c


@dataclass
class BcIntegration:
    it: Integration
    client_id: str
    client_secret: str
    company: str
    tenant: str
    api_root: str
    bc: httpx.AsyncClient
    tokens: list[str] = field(default_factory=list)

    async def credential(self, *, force: bool = False) -> CredentialResponse:
        request = CredentialRequest(integration_id=self.it.id, force_refresh=force)
        reply = await self.it.nc.request(
            t.credentials_subject(self.it.id), request.to_bytes(), timeout=15
        )
        response = CredentialResponse.from_bytes(reply.data)
        if response.secret is not None:
            token = response.secret.get_secret_value()
            self.tokens.append(token)
            SEEN_SECRETS.append(token)
        return response

    async def call_api(self, token: str) -> int:
        response = await self.bc.get(
            f"{self.api_root}/companies?$top=1", headers={"Authorization": f"Bearer {token}"}
        )
        return response.status_code

    async def fake_stats(self) -> dict[str, Any]:
        return dict((await self.bc.get("/_fake/stats")).json())


async def _integration(
    stack: Stack,
    bus: Client,
    bc: httpx.AsyncClient,
    integration_id: str,
    *,
    register: bool = True,
    secret_in_vault: str | None = None,
) -> BcIntegration:
    client_id = f"app-{integration_id}"
    client_secret = "bc-secret-" + secrets.token_urlsafe(16)
    SEEN_SECRETS.append(client_secret)
    if register:
        added = await bc.post(
            "/_fake/clients", json={"client_id": client_id, "client_secret": client_secret}
        )
        assert added.status_code == 201
    listed = (await bc.get("/_fake/companies")).json()
    tenant, company = listed["tenant_id"], listed["environments"]["production"][0]["id"]
    base = stack.fake_urls["business_central"]
    api_root = f"/v2.0/{tenant}/production/api/v2.0"
    path = f"integrations/{integration_id}"
    await stack.vault.write_secret(
        path,
        {
            "client_id": client_id,
            "client_secret": secret_in_vault or client_secret,
            "token_url": f"{base}/{tenant}/oauth2/v2.0/token",
        },
    )
    config = IntegrationConfig(
        integration_id=integration_id,
        vendor="business_central",
        endpoint=f"{base}{api_root}/companies({company})",
        credentials_path=path,
        timeout_seconds=10.0,
        options={"company_id": company},
    )
    js = bus.jetstream()
    await put_integration(js, config)
    it = Integration(config=config, token="", nc=bus, js=js, fake=bc)
    await js.subscribe(
        t.result_subject(integration_id), cb=it._on_result, deliver_policy=DeliverPolicy.ALL
    )
    return BcIntegration(it, client_id, client_secret, company, tenant, api_root, bc)


@pytest_asyncio.fixture(loop_scope="module")
async def bci(
    stack: Stack, bus: Client, bc: httpx.AsyncClient, unique_id: Callable[..., str]
) -> BcIntegration:
    return await _integration(stack, bus, bc, unique_id("bc"))


async def _counts(bc: httpx.AsyncClient, vouchers: list[Any]) -> dict[str, int]:
    documents = (await bc.get("/_fake/postings/counts")).json()["documents"]
    return {v.voucher_id: documents.get(document_number(v.voucher_id), 0) for v in vouchers}


# ---- exports through the dispatcher ----------------------------------------------------


async def test_a_sync_request_is_posted_to_business_central_once(bci: BcIntegration) -> None:
    vouchers = [make_voucher(bci.it.id, n, lines=3) for n in range(5)]
    await bci.it.publish(
        SyncRequest(integration_id=bci.it.id, idempotency_key=f"{bci.it.id}:k1", vouchers=vouchers)
    )
    [result] = await bci.it.wait_results(1, timeout=60)
    assert result.status is SyncStatus.SUCCEEDED, result.error
    assert result.vouchers == 5
    assert result.lines == 15
    assert set(result.vendor_refs) == {document_number(v.voucher_id) for v in vouchers}
    assert set((await _counts(bci.bc, vouchers)).values()) == {1}
    entries = (await bci.bc.get("/_fake/postings")).json()["entries"]
    mine = [e for e in entries if e["documentNumber"] in set(result.vendor_refs)]
    assert len(mine) == 15
    assert any("«0»" in e["description"] and '"quoted" \\' in e["description"] for e in mine)


async def test_a_post_whose_answer_is_lost_is_looked_up_and_not_posted_again(
    bci: BcIntegration,
) -> None:
    vouchers = [make_voucher(bci.it.id, n) for n in range(3)]
    await bci.bc.post("/_fake/faults", json={"drop_after_commit": {"count": 1}})
    try:
        await bci.it.publish(
            SyncRequest(
                integration_id=bci.it.id, idempotency_key=f"{bci.it.id}:lost", vouchers=vouchers
            )
        )
        [result] = await bci.it.wait_results(1, timeout=60)
    finally:
        await bci.bc.post("/_fake/faults", json={"drop_after_commit": None})
    assert result.status is SyncStatus.SUCCEEDED, result.error
    assert set((await _counts(bci.bc, vouchers)).values()) == {1}


async def test_a_server_side_revoke_makes_the_dispatcher_refresh_once_and_the_export_succeeds(
    bci: BcIntegration,
) -> None:
    first = [make_voucher(bci.it.id, n) for n in range(2)]
    await bci.it.publish(
        SyncRequest(integration_id=bci.it.id, idempotency_key=f"{bci.it.id}:a", vouchers=first)
    )
    [done] = await bci.it.wait_results(1, timeout=60)
    assert done.status is SyncStatus.SUCCEEDED, done.error
    before = await bci.fake_stats()
    await bci.bc.post("/_fake/tokens/revoke", json={"client_id": bci.client_id})
    second = [make_voucher(bci.it.id, n) for n in range(10, 12)]
    await bci.it.publish(
        SyncRequest(integration_id=bci.it.id, idempotency_key=f"{bci.it.id}:b", vouchers=second)
    )
    results = await bci.it.wait_results(2, timeout=60)
    assert results[1].status is SyncStatus.SUCCEEDED, results[1].error
    after = await bci.fake_stats()
    revoked = after["auth_failures_by_reason"].get("revoked", 0)
    assert revoked - before["auth_failures_by_reason"].get("revoked", 0) == 1
    assert after["tokens_issued"] > before["tokens_issued"]
    assert set((await _counts(bci.bc, first + second)).values()) == {1}


async def test_a_wrong_client_secret_in_vault_fails_the_sync_with_an_auth_error(
    stack: Stack, bus: Client, bc: httpx.AsyncClient, unique_id: Callable[..., str]
) -> None:
    wrong = "bc-wrong-" + secrets.token_urlsafe(12)
    SEEN_SECRETS.append(wrong)
    bci = await _integration(stack, bus, bc, unique_id("bcbad"), secret_in_vault=wrong)
    await bci.it.publish(
        SyncRequest(
            integration_id=bci.it.id,
            idempotency_key=f"{bci.it.id}:x",
            vouchers=[make_voucher(bci.it.id, 1)],
        )
    )
    [result] = await bci.it.wait_results(1, timeout=60)
    assert result.status is SyncStatus.FAILED
    assert result.error is not None
    assert result.error.error_class is ErrorClass.AUTH
    assert "invalid_client" in result.error.message
    assert wrong not in result.error.message


# ---- the credential service's OAuth2 ----------------------------------------------------


async def test_the_credential_service_answers_with_an_access_token_only_and_caches_it(
    bci: BcIntegration,
) -> None:
    before = (await bci.fake_stats())["token_requests"]
    first = await bci.credential()
    second = await bci.credential()
    assert first.error is None, first.error
    assert first.scheme == "Bearer"
    assert first.secret is not None
    assert second.secret is not None
    token = first.secret.get_secret_value()
    assert token != bci.client_secret
    assert bci.client_secret not in first.to_bytes().decode()
    assert first.expires_at is not None
    assert 3000 < (first.expires_at.timestamp() - time.time()) <= 3600
    assert second.secret.get_secret_value() == token
    assert (await bci.fake_stats())["token_requests"] - before == 1
    assert await bci.call_api(token) == 200


async def test_many_concurrent_callers_get_the_same_token_from_one_token_request(
    bci: BcIntegration,
) -> None:
    before = (await bci.fake_stats())["token_requests"]
    answers = await asyncio.gather(*(bci.credential() for _ in range(30)))
    values = {a.secret.get_secret_value() for a in answers if a.secret is not None}
    assert len(values) == 1
    assert (await bci.fake_stats())["token_requests"] - before == 1


async def test_a_forced_refresh_after_a_server_side_revoke_gets_a_new_working_token(
    bci: BcIntegration,
) -> None:
    old = await bci.credential()
    assert old.secret is not None
    await bci.bc.post("/_fake/tokens/revoke", json={"client_id": bci.client_id})
    assert await bci.call_api(old.secret.get_secret_value()) == 401
    cached = await bci.credential()
    assert cached.secret is not None
    assert cached.secret.get_secret_value() == old.secret.get_secret_value()
    fresh = await bci.credential(force=True)
    assert fresh.secret is not None
    assert fresh.secret.get_secret_value() != old.secret.get_secret_value()
    assert await bci.call_api(fresh.secret.get_secret_value()) == 200


async def test_many_forced_refreshes_at_once_cost_at_most_two_token_requests(
    bci: BcIntegration,
) -> None:
    # 12 callers: fewer than the service's 16 handlers, so all of them are in at once.
    await bci.credential()
    before = (await bci.fake_stats())["token_requests"]
    answers = await asyncio.gather(*(bci.credential(force=True) for _ in range(12)))
    assert all(a.error is None for a in answers)
    assert 1 <= (await bci.fake_stats())["token_requests"] - before <= 2


async def test_a_short_lived_token_is_renewed_before_it_expires(bci: BcIntegration) -> None:
    # 6 s tokens: the service serves one for 3 s (half its life), then renews it.
    await bci.bc.post("/_fake/faults", json={"token_lifetime": {"seconds": 6}})
    try:
        first = await bci.credential()
        assert first.secret is not None
        assert first.expires_at is not None
        again = await bci.credential()
        assert again.secret is not None
        assert again.secret.get_secret_value() == first.secret.get_secret_value()
        # Wait until the token is past half its life (a fact of the token, not a guess).
        half = first.expires_at.timestamp() - 3.0
        await asyncio.sleep(max(half - time.time(), 0) + 0.3)
        assert time.time() < first.expires_at.timestamp()  # the old one still lives
        renewed = await bci.credential()
        assert renewed.secret is not None
        assert renewed.secret.get_secret_value() != first.secret.get_secret_value()
        assert renewed.expires_at is not None
        assert renewed.expires_at > first.expires_at
    finally:
        await bci.bc.post("/_fake/faults", json={"token_lifetime": None})


async def test_an_app_the_tenant_does_not_know_gets_an_auth_error_naming_the_entra_code(
    stack: Stack, bus: Client, bc: httpx.AsyncClient, unique_id: Callable[..., str]
) -> None:
    bci = await _integration(stack, bus, bc, unique_id("bcnone"), register=False)
    response = await bci.credential()
    assert response.secret is None
    assert response.error is not None
    assert response.error.error_class is ErrorClass.AUTH
    assert "unauthorized_client" in response.error.message
    assert "AADSTS700016" in response.error.message


# ---- nothing leaked ----------------------------------------------------------------------


async def test_no_client_secret_or_access_token_appears_in_any_file_the_stack_wrote(
    stack: Stack,
) -> None:
    assert len(SEEN_SECRETS) > 10
    log = (stack.log_dir / "credentials.log").read_text()
    assert "credentials.token_obtained" in log
    assert "credentials.served" in log
    written = [p for p in stack.state_dir.rglob("*") if p.is_file()]
    assert any(p.name == "dispatcher.log" for p in written)
    for path in written:
        data = path.read_bytes()
        for secret in SEEN_SECRETS:
            assert secret.encode() not in data, f"a secret appears in {path}"
