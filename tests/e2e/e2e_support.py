"""Helpers shared by the e2e tests (imported by name: tests/ has no packages)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import httpx
from nats.aio.client import Client
from nats.js import JetStreamContext

from syncbus_shared import topology as t
from syncbus_shared.contracts import (
    IntegrationConfig,
    SyncRequest,
    SyncResult,
    Voucher,
    VoucherLine,
)

DEDUP_WINDOW_SECONDS = 1.0
"""The e2e stack's SYNC_REQUESTS dedup window: short, so a test can outlive it."""


@dataclass
class Integration:
    """One configured integration with its own token, and ways to drive and observe it."""

    config: IntegrationConfig
    token: str
    nc: Client
    js: JetStreamContext
    fake: httpx.AsyncClient
    results: list[SyncResult] = field(default_factory=list)
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    @property
    def id(self) -> str:
        return self.config.integration_id

    async def publish(self, request: SyncRequest, *, msg_id: str | None = None) -> Any:
        return await self.js.publish(
            t.request_subject(self.id),
            request.to_bytes(),
            headers={"Nats-Msg-Id": msg_id or request.idempotency_key},
        )

    async def publish_raw(
        self, body: bytes, subject: str | None = None, headers: dict[str, str] | None = None
    ) -> Any:
        return await self.js.publish(subject or t.request_subject(self.id), body, headers=headers)

    async def _on_result(self, msg: Any) -> None:
        async with self._arrived:
            self.results.append(SyncResult.from_bytes(msg.data))
            self._arrived.notify_all()

    async def wait_results(self, count: int, timeout: float = 30.0) -> list[SyncResult]:
        async def enough() -> None:
            async with self._arrived:
                await self._arrived.wait_for(lambda: len(self.results) >= count)

        await asyncio.wait_for(enough(), timeout)
        return list(self.results)

    async def postings(self) -> list[dict[str, Any]]:
        body = (await self.fake.get("/_fake/postings")).json()
        return [p for p in body["postings"] if str(p.get("extIdentifier", "")).startswith(self.id)]


def make_voucher(integration_id: str, n: int, period: str = "2017-01", lines: int = 2) -> Voucher:
    amount = f"{100 + n}.50"
    body = [
        VoucherLine(
            record_id=str(i + 1),
            account_id="6300",
            debit=amount,
            description=f'Tøyen «{n}» "quoted" \\ line {i + 1}',
        )
        for i in range(lines - 1)
    ]
    total = sum(
        (line.debit for line in body if line.debit is not None), start=type(body[0].debit)(0)
    )  # type: ignore[arg-type]
    body.append(VoucherLine(record_id=str(lines), account_id="1920", credit=str(total)))
    return Voucher(
        voucher_id=f"{integration_id}-v{n}",
        period_id=period,
        transaction_date="2017-01-10",
        posting_date="2017-01-10",
        description=f"voucher {n}",
        lines=tuple(body),
    )
