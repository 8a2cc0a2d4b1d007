"""Helpers of the health tests (imported by name: tests/ has no packages)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
from nats.aio.msg import Msg
from pydantic import SecretStr

from syncbus_shared.contracts import CredentialResponse, ErrorClass, ErrorInfo


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
    """Answers with each integration's token; for an id in `missing`, what the credential
    service answers when Vault holds no secret at its path (`configuration`)."""

    tokens: dict[str, str] = field(default_factory=dict)
    missing: set[str] = field(default_factory=set)
    asked: int = 0

    async def answer(self, msg: Msg) -> None:
        integration_id = msg.subject.rsplit(".", 1)[-1]
        self.asked += 1
        if integration_id in self.missing:
            error = ErrorInfo(
                error_class=ErrorClass.CONFIGURATION,
                message=f"no secret at secret/integrations/{integration_id}",
            )
            reply = CredentialResponse(integration_id=integration_id, error=error)
            await msg.respond(reply.to_bytes())
            return
        token = self.tokens[integration_id]
        reply = CredentialResponse(
            integration_id=integration_id, scheme="token", secret=SecretStr(token)
        )
        await msg.respond(reply.to_bytes())
