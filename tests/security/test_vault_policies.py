"""The Vault policy in deploy/ gives the credential service only what it needs (real OpenBao)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import hvac
import pytest
from hvac.exceptions import Forbidden

from syncbus_devstack import OpenBaoDev

POLICY = Path(__file__).resolve().parents[2] / "deploy" / "vault" / "syncbus-credentials.hcl"


def _capabilities(openbao: OpenBaoDev, token: str, path: str) -> list[str]:
    """What Vault itself says this token may do on `path` (sys/capabilities-self)."""
    client = hvac.Client(url=openbao.url, token=token)
    answer = client.adapter.post("/v1/sys/capabilities-self", json={"paths": [path]})
    return sorted(answer["data"][path])


@pytest.fixture
async def credentials_token(openbao: OpenBaoDev) -> str:
    def setup() -> str:
        root = openbao.client()
        root.sys.create_or_update_policy(name="syncbus-credentials", policy=POLICY.read_text())
        created = root.auth.token.create(policies=["syncbus-credentials"], ttl="10m")
        return str(created["auth"]["client_token"])

    return await asyncio.to_thread(setup)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("secret/data/integrations/toyen-xledger", ["read"]),
        ("secret/metadata/integrations/toyen-xledger", ["read"]),
        ("auth/token/lookup-self", ["read"]),
        ("auth/token/renew-self", ["update"]),
        ("secret/data/other-team/payroll", ["deny"]),
        ("secret/data/integrations", ["deny"]),
        ("secret/metadata/other-team/payroll", ["deny"]),
        ("sys/policies/acl/syncbus-credentials", ["deny"]),
        ("auth/token/create", ["deny"]),
    ],
)
async def test_the_credential_service_policy_reads_integration_secrets_and_nothing_else(
    openbao: OpenBaoDev, credentials_token: str, path: str, expected: list[str]
):
    assert await asyncio.to_thread(_capabilities, openbao, credentials_token, path) == expected


async def test_the_policy_lets_the_service_read_a_secret_and_refuses_to_write_one(
    openbao: OpenBaoDev, credentials_token: str, unique_id
):
    path = f"integrations/{unique_id('pol')}"
    await openbao.write_secret(path, {"api_token": "t-123"})

    def as_service() -> tuple[str, bool]:
        client = hvac.Client(url=openbao.url, token=credentials_token)
        read = client.secrets.kv.v2.read_secret_version(
            path=path, mount_point="secret", raise_on_deleted_version=True
        )
        try:
            client.secrets.kv.v2.create_or_update_secret(
                path=path, secret={"api_token": "x"}, mount_point="secret"
            )
        except Forbidden:
            return read["data"]["data"]["api_token"], False
        return read["data"]["data"]["api_token"], True

    value, wrote = await asyncio.to_thread(as_service)
    assert value == "t-123"
    assert wrote is False
