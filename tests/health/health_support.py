"""Helpers of the health tests (imported by name: tests/ has no packages)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
from nats.aio.msg import Msg
from pydantic import SecretStr

from syncbus_shared.contracts import CredentialResponse


@dataclass
class Xledger:
    url: str
    control: httpx.AsyncClient

    async def requests_total(self) -> int:
        return int((await self.control.get("/_fake/stats")).json()["requests_total"])

    async def faults(self, **changes: Any) -> None:
        response = await self.control.post("/_fake/faults", json=changes)
        response.raise_for_status()

    async def add_token(self, token: str) -> None:
        (await self.control.post("/_fake/tokens", json={"token": token})).raise_for_status()

    async def revoke(self, token: str) -> None:
        (await self.control.post("/_fake/tokens/revoke", json={"token": token})).raise_for_status()


@dataclass
class Credentials:
    tokens: dict[str, str] = field(default_factory=dict)

    async def answer(self, msg: Msg) -> None:
        integration_id = msg.subject.rsplit(".", 1)[-1]
        token = self.tokens[integration_id]
        reply = CredentialResponse(
            integration_id=integration_id, scheme="token", secret=SecretStr(token)
        )
        await msg.respond(reply.to_bytes())
