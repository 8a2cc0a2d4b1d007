"""The ingress as the stack runs it: its own process, the ready line, the real dispatcher behind it."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from syncbus_devstack import Stack
from syncbus_ingress.auth import digest_of
from syncbus_shared.contracts import IntegrationConfig, Voucher, VoucherLine
from syncbus_shared.integrations import put_integration
from syncbus_shared.natsclient import connect
from syncbus_shared.settings import NatsSettings
from syncbus_shared.staging import stage_vouchers

API_KEY = secrets.token_urlsafe(24)
WRONG_KEY = secrets.token_urlsafe(24)

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    async with Stack(
        tmp_path_factory.mktemp("stack"),
        services=("credentials", "dispatcher", "ingress"),
        extra_env={"SYNCBUS_INGRESS_API_KEY_HASHES": f"pytest={digest_of(API_KEY)}"},
    ) as running:
        yield running


async def _configure(stack: Stack, integration_id: str) -> None:
    token = secrets.token_urlsafe(18)
    fake_url = stack.fake_urls["xledger"]
    await stack.vault.write_secret(f"integrations/{integration_id}", {"api_token": token})
    async with httpx.AsyncClient(base_url=fake_url) as fake:
        (await fake.post("/_fake/tokens", json={"token": token})).raise_for_status()
    nc = await connect(NatsSettings(url=stack.nats_url), "pytest-ingress")
    try:
        js = nc.jetstream()
        await put_integration(
            js,
            IntegrationConfig(
                integration_id=integration_id,
                vendor="xledger",
                endpoint=f"{fake_url}/graphql",
                credentials_path=f"integrations/{integration_id}",
            ),
        )
        await stage_vouchers(
            js,
            integration_id,
            [
                Voucher(
                    voucher_id=f"{integration_id}-v{n}",
                    period_id="2017-03",
                    transaction_date="2017-03-01",
                    posting_date="2017-03-01",
                    lines=(
                        VoucherLine(record_id="1", account_id="6300", debit="10.00"),  # type: ignore[arg-type]
                        VoucherLine(record_id="2", account_id="1920", credit="10.00"),  # type: ignore[arg-type]
                    ),
                )
                for n in range(3)
            ],
        )
    finally:
        await nc.close()


async def test_a_request_posted_over_http_is_exported_and_its_result_served(stack: Stack):
    integration = "http-erp"
    await _configure(stack, integration)
    info = stack.service("ingress").ready_info
    assert info is not None
    assert info["event"] == "ingress.ready"
    url = info["url"]
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with httpx.AsyncClient(base_url=url, timeout=30.0) as http:
        assert (await http.get("/readyz")).status_code == 200
        posted = await http.post(
            "/v1/sync-requests",
            json={"integration_id": integration, "period_id": "2017-03"},
            headers=headers,
        )
        assert posted.status_code == 200
        receipt = posted.json()
        assert receipt["idempotency_key"] == f"{integration}:2017-03"
        denied = await http.post(
            "/v1/sync-requests",
            json={"integration_id": integration, "period_id": "2017-03"},
            headers={"X-API-Key": WRONG_KEY},
        )
        assert denied.status_code == 401
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while (
            found := await http.get(f"/v1/sync-results/{receipt['request_id']}", headers=headers)
        ).status_code == 404:
            assert loop.time() < deadline, "no result within 60 s"
            await asyncio.sleep(0.2)
        assert found.status_code == 200
        result = found.json()
        assert (result["status"], result["vouchers"], result["debit_total"]) == (
            "succeeded",
            3,
            "30.00",
        )
        again = await http.post(
            "/v1/sync-requests",
            json={"integration_id": integration, "period_id": "2017-03"},
            headers=headers,
        )
        assert again.json() == {**receipt, "duplicate": True}


async def test_no_api_key_ever_reaches_the_ingress_log(stack: Stack):
    process = stack.service("ingress")
    assert process.ready_info is not None
    body = {"integration_id": "http-log", "period_id": "2017-03"}
    async with httpx.AsyncClient(base_url=process.ready_info["url"], timeout=30.0) as http:
        accepted = await http.post(
            "/v1/sync-requests", json=body, headers={"Authorization": f"Bearer {API_KEY}"}
        )
        refused = await http.post("/v1/sync-requests", json=body, headers={"X-API-Key": WRONG_KEY})
    assert (accepted.status_code, refused.status_code) == (200, 401)
    await process.stop()  # flushes and closes the log
    log = process.log_path.read_text(encoding="utf-8")
    assert '"ingress.sync_request_published"' in log
    assert '"ingress.unauthorized"' in log
    assert API_KEY not in log
    assert WRONG_KEY not in log
    await process.start()


async def test_sigterm_stops_the_ingress_cleanly(stack: Stack):
    process = stack.service("ingress")
    assert await process.stop() == 0
    assert '"ingress.stopped"' in process.log_path.read_text(encoding="utf-8")
