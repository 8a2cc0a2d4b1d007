"""Helpers of the client tests (imported by name: tests/ has no packages)."""

from __future__ import annotations

import itertools
import secrets
from typing import Any

import httpx
from nats.js import JetStreamContext

from syncbus_devstack import Stack
from syncbus_shared import topology as t
from syncbus_shared.contracts import (
    IntegrationConfig,
    SyncResult,
    SyncStatus,
    Voucher,
    VoucherLine,
)
from syncbus_shared.integrations import put_integration

_seq = itertools.count(1)


async def publish_result(
    js: JetStreamContext,
    integration_id: str,
    request_id: str,
    status: SyncStatus = SyncStatus.SUCCEEDED,
    key: str | None = None,
) -> SyncResult:
    """Publish a final result as the dispatcher does."""
    result = SyncResult(
        request_id=request_id,
        integration_id=integration_id,
        idempotency_key=key or f"{integration_id}:2017-01",
        status=status,
    )
    await js.publish(
        t.result_subject(integration_id),
        result.to_bytes(),
        headers={"Nats-Msg-Id": f"result:test-{next(_seq)}-{request_id}"},
    )
    return result


def voucher(voucher_id: str, period: str = "2017-01", amount: str = "125.00") -> Voucher:
    return Voucher(
        voucher_id=voucher_id,
        period_id=period,
        transaction_date="2017-01-10",
        posting_date="2017-01-10",
        description=f"voucher {voucher_id}",
        lines=(
            VoucherLine(record_id="1", account_id="6300", debit=amount),
            VoucherLine(record_id="2", account_id="1920", credit=amount),
        ),
    )


async def configure_xledger_integration(
    stack: Stack, js: JetStreamContext, integration_id: str
) -> str:
    """Configure `integration_id` against the stack's Xledger fake with a token of its own;
    returns the fake's URL (for reading what it received from `/_fake/postings`)."""
    token = secrets.token_urlsafe(18)
    fake_url = stack.fake_urls["xledger"]
    await stack.vault.write_secret(f"integrations/{integration_id}", {"api_token": token})
    async with httpx.AsyncClient(base_url=fake_url, timeout=10.0) as fake:
        (await fake.post("/_fake/tokens", json={"token": token})).raise_for_status()
    await put_integration(
        js,
        IntegrationConfig(
            integration_id=integration_id,
            vendor="xledger",
            endpoint=f"{fake_url}/graphql",
            credentials_path=f"integrations/{integration_id}",
            timeout_seconds=10.0,
        ),
    )
    return fake_url


async def postings(fake_url: str, integration_id: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=fake_url, timeout=10.0) as fake:
        body = (await fake.get("/_fake/postings")).json()
    return [
        p for p in body["postings"] if str(p.get("extIdentifier", "")).startswith(integration_id)
    ]
